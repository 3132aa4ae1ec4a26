"""In-flight forecast: which unfinished journey instances will breach a threshold at the current step pace, and
when (docs/journeys.md "Forecast").

Pace: per step, the exact p50 and p95 of previous step → step over the transitions that happened in the last
`pace_window` (6 h). An in-flight instance (started, no end, threshold not yet passed) whose furthest step is k:

* if it has waited longer than the p95 of step k+1 already, it is treated as stuck: it breaches;
* else step k+1 arrives at max(reached_k + p50, now), and each later step p50 after the previous one;
* it breaches when that predicted end lies past start + threshold; the breach happens at start + threshold
  (when the SLI decides it bad, whatever happens next);
* a step nobody passed in the pace window has no pace: such instances are counted as `no_pace`, not predicted.

Invariants: only instances with s_at > now − threshold are in flight (older ones are already decided); money is
the start event's amount per currency (Decimal); the SLO layer groups with the SLI's own group expression.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np

from revwatch.config import JourneyConfig
from revwatch.journeys import money as m
from revwatch.journeys.cache import (InstanceCache, JourneyTable, currency_names, first_by_time, group_keys,
                                     masked_times, quantiles_exact, started_since, to_datetime)
from revwatch.journeys.sql import instance_params, instances_sql, steps_of
from revwatch.store import Store

PACE_WINDOW = dt.timedelta(hours=6)


@dataclass(frozen=True)
class Prediction:
    correlation_id: str
    group: str
    started: dt.datetime
    waiting_for: str
    breach_at: dt.datetime | None          # None: predicted on time
    predicted_end: dt.datetime | None      # None: stuck (waited past the step's p95) or no pace
    amount: Decimal | None
    currency: str
    stuck: bool = False
    no_pace: bool = False


@dataclass
class InFlight:
    """All in-flight instances of one journey as of `now`, with the pace used."""
    now: dt.datetime
    threshold: dt.timedelta
    pace: dict[str, dict[str, float]] = field(default_factory=dict)     # step → {"p50", "p95", "n"}
    predictions: list[Prediction] = field(default_factory=list)


def in_flight(store: Store, journey: JourneyConfig, threshold: dt.timedelta, now: dt.datetime,
              group_sql: str = "''", pace_window: dt.timedelta = PACE_WINDOW, cache: InstanceCache | None = None,
              group_key: Callable[[Mapping[str, str], str, str], str] | None = None) -> InFlight:
    """Predict the in-flight instances of `journey` against `threshold` (`group_sql`: an SQL expression over the
    instance columns `attrs`, `src` and `cur` giving each instance's group). With `cache` (and `group_key`, the same
    group in Python) the instances come from the journey instance cache (revwatch/journeys/cache.py) instead of a
    scan of the lookback's raw rows: the same predictions."""
    steps = steps_of(journey)
    lookback = max(threshold, pace_window) + dt.timedelta(hours=1)
    if cache is not None and group_key is not None and cache.knows(journey) \
            and cache.covers(now - lookback, dt.datetime.now(dt.timezone.utc)):
        t = cache.table_of(journey, now - lookback, now)
        if t.exact and t.steps == steps:
            return _from_cache(cache, t, threshold, now, group_key, pace_window, lookback)
    now_ms = int(now.timestamp() * 1000)
    params: dict[str, object] = {**instance_params(journey), "since": now - lookback, "now_ms": now_ms,
                                 "pace_ms": int(pace_window.total_seconds() * 1000),
                                 "t_ms": int(threshold.total_seconds() * 1000)}
    inner = instances_sql(store.table("milestones"), "{since:DateTime64(3, 'UTC')}", steps=True)
    base = f"""
        SELECT i.CorrelationId AS cid, i.s_at AS s_at, i.has_end AS has_end, i.attrs AS attrs, i.src AS src,
               a.amt AS amt, if(a.cur = '', '?', a.cur) AS cur, a.known AS known,
               arrayMap(st -> arrayMin(arrayMap(p -> toUnixTimestamp64Milli(p.2), arrayFilter(p -> p.1 = st,
                                                                                              i.reached))),
                        {{j_steps:Array(String)}}) AS ts,
               arrayMax(arrayMap((x, k) -> if(x > 0, k, 0), ts, arrayEnumerate(ts))) AS last
        FROM ({inner}) AS i
        LEFT JOIN (
            SELECT CorrelationId, anyIf(assumeNotNull(Amount), Amount IS NOT NULL) AS amt,
                   anyIf(toString(Currency), Amount IS NOT NULL) AS cur, countIf(Amount IS NOT NULL) > 0 AS known
            FROM {store.table('events')}
            WHERE Type = {{j_start:String}} AND OccurredAt >= {{since:DateTime64(3, 'UTC')}}
            GROUP BY CorrelationId
        ) AS a ON a.CorrelationId = i.CorrelationId"""
    pace_rows = store.query(f"""
        SELECT k, count(), quantilesExact(0.5, 0.95)((ts[k] - ts[k - 1]) / 1000)
        FROM ({base}) ARRAY JOIN arrayEnumerate(ts) AS k
        WHERE k > 1 AND ts[k] > 0 AND ts[k - 1] > 0 AND ts[k] >= {{now_ms:Int64}} - {{pace_ms:Int64}}
        GROUP BY k""", params).rows
    out = InFlight(now, threshold)
    for k, n, q in pace_rows:
        out.pace[steps[k - 1]] = {"p50": float(q[0]), "p95": float(q[1]), "n": int(n)}
    rows = store.query(f"""
        SELECT cid, {group_sql} AS g, s_at, ts, last, if(known, toString(amt), '') AS amount, cur
        FROM ({base})
        WHERE NOT has_end AND toUnixTimestamp64Milli(s_at) + {{t_ms:Int64}} > {{now_ms:Int64}}
          AND toUnixTimestamp64Milli(s_at) <= {{now_ms:Int64}}
        ORDER BY s_at, cid""", params).rows
    for cid, g, s_at, ts, last, amount, cur in rows:
        s_at = s_at.replace(tzinfo=dt.timezone.utc) if s_at.tzinfo is None else s_at
        out.predictions.append(_predict(out, steps, cid, g, s_at, ts, last, m.parse_amount(amount), cur))
    return out


def _from_cache(cache: InstanceCache, t: JourneyTable, threshold: dt.timedelta, now: dt.datetime,
                group_key: Callable[[Mapping[str, str], str, str], str], pace_window: dt.timedelta,
                lookback: dt.timedelta) -> InFlight:
    """`in_flight` over the cache's instances: the pace from numpy over the lookback, the predictions over the
    in-flight ones only (no end, threshold not passed: a bounded set)."""
    now_ms = int(now.timestamp() * 1000)
    pace_ms, t_ms = int(pace_window.total_seconds() * 1000), int(threshold.total_seconds() * 1000)
    since_ms = now_ms - int(lookback.total_seconds() * 1000)

    def base() -> tuple[np.ndarray, np.ndarray, dict[str, dict[str, float]]]:
        rows = started_since(t, since_ms)              # hours of the kept days
        full = masked_times(t, since_ms, rows)
        ts = full[full[:, 0] > 0]
        pace: dict[str, dict[str, float]] = {}
        for k in range(1, len(t.steps)):
            a, b = ts[:, k - 1], ts[:, k]
            use = (b > 0) & (a > 0) & (b >= now_ms - pace_ms)
            if use.any():
                p50, p95 = quantiles_exact(b[use] - a[use], (0.5, 0.95), per=1000)
                pace[t.steps[k]] = {"p50": p50, "p95": p95, "n": int(use.sum())}
        return rows, full, pace
    # the SLOs of one journey with thresholds up to the pace window share the lookback: its instances and the pace
    # are computed once per (lookback, now) while the table is unchanged (`InstanceCache.derived`)
    key = ("forecast", t.steps[0], t.steps[-1], since_ms, now_ms, pace_ms)
    rows, full, pace = cache.derived(key, t, base)
    out = InFlight(now, threshold, dict(pace))
    s = full[:, 0]
    sub = np.flatnonzero((s > 0) & (full[:, -1] == 0) & (s + t_ms > now_ms) & (s <= now_ms))
    idx = rows[sub]
    groups = group_keys(cache, t, idx, group_key)
    g_of = dict(zip(idx.tolist(), list(groups)))
    row_of = dict(zip(idx.tolist(), sub.tolist()))
    names = currency_names(cache)
    for i in first_by_time(t, idx, s[sub]):
        row = full[row_of[i]]
        last = int(np.flatnonzero(row > 0).max()) + 1
        known = bool(t.own_has[i, 0])
        out.predictions.append(_predict(out, t.steps, t.cids[i], g_of[i], to_datetime(row[0]), row.tolist(), last,
                                        cache.amount(t.own_amt[i, 0]) if known else None,
                                        names[int(t.own_cur[i, 0])]))
    return out


def _predict(out: InFlight, steps: list[str], cid: str, g: str, s_at: dt.datetime, ts: list[int], last: int,
             amt: Decimal | None, cur: str) -> Prediction:
    """One in-flight instance's prediction at `out`'s pace (`ts`: first time per step in ms, 0 not reached;
    `last`: the 1-based index of the furthest step reached)."""
    now, threshold = out.now, out.threshold
    deadline = s_at + threshold
    t = dt.datetime.fromtimestamp(ts[last - 1] / 1000, dt.timezone.utc)
    stuck = no_pace = False
    for j in range(last, len(steps)):                 # steps[j] is the next step (0-based)
        p = out.pace.get(steps[j])
        if p is None:
            no_pace = True
            break
        if j == last:
            if (now - t).total_seconds() > p["p95"]:
                stuck = True
                break
            t = max(t + dt.timedelta(seconds=p["p50"]), now)
        else:
            t += dt.timedelta(seconds=p["p50"])
    end = None if stuck or no_pace else t
    breach = deadline if stuck or (end is not None and end > deadline) else None
    return Prediction(cid, g, s_at, steps[last] if last < len(steps) else steps[-1], breach, end,
                      amt, cur if amt is not None else "", stuck, no_pace)

"""Funnels: how many journey instances — and how much money — reach each step, where they drop off, how long
each step takes, and where money stops moving (docs/journeys.md "Funnels").

For a journey (start, milestones…, end) and the instances that *started* in [since, until) (optionally filtered on
start-event attributes or source, optionally split by one attribute):

* `reached` — instances that reached the step (any order; a missing milestone event does not hide a later step);
* money reaching a step, per currency, exactly: the amount of that step's own event when it carries one (billed
  vs collected differ when money leaks), else the start event's amount;
* `conversion` = reached / reached at the previous step, `from_start` = reached / started, `dropped` = instances
  that reached the previous step but not this one;
* latency p50/p95/p99 (exact quantiles) of previous step → this step over instances that reached both;
* `stopped` — unfinished instances whose furthest step is the previous one (they wait for this step): count,
  money per currency, and how long they have waited (p50 and max, as of `until` or now, whichever is earlier).

The revenue funnel finance uses (signed → billed → collected → posted → reconciled) is a journey configured with
those milestones; every journey with milestones is a funnel. Cost: one pass over the milestones of the range and
one over the step events that carry amounts (no per-instance rows leave ClickHouse).
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np

from revwatch.config import JourneyConfig
from revwatch.journeys import money as m
from revwatch.journeys.reader import iso
from revwatch.journeys.cache import (NANO, InstanceCache, JourneyTable, currency_names, group_codes, masked_times,
                                     money_sum, quantiles_exact, started_since)
from revwatch.journeys.sql import instance_params, instances_sql, steps_of
from revwatch.store import Store
from revwatch.units import utcnow


@dataclass
class FunnelStep:
    step: str
    reached: int = 0
    money: m.Money = field(default_factory=dict)
    conversion: float | None = None
    from_start: float | None = None
    dropped: int = 0
    latency_seconds: dict[str, float] = field(default_factory=dict)   # p50/p95/p99 from the previous step
    stopped: int = 0                    # unfinished, furthest step is the previous one: waiting for this step
    stopped_money: m.Money = field(default_factory=dict)
    waiting_seconds: dict[str, float] = field(default_factory=dict)   # p50 / max wait of the stopped ones

    def as_dict(self) -> dict:
        return {"step": self.step, "reached": self.reached, "money": m.as_json(self.money),
                "conversion": self.conversion, "from_start": self.from_start, "dropped": self.dropped,
                "latency_seconds": self.latency_seconds, "stopped": self.stopped,
                "stopped_money": m.as_json(self.stopped_money), "waiting_seconds": self.waiting_seconds}


@dataclass
class Funnel:
    journey: str
    group: str | None
    since: dt.datetime
    until: dt.datetime
    steps: list[FunnelStep]

    def as_dict(self) -> dict:
        return {"journey": self.journey, "group": self.group, "since": iso(self.since), "until": iso(self.until),
                "started": self.steps[0].reached if self.steps else 0,
                "completed": self.steps[-1].reached if self.steps else 0,
                "steps": [s.as_dict() for s in self.steps]}


def _filters(filters: Mapping[str, str], params: dict) -> str:
    conds = []
    for i, (k, v) in enumerate(sorted(filters.items())):
        params[f"fv{i}"] = v
        if k == "source":
            conds.append(f"src = {{fv{i}:String}}")
        else:
            params[f"fk{i}"] = k
            conds.append(f"attrs[{{fk{i}:String}}] = {{fv{i}:String}}")
    return " AND ".join(conds) or "1"


def funnel(store: Store, journeys: Mapping[str, JourneyConfig], journey: str, since: dt.datetime,
           until: dt.datetime, filters: Mapping[str, str] | None = None, by: str | None = None,
           now: dt.datetime | None = None, cache: InstanceCache | None = None) -> list[Funnel]:
    """The funnel of `journey` over instances started in [since, until): one Funnel, or one per value of the
    start-event attribute `by` (or 'source'), largest first. With `cache` (the journey instance cache,
    revwatch/journeys/cache.py) the instances come from memory, brought up to date, not from a scan of the range's
    raw rows: the same funnels."""
    j = journeys[journey]
    now = now or min(utcnow(), until)           # waits are measured as of the end of the range
    steps = steps_of(j)
    if cache is not None and cache.knows(j) and cache.covers(since, utcnow()):
        tab = cache.table_of(j, since, utcnow())
        if tab.exact and tab.steps == steps:
            return _finish(journey, since, until, by, steps,
                           *_from_cache(cache, tab, since, until, filters or {}, by, now))
    params: dict[str, object] = {**instance_params(j), "since": since, "until": until, "now": now}
    where = _filters(filters or {}, params)
    if by:
        params["by"] = by
    group = "src" if by == "source" else "attrs[{by:String}]" if by else "''"
    t = store.table
    inner = instances_sql(t("milestones"), "{since:DateTime64(3, 'UTC')}", steps=True)
    base = f"""
        SELECT CorrelationId AS cid, {group} AS g, has_end,
               arrayMap(st -> arrayMin(arrayMap(p -> toUnixTimestamp64Milli(p.2), arrayFilter(p -> p.1 = st, reached))),
                        {{j_steps:Array(String)}}) AS ts,
               arrayMax(arrayMap((x, k) -> if(x > 0, k, 0), ts, arrayEnumerate(ts))) AS last
        FROM ({inner})
        WHERE s_at < {{until:DateTime64(3, 'UTC')}} AND {where}"""
    now_ms = int(now.timestamp() * 1000)
    counts = store.query(f"""
        SELECT g, k, countIf(ts[k] > 0) AS reached,
               countIf(k > 1 AND ts[k - 1] > 0 AND ts[k] = 0) AS dropped,
               countIf(k > 1 AND ts[k - 1] > 0 AND ts[k] > 0) AS pairs,
               quantilesExactIf(0.5, 0.95, 0.99)((ts[k] - ts[k - 1]) / 1000,
                                                k > 1 AND ts[k - 1] > 0 AND ts[k] > 0) AS lat,
               countIf(k > 1 AND NOT has_end AND last = k - 1) AS stopped,
               quantilesExactIf(0.5, 1)(({now_ms} - ts[k - 1]) / 1000, k > 1 AND NOT has_end AND last = k - 1) AS wait
        FROM ({base}) ARRAY JOIN arrayEnumerate(ts) AS k
        GROUP BY g, k ORDER BY g, k""", params).rows
    money_rows = store.query(f"""
        WITH inst AS ({base})
        SELECT g, k, x.1 AS kind, if(x.2 = '', '?', x.2) AS currency, toString(sum(x.3)), count()
        FROM (
            SELECT i.g AS g, k,
                   arrayJoin([('reached', if(e.has_own, e.cur, s.scur), if(e.has_own, e.own, s.amt),
                               i.ts[k] > 0 AND (e.has_own OR s.known)),
                              ('stopped', s.scur, s.amt, k > 1 AND NOT i.has_end AND i.last = k - 1 AND s.known)]) AS x
            FROM inst AS i ARRAY JOIN arrayEnumerate(i.ts) AS k
            LEFT JOIN (
                SELECT CorrelationId, anyIf(assumeNotNull(Amount), Amount IS NOT NULL) AS amt,
                       countIf(Amount IS NOT NULL) > 0 AS known, anyIf(toString(Currency), Amount IS NOT NULL) AS scur
                FROM {t('events')} WHERE Type = {{j_start:String}} AND OccurredAt >= {{since:DateTime64(3, 'UTC')}}
                  AND OccurredAt < {{until:DateTime64(3, 'UTC')}}
                GROUP BY CorrelationId
            ) AS s ON s.CorrelationId = i.cid
            LEFT JOIN (
                SELECT CorrelationId, indexOf({{j_steps:Array(String)}}, toString(Type)) AS k2,
                       anyIf(assumeNotNull(Amount), Amount IS NOT NULL) AS own,
                       countIf(Amount IS NOT NULL) > 0 AS has_own, anyIf(toString(Currency), Amount IS NOT NULL) AS cur
                FROM {t('events')}
                WHERE Type IN {{j_steps:Array(String)}} AND OccurredAt >= {{since:DateTime64(3, 'UTC')}}
                GROUP BY CorrelationId, k2
            ) AS e ON e.CorrelationId = i.cid AND e.k2 = k
        )
        WHERE x.4
        GROUP BY g, k, kind, currency""", params).rows
    return _finish(journey, since, until, by, steps, counts, money_rows)


def _finish(journey: str, since: dt.datetime, until: dt.datetime, by: str | None, steps: list[str],
            counts: list[tuple], money_rows: list[tuple]) -> list[Funnel]:
    """Funnels from the per (group, step) counts (reached, dropped, pairs, latency quantiles, stopped, wait
    quantiles) and money rows (group, step, 'reached' | 'stopped', currency, amount)."""
    out: dict[str, list[FunnelStep]] = {}
    for g, k, reached, dropped, pairs, lat, stopped, wait in counts:
        fs = out.setdefault(g, [FunnelStep(s) for s in steps])[k - 1]
        fs.reached, fs.dropped, fs.stopped = int(reached), int(dropped), int(stopped)
        if pairs:
            fs.latency_seconds = {"p50": float(lat[0]), "p95": float(lat[1]), "p99": float(lat[2])}
        if stopped:
            fs.waiting_seconds = {"p50": float(wait[0]), "max": float(wait[1])}
    for g, k, kind, cur, amount, *_n in money_rows:
        if g in out:
            fs = out[g][k - 1]
            m.add(fs.money if kind == "reached" else fs.stopped_money, cur, m.parse_amount(amount))
    funnels = []
    for g, fsteps in out.items():
        started = fsteps[0].reached
        for i, fs in enumerate(fsteps):
            fs.money, fs.stopped_money = dict(sorted(fs.money.items())), dict(sorted(fs.stopped_money.items()))
            prev = fsteps[i - 1].reached if i else started
            fs.conversion = fs.reached / prev if i and prev else (1.0 if not i and started else None)
            fs.from_start = fs.reached / started if started else None
        funnels.append(Funnel(journey, g if by else None, since, until, fsteps))
    funnels.sort(key=lambda f: (-f.steps[0].reached, f.group or ""))
    if not funnels:
        funnels.append(Funnel(journey, None, since, until, [FunnelStep(s) for s in steps]))
    return funnels


def _from_cache(cache: InstanceCache, t: JourneyTable, since: dt.datetime, until: dt.datetime,
                filters: Mapping[str, str], by: str | None, now: dt.datetime) -> tuple[list[tuple], list[tuple]]:
    """The counts and money rows `funnel` reads in SQL, from the cache's instances with numpy."""
    rows = started_since(t, int(since.timestamp() * 1000))
    ts = masked_times(t, int(since.timestamp() * 1000), rows)
    s = ts[:, 0]
    sub = np.flatnonzero((s > 0) & (s < int(until.timestamp() * 1000)))
    idx, ts = rows[sub], ts[sub]

    def group_of(attrs: Mapping[str, str], src: str, _cur: str) -> str:
        for k, v in filters.items():
            if (src if k == "source" else attrs.get(k, "")) != v:
                return "\x00"                    # filtered out
        return src if by == "source" else attrs.get(by, "") if by else ""
    keys, gs = group_codes(cache, t, idx, group_of, tuple(filters) + ((by,) if by else ()))
    if "\x00" in keys:
        keep = gs != keys.index("\x00")
        idx, gs, ts = idx[keep], gs[keep], ts[keep]
    has_end = ts[:, -1] > 0
    last = np.zeros(len(ts), np.int64)                # the last step reached (1-based; 0: none)
    for k in range(len(t.steps)):
        last = np.where(ts[:, k] > 0, k + 1, last)
    now_ms = int(now.timestamp() * 1000)
    names = currency_names(cache)
    counts, money_rows = [], []
    # rows grouped once (a stable sort by group code), each group a slice: masking every column per group and
    # step copied the whole window's instances a dozen times per step (most of a funnel at 20 M events). The codes
    # sorted as 16-bit integers when they fit (numpy's radix sort: ~7× faster than the int64 merge sort at 135 k
    # instances); one group needs no sort and no copy at all
    one = len(keys) == 1
    order = np.arange(len(gs)) if one else np.argsort(gs.astype(np.int16) if len(keys) < 2 ** 15 else gs,
                                                      kind="stable")
    bounds = np.searchsorted(gs[order], np.arange(len(keys) + 1))
    for code, g in enumerate(keys):
        if g == "\x00" or bounds[code] == bounds[code + 1]:
            continue
        if one:
            ts_g, end_g, last_g, at = ts, has_end, last, idx
        else:
            rows_g = order[bounds[code]:bounds[code + 1]]
            ts_g, end_g, last_g, at = ts[rows_g], has_end[rows_g], last[rows_g], idx[rows_g]
        has_g, amt_g, cur_g = t.own_has[at], t.own_amt[at], t.own_cur[at]
        s_known, s_amt, s_cur = has_g[:, 0], amt_g[:, 0], cur_g[:, 0]
        for k in range(len(t.steps)):
            cur_t = ts_g[:, k]
            reached = cur_t > 0
            row = [g, k + 1, int(reached.sum()), 0, 0, [0.0, 0.0, 0.0], 0, [0.0, 0.0]]
            stopped = None
            if k:
                prev_t = ts_g[:, k - 1]
                row[3] = int(((prev_t > 0) & ~reached).sum())
                pair = (prev_t > 0) & reached
                row[4] = int(pair.sum())
                if row[4]:
                    row[5] = quantiles_exact(cur_t[pair] - prev_t[pair], (0.5, 0.95, 0.99), per=1000)
                stopped = ~end_g & (last_g == k)
                row[6] = int(stopped.sum())
                if row[6]:
                    row[7] = quantiles_exact(now_ms - prev_t[stopped], (0.5, 1), per=1000)
            counts.append(tuple(row))
            # money reaching the step: its own event's amount when it carries one, else the start event's
            own = has_g[:, k]
            use = reached & (own | s_known)
            amt = np.where(own, amt_g[:, k], s_amt)[use]
            cur = np.where(own, cur_g[:, k], s_cur)[use]
            money_rows += _money_rows(g, k + 1, "reached", amt, cur, names)
            if stopped is not None:
                stop = stopped & s_known
                money_rows += _money_rows(g, k + 1, "stopped", s_amt[stop], s_cur[stop], names)
    return counts, money_rows


def _money_rows(g: str, k: int, kind: str, amt: np.ndarray, cur: np.ndarray, names: list[str]) -> list[tuple]:
    """(group, step, kind, currency, amount) per currency of these amounts (billionths, currency codes)."""
    if not len(amt):
        return []
    sums = money_sum(amt, cur, len(names))
    present = np.bincount(cur, minlength=len(names))
    return [(g, k, kind, names[c], Decimal(v) / NANO) for c, v in enumerate(sums) if present[c]]

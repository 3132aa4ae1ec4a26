"""Burn attribution: *why* an SLO (and one group of it) is burning, as structured JSON.

One computation for every consumer — alert notifications (`alerts.impact`), the web UI's SLO page and the API —
so a responder sees the same numbers everywhere. For one SLO and group it answers:

* budget: remaining ratio, days to exhaustion at the 1h and 6h burn rates, the burn rate per window;
* for journey SLOs, over the instances started in the lookback (default 7 days, the span of
  `revwatch_journey_pending`):
  - how many are bad: stuck (no end, past the threshold) and late (ended past the threshold);
  - the step where bad instances are stuck (the first journey step not reached) or late (the step whose
    transition took longest), counted per step, most frequent first (`failing_step`);
  - attribute values over-represented among bad instances (lift = share among bad / share among all), from the
    start event's source system and attributes (gateway, company, plan …; id-like attributes are skipped);
  - money at risk per currency and customers affected (distinct `customer_id`, else instances), stuck ones only;
  - the 5 oldest stuck instances with amount, currency, the step they wait for and a link a person can open.

Money (issue #25): every step, every over-represented value and the totals carry the money of their bad
instances per currency (`money` / `money_bad`; `money_at_risk` is the stuck part, `money_started` all of it), read
with the journey read model's one instance-with-money query. Span SLIs get the same shape: the failing step is the
span name bad spans concentrate on, over-represented span attribute values, no money (spans carry none). Any
lookback window (`window=` on the API).

Invariants: a group_by SLO is attributed on that group's instances only (the same group key expression the SLI
uses); amounts are decimal strings per currency, never summed across currencies; nothing here writes.
"""
from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote

import numpy as np

from revwatch.journeys import instance_params, instances_money_sql
from revwatch.journeys.cache import (InstanceCache, JourneyTable, combinations, currency_names, first_by_time,
                                     group_mask, masked_times, money_sum, to_datetime)
from revwatch.journeys import money as jmoney
from revwatch.schema import LINK_ATTRIBUTES
from revwatch.human import budget_phrase
from revwatch.units import as_utc, utcnow
from slo.sli import _bad_expr, _span_filters, journey_group_key, journey_group_sql, span_group_sql
from revwatch.units import epoch_millis as ms

if TYPE_CHECKING:
    from slo.engine import SloEngine, SloResult
    from slo.spec import SloSpec

EXAMPLES = 5
LOOKBACK = dt.timedelta(days=7)    # instances started this far back are attributed unless a caller says otherwise
MAX_VALUES_PER_KEY = 50        # attributes with more distinct values are identifiers, not explanations
MIN_LIFT = 1.5


def _iso(t: dt.datetime | None) -> str | None:
    return as_utc(t).isoformat().replace("+00:00", "Z") if t else None


def _result_for(engine: SloEngine, spec: SloSpec, group: str) -> SloResult | None:
    res = [r for r in (engine.latest or []) if r.spec.name == spec.name]
    if not res:
        res = engine.evaluate(names=[spec.name])
    return next((r for r in res if r.group == group), None)


def budget_of(result: SloResult | None) -> dict:
    """The budget part of an attribution (also for non-journey SLOs)."""
    if result is None:
        return {"state": None, "summary": None, "remaining_ratio": None, "days_until_exhausted": {}, "burn_rate": {}}
    b = result.budget
    return {"state": result.state, "summary": budget_phrase(b["remaining_ratio"]),   # slo/state.py: the one wording
            "remaining_ratio": round(b["remaining_ratio"], 4),
            "days_until_exhausted": {k: (None if v is None else round(v, 3))
                                     for k, v in b["days_until_exhausted"].items()},
            "burn_rate": {w: round(r.burn_rate, 3) for w, r in result.windows.items() if w != "slo"},
            "bad": b["bad"], "allowed_bad": round(b["allowed_bad"], 3), "unit": b["unit"]}


def attribute(engine: SloEngine, spec: SloSpec, group: str = "", now: dt.datetime | None = None,
              lookback: dt.timedelta = LOOKBACK, link_base: str = "", use_cache: bool = True) -> dict:
    """The attribution document of one SLO and group (see the module docstring for its fields). `use_cache=False`:
    the previous path, every instance of the lookback grouped from raw rows in SQL (the same document)."""
    now = now or utcnow()
    c = spec.config
    doc = _head(spec, group, now, _result_for(engine, spec, group))
    if spec.kind in ("span_ratio", "span_latency"):
        doc.update(_span_attribution(engine, spec, group, now, lookback))
        return doc
    if not spec.is_journey:
        doc["failing_system"] = c.sli.service            # gauge SLIs: bad minutes, nothing to attribute
        return doc
    doc.update(_journey_attribution(engine, spec, group, now, lookback, link_base, use_cache))
    return doc


def attribute_result(engine: SloEngine, result: SloResult, now: dt.datetime) -> dict:
    """`attribute` of a journey SLO's result of the pass in progress (the evaluator's, for /metrics): its budget
    from that result, not from the previous pass or a new evaluation."""
    doc = _head(result.spec, result.group, now, result)
    doc.update(_journey_attribution(engine, result.spec, result.group, now, LOOKBACK, ""))
    return doc


def _head(spec: SloSpec, group: str, now: dt.datetime, result: SloResult | None) -> dict:
    c = spec.config
    return {"slo": c.name, "group": group or None, "journey": c.journey, "objective": c.objective,
            "at": _iso(now), "budget": budget_of(result)}


def _journey_attribution(engine: SloEngine, spec: SloSpec, group: str, now: dt.datetime,
                         lookback: dt.timedelta, link_base: str, use_cache: bool = True) -> dict:
    assert spec.config.journey and spec.start_type and spec.end_type, "validated: journey SLIs name their journey"
    j = engine.cfg.journeys[spec.config.journey]
    steps: list[str] = [spec.start_type, *j.milestones, spec.end_type]
    found = _from_cache(engine, spec, group, now, lookback, steps) if use_cache else None
    if found is None:
        found = _from_sql(engine, spec, group, now, lookback, steps)
    return _document(spec, steps, now, lookback, link_base, *found)


def _from_sql(engine: SloEngine, spec: SloSpec, group: str, now: dt.datetime, lookback: dt.timedelta,
              steps: list[str]) -> tuple[BadSummary, tuple, list[tuple]]:
    """The previous path (kept: tests and bench/slo_eval.py compare it with the cache's): every instance of the
    lookback grouped from raw milestones and start events per call."""
    store = engine.store
    assert spec.config.journey
    j = engine.cfg.journeys[spec.config.journey]
    params = {**instance_params(j), "since": ms(now - lookback),
              "now": ms(now), "t_ms": int(spec.threshold.total_seconds() * 1000), "group": group}
    instances = instances_money_sql(store.table("milestones"), store.table("events"),
                                    "fromUnixTimestamp64Milli({since:Int64}, 'UTC')", steps=True,
                                    all_instances=spec.config.budgeting != "amount")
    base = f"""
        SELECT CorrelationId AS cid, s_at, e_at, has_end, reached, attrs, src, amt, cur, known,
               has_end AND e_at > s_at + toIntervalMillisecond({{t_ms:Int64}}) AS late,
               NOT has_end AND fromUnixTimestamp64Milli({{now:Int64}}, 'UTC')
                               > s_at + toIntervalMillisecond({{t_ms:Int64}}) AS stuck
        FROM ({instances})
        WHERE {journey_group_sql(spec)} = {{group:String}}
          AND s_at <= fromUnixTimestamp64Milli({{now:Int64}}, 'UTC')"""
    bad_rows = store.query(f"SELECT cid, s_at, reached, attrs, src, stuck, if(known, toString(amt), ''), cur "
                           f"FROM ({base}) WHERE late OR stuck ORDER BY s_at, cid", params).rows
    dist = store.query(f"""
        SELECT kv.1 AS k, kv.2 AS v, cur, count() AS total, countIf(late OR stuck) AS bad,
               toString(sumIf(amt, (late OR stuck) AND known)) AS bad_money
        FROM ({base})
        ARRAY JOIN arrayConcat([('source', src)], arrayZip(mapKeys(attrs), mapValues(attrs))) AS kv
        WHERE kv.2 != '' AND kv.1 NOT IN {{skip:Array(String)}}
        GROUP BY k, v, cur""", {**params, "skip": list(LINK_ATTRIBUTES)}).rows
    totals = store.query(f"""
        SELECT cur, count(), countIf(stuck), countIf(late), toString(sumIf(amt, stuck AND known)),
               toString(sumIf(amt, (late OR stuck) AND known)), toString(sumIf(amt, known))
        FROM ({base}) GROUP BY cur""", params).rows
    records = [(cid, as_utc(s_at), {t: as_utc(x) for t, x in sorted(reached, key=lambda p: p[1], reverse=True)},
                attrs, src, bool(is_stuck), jmoney.parse_amount(amount), cur)    # earliest time of a step wins
               for cid, s_at, reached, attrs, src, is_stuck, amount, cur in bad_rows]
    sums = tuple(jmoney.total((r[0], jmoney.parse_amount(r[k])) for r in totals if jmoney.parse_amount(r[k]))
                 for k in (4, 5, 6))
    counts = (sum(int(r[1]) for r in totals), sum(int(r[2]) for r in totals), sum(int(r[3]) for r in totals))
    return _summarize(records, steps), (*counts, *sums), dist


@dataclass
class BadSummary:
    """What the bad instances say: per step the stuck/late counts and money (of every bad instance: the steps add up
    to the SLO's bad instances and bad money), the oldest EXAMPLES stuck ones in order (cid, start, step waited
    for, attributes, source, amount or None, currency), how many are stuck, their distinct customers and the most
    frequent source (only the examples are spelled out: a tuple with its attributes per stuck instance cost more
    than the rest of an attribution from the cache)."""
    step_counts: dict[str, Counter]
    step_money: dict[str, jmoney.Money]
    stuck: list[tuple]
    n_stuck: int
    customers: set[str]
    top_source: str | None


def _summarize(records: list[tuple], steps: list[str]) -> BadSummary:
    """A BadSummary from bad instances (cid, start, step → first time, attributes, source, stuck?, amount or None,
    currency), oldest first: a stuck one waits for its first step not reached, a late one lost its time at its
    slowest step."""
    step_counts: dict[str, Counter] = {}
    step_money: dict[str, jmoney.Money] = {}
    stuck = []
    for cid, s_at, at, attrs, src, is_stuck, amount, cur in records:
        if is_stuck:
            step = next((s for s in steps if s not in at), steps[-1])
            kind = "stuck"
            stuck.append((cid, s_at, step, attrs, src, amount, cur))
        else:
            step, kind = _slowest_step(steps, at), "late"
        step_counts.setdefault(step, Counter())[kind] += 1
        jmoney.add(step_money.setdefault(step, {}), cur, amount)
    customers = {str(c) for x in stuck if (c := (x[3] or {}).get("customer_id"))}
    return BadSummary(step_counts, step_money, stuck[:EXAMPLES], len(stuck), customers, _top_source(records))


def _from_cache(engine: SloEngine, spec: SloSpec, group: str, now: dt.datetime, lookback: dt.timedelta,
                steps: list[str]) -> tuple[BadSummary, tuple, list[tuple]] | None:
    """The same answer from the journey instance cache (revwatch/journeys/cache.py): numpy over the instances of
    the lookback, no raw rows read unless new ones arrived. None when the cache cannot answer exactly."""
    assert spec.config.journey
    cache = engine.instances
    since = now - lookback
    if not cache.covers(since, utcnow()):
        return None
    t = cache.table(spec.config.journey, since, now)
    if not t.exact or t.steps != steps:
        return None
    now_ms, t_ms = ms(now), int(spec.threshold.total_seconds() * 1000)

    def base() -> tuple[np.ndarray, np.ndarray]:
        ts_ = masked_times(t, ms(since))
        return ts_, (ts_[:, 0] > 0) & (ts_[:, 0] <= now_ms)
    # the SLOs of one journey read the same instances: masked once per (lookback, now) while the table is unchanged
    ts, started = cache.derived(("attribution", spec.config.journey, ms(since), now_ms), t, base)
    s, e = ts[:, 0], ts[:, -1]
    known = t.own_has[:t.n, 0]
    sel = started & known if spec.config.budgeting == "amount" else started
    idx = np.flatnonzero(sel)
    idx = idx[group_mask(cache, t, idx, journey_group_key(spec), group, tuple(spec.config.group_by))]
    s_i, e_i, known_i = s[idx], e[idx], known[idx]
    late = (e_i > 0) & (e_i > s_i + t_ms)
    stuck = (e_i == 0) & (now_ms > s_i + t_ms)
    bad = late | stuck
    amt, cur = t.own_amt[idx, 0], t.own_cur[idx, 0]
    names = currency_names(cache)
    n_cur = len(names)

    # the money of the known-amount instances per (currency, good | late | stuck) in one exact sum, not one per
    # total: stuck, bad (late + stuck) and started are sums of those parts
    kind = np.where(stuck, 2, np.where(late, 1, 0))
    sums = money_sum(amt[known_i], (cur[known_i].astype(np.int64) * 3 + kind[known_i]), n_cur * 3)

    def money(kinds: tuple[int, ...]) -> jmoney.Money:
        return jmoney.total((names[c], cache.amount(v)) for c in range(n_cur)
                            if (v := sum(sums[c * 3 + k] for k in kinds)))
    totals = (len(idx), int(stuck.sum()), int(late.sum()), money((2,)), money((1, 2)), money((0, 1, 2)))
    bad_idx = idx[bad]
    return _summarize_rows(cache, t, ts, bad_idx, e[bad_idx] == 0, known, names), totals, \
        _distribution(cache, t, idx, bad, known_i, amt, spec.config.journey, names)


def _summarize_rows(cache: InstanceCache, t: JourneyTable, ts: np.ndarray, rows: np.ndarray, is_stuck: np.ndarray,
                    known: np.ndarray, names: list[str]) -> BadSummary:
    """`_summarize` of cache rows (the bad instances, in any order), in numpy: the step a stuck row waits for is its
    first step not reached; a late row's is the step whose arrival took longest after the previous reached one
    (`_slowest_step`: ties to the earlier step, in whole milliseconds as the seconds it compares). Only the examples
    and the source tie need the (start, correlation ID) order, so only they are ordered (`first_by_time`)."""
    k = len(t.steps)
    r = ts[rows]
    reached = r > 0
    first_missing = np.where((~reached).any(axis=1), np.argmax(~reached, axis=1), k - 1)
    best = np.full(len(rows), k - 1)
    best_lag = np.full(len(rows), -1000, np.int64)        # _slowest_step starts from a lag of -1.0 s
    prev = r[:, 0].copy()
    for x in range(1, k):
        here = reached[:, x]
        lag = r[:, x] - prev
        better = here & (prev > 0) & (lag > best_lag)
        best, best_lag = np.where(better, x, best), np.where(better, lag, best_lag)
        prev = np.where(here, r[:, x], prev)
    step = np.where(is_stuck, first_missing, best)
    step_counts: dict[str, Counter] = {}
    step_money: dict[str, jmoney.Money] = {}
    amt, cur, kn = t.own_amt[rows, 0], t.own_cur[rows, 0], known[rows]
    n_cur = len(names)
    # per (step, stuck | late) one count and per (step, currency) one exact money sum over every bad instance
    n_kind = np.bincount(step * 2 + is_stuck, minlength=2 * k)
    code = step[kn].astype(np.int64) * n_cur + cur[kn]
    sums = money_sum(amt[kn], code, k * n_cur)
    present = np.bincount(code, minlength=k * n_cur)
    for x in np.flatnonzero(n_kind.reshape(k, 2).sum(axis=1)).tolist():
        c: Counter[str] = Counter()
        if n_kind[2 * x + 1]:
            c["stuck"] = int(n_kind[2 * x + 1])
        if n_kind[2 * x]:
            c["late"] = int(n_kind[2 * x])
        step_counts[t.steps[x]] = c
        step_money[t.steps[x]] = {names[c_]: cache.amount(sums[x * n_cur + c_]) for c_ in range(n_cur)
                                  if present[x * n_cur + c_]}
    stuck_rows = rows[is_stuck]
    stuck_steps = step[is_stuck]
    oldest = first_by_time(t, stuck_rows, ts[stuck_rows, 0], EXAMPLES)
    stuck = [(t.cids[i], to_datetime(ts[i, 0]), t.steps[int(stuck_steps[np.flatnonzero(stuck_rows == i)[0]])],
              cache.attrs_of(int(t.attrs[i])),
              cache.sources.values[int(t.src[i])], cache.amount(t.own_amt[i, 0]) if known[i] else None,
              names[int(t.own_cur[i, 0])])
             for i in oldest]
    customers = {who for who in cache.attr_values(np.unique(t.attrs[stuck_rows]), "customer_id").tolist() if who}
    srcs = t.src[rows]
    counts = np.bincount(srcs, minlength=len(cache.sources.values))
    counts[cache.sources.codes[""]] = 0
    top = None
    if counts.max(initial=0) > 0:             # Counter.most_common: ties go to the first seen
        tied = np.flatnonzero(counts == counts.max())
        if len(tied) == 1:
            top = cache.sources.values[int(tied[0])]
        else:                                 # the source of the oldest bad instance among the tied ones
            among = rows[np.isin(srcs, tied)]
            top = cache.sources.values[int(t.src[first_by_time(t, among, ts[among, 0], 1)[0]])]
    return BadSummary(step_counts, step_money, stuck, len(stuck_rows), customers, top)


def _row_combos(cache: InstanceCache, t: JourneyTable) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row of `t`, the index of its (attribute set without the link attributes, source, currency) among the
    table's distinct ones (ascending in that order), one row holding each, and each row's explained set: what
    `_distribution` counts by. The same for every SLO of the journey while the table is unchanged, so computed once
    (`InstanceCache.derived`): per SLO it cost an explained-set gather and a dense unique over every instance of
    the lookback (~30 % of an attribution at 20 M events)."""
    sets = cache.explained(t.attrs[:t.n], LINK_ATTRIBUTES)
    first, inv = combinations(cache, t, np.arange(t.n), sets)
    return first, inv, sets


def _distribution(cache: InstanceCache, t: JourneyTable, idx: np.ndarray, bad: np.ndarray, known: np.ndarray,
                  amt: np.ndarray, journey: str, names: list[str]) -> list[tuple]:
    """(key, value, currency, total, bad, bad money) per attribute value of the instances `idx`: counted per
    distinct (attribute set, source, currency), then spread over that set's pairs."""
    first, inv_all, sets = cache.derived(("attribution-combos", journey), t, lambda: _row_combos(cache, t))
    inv = inv_all[idx]
    total_n = np.bincount(inv, minlength=len(first))
    bad_n = np.bincount(inv, weights=bad, minlength=len(first))
    bad_money = money_sum(amt[bad & known], inv[bad & known], len(first))
    acc: dict[tuple[str, str, str], list] = {}
    for u in np.flatnonzero(total_n).tolist():
        f = int(first[u])                                  # a row of the table holding this combination
        pairs = [("source", cache.sources.values[int(t.src[f])]), *cache.attr_sets.values[int(sets[f])]]
        for k, v in pairs:
            if v == "" or k in LINK_ATTRIBUTES:
                continue
            a = acc.setdefault((k, v, names[int(t.own_cur[f, 0])]), [0, 0, 0])
            a[0] += int(total_n[u])
            a[1] += int(bad_n[u])
            a[2] += bad_money[u]
    return [(k, v, c, n, b, cache.amount(mny)) for (k, v, c), (n, b, mny) in acc.items()]


def _document(spec: SloSpec, steps: list[str], now: dt.datetime, lookback: dt.timedelta, link_base: str,
              summary: BadSummary, totals: tuple, dist: list[tuple]) -> dict:
    """The journey part of an attribution from the summary of the oldest bad instances, the totals (started,
    stuck, late, money at risk, bad money, money started) and the attribute distribution (key, value, currency,
    total, bad, bad money)."""
    started, n_stuck, n_late, money, money_bad, money_all = totals
    step_counts, step_money, stuck = summary.step_counts, summary.step_money, summary.stuck
    threshold_s = spec.threshold.total_seconds()
    step_list = [{"step": s, "after": steps[steps.index(s) - 1] if steps.index(s) > 0 else None,
                  "stuck": cnt["stuck"], "late": cnt["late"], "money": jmoney.as_json(step_money.get(s, {}))}
                 for s, cnt in sorted(step_counts.items(), key=lambda sc: (-(sc[1]["stuck"] + sc[1]["late"]), sc[0]))]
    customers = summary.customers
    examples = []
    for cid, s_at, step, _attrs, src, amount, cur in stuck[:EXAMPLES]:
        examples.append({"correlation_id": cid, "started_at": _iso(s_at),
                         "age_seconds": round((now - s_at).total_seconds(), 1),
                         "overdue_seconds": round((now - s_at).total_seconds() - threshold_s, 1),
                         "waiting_for": step, "source": src, "amount": jmoney.fmt(amount),
                         "currency": (cur if amount is not None else None),
                         "link": f"{link_base.rstrip('/')}/ui/journeys/{quote(cid, safe='')}"})
    bad_total = n_stuck + n_late
    return {
        "instances": {"started": started, "stuck": n_stuck, "late": n_late, "bad": bad_total,
                      "lookback_seconds": lookback.total_seconds(), "threshold_seconds": threshold_s},
        "steps": step_list,
        "failing_step": step_list[0]["step"] if step_list else None,
        "failing_system": summary.top_source,
        "over_represented": _over_represented(dist, started, bad_total),
        "money_at_risk": jmoney.as_json(money),
        "money_bad": jmoney.as_json(money_bad),
        "money_started": jmoney.as_json(money_all),
        "customers_affected": len(customers) if customers else summary.n_stuck,
        "oldest_stuck": examples,
    }


def _span_attribution(engine: SloEngine, spec: SloSpec, group: str, now: dt.datetime,
                      lookback: dt.timedelta) -> dict:
    """Span SLIs: the span name bad spans concentrate on (the failing step), the service, and the span attribute
    values over-represented among bad spans. Spans carry no amounts: the money fields are empty."""
    store = engine.store
    where, params = _span_filters(spec)
    bad = _bad_expr(spec, params)
    params.update(since=ms(now - lookback), now=ms(now), group=group)
    cond = " AND ".join(where + ["Timestamp >= fromUnixTimestamp64Milli({since:Int64}, 'UTC')",
                                 "Timestamp <= fromUnixTimestamp64Milli({now:Int64}, 'UTC')",
                                 f"{span_group_sql(spec)} = {{group:String}}"])
    base = f"""
        SELECT SpanName, ServiceName, SpanAttributes, ({bad}) AS is_bad FROM {store.table('spans')}
        WHERE {cond} LIMIT 1 BY TraceId, SpanId"""
    dist = store.query(f"""
        SELECT kv.1 AS k, kv.2 AS v, '' AS cur, count(), countIf(is_bad), '0'
        FROM ({base})
        ARRAY JOIN arrayConcat([('span', toString(SpanName)), ('service', toString(ServiceName))],
                               arrayZip(mapKeys(SpanAttributes), mapValues(SpanAttributes))) AS kv
        WHERE kv.2 != '' AND kv.1 NOT IN {{skip:Array(String)}}
        GROUP BY k, v""", {**params, "skip": list(LINK_ATTRIBUTES) + ["correlation.id"]}).rows
    total, n_bad = (int(x) for x in store.query(f"SELECT count(), countIf(is_bad) FROM ({base})", params).rows[0])
    spans = sorted(((v, int(b)) for k, v, _c, _t, b, _m in dist if k == "span" and b), key=lambda x: (-x[1], x[0]))
    services = sorted(((v, int(b)) for k, v, _c, _t, b, _m in dist if k == "service" and b),
                      key=lambda x: (-x[1], x[0]))
    return {"spans": {"total": total, "bad": n_bad, "lookback_seconds": lookback.total_seconds()},
            "steps": [{"step": name, "bad": n} for name, n in spans[:10]],
            "failing_step": spans[0][0] if spans else None,
            "failing_system": services[0][0] if services else spec.config.sli.service,
            "over_represented": _over_represented([r for r in dist if r[0] not in ("span",)], total, n_bad),
            "money_at_risk": {}, "money_bad": {}}


def _slowest_step(steps: list[str], at: dict[str, dt.datetime]) -> str:
    """The step whose arrival took longest after the previous reached step (where a late instance lost time)."""
    best, best_lag, prev = steps[-1], -1.0, None
    for s in steps:
        if s not in at:
            continue
        if prev is not None:
            lag = (at[s] - at[prev]).total_seconds()
            if lag > best_lag:
                best, best_lag = s, lag
        prev = s
    return best


def _top_source(records: list[tuple]) -> str | None:
    counts = Counter(r[4] for r in records if r[4])
    return counts.most_common(1)[0][0] if counts else None


def _over_represented(dist: list[tuple], started: int, bad_total: int, top: int = 5) -> list[dict]:
    """Attribute values whose share among bad instances is at least MIN_LIFT × their share among all, with the
    money of their bad instances per currency. `dist` rows: (key, value, currency, total, bad, bad money)."""
    if not bad_total or not started:
        return []
    merged: dict[tuple[str, str], list] = {}
    for k, v, cur, total, bad, bad_money in dist:
        e = merged.setdefault((k, v), [0, 0, {}])
        e[0] += int(total)
        e[1] += int(bad)
        amount = jmoney.parse_amount(bad_money)
        if amount:
            jmoney.add(e[2], cur, amount)
    per_key = Counter(k for k, _ in merged)
    out = []
    for (k, v), (total, bad, money) in merged.items():
        if per_key[k] > MAX_VALUES_PER_KEY or not bad:
            continue
        bad_share, share = bad / bad_total, total / started
        lift = bad_share / share
        if lift >= MIN_LIFT and bad >= 2:
            out.append({"attribute": k, "value": v, "bad": bad, "total": total,
                        "bad_share": round(bad_share, 4), "overall_share": round(share, 4), "lift": round(lift, 2),
                        "money": jmoney.as_json(money)})
    out.sort(key=lambda d: (-d["bad_share"] * d["lift"], d["attribute"], d["value"]))
    return out[:top]

"""SLI queries: per-minute good/total counts for a range of minutes, computed in ClickHouse.

Counting rules (docs/slo-policy.md "How SLIs count"):
* journey SLIs: one instance = one correlation ID that reached the journey's start event. It is decided at
  min(end, start + threshold): good if the end came within the threshold, bad otherwise; undecided instances
  (no end yet, threshold not passed at the cutoff) count nowhere. Reads `milestones` (first time each event
  type was reached per correlation ID), so duplicated events change nothing.
* span SLIs: each distinct (TraceId, SpanId) counts once, at its start Timestamp.
* gauge SLIs: each minute with a sample counts; it is good when every sample of that minute is in bounds.

Every query returns rows (Slo, GroupKey, Minute, Good, Total) for minutes in [lo, hi] and decisions ≤ cutoff;
journey SLOs that differ only in threshold share one query.
Times are bound as epoch milliseconds.
"""
from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping

from revwatch.journeys import instances_money_sql, instances_sql
from revwatch.journeys.money import AMOUNT_SCALE
from slo.spec import SloSpec

_SPAN_COLUMNS = {"StatusCode", "SpanKind", "SpanName", "ServiceName", "StatusMessage"}
_CURRENCY = "\x00currency"     # the currency part of an amount SLI's group key (never an attribute name)
_IDENT = re.compile(r"^[A-Za-z0-9_.\-:/]+$")


def _group_expr(group_by: list[str], map_expr: str, extra: dict[str, str] | None = None) -> str:
    if not group_by:
        return "''"
    parts = []
    for g in group_by:
        if extra and g in extra:
            parts.append(extra[g])
        else:
            parts.append(f"{map_expr}[{_literal(g)}]")
    return "arrayStringConcat([" + ", ".join(parts) + "], '|')"


def _literal(s: str) -> str:
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def journey_group_sql(spec: SloSpec) -> str:
    """The group key of a journey SLI's instance, over the instance columns `attrs`, `src` (and `cur`, the start
    event's currency, for `budgeting: amount`: the key ends with it). Every reader that groups journey instances
    like the SLI (forecast, attribution) uses this one expression."""
    parts = list(spec.config.group_by) + ([_CURRENCY] if spec.config.budgeting == "amount" else [])
    return _group_expr(parts, "attrs", {"source": "src", _CURRENCY: "cur"})


def journey_group_key(spec: SloSpec) -> Callable[[Mapping[str, str], str, str], str]:
    """`journey_group_sql` in Python: the group key of an instance from its start attributes, source and currency
    ('?' when none), for readers of the journey instance cache (revwatch/journeys/cache.py)."""
    parts = list(spec.config.group_by) + ([_CURRENCY] if spec.config.budgeting == "amount" else [])

    def key(attrs: Mapping[str, str], src: str, cur: str) -> str:
        return "|".join(src if g == "source" else cur if g == _CURRENCY else attrs.get(g, "") for g in parts)
    return key


def _decided_in(table: str, t_max: int) -> str:
    """The correlation IDs that can have a decision in [lo, hi_end): a start in [lo − t, hi_end − t) for a threshold
    t (decided by timeout) or in [lo, hi_end), an end in [lo, hi_end). A narrow read (a few minutes: the live minute,
    the time-decided minutes of a pass, the exact windows' edges) reads only these instances' rows, through the
    (Type, CorrelationId) key, instead of every instance within the longest threshold around the range; the counts
    are the same (every other instance's decision lies outside the range)."""
    at = "fromUnixTimestamp64Milli({%s:Int64}%s, 'UTC')"
    return f"""CorrelationId IN (
            SELECT CorrelationId FROM {table}
            WHERE Type IN ({{j_start:String}}, {{j_end:String}})
              AND At >= {at % ("lo", f" - {t_max}")} AND At < {at % ("hi_end", "")}
              AND (At >= {at % ("lo", "")}
                   OR Type = {{j_start:String}} AND arrayExists(t -> At >= {at % ("lo", " - t")}
                                                              AND At < {at % ("hi_end", " - t")},
                                                          {{thresholds:Array(Int64)}})))"""


def journey_minutes_sql(specs: list[SloSpec], table: str, events: str | None = None,
                        narrow: bool = False, per_ms: bool = False) -> tuple[str, dict]:
    """SQL and parameters (lo, hi_end, cutoff bound later) for the decision-minute counts of journey SLIs that
    share start and end (differing in threshold, group_by, budgeting): the instances are aggregated once and fanned
    out over the SLOs with ARRAY JOIN (each SLO its threshold, group key expression and weight). One sub-query per
    journey, not per journey × group_by × budgeting: a pass reads the minutes time decided since the previous one
    for every SLO, and each sub-query costs its planning whatever it reads. Rows: (Slo, GroupKey, Minute, Good,
    Total).

    `budgeting: amount` (`events` names the events table): Good/Total are the start events' amounts in units of
    1/AMOUNT_SCALE (absolute values: a refund at stake counts its size), only instances that carry an amount, and
    the group key ends with the currency ('EUR', 'stripe|EUR'), so currencies are separate groups, never summed."""
    first = specs[0]
    t_max = max(int(s.threshold.total_seconds() * 1000) for s in specs)
    is_amount = [int(s.config.budgeting == "amount") for s in specs]
    exprs = list(dict.fromkeys(journey_group_sql(s) for s in specs))
    group = exprs[0] if len(exprs) == 1 else f"[{', '.join(exprs)}][g_i]"
    lo = f"fromUnixTimestamp64Milli({{lo:Int64}} - {t_max}, 'UTC')"
    hi = f"fromUnixTimestamp64Milli({{hi_end:Int64}} + {t_max}, 'UTC')"
    only = _decided_in(table, t_max) if narrow else ""
    keep = ""
    if any(is_amount):
        assert events, "amount SLIs read the start events' amounts"
        source = instances_money_sql(table, events, lo, hi, only=only, all_instances=not all(is_amount))
        weight = f"if(is_amt = 1, toUInt64(abs(amt) * {AMOUNT_SCALE}), toUInt64(1))"
        keep = "\n      AND (is_amt = 0 OR known)" if not all(is_amount) else ""
    else:
        source, weight = instances_sql(table, lo, hi, only=only), "toUInt64(1)"
    agg = "sumIf(w, good) AS Good, sum(w) AS Total"
    sql = f"""
SELECT slo AS Slo, GroupKey, {"decision" if per_ms else "toStartOfMinute(decision)"} AS Minute, {agg}
FROM (
    SELECT slo, {group} AS GroupKey, {weight} AS w,
           has_end AND e_at <= s_at + toIntervalMillisecond(t_ms) AS good,
           if(good, greatest(e_at, s_at), s_at + toIntervalMillisecond(t_ms)) AS decision
    FROM ({source}
    )
    ARRAY JOIN {{slos:Array(String)}} AS slo, {{thresholds:Array(Int64)}} AS t_ms, {{g_idx:Array(UInt8)}} AS g_i,
               {{amounts:Array(UInt8)}} AS is_amt
    WHERE s_at >= fromUnixTimestamp64Milli({{lo:Int64}} - t_ms, 'UTC')
      AND s_at < fromUnixTimestamp64Milli({{hi_end:Int64}}, 'UTC'){keep}
)
WHERE decision >= fromUnixTimestamp64Milli({{lo:Int64}}, 'UTC')
  AND decision < fromUnixTimestamp64Milli({{hi_end:Int64}}, 'UTC')
  AND decision <= fromUnixTimestamp64Milli({{cutoff:Int64}}, 'UTC')
GROUP BY Slo, GroupKey, Minute
"""
    return sql, {"j_start": first.start_type, "j_end": first.end_type, "slos": [s.name for s in specs],
                 "thresholds": [int(s.threshold.total_seconds() * 1000) for s in specs],
                 "g_idx": [exprs.index(journey_group_sql(s)) + 1 for s in specs], "amounts": is_amount}


def _span_filters(spec: SloSpec) -> tuple[list[str], dict]:
    sli = spec.config.sli
    where, params = [], {}
    if sli.service:
        where.append("ServiceName = {service:String}")
        params["service"] = sli.service
    if sli.span_name:
        where.append("SpanName = {span_name:String}")
        params["span_name"] = sli.span_name
    for i, (k, v) in enumerate(sorted(sli.attributes.items())):
        where.append(f"SpanAttributes[{{ak{i}:String}}] = {{av{i}:String}}")
        params[f"ak{i}"], params[f"av{i}"] = k, v
    return where, params


def _bad_expr(spec: SloSpec, params: dict) -> str:
    sli = spec.config.sli
    if sli.kind == "span_latency":
        assert sli.threshold is not None, "validated: span_latency needs a threshold"
        return f"Duration > {int(sli.threshold.total_seconds() * 1e9)}"
    terms = []
    for i, (k, v) in enumerate(sorted(sli.bad_when.items())):
        params[f"bv{i}"] = v
        if k == "StatusCode":       # the exporter writes 'Error' or 'STATUS_CODE_ERROR' depending on version
            terms.append(f"lower(replaceRegexpOne(StatusCode, '^STATUS_CODE_', '')) = lower({{bv{i}:String}})")
        elif k in _SPAN_COLUMNS:
            terms.append(f"{k} = {{bv{i}:String}}")
        else:
            params[f"bk{i}"] = k
            terms.append(f"SpanAttributes[{{bk{i}:String}}] = {{bv{i}:String}}")
    return " AND ".join(terms) or "0"


def span_group_sql(spec: SloSpec) -> str:
    """The group key of a span SLI's span (over the `spans` columns); attribution groups with it too."""
    return _group_expr(spec.config.group_by, "SpanAttributes",
                       {g: f"ResourceAttributes[{_literal(g[9:])}]" for g in spec.config.group_by
                        if g.startswith("resource.")} | {"service": "ServiceName"})


def span_minutes_sql(spec: SloSpec, table: str, per_ms: bool = False) -> tuple[str, dict]:
    """SQL and parameters for a span SLI's per-minute counts (distinct spans only)."""
    where, params = _span_filters(spec)
    bad = _bad_expr(spec, params)
    group = span_group_sql(spec)
    cond = " AND ".join(where + [
        "Timestamp >= fromUnixTimestamp64Milli({lo:Int64}, 'UTC')",
        "Timestamp < fromUnixTimestamp64Milli({hi_end:Int64}, 'UTC')",
        "Timestamp <= fromUnixTimestamp64Milli({cutoff:Int64}, 'UTC')"])
    params["slo"] = spec.name
    sql = f"""
SELECT {{slo:String}} AS Slo, {group} AS GroupKey,
       {"toStartOfMillisecond(Timestamp)" if per_ms else "toStartOfMinute(Timestamp)"} AS Minute,
       uniqExactIf((TraceId, SpanId), NOT ({bad})) AS Good, uniqExact((TraceId, SpanId)) AS Total
FROM {table}
WHERE {cond}
GROUP BY GroupKey, Minute
"""
    return sql, params


def gauge_minutes_sql(spec: SloSpec, table: str) -> tuple[str, dict]:
    """SQL and parameters for a gauge SLI's per-minute good/total (1 per minute with samples)."""
    sli = spec.config.sli
    params: dict = {"sample": sli.sample, "slo": spec.name}
    where = ["Name = {sample:String}"]
    for i, (k, v) in enumerate(sorted(sli.labels.items())):
        where.append(f"Labels[{{lk{i}:String}}] = {{lv{i}:String}}")
        params[f"lk{i}"], params[f"lv{i}"] = k, v
    checks = []
    if sli.max is not None:
        checks.append(f"max(Value) <= {float(sli.max)!r}")
    if sli.min is not None:
        checks.append(f"min(Value) >= {float(sli.min)!r}")
    group = _group_expr(spec.config.group_by, "Labels")
    cond = " AND ".join(where + [
        "Timestamp >= fromUnixTimestamp64Milli({lo:Int64}, 'UTC')",
        "Timestamp < fromUnixTimestamp64Milli({hi_end:Int64}, 'UTC')",
        "Timestamp <= fromUnixTimestamp64Milli({cutoff:Int64}, 'UTC')"])
    sql = f"""
SELECT {{slo:String}} AS Slo, {group} AS GroupKey, toStartOfMinute(Timestamp) AS Minute,
       toUInt64({' AND '.join(checks)}) AS Good, toUInt64(1) AS Total
FROM {table}
WHERE {cond}
GROUP BY GroupKey, Minute
"""
    return sql, params


def batch_key(spec: SloSpec) -> tuple:
    """Specs with equal keys are computed by one query (journey SLIs of one journey: `journey_minutes_sql`)."""
    if spec.is_journey:
        return ("journey", spec.start_type, spec.end_type)
    return ("single", spec.name)


def minutes_sql(specs: list[SloSpec], database: str, narrow_ms: int | None = None,
                per_ms: bool = False) -> tuple[str, dict]:
    """The per-minute SQL for a batch of specs (one spec, or journey specs sharing a batch_key).
    Rows: (Slo, GroupKey, Minute, Good, Total). `narrow_ms`: the length of the range it will be bound to; journey
    SLIs read only the instances that can be decided in it when it is shorter than their longest threshold.
    `per_ms`: rows per decision millisecond instead of per minute (Minute then holds that millisecond: the
    exact-window edges, slo/edges.py, cut minutes at any millisecond)."""
    spec = specs[0]
    if spec.is_journey:
        t_max = max(int(s.threshold.total_seconds() * 1000) for s in specs)
        return journey_minutes_sql(specs, f"{database}.milestones", f"{database}.events",
                                   narrow=narrow_ms is not None and narrow_ms < t_max, per_ms=per_ms)
    if spec.kind in ("span_ratio", "span_latency"):
        return span_minutes_sql(spec, f"{database}.spans", per_ms)
    return gauge_minutes_sql(spec, f"{database}.samples")


def dirty_span(spec: SloSpec) -> dt.timedelta:
    """How far after a touched minute the decisions it can change may lie: for journeys twice the threshold. A
    milestone at minute m decides its instance in [m, m + threshold]; but a copy of a start or end re-delivered
    with an earlier time, by up to the threshold, also moves the instance's previous decision (up to a threshold
    after the previous copy: m + 2 × threshold) out of its minute — with one threshold that minute kept its count,
    and the instance was counted twice where a rollup built from scratch counts it once. (Copies further apart
    lie outside each other's read bounds, `journey_minutes_sql`: README "Known limitations".)"""
    return 2 * spec.threshold if spec.is_journey else dt.timedelta(0)


def touches(spec: SloSpec, kind: str, key: str) -> bool:
    """Whether ingested data of (kind, key) can change this SLO's minutes."""
    if spec.is_journey:
        return kind == "event" and key in (spec.start_type, spec.end_type)
    if spec.kind in ("span_ratio", "span_latency"):
        return kind == "span" and (not spec.config.sli.service or key == spec.config.sli.service)
    return kind == "sample" and key == spec.config.sli.sample

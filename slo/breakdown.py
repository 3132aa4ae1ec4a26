"""Where an SLO's bad events come from: counts by source system, by step, and the most common attribute values.

Journey SLIs: a bad instance started in the range and either finished late or is still unfinished past the
threshold (the engine's rule, docs/slo-policy.md). Its source system is the system that emitted the start event, its
step the last milestone it reached (so "stuck after invoice.created"), its attributes those of the start event.
Span SLIs: a bad span matches the SLI's filters and its bad condition; system = service, step = span name,
attributes = span attributes. Gauge SLIs have no events to attribute (their bad unit is a minute): empty answer.
Every answer carries a few example correlation IDs so a person can open the journeys themselves.
"""
from __future__ import annotations

import datetime as dt
from collections import Counter

from revwatch.config import Config
from revwatch.journeys import instance_params, instances_sql
from revwatch.store import Store
from slo.sli import _bad_expr, _span_filters, ms
from slo.spec import SloSpec

TOP = 8
_SAMPLE = 20_000          # bad instances read for a journey breakdown (counts beyond are in `total` only)
_SKIP_ATTRS = {"correlation.id", "correlation_id", "event_id"}


def _telling(values_per_key: dict[str, int], n: int) -> set[str]:
    """Keys whose values can explain a pattern: few distinct values among the bad items (a gateway, a plan), not
    per-item values (ids, amounts, fees)."""
    return {k for k, distinct in values_per_key.items() if distinct <= max(5, min(50, n // 10))}


def breakdown(store: Store, cfg: Config, spec: SloSpec, lo: dt.datetime, hi: dt.datetime) -> dict:
    """{total, by_system, by_step, top_attributes, examples} of bad events/instances in [lo, hi)."""
    if spec.is_journey:
        return _journey(store, cfg, spec, lo, hi)
    if spec.kind in ("span_ratio", "span_latency"):
        return _spans(store, spec, lo, hi)
    return {"total": 0, "by_system": [], "by_step": [], "top_attributes": [], "examples": [],
            "note": "gauge SLIs count bad minutes, not events"}


def _journey(store: Store, cfg: Config, spec: SloSpec, lo: dt.datetime, hi: dt.datetime) -> dict:
    assert spec.config.journey is not None, "validated: journey SLIs name their journey"
    j = cfg.journeys[spec.config.journey]
    steps = [j.start, *j.milestones, j.end]
    t_ms = int(spec.threshold.total_seconds() * 1000)
    instances = instances_sql(store.table("milestones"), "fromUnixTimestamp64Milli({lo:Int64}, 'UTC')",
                              f"fromUnixTimestamp64Milli({{hi:Int64}} + {t_ms}, 'UTC')", steps=True)
    rows = store.query(f"""
SELECT CorrelationId, src, attrs, arrayMap(x -> x.1, reached) FROM ({instances})
WHERE s_at < fromUnixTimestamp64Milli({{hi:Int64}}, 'UTC')
  AND (has_end AND e_at > s_at + toIntervalMillisecond({t_ms})
       OR NOT has_end AND s_at + toIntervalMillisecond({t_ms}) <= fromUnixTimestamp64Milli({{now:Int64}}, 'UTC'))
ORDER BY CorrelationId LIMIT {_SAMPLE}""",
        {**instance_params(j), "lo": ms(lo), "hi": ms(hi),
         "now": ms(min(hi, dt.datetime.now(dt.timezone.utc)))}).rows
    systems: Counter[str] = Counter()
    stepc: Counter[str] = Counter()
    attrs: Counter[tuple[str, str]] = Counter()
    for _, src, a, reached in rows:
        systems[src or "?"] += 1
        last = max((i for i, s in enumerate(steps) if s in reached), default=0)
        stepc[f"late at {steps[-1]}" if steps[-1] in reached else f"stuck after {steps[last]}"] += 1
        for k, v in (a or {}).items():
            if k not in _SKIP_ATTRS and v:
                attrs[(k, v)] += 1
    telling = _telling(Counter(k for k, _ in attrs), len(rows))
    return {"total": len(rows), "by_system": systems.most_common(TOP), "by_step": stepc.most_common(TOP),
            "top_attributes": [(k, v, n) for (k, v), n in attrs.most_common() if k in telling][:TOP],
            "examples": [r[0] for r in rows[:10]], "unit": "instances"}


def _spans(store: Store, spec: SloSpec, lo: dt.datetime, hi: dt.datetime) -> dict:
    where, params = _span_filters(spec)
    bad = _bad_expr(spec, params)
    cond = " AND ".join(where + [f"({bad})", "Timestamp >= fromUnixTimestamp64Milli({lo:Int64}, 'UTC')",
                                 "Timestamp < fromUnixTimestamp64Milli({hi:Int64}, 'UTC')"])
    params.update(lo=ms(lo), hi=ms(hi))
    t = store.table("spans")
    rows = store.query(f"""
SELECT 'system' AS dim, toString(ServiceName) AS k, '' AS v, uniqExact((TraceId, SpanId)) AS n
FROM {t} WHERE {cond} GROUP BY k ORDER BY n DESC LIMIT {TOP}
UNION ALL
SELECT 'step', toString(SpanName), '', uniqExact((TraceId, SpanId)) AS n
FROM {t} WHERE {cond} GROUP BY 2 ORDER BY n DESC LIMIT {TOP}
UNION ALL
SELECT 'attr', ak, av, count() AS n
FROM {t} ARRAY JOIN mapKeys(SpanAttributes) AS ak, mapValues(SpanAttributes) AS av
WHERE {cond} AND ak NOT IN {{skip:Array(String)}} GROUP BY ak, av ORDER BY n DESC LIMIT {TOP * 8}
UNION ALL
SELECT 'card', ak, '', uniqExact(av) FROM {t} ARRAY JOIN mapKeys(SpanAttributes) AS ak, mapValues(SpanAttributes) AS av
WHERE {cond} GROUP BY ak
UNION ALL
SELECT 'example', CorrelationId, '', 0 FROM {t} WHERE {cond} GROUP BY CorrelationId LIMIT 10
UNION ALL
SELECT 'total', '', '', uniqExact((TraceId, SpanId)) FROM {t} WHERE {cond}""",
        {**params, "skip": sorted(_SKIP_ATTRS)}).rows
    out: dict = {"by_system": [], "by_step": [], "top_attributes": [], "examples": [], "total": 0, "unit": "spans"}
    cardinality: dict[str, int] = {}
    for dim, k, v, n in rows:
        if dim == "system":
            out["by_system"].append((k or "?", int(n)))
        elif dim == "step":
            out["by_step"].append((k, int(n)))
        elif dim == "attr":
            out["top_attributes"].append((k, v, int(n)))
        elif dim == "example":
            out["examples"].append(k)
        elif dim == "card":
            cardinality[k] = int(n)
        else:
            out["total"] = int(n)
    for key in ("by_system", "by_step"):
        out[key].sort(key=lambda x: -x[1])
    telling = _telling(cardinality, out["total"])
    out["top_attributes"] = sorted((a for a in out["top_attributes"] if a[0] in telling), key=lambda x: -x[2])[:TOP]
    return out

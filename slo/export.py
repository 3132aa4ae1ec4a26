"""`revwatch slo export --format openslo`: every SLO as OpenSLO v1 documents that import back to the same SLOs.

One `SLO` document per revwatch SLO, with an inline indicator:
* revwatch's own SLIs (journey, span, gauge): a `ratioMetric` whose `good` and `total` metric sources are
  `type: revwatch` with `spec: {sli: <the revwatch SLI>, journey: <name>, group_by: [...]}` — the documented form
  slo/openslo.py reads back;
* Prometheus SLIs: `type: Prometheus` sources — `bad`/`total` for event queries, `raw` (`rawType: failure`) for an
  error-ratio query; the query already applies the budgeting method (annotation `revwatch.io/query-budgeted`).
Windows: rolling durations, or `calendar` (revwatch's calendar month/week are 1M/1w from a Monday the 1st, 00:00 UTC).
Alert tiers as they are resolved (burn factors scaled to the period) become `alertPolicies` with one `burnrate`
condition each (lookbackWindow = the long window), for tools that read them; the alerting section itself travels in
the annotation `revwatch.io/alerting` (OpenSLO has no field for short windows, catalogues or low-traffic minimums),
and the import gives it precedence, so the round trip is exact.
"""
from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import yaml

from revwatch.units import format_duration
from slo.openslo import (ALERTING_ANNOTATION, API, BUDGETED_ANNOTATION, DESCRIPTION_ANNOTATION, DESCRIPTION_MAX,
                         DISPLAY_NAME_ANNOTATION, DISPLAY_NAME_MAX,
                         IMPORT_SPEC_ANNOTATION, NAME_ANNOTATION)
from slo.spec import SloSpec

CALENDAR_ORIGIN = "2024-01-01 00:00:00"        # a Monday and the 1st of a month


def _k8s_name(name: str) -> str:
    """An RFC 1123 name for `name` (lower case, '_' → '-'), at most 63 characters."""
    n = re.sub(r"[^a-z0-9-]", "-", name.lower()).strip("-")[:63].strip("-")
    return n or "slo"


def _window(spec: SloSpec) -> dict:
    c = spec.config
    if c.calendar is not None:
        return {"duration": c.calendar.duration, "isRolling": False,
                "calendar": {"startTime": c.calendar.start.isoformat(sep=" "), "timeZone": c.calendar.time_zone}}
    if c.window in ("calendar_month", "calendar_week"):
        return {"duration": "1M" if c.window == "calendar_month" else "1w", "isRolling": False,
                "calendar": {"startTime": CALENDAR_ORIGIN, "timeZone": "UTC"}}
    window = c.window if re.fullmatch(r"[1-9][0-9]*[mhdw]", c.window) else format_duration(spec.nominal_period)
    return {"duration": window, "isRolling": True}


def plain(v):
    """Config values as config text writes them: durations '15m' / '500ms', containers walked."""
    if isinstance(v, dt.timedelta):
        ms = round(v.total_seconds() * 1000)
        return format_duration(v) if ms % 1000 == 0 else f"{ms}ms"
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [plain(x) for x in v]
    return v


def _sli_dict(spec: SloSpec) -> dict:
    """The revwatch SLI as config text would write it (defaults left out)."""
    return {**plain(spec.config.sli.model_dump(exclude_defaults=True)), "kind": spec.config.sli.kind}


def _indicator(spec: SloSpec, name: str) -> dict:
    c = spec.config
    sli = c.sli
    if spec.is_prometheus:
        def src(q: str) -> dict:
            return {"metricSource": {"type": "Prometheus", "spec": {"query": q}}}
        if sli.error_ratio_query:
            metric = {"ratioMetric": {"counter": False, "rawType": "failure", "raw": src(sli.error_ratio_query)}}
        else:
            assert sli.error_query and sli.total_query, "validated: without error_ratio_query both queries are given"
            metric = {"ratioMetric": {"counter": False, "bad": src(sli.error_query), "total": src(sli.total_query)}}
    else:
        own: dict[str, Any] = {"sli": _sli_dict(spec)}
        if c.journey:
            own["journey"] = c.journey
        if c.group_by:
            own["group_by"] = list(c.group_by)
        source = {"metricSource": {"type": "revwatch", "spec": own}}
        metric = {"ratioMetric": {"counter": False, "good": source, "total": source}}
    return {"metadata": {"name": _k8s_name(f"{name}-sli")}, "spec": metric}


def _alert_policies(spec: SloSpec, name: str) -> list[dict]:
    out = []
    for i, t in enumerate(spec.tiers):
        cname = _k8s_name(f"{name}-{t.severity}-{i}")
        out.append({"kind": "AlertPolicy", "metadata": {"name": cname}, "spec": {
            "alertWhenBreaching": True,
            "conditions": [{"kind": "AlertCondition", "metadata": {"name": cname}, "spec": {
                "severity": t.severity,
                "condition": {"kind": "burnrate", "op": "gte", "threshold": t.burn_rate,
                              "lookbackWindow": format_duration(t.long),
                              "alertAfter": format_duration(t.alert_after) if t.alert_after else "0m"}}}]}})
    return out


def slo_document(spec: SloSpec) -> dict:
    """The OpenSLO v1 SLO document of one SLO."""
    c = spec.config
    name = _k8s_name(c.name)
    annotations = dict(c.annotations)
    if name != c.name:
        annotations[NAME_ANNOTATION] = c.name
    if c.import_spec != API:                   # "none": written in revwatch's own config
        annotations[IMPORT_SPEC_ANNOTATION] = c.import_spec or "none"
    if spec.is_prometheus:
        annotations[BUDGETED_ANNOTATION] = "true"
    if c.budgeting == "amount":
        annotations["revwatch.io/budgeting"] = "amount"
    annotations[ALERTING_ANNOTATION] = json.dumps(plain(c.alerting.model_dump()), sort_keys=True,
                                                  separators=(",", ":"))
    meta: dict = {"name": name}
    if c.display_name and len(c.display_name) <= DISPLAY_NAME_MAX:
        meta["displayName"] = c.display_name
    elif c.display_name:                       # OpenSLO allows 63 characters: the whole name travels as annotation
        meta["displayName"] = c.display_name[:DISPLAY_NAME_MAX - 1] + "…"
        annotations[DISPLAY_NAME_ANNOTATION] = c.display_name
    if c.labels:
        meta["labels"] = dict(c.labels)
    meta["annotations"] = annotations
    objective: dict = {"target": c.objective}
    if c.budgeting == "timeslices":
        objective["timeSliceTarget"] = c.timeslice_target if c.timeslice_target is not None else c.objective
    if c.budgeting in ("timeslices", "ratio_timeslices") and not spec.is_prometheus:
        objective["timeSliceWindow"] = format_duration(c.timeslice_window)
    spec_doc: dict = {}
    if c.description and len(c.description) <= DESCRIPTION_MAX:
        spec_doc["description"] = c.description
    elif c.description:                        # OpenSLO allows 1050 characters: the whole text as annotation
        spec_doc["description"] = c.description[:DESCRIPTION_MAX - 1] + "…"
        annotations[DESCRIPTION_ANNOTATION] = c.description
    if c.service:
        spec_doc["service"] = c.service
    spec_doc.update({
        "indicator": _indicator(spec, name),
        "timeWindow": [_window(spec)],
        # OpenSLO has no money budgeting: an amount SLO is Occurrences of currency units (annotation below)
        "budgetingMethod": {"occurrences": "Occurrences", "timeslices": "Timeslices", "amount": "Occurrences",
                            "ratio_timeslices": "RatioTimeslices"}[c.budgeting],
        "objectives": [objective],
    })
    policies = _alert_policies(spec, name)
    if policies:
        spec_doc["alertPolicies"] = policies
    return {"apiVersion": API, "kind": "SLO", "metadata": meta, "spec": spec_doc}


def export_openslo(specs: list[SloSpec]) -> str:
    """Every SLO but the composites as a multi-document OpenSLO v1 YAML stream (v1 has no composite SLO: those are
    exported as v2alpha, slo/openslo_v2.py)."""
    return yaml.safe_dump_all([slo_document(s) for s in specs if not s.is_composite], sort_keys=False, width=120,
                              allow_unicode=True)

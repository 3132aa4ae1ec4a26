"""The Prometheus rules Sloth writes, for SLOs whose SLI is PromQL (imported from Sloth or OpenSLO).

Rule for rule what Sloth's core plugins generate (slok/sloth `internal/plugin/slo/core/sli_rules_v1`,
`metadata_rules_v1`, `alert_rules_v1`), so dashboards and alerts built for Sloth work unchanged:

* `sloth-slo-sli-recordings-<id>`: `slo:sli_error:ratio_rate<W>` for every alert window (ascending) and, named after
  the period, the period's ratio as the average of the shortest page window's ratio;
* `sloth-slo-meta-recordings-<id>`: objective, error budget, period days, current and period burn rate, budget
  remaining, `sloth_slo_info`;
* `sloth-slo-alerts-<id>`: one alert per enabled severity, each the OR of its tiers' (short AND long) pairs.

Labels: `sloth_id`, `sloth_service`, `sloth_slo` (+ `sloth_window` on SLI rules) then the SLO's labels; alerts
carry the alert labels and `sloth_severity`. The generator identity labels of `sloth_slo_info` (`sloth_version`,
`sloth_mode`) name revwatch. Numbers are computed in Sloth's float order (budget = (100 − objective%) / 100).
"""
from __future__ import annotations

import re

from slo.spec import SloSpec

WINDOW_VAR = re.compile(r"\{\{\s*\.window\s*\}\}")
GENERATOR_VERSION = "revwatch"
_UNITS = (("y", 365 * 86400, True), ("w", 7 * 86400, True), ("d", 86400, False), ("h", 3600, False),
          ("m", 60, False), ("s", 1, False))


def prom_duration(seconds: float) -> str:
    """Prometheus's duration text (prometheus/common model.Duration.String): 28d → 4w, 36h → 1d12h."""
    ms = int(round(seconds * 1000))
    if ms == 0:
        return "0s"
    out = ""
    for unit, size, exact in _UNITS:
        size *= 1000
        if exact and ms % size:
            continue
        if ms // size:
            out += f"{ms // size}{unit}"
            ms -= (ms // size) * size
    if ms:
        out += f"{ms}ms"
    return out


def _quote(v: str) -> str:
    return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def label_filter(labels: dict[str, str]) -> str:
    """A selector like Prometheus's LabelSet.String(): sorted, `{a="x", b="y"}`."""
    return "{" + ", ".join(f"{k}={_quote(v)}" for k, v in sorted(labels.items())) + "}"


def _g(x: float) -> str:
    """Go's %g / %v for a float64 (shortest round-trip digits)."""
    r = repr(float(x))
    return r[:-2] if r.endswith(".0") else r


def objective_percent(spec: SloSpec) -> float:
    """The objective as the percentage the spec was written in (0.9990000000000001 → 99.9)."""
    return round(spec.config.objective * 100, 10)


def slo_id_labels(spec: SloSpec) -> dict[str, str]:
    c = spec.config
    service = c.service or "revwatch"
    name = c.name[len(service) + 1:] if c.name.startswith(service + "-") else c.name
    return {"sloth_id": f"{service}-{name}", "sloth_service": service, "sloth_slo": name}


def sli_metric(seconds: float) -> str:
    return f"slo:sli_error:ratio_rate{prom_duration(seconds)}"


def _sli_expr(spec: SloSpec, window: str) -> str:
    sli = spec.config.sli
    if sli.error_ratio_query:
        return f"({WINDOW_VAR.sub(window, sli.error_ratio_query)})"
    assert sli.error_query and sli.total_query, "validated: without error_ratio_query both queries are given"
    return f"({WINDOW_VAR.sub(window, sli.error_query)})\n/\n({WINDOW_VAR.sub(window, sli.total_query)})\n"


def sloth_groups(spec: SloSpec) -> list[dict]:
    """Sloth's three rule groups for one Prometheus-backed SLO (the alert group only when an alert is enabled)."""
    c = spec.config
    ids = slo_id_labels(spec)
    sid = ids["sloth_id"]
    flt = label_filter(ids)
    labels = {**ids, **c.labels}
    period = spec.nominal_period.total_seconds()
    windows = sorted({t.short.total_seconds() for t in spec.tiers} | {t.long.total_seconds() for t in spec.tiers})
    page = spec.tiers_of("page")
    # Sloth averages the page-quick short window's ratio over the period (its "optimized" period SLI)
    base = page[0].short.total_seconds() if page else (min(windows) if windows else None)

    sli_rules = []
    for w in windows:
        sli_rules.append({"record": sli_metric(w), "expr": _sli_expr(spec, prom_duration(w)),
                          "labels": {**ids, "sloth_window": prom_duration(w), **c.labels}})
    pw = prom_duration(period)
    if base is not None and base != period:
        expr = (f"sum_over_time({sli_metric(base)}{flt}[{pw}])\n/ ignoring (sloth_window)\n"
                f"count_over_time({sli_metric(base)}{flt}[{pw}])\n")
    else:
        expr = _sli_expr(spec, pw)
    sli_rules.append({"record": sli_metric(period), "expr": expr, "labels": {**ids, "sloth_window": pw, **c.labels}})

    objective = c.objective
    burn_tpl = ("{metric}{flt}\n/ on(sloth_id, sloth_slo, sloth_service) group_left\n"
                "slo:error_budget:ratio{flt}\n")
    info_labels = {**labels, "sloth_version": GENERATOR_VERSION,
                   "sloth_mode": "cli-gen-k8s" if c.import_spec == "sloth.slok.dev/v1" else "cli-gen-prom",
                   "sloth_spec": c.import_spec or "prometheus/v1", "sloth_objective": _g(objective_percent(spec))}
    meta_rules = [
        {"record": "slo:objective:ratio", "expr": f"vector({_g(objective)})", "labels": labels},
        {"record": "slo:error_budget:ratio", "expr": f"vector(1-{_g(objective)})", "labels": labels},
        {"record": "slo:time_period:days", "expr": f"vector({_g(period / 86400)})", "labels": labels},
        {"record": "slo:current_burn_rate:ratio",
         "expr": burn_tpl.format(metric=sli_metric(base if base is not None else period), flt=flt), "labels": labels},
        {"record": "slo:period_burn_rate:ratio", "expr": burn_tpl.format(metric=sli_metric(period), flt=flt),
         "labels": labels},
        {"record": "slo:period_error_budget_remaining:ratio", "expr": f"1 - slo:period_burn_rate:ratio{flt}",
         "labels": labels},
        {"record": "sloth_slo_info", "expr": "vector(1)", "labels": info_labels},
    ]
    groups = [{"name": f"sloth-slo-sli-recordings-{sid}", "rules": sli_rules},
              {"name": f"sloth-slo-meta-recordings-{sid}", "rules": meta_rules}]

    budget = (100 - objective_percent(spec)) / 100
    alerts = []
    for severity in ("page", "ticket"):
        tiers = spec.tiers_of(severity)
        meta = c.alerting.page_alert if severity == "page" else c.alerting.ticket_alert
        if meta.disable or not tiers:
            continue
        pairs = "\nor\n".join(
            "(\n" + "\n    and\n".join(
                f"    max({sli_metric(w.total_seconds())}{flt} > ({_g(t.burn_rate)} * {_g(budget)})) "
                f"without (sloth_window)" for w in (t.short, t.long)) + "\n)"
            for t in tiers) + "\n"
        annotations = {
            "title": f"({severity}) {{{{$labels.sloth_service}}}} {{{{$labels.sloth_slo}}}} SLO error budget burn "
                     f"rate is too fast.",
            "summary": "{{$labels.sloth_service}} {{$labels.sloth_slo}} SLO error budget burn rate is over expected.",
            **c.alerting.annotations, **meta.annotations,
            **({"runbook_url": spec.ownership.runbook} if spec.ownership.runbook else {})}
        alert = {"alert": c.alerting.name or f"{sid}-{severity}", "expr": pairs}
        if tiers[0].alert_after:               # OpenSLO alertAfter; Sloth itself writes no `for:`
            alert["for"] = prom_duration(tiers[0].alert_after.total_seconds())
        owners = {k: v for k, v in spec.ownership.labels().items() if k != "service"}   # service: sloth_service
        alerts.append({**alert, "labels": {**c.alerting.labels, **meta.labels, **owners, "sloth_severity": severity},
                       "annotations": dict(sorted(annotations.items()))})
    if alerts:
        groups.append({"name": f"sloth-slo-alerts-{sid}", "rules": alerts})
    return groups

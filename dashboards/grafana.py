"""Grafana dashboards over revwatch's Prometheus metrics, built in code and written as JSON files with
provisioning (`python -m dashboards.grafana` regenerates `dashboards/json/`; a test keeps them current).

* executive — SLO overview: SLI over the SLO window, error budget left, days until exhausted, alert state.
* oncall — journey view: burn rates of the configured alert tiers, journey lag quantiles, pending instances,
  ingest health.
* anomalies — open findings per kind and probe health.

The burn-rate panels are drawn from the alert tiers, never hard-coded (issue #22): `revwatch dashboards export`
passes the tiers the config resolves (custom `alerting.page/ticket`, catalogues, periods) as `TierLine`s, and SLOs
with the same tiers share one panel per severity, whose windows, title and threshold lines are those tiers. Without
a config (the committed `dashboards/json/`) the tiers are the Google 30-day catalogue's. This package does not
import `slo` (independent siblings): the CLI hands the tiers over as plain data.
"""
from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path

OUT = Path(__file__).with_name("json")
DS = {"type": "prometheus", "uid": "${datasource}"}


def _panel(kind: str, title: str, exprs: list[tuple[str, str]], x: int, y: int, w: int = 12, h: int = 8,
           unit: str | None = None, **extra) -> dict:
    p = {"type": kind, "title": title, "datasource": DS, "gridPos": {"x": x, "y": y, "w": w, "h": h},
         "targets": [{"datasource": DS, "expr": e, "legendFormat": lf, "refId": chr(65 + i)}
                     for i, (e, lf) in enumerate(exprs)],
         "fieldConfig": {"defaults": {"unit": unit} if unit else {}, "overrides": []}, "options": {}}
    p.update(extra)
    return p


def _dashboard(uid: str, title: str, panels: list[dict], variables: list[dict] | None = None) -> dict:
    ids = itertools.count(1)
    for p in panels:
        p["id"] = next(ids)
    templating = [{"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus"}]
    templating += variables or []
    return {"uid": uid, "title": title, "tags": ["revwatch"], "timezone": "utc", "schemaVersion": 39,
            "annotations": {"list": [ANNOTATIONS]},
            "refresh": "30s", "time": {"from": "now-24h", "to": "now"}, "panels": panels,
            "templating": {"list": templating}, "editable": True}


# revwatch's annotations (deploys, upgrades, incidents; slo/annotations.py) on every time series: the metric's value is
# the annotation's time, so Grafana places it there (useValueForTime), whenever in the range it was scraped.
ANNOTATIONS = {"name": "revwatch annotations", "datasource": DS, "enable": True, "iconColor": "#8F3BB8",
               "expr": "max by (id, text, tags, slos) (revwatch_annotation_time_seconds) * 1000", "step": "1m",
               "useValueForTime": True, "titleFormat": "{{text}}", "textFormat": "SLOs: {{slos}}",
               "tagKeys": "tags"}

SLO_VAR = {"name": "slo", "type": "query", "datasource": DS, "multi": True, "includeAll": True,
           "query": {"query": "label_values(revwatch_slo_objective_ratio, slo)", "refId": "slo"},
           "refresh": 2, "label": "SLO"}
JOURNEY_VAR = {"name": "journey", "type": "query", "datasource": DS, "multi": True, "includeAll": True,
               "query": {"query": "label_values(revwatch_journey_pending, journey)", "refId": "journey"},
               "refresh": 2, "label": "journey"}


def executive() -> dict:
    sel = 'slo=~"$slo"'
    return _dashboard("revwatch-executive", "revwatch — business SLOs (executive)", [
        _panel("stat", "SLI over the SLO window",
               [(f'revwatch_slo_sli_ratio{{{sel},window="slo"}}', "{{slo}} {{group}}")],
               0, 0, 12, 6, "percentunit"),
        _panel("gauge", "Error budget left",
               [(f"revwatch_slo_error_budget_remaining_ratio{{{sel}}}", "{{slo}} {{group}}")],
               12, 0, 12, 6, "percentunit"),
        _panel("stat", "Days until the budget is exhausted (at the 6h burn rate)",
               [(f'revwatch_slo_error_budget_exhausted_in_seconds{{{sel},burn_window="6h"}}', "{{slo}} {{group}}")],
               0, 6, 12, 6, "s"),
        _panel("stat", "Alerting (page / ticket)", [(f"max by (slo, severity) (revwatch_slo_alert{{{sel}}})",
                                                     "{{slo}} {{severity}}")], 12, 6, 12, 6),
        _panel("timeseries", "SLI (1 day window) over time", [(f'revwatch_slo_sli_ratio{{{sel},window="1d"}}',
                                                               "{{slo}} {{group}}")], 0, 12, 24, 8, "percentunit"),
        # money-weighted SLOs (budgeting: amount): the budget in money, one series per currency group
        _panel("stat", "Error budget left in money (money-weighted SLOs)",
               [(f'revwatch_slo_error_budget_amount{{{sel},part="remaining"}}', "{{slo}} {{group}}")],
               0, 20, 12, 6),
        _panel("stat", "Bad money in the SLO window (money-weighted SLOs)",
               [(f'revwatch_slo_error_budget_amount{{{sel},part="bad"}}', "{{slo}} {{group}}")], 12, 20, 12, 6),
    ], [SLO_VAR])


@dataclass(frozen=True)
class TierLine:
    """One alert tier of one SLO as the dashboards draw it: both windows burning at ≥ `burn_rate` alert."""
    slo: str
    severity: str              # page | ticket
    long: str                  # window names as in the `window` label (format_duration: 5m, 1h, 1d …)
    short: str
    burn_rate: float


# the Google 30-day catalogue (SRE workbook table 5-8), drawn when no config is given
DEFAULT_TIERS = (TierLine("", "page", "1h", "5m", 14.4), TierLine("", "page", "6h", "30m", 6.0),
                 TierLine("", "ticket", "1d", "2h", 3.0), TierLine("", "ticket", "3d", "6h", 1.0))
_COLOURS = {"page": ("red", "dark-red"), "ticket": ("orange", "dark-orange")}


def _seconds(window: str) -> float:
    n, unit = float(window[:-1]), window[-1]
    return n * {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[unit]


def _burn_panels(tiers: tuple[TierLine, ...] | list[TierLine], y: int) -> tuple[list[dict], int]:
    """Burn-rate panels: one per severity for each set of SLOs sharing the same tiers (from `y`; returns the next
    free row). Series: every window the tiers name; threshold lines: every tier's burn rate."""
    by_slo: dict[str, list[TierLine]] = {}
    for t in tiers:
        by_slo.setdefault(t.slo, []).append(t)
    shared: dict[tuple, list[str]] = {}
    for slo, ts in by_slo.items():
        key = tuple(sorted((t.severity, t.long, t.short, t.burn_rate) for t in ts))
        shared.setdefault(key, []).append(slo)
    panels, x = [], 0
    for key, slos in shared.items():
        sel = 'slo=~"$slo"' if slos == [""] else 'slo=~"' + "|".join(sorted(slos)) + '"'
        who = "" if slos == [""] else f" — {', '.join(sorted(slos))}"
        for severity in ("page", "ticket"):
            rows = [k for k in key if k[0] == severity]
            if not rows:
                continue
            windows = sorted({w for _, lg, sh, _ in rows for w in (lg, sh)}, key=_seconds)
            title = (f"Burn rate, {severity} tiers (" + "; ".join(f"{lg} & {sh} ≥ {br:g}" for _, lg, sh, br in rows)
                     + f"){who}")
            light, dark = _COLOURS[severity]
            steps = [{"color": "green", "value": None}] + [
                {"color": light if i == 0 else dark, "value": br}
                for i, br in enumerate(sorted({br for *_, br in rows}))]
            panel = _panel("timeseries", title,
                           [(f'revwatch_slo_burn_rate{{{sel},window=~"{"|".join(windows)}"}}',
                             "{{slo}} {{group}} {{window}}")], x, y, 12, 8)
            panel["fieldConfig"]["defaults"].update(
                thresholds={"mode": "absolute", "steps": steps},
                custom={"thresholdsStyle": {"mode": "line+area"}})
            panels.append(panel)
            x = 12 - x
            if x == 0:
                y += 8
    return panels, y + (8 if x else 0)


def oncall(tiers: tuple[TierLine, ...] | list[TierLine] = DEFAULT_TIERS) -> dict:
    jsel = 'journey=~"$journey"'
    burn, y = _burn_panels(tiers, 0)
    return _dashboard("revwatch-oncall", "revwatch — on-call journey view", burn + [
        _panel("timeseries", "Journey lag (completed in the last hour)",
               [(f"revwatch_journey_lag_quantile_seconds{{{jsel}}}", "{{journey}} q{{q}}")], 0, y, 12, 8, "s"),
        _panel("timeseries", "Pending journey instances", [(f"revwatch_journey_pending{{{jsel}}}", "{{journey}}")],
               12, y, 12, 8),
        _panel("timeseries", "Ingest rate", [("rate(revwatch_ingest_events_total[5m])", "events/s"),
                                             ("rate(revwatch_ingest_spans_total[5m])", "spans/s")], 0, y + 8, 12, 8),
        _panel("timeseries", "Ingest rejections and spool backlog",
               [("sum by (reason) (rate(revwatch_ingest_rejected_total[5m]))", "rejected {{reason}}"),
                ("revwatch_spool_bytes", "spool bytes")], 12, y + 8, 12, 8),
        # in-flight forecast (slo/forecast.py): breaches coming at the current step pace, and when the budget goes
        _panel("timeseries", "Forecast: in-flight instances that will breach",
               [('revwatch_slo_forecast_breaches{slo=~"$slo"}', "{{slo}} {{group}}")], 0, y + 16, 12, 8),
        _panel("stat", "Forecast: budget exhausted in",
               [('revwatch_slo_forecast_exhausted_in_seconds{slo=~"$slo"}', "{{slo}} {{group}}")],
               12, y + 16, 12, 8, "s"),
        # funnels (revwatch/journeys/funnel.py) of the instances started in the last day: where instances and money
        # stop moving, and how long each step takes
        _panel("bargauge", "Funnel: instances started in the last day reaching each step",
               [(f"revwatch_journey_funnel_reached{{{jsel}}}", "{{journey}} {{step}}")], 0, y + 24, 12, 8,
               options={"orientation": "horizontal", "displayMode": "basic"}),
        _panel("bargauge", "Funnel: money waiting for each step (started in the last day)",
               [(f'revwatch_journey_funnel_amount{{{jsel},kind="stopped"}}', "{{journey}} {{step}} {{currency}}")],
               12, y + 24, 12, 8, options={"orientation": "horizontal", "displayMode": "basic"}),
        _panel("timeseries", "Funnel: conversion from the previous step",
               [(f"revwatch_journey_funnel_conversion_ratio{{{jsel}}}", "{{journey}} {{step}}")], 0, y + 32, 12, 8,
               "percentunit"),
        _panel("timeseries", "Funnel: step latency p95 (from the previous step)",
               [(f'revwatch_journey_funnel_step_latency_seconds{{{jsel},q="0.95"}}', "{{journey}} {{step}}")],
               12, y + 32, 12, 8, "s"),
        # burn attribution (slo/attribution.py): the step the bad instances are stuck at or were late in, in money
        _panel("bargauge", "Burn attribution: bad instances by step (last 7 days)",
               [('sum by (slo, group, step) (revwatch_slo_attribution_bad{slo=~"$slo"})',
                 "{{slo}} {{group}} {{step}}")],
               0, y + 40, 12, 8, options={"orientation": "horizontal", "displayMode": "basic"}),
        _panel("bargauge", "Burn attribution: bad money by step (last 7 days)",
               [('revwatch_slo_attribution_bad_amount{slo=~"$slo"}', "{{slo}} {{group}} {{step}} {{currency}}")],
               12, y + 40, 12, 8, options={"orientation": "horizontal", "displayMode": "basic"}),
    ], [SLO_VAR, JOURNEY_VAR])


def anomalies() -> dict:
    return _dashboard("revwatch-anomalies", "revwatch — anomalies and probes", [
        _panel("stat", "Open findings", [("revwatch_anomalies_open", "{{kind}}")], 0, 0, 12, 6),
        _panel("timeseries", "Open findings over time", [("revwatch_anomalies_open", "{{kind}}")], 12, 0, 12, 6),
        _panel("stat", "Probes up", [("revwatch_probe_up", "{{probe}}")], 0, 6, 12, 6),
        _panel("timeseries", "Probe durations", [("revwatch_probe_duration_seconds", "{{probe}}")],
               12, 6, 12, 6, "s"),
    ])


DASHBOARDS = {"executive-slo": executive, "oncall-journeys": oncall, "anomalies": anomalies}

DASHBOARDS_PATH = "/var/lib/grafana/dashboards/revwatch"


def provisioning(dashboards_path: str = DASHBOARDS_PATH) -> dict[str, str]:
    """Grafana provisioning files. The Prometheus URL is not fixed: Grafana expands `$PROMETHEUS_URL` from its
    environment when it reads the file, and every panel queries the `${datasource}` variable, so the dashboards
    also work with any other Prometheus data source picked in the UI."""
    return {
        "dashboards.yaml": "apiVersion: 1\nproviders:\n  - name: revwatch\n    folder: revwatch\n    type: file\n"
                           f"    options:\n      path: {dashboards_path}\n",
        "datasources.yaml": "apiVersion: 1\ndatasources:\n  - name: Prometheus\n    uid: revwatch-prometheus\n"
                            "    type: prometheus\n    access: proxy\n    url: $PROMETHEUS_URL\n"
                            "    isDefault: true\n",
    }


PROVISIONING = provisioning()


def render(tiers: tuple[TierLine, ...] | list[TierLine] | None = None) -> dict[str, str]:
    """Every file of dashboards/json/ by name; `tiers`: the configured alert tiers (default: the 30-day
    catalogue's)."""
    docs = {name: (oncall(tiers) if name == "oncall-journeys" and tiers else build())
            for name, build in DASHBOARDS.items()}
    files = {f"{name}.json": json.dumps(doc, indent=2, sort_keys=True) + "\n" for name, doc in docs.items()}
    files.update({f"provisioning/{k}": v for k, v in PROVISIONING.items()})
    return files


def export(out: Path, dashboards_path: str = DASHBOARDS_PATH,
           tiers: tuple[TierLine, ...] | list[TierLine] | None = None) -> list[Path]:
    """Write the dashboards in the layout Grafana's provisioning expects (`revwatch dashboards export`):
    `dashboards/*.json`, `provisioning/dashboards/revwatch.yaml`, `provisioning/datasources/revwatch.yaml`."""
    files = {f"dashboards/{name}": text for name, text in render(tiers).items() if name.endswith(".json")}
    prov = provisioning(dashboards_path)
    files["provisioning/dashboards/revwatch.yaml"] = prov["dashboards.yaml"]
    files["provisioning/datasources/revwatch.yaml"] = prov["datasources.yaml"]
    return _write_files(out, files)


def _write_files(out: Path, files: dict[str, str]) -> list[Path]:
    paths = []
    for name, text in files.items():
        p = out / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        paths.append(p)
    return paths


def write(out: Path = OUT) -> list[Path]:
    """Write the dashboards and provisioning files."""
    return _write_files(out, render())


if __name__ == "__main__":
    for path in write():
        print(path)

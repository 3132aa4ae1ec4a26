"""Grafana dashboards over revwatch's Prometheus metrics, built in code and written as JSON files with
provisioning (`python -m dashboards.grafana` regenerates `dashboards/json/`; a test keeps them current).

* executive — SLO overview: SLI over the SLO window, error budget left, days until exhausted, alert state.
* oncall — journey view: burn rates per window, journey lag quantiles, pending instances, ingest health.
* anomalies — open findings per kind and probe health.
"""
from __future__ import annotations

import itertools
import json
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
    ], [SLO_VAR])


def oncall() -> dict:
    sel, jsel = 'slo=~"$slo"', 'journey=~"$journey"'
    return _dashboard("revwatch-oncall", "revwatch — on-call journey view", [
        _panel("timeseries", "Burn rate, fast windows (page at 14.4 / 6)",
               [(f'revwatch_slo_burn_rate{{{sel},window=~"5m|1h|30m|6h"}}', "{{slo}} {{group}} {{window}}")],
               0, 0, 12, 8),
        _panel("timeseries", "Burn rate, slow windows (ticket at 3 / 1)",
               [(f'revwatch_slo_burn_rate{{{sel},window=~"2h|1d|3d"}}', "{{slo}} {{group}} {{window}}")], 12, 0, 12, 8),
        _panel("timeseries", "Journey lag (completed in the last hour)",
               [(f"revwatch_journey_lag_quantile_seconds{{{jsel}}}", "{{journey}} q{{q}}")], 0, 8, 12, 8, "s"),
        _panel("timeseries", "Pending journey instances", [(f"revwatch_journey_pending{{{jsel}}}", "{{journey}}")],
               12, 8, 12, 8),
        _panel("timeseries", "Ingest rate", [("rate(revwatch_ingest_events_total[5m])", "events/s"),
                                             ("rate(revwatch_ingest_spans_total[5m])", "spans/s")], 0, 16, 12, 8),
        _panel("timeseries", "Ingest rejections and spool backlog",
               [("sum by (reason) (rate(revwatch_ingest_rejected_total[5m]))", "rejected {{reason}}"),
                ("revwatch_spool_bytes", "spool bytes")], 12, 16, 12, 8),
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


def render() -> dict[str, str]:
    """Every file of dashboards/json/ by name."""
    files = {f"{name}.json": json.dumps(build(), indent=2, sort_keys=True) + "\n" for name, build in DASHBOARDS.items()}
    files.update({f"provisioning/{k}": v for k, v in PROVISIONING.items()})
    return files


def export(out: Path, dashboards_path: str = DASHBOARDS_PATH) -> list[Path]:
    """Write the dashboards in the layout Grafana's provisioning expects (`revwatch dashboards export`):
    `dashboards/*.json`, `provisioning/dashboards/revwatch.yaml`, `provisioning/datasources/revwatch.yaml`."""
    files = {f"dashboards/{name}": text for name, text in render().items() if name.endswith(".json")}
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

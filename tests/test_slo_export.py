"""`revwatch slo export --format openslo`: the export is OpenSLO v1 that imports back to exactly the same SLOs
(configs and resolved alert tiers), for the example config, imported Sloth specs and imported OpenSLO documents."""
from pathlib import Path

import pytest
import yaml

import revwatch
from revwatch.config import Config, load_config
from slo.export import export_openslo
from slo.openslo import load_openslo
from slo.rules import rule_groups
from slo.spec import resolve
from tests.support.servers import FIXTURES, revwatch_cmd

EXAMPLE = Path(revwatch.__file__).with_name("example-config.yaml")
SLOTH = FIXTURES / "sloth" / "examples"
EXTRA = """
journeys: {p2p: {start: payment.settled, end: payment.posted}}
slos:
  - {name: Gateway_Latency, objective: 0.99, window: 7d, group_by: [service], labels: {team: payments},
     description: "gateway calls", sli: {kind: span_latency, service: stripe, threshold: 1500ms},
     budgeting: timeslices, timeslice_target: 0.95,
     alerting: {min_events: 5, page: [{long: 2h, short: 10m, burn_rate: 9, alert_after: 5m}], ticket: [],
                page_alert: {labels: {route: pager}, annotations: {hint: restart}}}}
  - {name: queue-depth, objective: 0.9, window: calendar_week, budgeting: ratio_timeslices, timeslice_window: 5m,
     sli: {kind: gauge_threshold, sample: rabbitmq_queue_messages, labels: {queue: orders}, max: 500}}
  - {name: p2p-complete, journey: p2p, objective: 0.995, window: 30d, sli: {kind: journey_completion, max_age: 1d},
     calendar: null, alerting: {catalogue: sloth-7d}}
  - name: berlin-month
    journey: p2p
    objective: 0.99
    window: calendar
    calendar: {duration: 1M, start: "2026-01-15T06:00:00", time_zone: Europe/Berlin}
    sli: {kind: journey_latency, threshold: 15m}
"""


def _round_trip(specs, tmp_path):
    path = tmp_path / "export.yaml"
    path.write_text(export_openslo(specs))
    back = load_openslo(path)
    assert [c.name for c in back] == [s.name for s in specs]
    for spec, again in zip(specs, back):
        assert again.model_dump() == spec.config.model_dump(), spec.name
    cfg = Config.model_validate({"journeys": {"p2p": {"start": "payment.settled", "end": "payment.posted"},
                                              "payment_to_posting": {"start": "a", "end": "b"},
                                              "renewal_to_invoice": {"start": "c", "end": "d"}},
                                 "openslo_files": [str(path)]})
    for spec, again in zip(specs, resolve(cfg)):
        assert again.tiers == spec.tiers and rule_groups(again, "x") == rule_groups(spec, "x")
    return path


def test_example_config_and_every_native_kind_round_trip(tmp_path):
    specs = resolve(load_config(EXAMPLE)) + resolve(Config.model_validate(yaml.safe_load(EXTRA)))
    path = _round_trip(specs, tmp_path)
    docs = list(yaml.safe_load_all(path.read_text()))
    assert all(d["apiVersion"] == "openslo/v1" and d["kind"] == "SLO" for d in docs)
    gw = next(d for d in docs if d["metadata"]["annotations"].get("revwatch.io/name") == "Gateway_Latency")
    assert gw["metadata"]["name"] == "gateway-latency"                       # RFC 1123 name, original kept
    src = gw["spec"]["indicator"]["spec"]["ratioMetric"]["good"]["metricSource"]
    assert src == {"type": "revwatch", "spec": {"sli": {"kind": "span_latency", "service": "stripe",
                                                        "threshold": "1500ms"}, "group_by": ["service"]}}
    pp = next(d for d in docs if d["metadata"]["name"] == "payment-posting-15m")
    assert pp["spec"]["timeWindow"] == [{"duration": "28d", "isRolling": True}]
    # resolved tiers are readable by OpenSLO tools: 28-day factors
    assert [p["spec"]["conditions"][0]["spec"]["condition"]["threshold"] for p in pp["spec"]["alertPolicies"]] == \
        [13.44, 5.6000000000000005, 2.8000000000000003, 0.9333333333333333]


@pytest.mark.parametrize("name", ["getting-started.yml", "raw-home-wifi.yml", "k8s-multifile.yml", "no-alerts.yml",
                                  "kubernetes-apiserver.yml"])
def test_imported_sloth_specs_round_trip(tmp_path, name):
    _round_trip(resolve(Config.model_validate({"sloth_files": [str(SLOTH / name)]})), tmp_path)


def test_imported_openslo_round_trips(tmp_path):
    doc = yaml.safe_load((FIXTURES / "openslo/openslo/budgeting-method_ratio-timeslices.yaml").read_text())
    rm = doc["spec"]["indicator"]["spec"]["ratioMetric"]
    for part in ("good", "total"):
        rm[part]["metricSource"] = {"type": "Prometheus", "spec": {"query": f"sum(rate(req_{part}[{{{{.window}}}}]))"}}
    labelled = yaml.safe_load((FIXTURES / "openslo/openslo/budgeting-method_timeslices-slo.yaml").read_text())
    labelled["spec"]["timeWindow"] = [{"duration": "1M", "isRolling": False,
                                       "calendar": {"startTime": "2020-01-01 00:00:00", "timeZone": "UTC"}}]
    labelled["metadata"]["labels"] = {"team": ["a", "b"]}
    labelled["spec"]["indicator"]["spec"] = {"ratioMetric": {"good": {"metricSource": {"type": "revwatch", "spec": {
        "service": "odoo"}}}, "total": {"metricSource": {"type": "revwatch", "spec": {"service": "odoo"}}}}}
    src = tmp_path / "in.yaml"
    src.write_text(yaml.safe_dump_all([doc, labelled]))
    specs = resolve(Config.model_validate({"openslo_files": [str(src)]}))
    assert [s.name for s in specs] == ["main-page", "service-availability-0", "service-availability-1"]
    assert specs[1].config.window == "calendar_month" and specs[1].config.labels == {"team": "a,b"}
    _round_trip(specs, tmp_path)


def test_cli_export(tmp_path):
    out = tmp_path / "slos.yaml"
    r = revwatch_cmd("slo", "export", "--format", "openslo", "-o", str(out), "--config", str(EXAMPLE))
    assert r.returncode == 0, r.stderr
    assert [c.name for c in load_openslo(out)] == [s.name for s in resolve(load_config(EXAMPLE))]
    r = revwatch_cmd("slo", "export", "--format", "pyrra", "--config", str(EXAMPLE))
    assert r.returncode == 2 and "--format: unknown format 'pyrra'" in r.stderr

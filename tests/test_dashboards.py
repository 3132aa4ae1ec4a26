"""Grafana dashboards: committed JSON is current, and every metric queried is one revwatch exports."""
import json
import os
import re
from pathlib import Path

from dashboards.grafana import OUT, render
from tests.support.servers import revwatch_cmd

KNOWN_PREFIXES = ("revwatch_probe_",)


def test_committed_dashboards_are_current():
    for name, text in render().items():
        assert (OUT / name).read_text() == text, f"{name} is stale: run python -m dashboards.grafana"


def test_every_queried_metric_is_exported(api_factory):
    api = api_factory("""
journeys: {p2p: {start: payment.settled, end: payment.posted}}
slos: [{name: pp, journey: p2p, objective: 0.99, window: 1d, sli: {kind: journey_latency, threshold: 15m}}]
""")
    api.ctx.slo.evaluate_and_cache()
    exported = set(re.findall(r"^# TYPE (\S+)", api.get("/metrics").text, re.M))
    exported |= {n + "_total" for n in exported}
    queried = set()
    for name, text in render().items():
        if name.endswith(".json"):
            doc = json.loads(text)
            assert doc["uid"].startswith("revwatch-") and doc["panels"]
            for p in doc["panels"]:
                for t in p["targets"]:
                    queried |= set(re.findall(r"\b(revwatch_[a-z_]+)", t["expr"]))
    missing = {m for m in queried if m not in exported and not m.startswith(KNOWN_PREFIXES)}
    assert not missing, missing


CUSTOM = """
journeys: {p2p: {start: payment.settled, end: payment.posted}}
slos:
  - name: pp
    journey: p2p
    objective: 0.99
    window: 28d
    sli: {kind: journey_latency, threshold: 15m}
    alerting: &tiers
      page: [{long: 30m, short: 2m, burn_rate: 20}, {long: 4h, short: 20m, burn_rate: 8}]
      ticket: [{long: 2d, short: 4h, burn_rate: 1.5}]
  - {name: pp-fast, journey: p2p, objective: 0.995, window: 28d, sli: {kind: journey_latency, threshold: 5m},
     alerting: *tiers}
  - name: api
    objective: 0.999
    window: 28d
    sli: {kind: span_ratio, service: odoo, bad_when: {StatusCode: Error}}
"""
GOLDEN = Path(__file__).parent / "golden" / "dashboards" / "custom-tiers"


def test_burn_panels_are_drawn_from_the_configured_tiers_golden(tmp_path):
    """`revwatch dashboards export --config` with custom tiers (pp, pp-fast) and the 28-day catalogue (api): each
    tier set gets its own page and ticket panels with its windows, thresholds and title; regenerate the golden files
    with REVWATCH_UPDATE_GOLDEN=1."""
    (tmp_path / "rw.yaml").write_text(CUSTOM)
    r = revwatch_cmd("dashboards", "export", "-o", str(tmp_path / "out"), "--config", str(tmp_path / "rw.yaml"))
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "out" / "dashboards" / "oncall-journeys.json").read_text()
    if os.environ.get("REVWATCH_UPDATE_GOLDEN"):
        GOLDEN.mkdir(parents=True, exist_ok=True)
        (GOLDEN / "oncall-journeys.json").write_text(text)
    assert text == (GOLDEN / "oncall-journeys.json").read_text()
    panels = {p["title"]: p for p in json.loads(text)["panels"]}
    page = panels["Burn rate, page tiers (30m & 2m ≥ 20; 4h & 20m ≥ 8) — pp, pp-fast"]
    assert page["targets"][0]["expr"] == 'revwatch_slo_burn_rate{slo=~"pp|pp-fast",window=~"2m|20m|30m|4h"}'
    assert [s["value"] for s in page["fieldConfig"]["defaults"]["thresholds"]["steps"]] == [None, 8, 20]
    assert "Burn rate, ticket tiers (2d & 4h ≥ 1.5) — pp, pp-fast" in panels
    # api keeps the 28-day catalogue: its factors, not the 30-day 14.4 / 6 / 3 / 1
    assert "Burn rate, page tiers (1h & 5m ≥ 13.44; 6h & 30m ≥ 5.6) — api" in panels
    assert not any("14.4" in t for t in panels)
    # without a config the committed dashboards draw the 30-day catalogue
    default = [p["title"] for p in json.loads(render()["oncall-journeys.json"])["panels"]]
    assert default[:2] == ["Burn rate, page tiers (1h & 5m ≥ 14.4; 6h & 30m ≥ 6)",
                           "Burn rate, ticket tiers (1d & 2h ≥ 3; 3d & 6h ≥ 1)"]


def test_a_bad_config_is_refused_with_one_line(tmp_path):
    (tmp_path / "rw.yaml").write_text(CUSTOM.replace("burn_rate: 20", "burn_rate: 500"))
    r = revwatch_cmd("dashboards", "export", "-o", str(tmp_path / "out"), "--config", str(tmp_path / "rw.yaml"))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "can never fire" in r.stderr, r.stderr

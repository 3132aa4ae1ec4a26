"""Grafana dashboards: committed JSON is current, and every metric queried is one revwatch exports."""
import json
import re

from dashboards.grafana import OUT, render

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

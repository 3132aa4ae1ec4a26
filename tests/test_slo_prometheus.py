"""Prometheus-backed SLOs end to end: a Sloth spec imported, its rules generated, loaded into a real Prometheus that
scrapes a live exporter with 10 % errors; revwatch reads the values back from Prometheus's HTTP API and shows them
beside the journey SLOs. Also: a Prometheus that is down degrades those SLOs visibly, never the API."""
import os
import shutil
import subprocess
import time

import pytest
import yaml
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import UnknownMetricFamily

from slo.rules import write_rules
from tests.support.servers import FIXTURES, free_port

PROMETHEUS = shutil.which("prometheus")
need_prom = pytest.mark.skipif(not PROMETHEUS and not os.environ.get("CI"), reason="prometheus not installed")
SPEC = FIXTURES / "sloth" / "examples" / "getting-started.yml"
JOURNEY = """
journeys: {p2p: {start: payment.settled, end: payment.posted}}
slos: [{name: pp, journey: p2p, objective: 0.99, window: 30d, sli: {kind: journey_latency, threshold: 15m}}]
"""


class RequestCounters:
    """http_request_duration_seconds_count of Sloth's getting-started example: 100 req/s, 10 of them 5xx."""

    def __init__(self):
        self.t0 = time.time()

    def collect(self):
        elapsed = time.time() - self.t0
        # untyped: a counter family would be exposed with a `_total` suffix, and the example queries the name as is
        c = UnknownMetricFamily("http_request_duration_seconds_count", "requests", labels=["job", "code"])
        c.add_metric(["myservice", "200"], 1000 + 90 * elapsed)
        c.add_metric(["myservice", "500"], 100 + 10 * elapsed)
        yield c


def test_without_prometheus_the_slos_say_so(api_factory):
    api = api_factory(JOURNEY + f"sloth_files: ['{SPEC}']\nprometheus_url: 'http://127.0.0.1:{free_port()}'\n")
    body = api.get("/api/v1/slos").json()
    assert [s["name"] for s in body["slos"]] == ["pp"]
    (p,) = body["prometheus_slos"]
    assert p["name"] == "myservice-requests-availability" and p["state"] == "unknown"
    assert "unavailable" in p["error"] and p["windows"] == {}
    one = api.get("/api/v1/slos/myservice-requests-availability").json()["results"][0]
    assert one["source"] == "prometheus" and one["state"] == "unknown"


@need_prom
def test_real_prometheus_computes_the_imported_slo_and_revwatch_reads_it(api_factory, tmp_path):
    registry = CollectorRegistry()
    registry.register(RequestCounters())
    exporter_port = free_port()
    server, thread = start_http_server(exporter_port, addr="127.0.0.1", registry=registry)
    port = free_port()
    api = api_factory(JOURNEY + f"sloth_files: ['{SPEC}']\nprometheus_url: 'http://127.0.0.1:{port}'\n")
    engine = api.ctx.slo
    files = write_rules(engine.specs + engine.prometheus_specs, tmp_path / "rules", "http://rw")
    (tmp_path / "prom.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(f) for f in files],
        "scrape_configs": [{"job_name": "app", "honor_labels": True,
                            "static_configs": [{"targets": [f"127.0.0.1:{exporter_port}"]}]}]}))
    prom = subprocess.Popen([PROMETHEUS, f"--config.file={tmp_path / 'prom.yml'}",
                             f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline, doc = time.time() + 60, None
        while time.time() < deadline:
            (doc,) = api.get("/api/v1/slos").json()["prometheus_slos"]
            if doc["state"] == "page" and "30d" in doc["windows"] and doc["budget"]["remaining_ratio"] is not None:
                break                    # every recording rule has been evaluated once (they run in one group cycle)
            time.sleep(1)
        assert doc["state"] == "page", doc
        assert doc["windows"]["5m"]["error_ratio"] == pytest.approx(0.1, rel=0.02)
        assert doc["windows"]["5m"]["burn_rate"] == pytest.approx(100, rel=0.02)     # 10 % / 0.1 % budget
        assert doc["sli"] == pytest.approx(0.9, rel=0.02)
        assert doc["budget"]["remaining_ratio"] < 0
        assert {a["severity"] for a in doc["alerts"]} == {"page", "ticket"}
        assert {a["alertname"] for a in doc["alerts"]} == {"MyServiceHighErrorRate"}
        # as of an instant before the rules ran: no data then
        (early,) = api.get("/api/v1/slos", params={"at": "2026-01-01T00:00:00Z"}).json()["prometheus_slos"]
        assert early["state"] == "no_data" and early["windows"] == {}
    finally:
        prom.terminate()
        prom.wait(20)
        server.shutdown()


def test_only_prometheus_backed_slos(api_factory):
    api = api_factory(f"sloth_files: ['{SPEC}']\n")
    body = api.get("/api/v1/slos").json()
    assert body["slos"] == [] and body["prometheus_slos"][0]["error"] == "prometheus_url is not configured"
    assert api.get("/metrics").status_code == 200
    r = api.get("/api/v1/slos/myservice-requests-availability", params={"at": "yesterday"})
    assert r.status_code == 400 and r.json()["field"] == "at"

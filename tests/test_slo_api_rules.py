"""SLO specs from OpenSLO, the API, /metrics, the CLI, and Prometheus rule files checked by the real promtool and
evaluated by a real Prometheus scraping a live revwatch."""
import datetime as dt
import json
import os
import shutil
import subprocess
import time

import httpx
import pytest
import yaml

from revwatch.config import Config
from slo.rules import write_rules
from slo.spec import resolve
from tests.support.servers import free_port, live_server, revwatch_cmd
from tests.support.slo_data import add_spans, anchor, journey
from tests.support.waits import until

PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")
need_prom = pytest.mark.skipif(not (PROMTOOL and PROMETHEUS) and not os.environ.get("CI"),
                               reason="prometheus/promtool not installed (make test installs them)")


SLO_CFG = """
journeys: {p2p: {start: payment.settled, end: payment.posted}}
slos:
  - {name: pp, journey: p2p, objective: 0.99, window: 1d, sli: {kind: journey_latency, threshold: 15m}}
  - {name: api, objective: 0.999, window: 28d, sli: {kind: span_ratio, service: odoo, bad_when: {StatusCode: Error}}}
"""


def test_slo_api_metrics_and_as_of(api_factory):
    api = api_factory(SLO_CFG)
    T = anchor(0.1)                                          # 6 minutes ago: decided 21 minutes ago, in 30m and 1h
    journey(api.ctx.store, "p1", T - 30 * dt.timedelta(minutes=1), None)
    body = api.get("/api/v1/slos").json()
    assert {s["name"] for s in body["slos"]} == {"pp", "api"}
    at = (T + dt.timedelta(seconds=5)).isoformat()
    one = api.get("/api/v1/slos/pp", params={"at": at}).json()["results"][0]
    assert one["windows"]["1h"]["total"] == 1 and one["windows"]["1h"]["bad"] == 1 and one["state"] == "page"
    assert api.get("/api/v1/slos/nope").status_code == 404
    r = api.get("/api/v1/slos", params={"at": "2026-01-01T00:00:00"})
    assert r.status_code == 400 and r.json()["field"] == "at"
    api.ctx.slo.evaluate_and_cache()
    text = api.get("/metrics").text
    assert 'revwatch_slo_burn_rate{group="",slo="pp",window="1h"}' in text
    assert 'revwatch_slo_objective_ratio{slo="pp"} 0.99' in text
    assert 'revwatch_slo_alert{group="",severity="page",slo="pp"} 1.0' in text
    assert "revwatch_slo_error_budget_remaining_ratio" in text and "revwatch_ingest_events_total" in text
    assert 'revwatch_journey_pending{journey="p2p"} 1.0' in text
    page = api.get("/").text
    assert "<table" in page and "pp" in page and "PAGE" in page


def test_cli_slo_status_json_and_rules(tmp_path):
    cfg = tmp_path / "rw.yaml"
    cfg.write_text(f"store: {{dsn: 'chdb://{tmp_path}/data'}}\n" + SLO_CFG)
    r = revwatch_cmd("slo", "status", "--json", "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert {s["name"] for s in doc["slos"]} == {"pp", "api"}
    assert set(doc["slos"][0]["windows"]) == {"5m", "30m", "1h", "2h", "6h", "1d", "3d", "slo"}
    r = revwatch_cmd("slo", "status", "--config", str(cfg), "--at", "not-a-time")
    assert r.returncode == 2 and "--at" in r.stderr
    r = revwatch_cmd("slo", "rules", "-o", str(tmp_path / "rules"), "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "rules").iterdir()) == ["revwatch-slo-api.rules.yml",
                                                                       "revwatch-slo-pp.rules.yml"]


def _rules(tmp_path, cfg_text, **kw):
    cfg = Config.model_validate(yaml.safe_load(cfg_text))
    return write_rules(resolve(cfg), tmp_path / "rules", "http://revwatch:8317", **kw)


def test_rule_shape(tmp_path):
    (pp, api) = _rules(tmp_path, SLO_CFG.replace("threshold: 15m}", "threshold: 15m}, alerting: {min_events: 20}"))
    group = yaml.safe_load(pp.read_text())["groups"][0]
    page, ticket, forecast = [r for r in group["rules"] if "alert" in r]
    assert page["labels"] == {"severity": "page", "slo": "pp", "journey": "p2p"}
    assert forecast["expr"] == 'revwatch_slo_forecast_exhausted_in_seconds{slo="pp"} <= 14400'     # journey SLOs
    assert ticket["labels"]["severity"] == "ticket"
    assert page["expr"] == 'max without (alert_tier) (revwatch_slo:alert_tier_active{slo="pp",severity="page"})'
    fast = next(r["expr"] for r in group["rules"] if r.get("labels") == {"severity": "page", "alert_tier": "1h/5m"})
    # window 1d: the budget-consumption rule scales 2 % in 1 h of a 24 h budget to a 0.48 burn rate
    assert fast.startswith("count without (window) (")
    assert 'revwatch_slo_burn_rate{slo="pp",window="1h"} >= 0.48 and ignoring(window) ' \
           'revwatch_slo_burn_rate{slo="pp",window="5m"} >= 0.48' in fast
    assert 'revwatch_slo_window_events{slo="pp",window="1h"} >= 20' in fast
    assert page["annotations"]["link"] == "http://revwatch:8317/ui/slos/pp"
    # no low-traffic gate without min_events (the hold branch after `or on` reads window_events for missing data)
    api_expr = yaml.safe_load(api.read_text())["groups"][0]["rules"][0]["expr"]
    assert "window_events" not in api_expr.split("\nor on (slo, group)\n")[0]


@need_prom
def test_rules_pass_promtool(tmp_path):
    files = _rules(tmp_path, SLO_CFG)
    r = subprocess.run([PROMTOOL, "check", "rules", *map(str, files)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


@need_prom
def test_real_prometheus_fires_page_on_outage_and_stays_silent_when_healthy(api_factory, tmp_path):
    cfg_text = SLO_CFG + "\nevaluator: {enabled: true, interval: 1s}\nserver: {metrics_public: true}\n"
    api = api_factory(cfg_text)
    files = _rules(tmp_path, cfg_text)
    T = anchor(0.2)
    for i in range(20):                                     # healthy traffic: everything posted in 2 minutes
        start = T - dt.timedelta(minutes=50 - i)
        journey(api.ctx.store, f"ok{i}", start, start + dt.timedelta(minutes=2))
    add_spans(api.ctx.store, T - dt.timedelta(hours=1), minutes=60, per_minute=30)

    with live_server(api.client.app) as base:
        port = free_port()
        (tmp_path / "prom.yml").write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(f) for f in files],
            "scrape_configs": [{"job_name": "revwatch", "static_configs": [{"targets": [base[7:]]}]}]}))
        prom = subprocess.Popen([PROMETHEUS, f"--config.file={tmp_path / 'prom.yml'}",
                                 f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        papi = f"http://127.0.0.1:{port}/api/v1"

        def alerts():
            try:
                return httpx.get(papi + "/alerts", timeout=2).json()["data"]["alerts"]
            except (httpx.HTTPError, KeyError, ValueError):
                return None

        def rounds_after(n: int):
            """Wait until Prometheus has evaluated every rule group `n` more times (its rules API's lastEvaluation
            moved n times): evaluation rounds of the real process, not seconds that should be enough."""
            def stamps():
                try:
                    groups = httpx.get(papi + "/rules", timeout=2).json()["data"]["groups"]
                    return tuple(g["lastEvaluation"] for g in groups)
                except (httpx.HTTPError, KeyError, ValueError):
                    return None
            def moved_from(before):
                now = stamps()
                return now if now and all(a != b for a, b in zip(now, before)) else None
            last = until(stamps, 30, "prometheus rule groups")
            for _ in range(n):
                last = until(lambda prev=last: moved_from(prev), 30, "a prometheus rule evaluation round", every=0.2)

        def scraped():
            try:
                res = httpx.get(papi + "/query", params={"query": "revwatch_slo_burn_rate"}, timeout=2).json()
                return len(res["data"]["result"]) > 0
            except (httpx.HTTPError, KeyError, ValueError):
                return False

        try:
            deadline = time.time() + 60
            while not scraped() and time.time() < deadline:
                time.sleep(0.5)
            assert scraped(), "prometheus never scraped revwatch"
            rounds_after(3)                                   # several evaluation rounds on healthy data
            assert alerts() == [], alerts()
            # outage: Odoo stops posting payments — 30 settled in the last 40 min, none posted
            for i in range(30):
                journey(api.ctx.store, f"bad{i}", T + dt.timedelta(minutes=-40 + i))
            deadline = time.time() + 60
            fired = []
            while time.time() < deadline:
                fired = [a for a in (alerts() or []) if a["state"] == "firing"]
                if any(a["labels"]["severity"] == "page" for a in fired):
                    break
                time.sleep(0.5)
            pages = [a for a in fired if a["labels"]["severity"] == "page"]
            assert pages and all(a["labels"]["slo"] == "pp" for a in pages), fired
            assert pages[0]["labels"]["journey"] == "p2p"
            # one alert per SLO, group and severity however many of its tiers burn: the window is not a label
            rounds_after(3)
            fired = [a for a in (alerts() or []) if a["state"] == "firing"]
            keys = [(a["labels"]["alertname"], a["labels"]["slo"], a["labels"].get("group", "")) for a in fired]
            assert len(keys) == len(set(keys)) and all("window" not in a["labels"] for a in fired), fired
            pp = next(r for r in api.get("/api/v1/slos/pp").json()["results"])
            assert pp["state"] == "page"
            assert fired[0]["annotations"]["link"] == "http://revwatch:8317/ui/slos/pp"
            assert "Error budget left" in fired[0]["annotations"]["description"] and "?" not in \
                fired[0]["annotations"]["description"].split("Error budget left: ")[1]
        finally:
            prom.terminate()
            prom.wait(20)

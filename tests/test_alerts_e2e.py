"""End to end with the real tools: Debian's Prometheus and Alertmanager on loopback ports, scraping a live revwatch
with the rules `revwatch slo rules` generates; the simulator loses payment webhooks (its `webhook_loss` fault); the
page reaches a local sink as Slack, PagerDuty and webhook payloads carrying the impact; the resolve follows the
recovery; a dead webhook sink delays nothing and is retried until it is back. Prints fault-to-notification time.
Both alert paths run: the evaluator pages directly (alerts/direct.py) and Alertmanager's copy of the same alert is
received but not routed — one trigger, one resolve. The generated rules also hold the in-flight forecast's page
(`RevwatchSLOForecastExhaustion`, Prometheus → Alertmanager → revwatch): it may page earlier — the lost payments
are forecast to breach before they do — and it is its own PagerDuty incident (`…/page/forecast`), never the burn
page's.

Time is compressed 60×: the simulated business runs one hour per real minute (posting takes ~2 s instead of ~2
min) and the SLO threshold is 20 s; the page fires when both the 5m and the 1m burn rate reach 0.5 (a low factor,
so that 15 s of outage suffice against three minutes of history). The whole test stays within about two and a half
minutes.

Deterministic by construction (it failed about 1 run in 4 before; neither cause was in the alert pipeline):
* the simulator decides a transaction's whole chain (invoice → payment → settlement → webhook) when the transaction
  starts, about 12 simulated minutes before the settlement; a fault declared "from now" therefore reached only the
  payments started after it — 4 to 18 of the ~55 settling in the window, depending on the instant (measured over
  21 injection instants) — and with 4–7 the 5m burn stayed under 0.5: "pd: 0 of 1 deliveries after 90 s". The
  fault is now declared `LEAD` ahead of its start, so the chains of nearly all its payments are decided under it
  (50–60 lost: a 5m burn near 5, ten times the threshold);
* the three healthy minutes went in as two requests while the evaluator ran: a pass between them saw settlements
  whose postings were in the second request, older than the threshold — bad — and paged during the healthy phase
  (2 runs in 6). The evaluator now starts once they are all stored.
Every wait polls for its condition under a deadline (`until`); only real time passing for the real processes
(Prometheus scraping, the business's clock) is waited for as such.
"""
import datetime as dt
import os
import shutil
import subprocess
import threading
import time

import httpx
import pytest
import yaml

from revwatch.sim.faults import Fault
from revwatch.sim.model import Business
from tests.support.servers import free_port, live_server, revwatch_cmd
from tests.support.sinks import Sink
from tests.support.waits import until

PROMETHEUS = shutil.which("prometheus")
ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
pytestmark = pytest.mark.skipif(not (PROMETHEUS and ALERTMANAGER) and not os.environ.get("CI"),
                                reason="needs Debian's prometheus and prometheus-alertmanager (make test installs "
                                       "them; in CI a missing one fails)")
SPEED = 60.0
LEAD = 30.0          # seconds between declaring the fault and its start: the chains it must reach are decided later




def revwatch_config(sink: str) -> str:
    return f"""
journeys: {{payment_to_posting: {{start: payment.settled, end: payment.posted}}}}
slos:
  - name: payment-posting
    journey: payment_to_posting
    objective: 0.99
    window: 1d
    sli: {{kind: journey_latency, threshold: 20s}}
    alerting: {{page: [{{long: 5m, short: 1m, burn_rate: 0.5}}], ticket: []}}
evaluator: {{enabled: true, interval: 1s}}
server: {{metrics_public: true}}
alerts:
  public_url: http://revwatch.test
  notifiers:
    slack: {{type: slack, url: "{sink}/slack"}}
    pd: {{type: pagerduty, url: "{sink}/pd", routing_key: E2EROUTINGKEY}}
    hook: {{type: webhook, url: "{sink}/hook", secret: e2e-secret}}
  routes:
    - {{match: {{severity: page}}, notifiers: [slack, pd, hook], group_by: [slo, group], group_wait: 0s,
       group_interval: 1s}}
  delivery: {{backoff_initial: 200ms, backoff_max: 1s, tick: 50ms}}
  impact: {{criticality: {{payment_to_posting: critical}}}}
  ownership: {{steps: {{payment.posted: odoo-finance}}, default: platform}}
"""


class Feeder:
    """Runs the simulated business in compressed time and posts its events to revwatch as they happen."""

    def __init__(self, base: str, key: str, backfill: dt.timedelta):
        self.real0 = dt.datetime.now(dt.timezone.utc) - backfill
        self.biz0 = dt.datetime(2026, 3, 2, 8, tzinfo=dt.timezone.utc)
        self.business = Business(seed=11, start=self.biz0, customers=400, rate_per_hour=300)
        self.http = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30)
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.sent = 0

    def to_real(self, b: dt.datetime) -> dt.datetime:
        return self.real0 + (b - self.biz0) / SPEED

    def to_biz(self, r: dt.datetime) -> dt.datetime:
        return self.biz0 + (r - self.real0) * SPEED

    def fault(self, seconds: float, lead: float) -> dt.datetime:
        """Webhooks lost for `seconds` (real time) from `lead` seconds from now; returns the real fault start.
        The lead matters: a transaction's chain is decided when it starts, minutes (simulated) before its
        settlement, so a fault starting at once would reach only the few payments started after it."""
        start = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=lead)
        with self.lock:
            self.business.faults.append(Fault("webhook_loss", self.to_biz(start),
                                              self.to_biz(start + dt.timedelta(seconds=seconds))))
        return start

    def tick(self) -> None:
        with self.lock:
            events, _ = self.business.advance(self.to_biz(dt.datetime.now(dt.timezone.utc)))
        for e in events:
            at = dt.datetime.fromisoformat(e["occurred_at"].replace("Z", "+00:00"))
            e["occurred_at"] = self.to_real(at).isoformat().replace("+00:00", "Z")
        for i in range(0, len(events), 5000):
            r = self.http.post("/api/v1/events", json=events[i:i + 5000])
            assert r.status_code in (200, 202), r.text
        self.sent += len(events)

    def run(self) -> None:
        while not self.stop.is_set():
            self.tick()
            self.stop.wait(0.3)


def test_outage_pages_with_impact_then_resolves_once_with_prometheus_and_alertmanager_running(api_factory, tmp_path):
    sink = Sink()
    sink.fail_paths = {"hook"}                       # the webhook receiver is down from the start
    with live_server(sink.app) as sink_base:
        api = api_factory(revwatch_config(sink_base))
        (tmp_path / "revwatch.yaml").write_text(revwatch_config(sink_base))
        r = revwatch_cmd("slo", "rules", "-o", str(tmp_path / "rules"), "--config", str(tmp_path / "revwatch.yaml"),
                         "--base-url", "http://revwatch.test")
        assert r.returncode == 0, r.stderr
        rule_files = sorted(str(p) for p in (tmp_path / "rules").iterdir())
        with live_server(api.client.app) as rw_base:
            feeder = Feeder(rw_base, api.keys["ingest"], backfill=dt.timedelta(minutes=3))
            api.ctx.evaluator.stop()                      # evaluated only once the history is all stored: a pass
            feeder.tick()                                 # between two of its requests sees settlements whose
            api.drain()                                   # postings are in the next one (late, so bad)
            api.ctx.evaluator.start()
            thread = threading.Thread(target=feeder.run, daemon=True)
            thread.start()
            am_port, prom_port = free_port(), free_port()
            (tmp_path / "am.yml").write_text(yaml.safe_dump({
                "route": {"receiver": "revwatch", "group_by": ["alertname", "slo"], "group_wait": "1s",
                          "group_interval": "1s", "repeat_interval": "1h"},
                "receivers": [{"name": "revwatch", "webhook_configs": [{
                    "url": f"{rw_base}/api/v1/alerts/alertmanager", "send_resolved": True,
                    "http_config": {"authorization": {"type": "Bearer", "credentials": api.keys["ingest"]}}}]}]}))
            (tmp_path / "prom.yml").write_text(yaml.safe_dump({
                "global": {"scrape_interval": "2s", "scrape_timeout": "2s", "evaluation_interval": "1s"},
                "rule_files": rule_files,
                "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]},
                "scrape_configs": [{"job_name": "revwatch", "static_configs": [{"targets": [rw_base[7:]]}]}]}))
            am = subprocess.Popen([ALERTMANAGER, f"--config.file={tmp_path / 'am.yml'}",
                                   f"--storage.path={tmp_path / 'am'}", f"--web.listen-address=127.0.0.1:{am_port}",
                                   "--cluster.listen-address="], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            prom = subprocess.Popen([PROMETHEUS, f"--config.file={tmp_path / 'prom.yml'}",
                                     f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                                     f"--web.listen-address=127.0.0.1:{prom_port}"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                _run_scenario(api, sink, feeder, f"http://127.0.0.1:{prom_port}/api/v1")
            finally:
                feeder.stop.set()
                thread.join(30)
                for p in (prom, am):
                    p.terminate()
                    p.wait(20)


def _firing(papi: str, name: str | None = None) -> list[dict]:
    """Prometheus' firing alerts (only those named `name` when given)."""
    try:
        return [a for a in httpx.get(papi + "/alerts", timeout=2).json()["data"]["alerts"]
                if a["state"] == "firing" and name in (None, a["labels"].get("alertname"))]
    except (httpx.HTTPError, KeyError, ValueError):
        return []


def _scraped(papi: str) -> bool:
    try:
        res = httpx.get(papi + "/query", params={"query": 'revwatch_slo_burn_rate{slo="payment-posting"}'},
                        timeout=2).json()
        return len(res["data"]["result"]) > 0
    except (httpx.HTTPError, KeyError, ValueError):
        return False


def _run_scenario(api, sink: Sink, feeder: Feeder, papi: str) -> None:
    until(lambda: _scraped(papi), 30, "prometheus scraping revwatch", every=0.3)
    passes = api.ctx.evaluator.passes
    fault_start = feeder.fault(seconds=15, lead=LEAD)
    # healthy until the fault starts: checked on every evaluation of the lead time, and it must contain several
    while dt.datetime.now(dt.timezone.utc) < fault_start:
        assert not _firing(papi) and not sink.got, "healthy traffic must not page"
        time.sleep(0.5)                               # the business's clock is real time: wait for the fault
    assert api.ctx.evaluator.passes >= passes + 3, "the evaluator must have judged the healthy traffic"
    burn_key = "revwatch/slo/payment-posting//page"

    def burn_events() -> list[dict]:
        return [e for e in sink.got.get("pd", []) if e["dedup_key"] == burn_key]
    def burn_alerts(path: str, status: str) -> list[dict]:
        """The burn-rate page's alert documents (webhook) or sections (Slack) with that status, in arrival order (a
        notification may also carry the forecast page: same route and group)."""
        if path == "hook":
            return [a for m in sink.got.get("hook", []) for a in m["alerts"]
                    if a["origin"] == "evaluator" and a["status"] == status]
        return [m for m in sink.got.get("slack", []) for b in m["blocks"]
                if b.get("text", {}).get("text", "").startswith(f"*{status.upper()}*")
                and "is burning its error budget" in b["text"]["text"]]
    pd = until(burn_events, 90, "the burn-rate page on PagerDuty")[0]
    pd_at = time.time()
    slack = until(lambda: burn_alerts("slack", "firing"), 10, "the burn-rate page on Slack")[0]
    print(f"\nfault → PagerDuty page: {pd_at - fault_start.timestamp():.1f}s "
          f"(SLO threshold 20s, evaluator interval 1s, direct path)")
    assert pd["event_action"] == "trigger" and pd["routing_key"] == "E2EROUTINGKEY"
    assert "RevwatchSLOBurnRatePage payment-posting" in pd["payload"]["summary"]
    impact = pd["payload"]["custom_details"]["impact"]
    att = impact["attribution"]
    assert att["instances"]["stuck"] > 0 and float(att["money_at_risk"]["EUR"]) > 0
    assert att["failing_step"] == "payment.posted" and att["oldest_stuck"][0]["amount"]
    assert impact["class"] == "P1" and "journey payment_to_posting is declared critical" in impact["reason"]
    assert impact["recommended_team"] == "odoo-finance"
    assert slack["blocks"][0]["type"] == "header" and "FIRING" in slack["blocks"][0]["text"]["text"]
    fields = [f["text"] for b in slack["blocks"] for f in b.get("fields", [])]
    assert any(f.startswith("*Money at risk*\nEUR ") for f in fields) and any("P1" in f for f in fields)
    assert "hook" not in sink.got                     # dead: retried in the background, nothing waited for it
    assert api.ctx.alerts.outbox.pending()["hook"]

    sink.fail_paths = set()                           # the webhook receiver comes back
    hook = until(lambda: burn_alerts("hook", "firing"), 15, "the burn-rate page on the webhook")[0]
    print(f"dead webhook sink delivered {time.time() - pd_at:.1f}s after the page, once back")
    assert hook["impact"]["attribution"]["instances"]["stuck"] > 0
    assert sink.headers["hook"][0]["x-revwatch-signature"].startswith("t=")

    # recovery: the 1m window must be free of bad decisions
    until(lambda: burn_events()[-1]["event_action"] == "resolve"          # (the forecast page may go on firing:
          and not _firing(papi, "RevwatchSLOBurnRatePage"), 150,           # the budget spent stays spent)
          "the resolve after recovery", every=0.5)
    last = burn_events()[-1]
    assert last["event_action"] == "resolve" and last["dedup_key"] == pd["dedup_key"], sink.got["pd"]
    print(f"fault end → PagerDuty resolve: {time.time() - fault_start.timestamp() - 15:.1f}s "
          f"({len(sink.got['pd'])} PagerDuty events in all, {len(sink.got['pd']) - 2} of the forecast page)")
    until(lambda: burn_alerts("hook", "resolved"), 10, "the burn-rate resolve on the webhook")
    # two paths, one page: the evaluator paged directly (alerts/direct.py); Alertmanager's copy from the generated
    # rule reached the receiver and was left out of routing
    actions = [e["event_action"] for e in burn_events()]
    assert actions == ["trigger", "resolve"], actions
    forecast = [e for e in sink.got["pd"] if e["dedup_key"] != burn_key]     # the forecast page, if it came
    assert all(e["dedup_key"] == burn_key + "/forecast" for e in forecast), forecast
    superseded = [line for line in api.client.get("/metrics").text.splitlines()
                  if line.startswith("revwatch_alerts_superseded_total ")]
    assert superseded and float(superseded[0].split()[-1]) >= 1, superseded
    until(lambda: burn_alerts("slack", "resolved"), 10, "the burn-rate resolve on Slack")

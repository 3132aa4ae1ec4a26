"""Alerting benches, in one run.

1. Direct path (issue #22): crossing → page and burn-falls-back → resolve at a local PagerDuty sink, through the
   real ingest (OTLP/HTTP JSON), the evaluator loop at its default interval, the direct alert path, routing and the
   outbox — 20 crossings, each on its own group of one grouped SLO (50 good spans, then 20 failing: burn 28.6 over
   both windows of a 14.4× page tier; then 250 good spans: 6.25×, resolved). The clock starts when the failing
   spans are acknowledged. Then a constant outage (30 % failing spans twice a second, page tier 5m & 1m ≥ 14.4)
   for `--outage` seconds: the page must fire once and never resolve while the outage lasts (flaps = extra
   triggers + resolves). Routing: group_wait 0 s, group_interval 1 s (Alertmanager's defaults, 30 s / 5 min, add
   to both numbers).
2. Receiver isolation: latency of `POST /api/v1/events` and of the Alertmanager receiver while every notifier
   endpoint hangs (accepts the connection, never answers), against the same POST with no alerts in flight. Before
   the durable outbox, 60 slow deliveries delayed an unrelated events POST from 0.03 s to 7.7 s (issue #14); the
   ratio printed should stay near 1.

    python bench/alerts.py [--crossings 20] [--outage 90] [--alerts 60] [--posts 100] [--skip-isolation]
"""
from __future__ import annotations

import argparse
import http.server
import json
import os
import shutil
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

import httpx
import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from revwatch.config import Config  # noqa: E402
from revwatch.server import create_app  # noqa: E402


def black_hole() -> tuple[int, list]:
    """A TCP endpoint that accepts connections and never answers."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(512)
    held: list = []

    def accept():
        while True:
            conn, _ = srv.accept()
            held.append(conn)
    threading.Thread(target=accept, daemon=True).start()
    return srv.getsockname()[1], held


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pctl(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


class PdSink:
    """A local PagerDuty endpoint recording (arrival time, event_action) per dedup key."""

    def __init__(self):
        self.events: dict[str, list[tuple[float, str]]] = {}
        self.lock = threading.Lock()
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with sink.lock:
                    sink.events.setdefault(body["dedup_key"], []).append((time.time(), body["event_action"]))
                self.send_response(202)
                self.end_headers()

            def log_message(self, *a):
                pass
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def wait(self, key: str, action: str, after: float, timeout: float = 60) -> float:
        end = time.time() + timeout
        while time.time() < end:
            with self.lock:
                for at, act in self.events.get(key, []):
                    if act == action and at >= after:
                        return at
            time.sleep(0.01)
        raise SystemExit(f"no {action} for {key} within {timeout}s")


def spans_doc(service: str, kind: str, good: int, bad: int) -> dict:
    """An OTLP/HTTP JSON export of `good` + `bad` spans starting now."""
    now = time.time_ns()
    spans = []
    for i in range(good + bad):
        spans.append({"traceId": os.urandom(16).hex(), "spanId": os.urandom(8).hex(), "name": "execute_kw",
                      "kind": 3, "startTimeUnixNano": str(now + i), "endTimeUnixNano": str(now + i + 1_000_000),
                      "status": {"code": 2 if i < bad else 1},
                      "attributes": [{"key": "bench", "value": {"stringValue": kind}}]})
    return {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name",
                                                             "value": {"stringValue": service}}]},
                               "scopeSpans": [{"spans": spans}]}]}


def serve(cfg: Config):
    app = create_app(cfg)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return app, server, port


def direct_bench(args) -> None:
    sink = PdSink()
    d = args.dir + "-direct"
    shutil.rmtree(d, ignore_errors=True)
    slo = {"objective": 0.99, "window": "1d",
           "sli": {"kind": "span_ratio", "bad_when": {"StatusCode": "Error"}}}
    cfg = Config.model_validate({
        "data_dir": d,
        "slos": [{**slo, "name": "api", "group_by": ["service"], "alerting": {
                      "page": [{"long": "1h", "short": "5m", "burn_rate": 14.4}], "ticket": []},
                  "sli": {**slo["sli"], "attributes": {"bench": "crossing"}}},
                 {**slo, "name": "outage", "alerting": {
                      "page": [{"long": "5m", "short": "1m", "burn_rate": 14.4}], "ticket": []},
                  "sli": {**slo["sli"], "attributes": {"bench": "outage"}}}],
        "alerts": {"notifiers": {"pd": {"type": "pagerduty", "url": sink.url, "routing_key": "k"}},
                   "routes": [{"notifiers": ["pd"], "group_by": ["alertname", "slo", "group"], "group_wait": "0s",
                               "group_interval": "1s"}],
                   "delivery": {"tick": "50ms"}}})
    app, server, port = serve(cfg)
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60,
                        headers={"Authorization": f"Bearer {app.state.ctx.keys.create('ingest')[0]}"})

    def post(service: str, kind: str, good: int, bad: int) -> float:
        r = http.post("/v1/traces", json=spans_doc(service, kind, good, bad))
        assert r.status_code == 200, r.text
        return time.time()

    interval = cfg.evaluator.interval.total_seconds()
    direct = app.state.ctx.evaluator.direct
    submitted: dict[str, float] = {}
    feed = direct.feed

    def timed_feed(conditions):                  # when each page / resolve left the evaluator (the breakdown)
        out = feed(conditions)
        for a in out:
            submitted.setdefault(f"{a.labels.get('group', '')}:{a.status}", time.time())
        return out
    direct.feed = timed_feed
    passes: list[float] = []
    run_once = app.state.ctx.evaluator.run_once

    def timed_pass():
        t0 = time.time()
        run_once()
        passes.append(time.time() - t0)
    app.state.ctx.evaluator.run_once = timed_pass
    for k in range(args.crossings):
        post(f"svc-{k}", "crossing", 50, 0)
    time.sleep(3 * interval)
    pages, resolves, to_eval = [], [], []
    for k in range(args.crossings):
        key = f"revwatch/slo/api/svc-{k}/page"
        t = post(f"svc-{k}", "crossing", 0, 20)
        pages.append(sink.wait(key, "trigger", t) - t)
        to_eval.append(submitted[f"svc-{k}:firing"] - t)
        t = post(f"svc-{k}", "crossing", 250, 0)
        resolves.append(sink.wait(key, "resolve", t) - t)
    lag = [line for line in http.get("/metrics", headers={
        "Authorization": f"Bearer {app.state.ctx.keys.create('read')[0]}"}).text.splitlines()
           if line.startswith("revwatch_slo_evaluation_lag_seconds ")]
    print(f"direct path, evaluator interval {interval:g}s, {args.crossings} crossings: crossing → page "
          f"p50 {statistics.median(pages):.2f}s / p99 {pctl(pages, .99):.2f}s / max {max(pages):.2f}s; "
          f"burn falls back → resolve p50 {statistics.median(resolves):.2f}s / p99 {pctl(resolves, .99):.2f}s "
          f"/ max {max(resolves):.2f}s; {lag[0] if lag else 'no lag metric'}")
    print(f"  breakdown: crossing → evaluator submits the page p50 {statistics.median(to_eval):.2f}s / "
          f"p99 {pctl(to_eval, .99):.2f}s (ingest + wait for a pass + the pass), the rest is routing, impact and "
          f"delivery; evaluator pass p50 {statistics.median(passes):.2f}s / max {max(passes):.2f}s")
    key = "revwatch/slo/outage//page"
    start = time.time()
    while time.time() < start + args.outage:
        post("outage", "outage", 7, 3)
        time.sleep(0.5)
    end = time.time()
    with sink.lock:
        during = [(at, act) for at, act in sink.events.get(key, []) if at <= end]
    triggers = sum(act == "trigger" for _, act in during)
    flaps = max(0, triggers - 1) + sum(act == "resolve" for _, act in during)
    first = next((at - start for at, act in during if act == "trigger"), None)
    print(f"constant outage {args.outage:g}s (30 % failing, 5m & 1m ≥ 14.4): first page after "
          f"{'never' if first is None else f'{first:.2f}s'}, {triggers} trigger(s), {flaps} flap(s)")
    server.should_exit = True


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--crossings", type=int, default=20)
    ap.add_argument("--outage", type=float, default=90)
    ap.add_argument("--alerts", type=int, default=60)
    ap.add_argument("--posts", type=int, default=100)
    ap.add_argument("--skip-isolation", action="store_true")
    ap.add_argument("--dir", default="/tmp/rw-bench-alerts")
    args = ap.parse_args()
    direct_bench(args)
    if not args.skip_isolation:
        isolation_bench(args)


def isolation_bench(args) -> None:
    shutil.rmtree(args.dir, ignore_errors=True)
    hole, _ = black_hole()
    url = f"http://127.0.0.1:{hole}"
    cfg = Config.model_validate({
        "data_dir": args.dir, "evaluator": {"enabled": False},
        "alerts": {"notifiers": {"slack": {"type": "slack", "url": url + "/slack", "timeout": "10s"},
                                 "pd": {"type": "pagerduty", "url": url + "/pd", "routing_key": "k", "timeout": "10s"},
                                 "hook": {"type": "webhook", "url": url + "/hook", "timeout": "10s"}},
                   "routes": [{"notifiers": ["slack", "pd", "hook"], "group_by": ["alertname", "fp"],
                               "group_wait": "0s"}]}})
    app, server, port = serve(cfg)
    keys = app.state.ctx.keys
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60,
                        headers={"Authorization": f"Bearer {keys.create('ingest')[0]}"})

    def post_events(tag: str, n: int) -> list[float]:
        out = []
        for i in range(n):
            body = [{"event_id": f"{tag}-{i}", "type": "payment.settled", "correlation_id": f"c-{tag}-{i}",
                     "occurred_at": "2026-11-23T10:00:00Z", "source": "stripe"}]
            t0 = time.perf_counter()
            assert http.post("/api/v1/events", json=body).status_code in (200, 202)
            out.append(time.perf_counter() - t0)
        return out

    post_events("warm", 20)
    baseline = post_events("base", args.posts)
    receiver: list[float] = []

    def send_alerts():
        for i in range(args.alerts):
            hook = {"version": "4", "status": "firing", "alerts": [{
                "status": "firing", "labels": {"alertname": "Bench", "fp": str(i), "severity": "page"},
                "startsAt": "2026-11-23T10:00:00Z", "fingerprint": f"fp{i}"}]}
            t0 = time.perf_counter()
            assert http.post("/api/v1/alerts/alertmanager", json=hook).status_code == 200
            receiver.append(time.perf_counter() - t0)
    t = threading.Thread(target=send_alerts)
    t.start()
    during = post_events("during", args.posts)
    t.join()
    deadline = time.time() + 60
    outbox = app.state.ctx.alerts.outbox
    while time.time() < deadline and sum(len(q) for q in outbox.pending().values()) < 3 * args.alerts:
        time.sleep(0.1)
    queued = sum(len(q) for q in outbox.pending().values())
    print(f"events POST p50 {statistics.median(baseline) * 1000:.1f} ms / p99 {pctl(baseline, .99) * 1000:.1f} ms "
          f"without alerts; p50 {statistics.median(during) * 1000:.1f} ms / p99 {pctl(during, .99) * 1000:.1f} ms "
          f"while {args.alerts} alerts × 3 notifiers hang; ratio p50 "
          f"{statistics.median(during) / statistics.median(baseline):.2f}, "
          f"p99 {pctl(during, .99) / pctl(baseline, .99):.2f}")
    print(f"alert receiver p50 {statistics.median(receiver) * 1000:.1f} ms, max {max(receiver) * 1000:.1f} ms; "
          f"{queued} deliveries pending in the outbox (retried in the background)")
    server.should_exit = True


if __name__ == "__main__":
    main()

"""Alert receiver isolation: latency of `POST /api/v1/events` and of the Alertmanager receiver while every
notifier endpoint hangs (accepts the connection, never answers: the worst case for delivery), against the same
events POST with no alerts in flight. Before the durable outbox, 60 slow deliveries delayed an unrelated events
POST from 0.03 s to 7.7 s (issue #14); the ratio printed here should stay near 1.

    python bench/alerts.py [--alerts 60] [--posts 100] [--dir /tmp/rw-bench-alerts]
"""
from __future__ import annotations

import argparse
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--alerts", type=int, default=60)
    ap.add_argument("--posts", type=int, default=100)
    ap.add_argument("--dir", default="/tmp/rw-bench-alerts")
    args = ap.parse_args()
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
    app = create_app(cfg)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
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

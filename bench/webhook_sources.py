"""Signed single-event webhooks vs `POST /api/v1/events` (issue #23), measured in one run against one real
`revwatch serve`: 100 concurrent keep-alive clients send 1-event requests, alternating (events, stripe, hmac,
events, stripe, hmac, …; `--seconds` each, `--rounds` rounds) so drift while the store grows biases no door.

* events  — our own format with the ingest key (the reference);
* stripe  — a Stripe `invoice.paid` Event, `Stripe-Signature` checked (HMAC-SHA256 over t.payload, 2 secrets),
            mapped by the Stripe preset's JMESPath expressions, amount from minor units;
* hmac    — a generic HMAC-SHA256-signed payload with a declared JMESPath mapping.

Prints requests/s, p50/p99 and non-2xx per door and the ratio of each source to `POST /api/v1/events`
(target ≥ 0.5). The client is bench/ingest_small.py's minimal asyncio HTTP/1.1 client.

    python bench/webhook_sources.py [--seconds 4] [--rounds 2] [--clients 100]
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import shutil
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ingest_small import load, merge_runs, raw_request  # noqa: E402
from bench.server import create_key, start_server, write_config  # noqa: E402
from tests.support.servers import free_port  # noqa: E402

WHSEC = ["whsec_bench_rotated_out", "whsec_bench_current"]
SOURCES = f"""
sources:
  stripe-live: {{preset: stripe, secrets: [{WHSEC[0]}, {WHSEC[1]}]}}
  bus:
    preset: hmac
    secrets: [bus-secret]
    header: X-Hub-Signature-256
    prefix: "sha256="
    mapping: {{type: kind, types: {{settled: payment.settled}}, event_id: uid, correlation_id: ref,
              occurred_at: at, amount: cents, amount_unit: minor, currency: cur}}
"""


def stripe_body(i: int, n: int) -> tuple[bytes, dict]:
    t = int(time.time())
    body = orjson.dumps({"id": f"evt_{i}_{n}", "object": "event", "created": t, "type": "invoice.paid",
                         "livemode": False, "data": {"object": {
                             "id": f"in_{i}_{n}", "object": "invoice", "currency": "eur", "total": 12900,
                             "customer": f"cus_{i}", "number": f"INV-{i}-{n}", "metadata": {}}}})
    sig = hmac.new(WHSEC[1].encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return body, {"Stripe-Signature": f"t={t},v1={sig}", "Content-Type": "application/json"}


def hmac_body(i: int, n: int) -> tuple[bytes, dict]:
    body = orjson.dumps({"kind": "settled", "uid": f"h{i}-{n}", "ref": f"pay_{i}_{n}",
                         "at": "2026-11-23T10:15:02.120Z", "cents": 12900, "cur": "EUR"})
    sig = hmac.new(b"bus-secret", body, hashlib.sha256).hexdigest()
    return body, {"X-Hub-Signature-256": f"sha256={sig}", "Content-Type": "application/json"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--clients", type=int, default=100)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="rw-bench-sources-"))
    port = free_port()
    host, base = "127.0.0.1", f"http://127.0.0.1:{port}"
    cfg = write_config(tmp, port, SOURCES)
    key = create_key(cfg, "ingest")
    server = start_server(cfg, base)
    hostport = f"{host}:{port}"
    doors = {
        "events": lambda i, n: raw_request("POST", "/api/v1/events", hostport, orjson.dumps([{
            "event_id": f"e{i}-{n}-{time.monotonic_ns()}", "type": "payment.settled", "correlation_id": f"pay_{i}",
            "occurred_at": "2026-11-23T10:15:02.120Z", "source": "stripe", "amount": "129.00", "currency": "EUR",
            "attributes": {"invoice_ref": f"INV/{i}"}}]),
            {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}),
        "stripe": lambda i, n: raw_request("POST", "/api/v1/sources/stripe-live", hostport,
                                           *stripe_body(i, n + time.monotonic_ns())),
        "hmac": lambda i, n: raw_request("POST", "/api/v1/sources/bus", hostport,
                                         *hmac_body(i, n + time.monotonic_ns())),
    }
    runs: dict[str, list[dict]] = {d: [] for d in doors}
    try:
        for _ in range(args.rounds):
            for door, make in doors.items():
                runs[door].append(asyncio.run(load(host, port, args.clients, args.seconds, make)))
    finally:
        server.terminate()
        server.wait(60)
        shutil.rmtree(tmp, ignore_errors=True)
    merged = {d: merge_runs(r) for d, r in runs.items()}
    print(f"{args.clients} clients, 1 event per request, {args.rounds} x {args.seconds:.0f} s per door, interleaved")
    for door, m in merged.items():
        bad = {k: v for k, v in m["codes"].items() if not 200 <= k < 300}
        print(f"  {door:7} {m['rps']:8.0f} req/s   p50 {m['p50']:6.1f} ms   p99 {m['p99']:6.1f} ms   non-2xx {bad}")
    ref = merged["events"]["rps"]
    for door in ("stripe", "hmac"):
        print(f"  ratio {door} / events: {merged[door]['rps'] / ref:.2f}  (target >= 0.5)")


if __name__ == "__main__":
    main()

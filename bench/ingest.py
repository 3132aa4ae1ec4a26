"""End-to-end ingest rate vs a raw clickhouse-connect insert of the same rows into the same engine, one run.

Starts `revwatch serve` (embedded store) in a subprocess, sends N spans (default 1 M) as OTLP/HTTP protobuf in
requests of 5,000 spans from 2 client threads, and N/2 business events as JSON, and times each until the spool is
drained into ClickHouse. Then, with the server stopped, inserts the same rows with clickhouse-connect into a fresh
database of the same engine. Also prints where a request's time goes (decode, spool, insert) measured in-process.

    python bench/ingest.py [--spans 1000000] [--events 500000]
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import datetime as dt
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest  # noqa: E402

from collector.correlation import CorrelationRules  # noqa: E402
from collector.events import EVENT_COLUMNS, validate_events  # noqa: E402
from collector.otlp import SPAN_COLUMNS, decode_traces  # noqa: E402
from collector.rowcodec import span_records  # noqa: E402
from collector.spool import Spool  # noqa: E402
from collector.rowcodec import EVENT_WIRE_COLUMNS, encode_events, encode_spans, event_rows_for_insert  # noqa: E402

PER_REQUEST = 5000


def span_requests(n: int, seed: int = 1) -> list[bytes]:
    rng = random.Random(seed)
    now = time.time_ns()
    out = []
    for off in range(0, n, PER_REQUEST):
        req = ExportTraceServiceRequest()
        rs = req.resource_spans.add()
        rs.resource.attributes.add(key="service.name").value.string_value = rng.choice(("stripe", "odoo", "crm"))
        ss = rs.scope_spans.add()
        ss.scope.name = "bench"
        for i in range(off, min(off + PER_REQUEST, n)):
            sp = ss.spans.add(trace_id=rng.getrandbits(128).to_bytes(16, "big"),
                              span_id=rng.getrandbits(64).to_bytes(8, "big") or b"\x01" * 8,
                              name=rng.choice(("POST /v1/charges", "odoo.execute_kw", "webhook")), kind=2,
                              start_time_unix_nano=now - rng.randrange(86_400 * 10**9))
            sp.end_time_unix_nano = sp.start_time_unix_nano + rng.randrange(10**9)
            sp.attributes.add(key="correlation.id").value.string_value = f"pay_{i // 3}"
            sp.attributes.add(key="http.response.status_code").value.int_value = 200
            sp.status.code = 2 if i % 50 == 0 else 1
        out.append(req.SerializeToString())
    return out


def event_bodies(n: int, per: int = 2000) -> list[bytes]:
    now = dt.datetime.now(dt.timezone.utc)
    types = ("payment.received", "payment.settled", "payment.posted")
    out = []
    for off in range(0, n, per):
        out.append(orjson.dumps([{"event_id": f"evt_{i}", "type": types[i % 3], "correlation_id": f"pay_{i // 3}",
                                  "occurred_at": (now - dt.timedelta(seconds=i % 86400)).isoformat(),
                                  "source": "bench", "amount": "129.00", "currency": "EUR",
                                  "attributes": {"invoice_ref": f"INV/{i // 3}"}}
                                 for i in range(off, min(off + per, n))]))
    return out


def wait_drained(base: str, expect_spans: int, expect_events: int, timeout: float = 1800,
                 key: str | None = None) -> None:
    """Until the spool is empty — or, with intake processes (`key` given: a read key), until the owner's
    `revwatch_store_writes_total` counts the expected rows (each intake process has its own spool)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if key is None:
            if httpx.get(base + "/readyz", timeout=30).json()["spool_bytes"] == 0:
                return
        else:
            text = httpx.get(base + "/metrics", headers={"Authorization": f"Bearer {key}"}, timeout=30).text
            got = {t: sum(float(line.split()[-1]) for line in text.splitlines()
                          if line.startswith(f'revwatch_store_writes_total{{table="{t}"}}'))
                   for t in ("spans", "events")}
            if got["spans"] >= expect_spans and got["events"] >= expect_events:
                return
        time.sleep(0.05)
    raise SystemExit("spool did not drain")


def send_all(base: str, key: str, bodies: list[bytes], path: str, ctype: str, threads: int = 2) -> None:
    """POST every body from `threads` client threads, each on its own keep-alive connection."""
    hdr = {"Authorization": f"Bearer {key}", "Content-Type": ctype}
    local = threading.local()

    def post(body):
        if not hasattr(local, "client"):
            local.client = httpx.Client(timeout=120)
        while True:
            r = local.client.post(base + path, content=body, headers=hdr)
            if r.status_code in (429, 503):
                time.sleep(float(r.headers.get("Retry-After", "1")))
                continue
            assert r.status_code == 200, r.text[:200]
            return
    with cf.ThreadPoolExecutor(threads) as pool:
        list(pool.map(post, bodies))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--spans", type=int, default=1_000_000)
    ap.add_argument("--events", type=int, default=500_000)
    ap.add_argument("--intakes", type=int, default=0,
                    help="intake processes in front of the store owner (docs/http.md); 0: one process")
    ap.add_argument("--journey-memory-mb", type=int, default=None,
                    help="server.journey_memory_mb (default: the server's; 0: no journey tier — to measure its cost)")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="rw-bench-ingest-"))
    port = 18_000 + os.getpid() % 1000
    cfg = tmp / "rw.yaml"
    intake = f", intake_processes: {a.intakes}, intake_port: {port + 1}" if a.intakes else ""
    if a.journey_memory_mb is not None:
        intake += f", journey_memory_mb: {a.journey_memory_mb}"
    cfg.write_text(f"store: {{dsn: 'chdb://{tmp}/data'}}\nserver: {{port: {port}{intake}}}\n"
                   f"spool: {{dir: '{tmp}/spool', max_bytes: 8GiB}}\nevaluator: {{enabled: false}}\n")
    rw = [sys.executable, "-m", "revwatch"]
    key = subprocess.run(rw + ["keys", "create", "--scope", "ingest", "--config", str(cfg)], capture_output=True,
                         text=True, check=True).stdout.split()[-1]
    reader = subprocess.run(rw + ["keys", "create", "--scope", "read", "--config", str(cfg)], capture_output=True,
                            text=True, check=True).stdout.split()[-1] if a.intakes else None
    print(f"preparing {a.spans:,} spans in {len(range(0, a.spans, PER_REQUEST))} OTLP requests, "
          f"{a.events:,} events …", flush=True)
    reqs, evs = span_requests(a.spans), event_bodies(a.events)
    server = subprocess.Popen(rw + ["serve", "--config", str(cfg)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    send_to = f"http://127.0.0.1:{port + 1}" if a.intakes else base
    threads = 2 * max(1, a.intakes)        # two connections per accepting process (the kernel spreads connections)
    try:
        for _ in range(300):
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        for _ in range(600):                         # intake processes answer once their owner does
            try:
                if httpx.get(send_to + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        t0 = time.perf_counter()
        send_all(send_to, key, reqs, "/v1/traces", "application/x-protobuf", threads)
        acked_spans = time.perf_counter() - t0
        wait_drained(base, a.spans, 0, key=reader)
        spans_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        send_all(send_to, key, evs, "/api/v1/events", "application/json", threads)
        acked_events = time.perf_counter() - t0
        wait_drained(base, a.spans, a.events, key=reader)
        events_s = time.perf_counter() - t0
    finally:
        server.terminate()
        server.wait(60)

    # -- baseline: the same rows, raw clickhouse-connect inserts into the same engine, this process ---------------
    from revwatch.store import open_store
    store = open_store(f"chdb://{tmp}/data", "raw")
    rules = CorrelationRules(["correlation.id"], ["correlation.id"])
    span_rows = [r for body in reqs for r in decode_traces(body, False, rules).rows]
    t0 = time.perf_counter()
    for off in range(0, len(span_rows), 50_000):
        store.insert("spans", span_rows[off:off + 50_000], SPAN_COLUMNS)
    raw_spans_s = time.perf_counter() - t0
    ev_rows = [r for body in evs for r in validate_events(body, "application/json").rows]
    ev_lines = encode_events(ev_rows).split(b"\n")          # before event_rows_for_insert makes amounts Decimals
    t0 = time.perf_counter()
    for off in range(0, len(ev_rows), 50_000):
        store.insert("events", event_rows_for_insert(ev_rows[off:off + 50_000]), EVENT_COLUMNS)
    raw_events_s = time.perf_counter() - t0
    stored = store.query("SELECT count() FROM revwatch.spans").scalar()
    # the baseline: a raw JSONCompactEachRow insert of the same rows (the bytes the spool holds), i.e.
    # ClickHouse's own parse + insert and nothing else, into a fresh database of the same engine
    raw2 = open_store(f"chdb://{tmp}/data", "raw2")
    span_payloads = [encode_spans(span_rows[off:off + 50_000]) for off in range(0, len(span_rows), 50_000)]
    t0 = time.perf_counter()
    for payload in span_payloads:
        raw2.insert_lines("spans", SPAN_COLUMNS, [payload])
    jcer_spans_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for off in range(0, len(ev_lines), 50_000):
        raw2.insert_lines("events", EVENT_WIRE_COLUMNS, [b"\n".join(ev_lines[off:off + 50_000])])
    jcer_events_s = time.perf_counter() - t0

    # -- where a span request's time goes (in-process, one core) ------------------------------------------------
    sample = reqs[: min(40, len(reqs))]
    t0 = time.perf_counter()
    decoded = [decode_traces(b, False, rules).rows for b in sample]
    t_decode = time.perf_counter() - t0
    spool = Spool(tmp / "profile-spool", max_bytes=8 * 1024**3)
    t0 = time.perf_counter()
    for rows in decoded:
        spool.append_records(span_records(rows))
    t_spool = time.perf_counter() - t0
    t0 = time.perf_counter()
    while (b := spool.next_batch(50_000)) is not None:
        store.insert_lines("spans", SPAN_COLUMNS, [r.payload for r in b.records])
        spool.commit(b)
    t_insert = time.perf_counter() - t0
    shutil.rmtree(tmp, ignore_errors=True)

    n_sample = sum(len(r) for r in decoded)
    print(f"spans: {a.spans / spans_s:,.0f} spans/s end-to-end (acknowledged at {a.spans / acked_spans:,.0f}/s; "
          f"{stored:,} stored); raw insert {a.spans / raw_spans_s:,.0f} spans/s; "
          f"ratio {raw_spans_s / spans_s:.2f} (target ≥ 0.5: {'met' if raw_spans_s / spans_s >= 0.5 else 'NOT met'})")
    print(f"events: {a.events / events_s:,.0f} events/s end-to-end (acknowledged at {a.events / acked_events:,.0f}/s); "
          f"raw insert {a.events / raw_events_s:,.0f} "
          f"events/s; ratio {raw_events_s / events_s:.2f} "
          f"(target ≥ 0.5: {'met' if raw_events_s / events_s >= 0.5 else 'NOT met'})")
    print(f"vs a raw JSONCompactEachRow insert of the same rows: spans {jcer_spans_s / spans_s:.2f} "
          f"({a.spans / jcer_spans_s:,.0f}/s raw), events {jcer_events_s / events_s:.2f} "
          f"({a.events / jcer_events_s:,.0f}/s raw) (target >= 0.6)")
    total = t_decode + t_spool + t_insert
    print(f"per-span cost, in-process: decode+rows {t_decode / n_sample * 1e6:.1f} µs "
          f"({t_decode / total:.0%}), encode+spool append+fsync {t_spool / n_sample * 1e6:.1f} µs "
          f"({t_spool / total:.0%}), spool read+ClickHouse parse+insert {t_insert / n_sample * 1e6:.1f} µs "
          f"({t_insert / total:.0%})")


if __name__ == "__main__":
    main()

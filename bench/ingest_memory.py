"""Memory of one big `POST /api/v1/events` body, measured in the server process (issue #10, case 7).

Starts `revwatch serve`, sends one body of `--mb` MB as a JSON array, then one as NDJSON, and reads the server's
VmRSS before, its peak (VmHWM, reset before each request) and VmRSS after from /proc. Prints MB of peak growth
per MB of body: the worst case README documents.

    python bench/ingest_memory.py [--mb 48]
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.server import create_key, start_server, write_config  # noqa: E402


def mem(pid: int) -> dict[str, float]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmHWM"):
            out[k] = int(v.split()[0]) / 1024
    return out


def reset_peak(pid: int) -> None:
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")     # resets VmHWM to the current RSS (Linux ≥ 4.0)
    except OSError:
        pass


def items(mb: float) -> list[dict]:
    one = {"event_id": "", "type": "payment.settled", "correlation_id": "pay_1", "occurred_at":
           "2026-11-23T10:15:02.120Z", "source": "stripe", "amount": "129.00", "currency": "EUR",
           "attributes": {"invoice_ref": "INV/2026/00042", "customer_id": "C-991"}}
    n = int(mb * 1024**2 / (len(orjson.dumps(one)) + 12))
    return [{**one, "event_id": f"evt_{i:010d}", "correlation_id": f"pay_{i // 3}"} for i in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=48)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="rw-bench-mem-"))
    port = 20_000 + os.getpid() % 1000
    cfg = write_config(tmp, port, server_extra=", max_body_bytes: 256MiB")
    key = create_key(cfg, "ingest")
    base = f"http://127.0.0.1:{port}"
    server = start_server(cfg, base)
    try:
        evs = items(a.mb)
        bodies = {"JSON array": (orjson.dumps(evs), "application/json"),
                  "NDJSON": (b"\n".join(orjson.dumps({**e, "event_id": "n" + e["event_id"]}) for e in evs),
                             "application/x-ndjson")}
        del evs
        for name, (body, ctype) in bodies.items():
            time.sleep(2)
            before = mem(server.pid)
            reset_peak(server.pid)
            t0 = time.perf_counter()
            r = httpx.post(base + "/api/v1/events", content=body, timeout=600,
                           headers={"Authorization": f"Bearer {key}", "Content-Type": ctype})
            took = time.perf_counter() - t0
            peak = mem(server.pid)["VmHWM"]
            time.sleep(1)
            after = mem(server.pid)["VmRSS"]
            mb = len(body) / 1024**2
            print(f"{name}: {mb:.1f} MB body, {r.json().get('accepted', r.status_code):,} events in {took:.1f} s; "
                  f"RSS {before['VmRSS']:.0f} MB before, peak {peak:.0f} MB (+{(peak - before['VmRSS']) / mb:.1f} "
                  f"MB per MB of body), {after:.0f} MB after", flush=True)
    finally:
        server.terminate()
        server.wait(120)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

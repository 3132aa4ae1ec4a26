"""Small-request ingest at webhook scale (issue #10), measured in one run against a real `revwatch serve`.

Matrix: 1-event and 10-event `POST /api/v1/events` requests from 20 / 100 / 500 concurrent keep-alive clients,
without and with 10 concurrent readers (journey lookups and SLO reads), on an empty store and on a store holding
`--stored` events. Every cell prints requests/s, p50/p99 latency and non-2xx counts; alone and with readers are
measured interleaved (alone, readers, alone, readers, alone; `--seconds` / 2 each) so that drift while the store
grows does not bias their ratio. `--read-rate` sets `server.reads_per_second_under_ingest` (0 = reads are never
rationed).

The client is a minimal asyncio HTTP/1.1 keep-alive client (one connection per simulated client, no pipelining),
so the client is not what is measured: its own ceiling is printed first, against a trivial asyncio endpoint
(fixed reply) in a separate process, and against the server's `/healthz` (the web framework's own ceiling).

    python bench/ingest_small.py [--seconds 5] [--stored 10000000] [--clients 20,100,500] [--sizes 1,10]

The stored events (default 10 M, as the issue asks; ~80 s to generate here) are generated inside ClickHouse
(INSERT … SELECT FROM numbers) before the server starts. Targets: >= 2,000 single-event requests/s at 100
clients with p99 < 100 ms; ingest under 10 readers >= 0.8 of ingest alone; the same figures with events stored as
without.
"""
from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.server import create_key, start_server, write_config  # noqa: E402


# -- the client --------------------------------------------------------------------------------------------------
class Conn:
    """One keep-alive HTTP/1.1 connection: send a request, read the status and the Content-Length body."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, raw: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        if length:
            await self.reader.readexactly(length)
        if b"connection: close" in head.lower():
            self.writer.close()
            self.writer = None
        return status


def raw_request(method: str, path: str, host: str, body: bytes = b"", headers: dict | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def load(host: str, port: int, clients: int, seconds: float, make_request, readers: int = 0,
               make_read=None) -> dict:
    """Run `clients` writer loops (and `readers` reader loops) for `seconds`; latency of the writer requests."""
    stop = time.perf_counter() + seconds
    lat: list[float] = []
    codes: dict[int, int] = {}
    reads = [0]

    async def client(i: int):
        conn, n = Conn(host, port), 0
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            try:
                code = await conn.request(make_request(i, n))
            except (OSError, asyncio.IncompleteReadError):
                code, conn = 0, Conn(host, port)
            lat.append(time.perf_counter() - t0)
            codes[code] = codes.get(code, 0) + 1
            n += 1
            if code in (429, 503):
                await asyncio.sleep(0.05)

    read_lat: list[float] = []
    read_codes: dict[int, int] = {}

    async def reader(i: int):
        conn, n = Conn(host, port), 0
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            try:
                code = await conn.request(make_read(i, n))
                reads[0] += 1
                read_lat.append(time.perf_counter() - t0)
            except (OSError, asyncio.IncompleteReadError):
                code, conn = 0, Conn(host, port)
            read_codes[code] = read_codes.get(code, 0) + 1
            n += 1

    # The writers' rate is over the writers' own time: a reader whose request is still waiting for its turn when
    # the time is up must not stretch the interval the writes are divided by.
    t0 = time.perf_counter()
    reading = [asyncio.ensure_future(reader(i)) for i in range(readers)]
    await asyncio.gather(*[client(i) for i in range(clients)])
    elapsed = time.perf_counter() - t0
    await asyncio.gather(*reading)
    ok = sum(v for k, v in codes.items() if 200 <= k < 300)
    lat.sort()
    return {"rps": ok / elapsed, "p50": lat[len(lat) // 2] * 1000 if lat else 0,
            "p99": lat[int(len(lat) * 0.99)] * 1000 if lat else 0, "codes": codes, "reads_s": reads[0] / elapsed,
            "lat": lat, "read_lat": sorted(read_lat), "read_codes": read_codes}


def merge_runs(runs: list[dict]) -> dict:
    """Several runs of one cell as one: mean rates, latency percentiles over every request, summed codes."""
    lat = sorted(x for r in runs for x in r["lat"])
    codes: dict[int, int] = {}
    for r in runs:
        for k, v in r["codes"].items():
            codes[k] = codes.get(k, 0) + v
    return {"rps": sum(r["rps"] for r in runs) / len(runs), "reads_s": sum(r["reads_s"] for r in runs) / len(runs),
            "p50": lat[len(lat) // 2] * 1000 if lat else 0, "p99": lat[int(len(lat) * 0.99)] * 1000 if lat else 0,
            "codes": codes, "lat": lat}


# -- a trivial endpoint: the client's own ceiling ----------------------------------------------------------------
def _trivial_server(port: int) -> None:
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}"

    async def handle(reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                if length:
                    await reader.readexactly(length)
                writer.write(reply)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def main():
        srv = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
        async with srv:
            await srv.serve_forever()
    asyncio.run(main())


# -- the run -----------------------------------------------------------------------------------------------------
def events_body(n: int, tag: str) -> bytes:
    return orjson.dumps([{"event_id": f"{tag}-{k}", "type": "payment.settled", "correlation_id": f"pay_{tag}",
                          "occurred_at": "2026-11-23T10:15:02.120Z", "source": "stripe", "amount": "129.00",
                          "currency": "EUR", "attributes": {"invoice_ref": f"INV/{tag}"}} for k in range(n)])


def fill_store(dsn: str, n: int) -> float:
    """Generate `n` events inside ClickHouse (another process owns nothing yet); returns seconds taken."""
    code = textwrap.dedent(f"""
        import time
        from revwatch.store import open_store
        s = open_store({dsn!r}, "revwatch")
        t0 = time.time()
        step = 1_000_000
        for off in range(0, {n}, step):
            s.command(f"INSERT INTO revwatch.events (EventId, Type, CorrelationId, OccurredAt, Source, Journey, "
                      f"Amount, "
                      f"Currency, Attributes) SELECT concat('old_', toString(number)), "
                      f"['payment.settled','payment.posted','invoice.posted'][number % 3 + 1], "
                      f"concat('pay_old_', toString(intDiv(number, 3))), "
                      f"now64(3) - toIntervalSecond(number % (86400 * 20)), 'bench', '', toDecimal64('129.00', 2), "
                      f"'EUR', map('invoice_ref', concat('INV/', toString(intDiv(number, 3)))) "
                      f"FROM numbers({{off}}, {{min(step, {n} - off)}})",
                      settings={{"max_partitions_per_insert_block": 1000}})
        print(time.time() - t0)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    if out.returncode:
        raise SystemExit(out.stderr[-2000:])
    return float(out.stdout.strip().splitlines()[-1])


def wait_drained(base: str, timeout: float = 600) -> float:
    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            if httpx.get(base + "/readyz", timeout=30).json()["spool_bytes"] == 0:
                return time.time() - t0
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--stored", type=int, default=10_000_000)
    ap.add_argument("--clients", default="20,100,500")
    ap.add_argument("--sizes", default="1,10")
    ap.add_argument("--read-rate", type=float, default=None, help="server.reads_per_second_under_ingest "
                                                                    "(default: the server's)")
    a = ap.parse_args()
    clients = [int(x) for x in a.clients.split(",")]
    sizes = [int(x) for x in a.sizes.split(",")]
    port = 19_000 + os.getpid() % 1000
    host = "127.0.0.1"

    # client ceiling against a trivial asyncio endpoint (separate process)
    trivial_port = port + 1
    tp = mp.Process(target=_trivial_server, args=(trivial_port,), daemon=True)
    tp.start()
    time.sleep(0.5)
    body = events_body(1, "t")
    req = raw_request("POST", "/x", host, body, {"Content-Type": "application/json"})
    ceiling = asyncio.run(load(host, trivial_port, 100, a.seconds, lambda i, n: req))
    tp.terminate()
    print(f"client ceiling (trivial asyncio endpoint, 100 clients, 1-event body): {ceiling['rps']:,.0f} req/s, "
          f"p50 {ceiling['p50']:.1f} ms, p99 {ceiling['p99']:.1f} ms", flush=True)

    results: dict = {}
    for stored in (0, a.stored):
        tmp = Path(tempfile.mkdtemp(prefix="rw-bench-small-"))
        cfg = write_config(tmp, port, "journeys: {p2p: {start: payment.settled, end: payment.posted}}\n"
                                      "slos:\n  - {name: pp, journey: p2p, objective: 0.99, window: 1d, "
                                      "sli: {kind: journey_latency, threshold: 15m}}\n",
                           "" if a.read_rate is None else f", reads_per_second_under_ingest: {a.read_rate}")
        keys = {s: create_key(cfg, s) for s in ("ingest", "read")}
        if stored:
            took = fill_store(f"chdb://{tmp}/data", stored)
            print(f"\n-- {stored:,} events stored (generated in {took:.0f} s) --", flush=True)
        else:
            print("\n-- empty store --", flush=True)
        base = f"http://{host}:{port}"
        server = start_server(cfg, base)
        try:
            ing = {"Authorization": f"Bearer {keys['ingest']}", "Content-Type": "application/json"}
            rd = {"Authorization": f"Bearer {keys['read']}"}
            hz = raw_request("GET", "/healthz", host)
            r = asyncio.run(load(host, port, 100, a.seconds, lambda i, n, hz=hz: hz))
            print(f"framework ceiling (/healthz, 100 clients): {r['rps']:,.0f} req/s, p50 {r['p50']:.1f} ms, "
                  f"p99 {r['p99']:.1f} ms", flush=True)

            def make_read(i, n, rd=rd, stored=stored):
                if n % 4 == 3:
                    return raw_request("GET", "/api/v1/slos", host, headers=rd)
                cid = f"pay_old_{(i * 7919 + n) % max(1, stored // 3)}" if stored else f"pay_s{i}-{n}"
                return raw_request("GET", f"/api/v1/journeys/{cid}", host, headers=rd)

            for size in sizes:
                for c in clients:
                    tag = f"{stored}-{size}-{c}"

                    def make(i, n, size=size, tag=tag, ing=ing):
                        return raw_request("POST", "/api/v1/events", host,
                                           events_body(size, f"s{tag}-{i}-{n}-{time.monotonic_ns()}"), ing)
                    # Interleaved A B A B A (alone / with readers, --seconds / 2 each): the store grows and merges
                    # during the run, so back-to-back cells drift; the runs with readers are compared with the
                    # runs alone around them.
                    runs = [asyncio.run(load(host, port, c, a.seconds / 2, make, readers, make_read))
                            for readers in (0, 10, 0, 10, 0)]
                    for readers, picked in ((0, runs[0::2]), (10, runs[1::2])):
                        r = merge_runs(picked)
                        results[(stored, size, c, readers)] = r
                        other = {k: v for k, v in r["codes"].items() if not 200 <= k < 300}
                        print(f"{size:>2}-event requests, {c:>3} clients, {readers:>2} readers: "
                              f"{r['rps']:>7,.0f} req/s ({r['rps'] * size:>8,.0f} events/s), p50 {r['p50']:6.1f} ms, "
                              f"p99 {r['p99']:7.1f} ms" + (f", reads {r['reads_s']:,.0f}/s" if readers else "")
                              + (f", non-2xx {other}" if other else ""), flush=True)
            print(f"drained the spool {wait_drained(base):.1f} s after the last request", flush=True)
        finally:
            server.terminate()
            server.wait(120)
            shutil.rmtree(tmp, ignore_errors=True)

    print("\n-- targets --")
    one = results.get((0, 1, 100, 0))
    if one:
        print(f"single-event requests at 100 clients: {one['rps']:,.0f} req/s (target >= 2,000), "
              f"p99 {one['p99']:.1f} ms (target < 100) -> "
              f"{'met' if one['rps'] >= 2000 and one['p99'] < 100 else 'NOT met'}")
    for stored in (0, a.stored):
        for size in sizes:
            base_r, rd_r = results.get((stored, size, 100, 0)), results.get((stored, size, 100, 10))
            if base_r and rd_r and base_r["rps"]:
                ratio = rd_r["rps"] / base_r["rps"]
                print(f"{size}-event, 100 clients, {stored:,} stored: with 10 readers / alone = {ratio:.2f} "
                      f"(target >= 0.8) -> {'met' if ratio >= 0.8 else 'NOT met'}")
    for size in sizes:
        empty, full = results.get((0, size, 100, 0)), results.get((a.stored, size, 100, 0))
        if empty and full and empty["rps"]:
            ratio = full["rps"] / empty["rps"]
            print(f"{size}-event, 100 clients: {a.stored:,} stored / empty = {ratio:.2f} (target ~1.0)")


if __name__ == "__main__":
    main()

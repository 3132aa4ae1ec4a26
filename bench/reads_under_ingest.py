"""Reads during a webhook storm (issue #27), measured in one run against a real `revwatch serve` (evaluator on).

Single-event `POST /api/v1/events` from 100 keep-alive clients, in `--rounds` interleaved pairs: alone, then with
10 closed-loop readers (alone, readers, alone, readers, …; `--seconds` each), then one round with a single reader.
Readers read what pages read: the SLO list and one SLO (served from the evaluator's latest pass in memory,
slo/snapshot.py) and a journey lookup (a store query), in turn (`--mix pages`); only journey lookups (`--mix
lookups`: the store path alone); or only the SLO reads (`--mix slos`: the memory path alone). Printed: ingest
req/s and p99 per round, read rate and p50/p99, and the targets as ratios of this run:

* ingest with 10 readers >= 0.85 of ingest alone (the alone rounds around it);
* read p99 < 300 ms with 10 readers; one reader's p99 < 100 ms;
* single-event ingest p99 < 100 ms in every round.

    python bench/reads_under_ingest.py [--seconds 4] [--rounds 5] [--stored 1000000] [--mix pages|lookups|slos]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ingest_small import events_body, fill_store, load, raw_request  # noqa: E402
from bench.server import create_key, start_server, write_config  # noqa: E402

SLOS = ("journeys: {p2p: {start: payment.settled, end: payment.posted}}\n"
        "slos:\n  - {name: pp, journey: p2p, objective: 0.99, window: 1d, "
        "sli: {kind: journey_latency, threshold: 15m}}\n")


def pct(xs: list[float], q: float) -> float:
    return xs[min(len(xs) - 1, int(len(xs) * q))] * 1000 if xs else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--stored", type=int, default=1_000_000)
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--mix", choices=("pages", "lookups", "slos"), default="pages")
    ap.add_argument("--read-rate", type=float, default=None,
                    help="server.reads_per_second_under_ingest (default: the server's own default)")
    a = ap.parse_args()
    port = 19_500 + os.getpid() % 400
    host = "127.0.0.1"
    tmp = Path(tempfile.mkdtemp(prefix="rw-bench-reads-"))
    cfg = write_config(tmp, port, SLOS + "evaluator: {enabled: true, interval: 10s}\n",
                       "" if a.read_rate is None else f", reads_per_second_under_ingest: {a.read_rate}")
    keys = {s: create_key(cfg, s) for s in ("ingest", "read")}
    if a.stored:
        print(f"{a.stored:,} events stored (generated in {fill_store(f'chdb://{tmp}/data', a.stored):.0f} s)",
              flush=True)
    base = f"http://{host}:{port}"
    server = start_server(cfg, base)
    try:
        time.sleep(3)                                        # the first evaluator pass
        ing = {"Authorization": f"Bearer {keys['ingest']}", "Content-Type": "application/json"}
        rd = {"Authorization": f"Bearer {keys['read']}"}
        kinds = {"pages": ("/api/v1/slos", "/api/v1/slos/pp", "journey"), "lookups": ("journey",),
                 "slos": ("/api/v1/slos", "/api/v1/slos/pp")}[a.mix]

        def make_read(i, n):
            kind = kinds[n % len(kinds)]
            if kind == "journey":
                cid = f"pay_old_{(i * 7919 + n) % max(1, a.stored // 3)}" if a.stored else f"pay_s{i}-{n}"
                return raw_request("GET", f"/api/v1/journeys/{cid}", host, headers=rd)
            return raw_request("GET", kind, host, headers=rd)

        def make(i, n):
            return raw_request("POST", "/api/v1/events", host, events_body(1, f"r{i}-{n}-{time.monotonic_ns()}"),
                               ing)

        plan = [r for _ in range(a.rounds) for r in (0, 10)] + [0, 1]
        runs = []
        for readers in plan:
            r = asyncio.run(load(host, port, a.clients, a.seconds, make, readers, make_read))
            runs.append((readers, r))
            other = {k: v for k, v in r["codes"].items() if not 200 <= k < 300}
            print(f"{readers:>2} readers: ingest {r['rps']:>6,.0f} req/s p50 {r['p50']:6.1f} ms p99 {r['p99']:6.1f} ms"
                  + (f" | reads {r['reads_s']:5.1f}/s p50 {pct(r['read_lat'], 0.5):6.1f} ms "
                     f"p99 {pct(r['read_lat'], 0.99):6.1f} ms {r['read_codes']}" if readers else "")
                  + (f" non-2xx {other}" if other else ""), flush=True)
    finally:
        server.terminate()
        server.wait(120)
        shutil.rmtree(tmp, ignore_errors=True)

    # ratios: each round with readers against the mean of the alone rounds on either side of it
    ratios, read_lat = [], []
    for k, (readers, r) in enumerate(runs):
        if readers == 10:
            around = [runs[k - 1][1]["rps"], runs[k + 1][1]["rps"]]
            ratios.append(r["rps"] / (sum(around) / 2))
            read_lat += r["read_lat"]
    read_lat.sort()
    one = next(r for readers, r in runs if readers == 1)
    worst = max(r["p99"] for _, r in runs)
    ratio = sum(ratios) / len(ratios)
    print("\n-- targets (one run) --")
    print(f"ingest with 10 readers / alone: {ratio:.2f} (rounds {', '.join(f'{x:.2f}' for x in ratios)}; "
          f"target >= 0.85) -> {'met' if ratio >= 0.85 else 'NOT met'}")
    p99 = pct(read_lat, 0.99)
    print(f"read p99 with 10 readers: {p99:.0f} ms (target < 300) -> {'met' if p99 < 300 else 'NOT met'}")
    p1 = pct(one["read_lat"], 0.99)
    print(f"one reader p99: {p1:.0f} ms (target < 100) -> {'met' if p1 < 100 else 'NOT met'}")
    print(f"single-event ingest p99, worst of {len(runs)} rounds: {worst:.0f} ms (target < 100 in every round) -> "
          f"{'met' if worst < 100 else 'NOT met'}")


if __name__ == "__main__":
    main()

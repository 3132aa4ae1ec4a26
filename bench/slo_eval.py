"""SLO evaluation cost: 50 SLOs over 30 days with ≥ 20 M events in the embedded store. Prints the time of one full
evaluation pass (rollups current, nothing new), of an incremental pass after a late batch, of the initial rollup
build, and the ratio to one bare `count()` over the raw events.

    python bench/slo_eval.py [--instances 10000000] [--dir /tmp/rw-bench-slo]
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from revwatch.config import Config  # noqa: E402
from revwatch.store import open_store  # noqa: E402
from slo.engine import SloEngine  # noqa: E402

JOURNEYS = 10
THRESHOLDS = ("5m", "15m", "30m", "1h", "4h")          # 10 journeys × 5 thresholds = 50 SLOs


def config(dsn: str) -> Config:
    journeys = {f"j{k}": {"start": f"j{k}.started", "end": f"j{k}.done"} for k in range(JOURNEYS)}
    slos = [{"name": f"j{k}-{th}", "journey": f"j{k}", "objective": 0.99, "window": "30d",
             "sli": {"kind": "journey_latency", "threshold": th}} for k in range(JOURNEYS) for th in THRESHOLDS]
    return Config.model_validate({"store": {"dsn": dsn, "database": "bench"}, "journeys": journeys, "slos": slos})


def generate(store, instances: int, chunk: int = 2_000_000) -> None:
    """`instances` journey instances over 30 days, start + end events each (2 × instances events), in SQL."""
    for off in range(0, instances, chunk):
        n = min(chunk, instances - off)
        store.command(f"""
            INSERT INTO bench.events (EventId, Type, CorrelationId, OccurredAt, Source, Attributes)
            SELECT concat('e', toString(number), '-', toString(side)),
                   concat('j', toString(number % {JOURNEYS}), if(side = 0, '.started', '.done')),
                   concat('c', toString(number)),
                   now64(3) - toIntervalSecond((number * 7919) % 2592000)
                       + toIntervalSecond(if(side = 0, 0, 30 + (cityHash64(number) % 7200))),
                   'bench', map()
            FROM numbers({off}, {n}) ARRAY JOIN [0, 1] AS side
            WHERE side = 0 OR cityHash64(number) % 50 != 0""")
        print(f"  generated {off + n:,} instances", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--instances", type=int, default=10_250_000)    # ≥ 20 M events (2 % never complete)
    ap.add_argument("--dir", default="/tmp/rw-bench-slo")
    ap.add_argument("--reuse", action="store_true", help="keep data (and rollups) from an earlier run")
    a = ap.parse_args()
    if not a.reuse:
        shutil.rmtree(a.dir, ignore_errors=True)
    dsn = f"chdb://{a.dir}/data"
    store = open_store(dsn, "bench")
    t0 = time.perf_counter()
    if not store.query("SELECT count() FROM bench.events").scalar():
        generate(store, a.instances)
    n_events = store.query("SELECT count() FROM bench.events").scalar()
    print(f"generated {n_events:,} events in {time.perf_counter() - t0:.0f} s")
    engine = SloEngine(store, config(dsn))
    t0 = time.perf_counter()
    engine.evaluate()
    build = time.perf_counter() - t0
    print(f"initial rollup build (once per SLO definition; 0 when reused): {build:.1f} s")
    passes = []
    for _ in range(3):
        t0 = time.perf_counter()
        res = engine.evaluate()
        passes.append(time.perf_counter() - t0)
    full = min(passes)
    t0 = time.perf_counter()
    store.command("INSERT INTO bench.events (EventId, Type, CorrelationId, OccurredAt, Source) "
                  "SELECT concat('late', toString(number)), 'j3.done', concat('c', toString(number * 10 + 3)), "
                  "now64(3) - toIntervalDay(3), 'bench' FROM numbers(1000)")
    engine.evaluate()
    incremental = time.perf_counter() - t0
    t0 = time.perf_counter()
    store.query("SELECT count() FROM bench.events").scalar()
    bare_count = time.perf_counter() - t0
    t0 = time.perf_counter()
    store.query("SELECT count() FROM bench.events WHERE Type = 'j3.done'").scalar()
    bare_filtered = time.perf_counter() - t0
    print(f"{len(res)} SLO results, 8 windows each (5m … 3d and the 30d SLO window)")
    print(f"full evaluation pass: {full * 1000:.0f} ms (target < 1 s); after a late batch of 1,000 events: "
          f"{incremental * 1000:.0f} ms")
    print(f"bare count() over {n_events:,} raw events: {bare_count * 1000:.1f} ms; filtered count(): "
          f"{bare_filtered * 1000:.1f} ms")
    print(f"ratio full pass / bare count(): {full / bare_count:.1f}; full pass / filtered count(): "
          f"{full / bare_filtered:.1f}")
    # exact windows (slo/edges.py): the sub-minute leading edges of every window of every SLO, from raw rows
    from revwatch.units import utcnow
    from slo.edges import has_exact_windows, leading_edges
    edges = []
    for _ in range(3):
        t0 = time.perf_counter()
        leading_edges(engine.rollups, [(s, w, length) for s in engine.specs if has_exact_windows(s)
                                       for w, length in engine.exact_lengths(s).items()], utcnow())
        edges.append(time.perf_counter() - t0)
    print(f"exact-window edges (one round trip, {len(engine.specs)} SLOs × 8 windows, ≤ 1 minute of decisions "
          f"each): {min(edges) * 1000:.0f} ms = {min(edges) / full:.2f} of the full pass")


if __name__ == "__main__":
    main()

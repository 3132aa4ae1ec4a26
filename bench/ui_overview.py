"""Web UI overview cost: the page `GET /ui/` rendered server-side for 50 SLOs over ~10 M events (embedded store).

10 journeys × 5 latency thresholds = 50 SLOs on a 30-day window; 5 M journey instances (start + end events,
2 % never finish, so every journey has stuck items with amounts to sum) = ~9.9 M events. The SLO evaluation is the
scheduler's job and is cached (the page shows its time); what is measured is one signed-in page request: the
cached results, the 24 h sparkline series of all 50 SLOs from the rollup, the stuck items and money at risk of
all 10 journeys, open alerts and top anomalies, and the template rendering. Sparklines and stuck/money are
recomputed in the background every `ui.refresh` (stale-while-revalidate, webui/cache.py), so a request renders
from memory plus two small reads; the cold first request and the background recompute are printed too.
Prints p50 / max over 20 requests.

    python bench/ui_overview.py [--instances 5000000] [--dir /tmp/rw-bench-ui] [--reuse]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fastapi.testclient import TestClient  # noqa: E402

from revwatch.config import Config  # noqa: E402
from revwatch.server import create_app  # noqa: E402
from revwatch.store import open_store  # noqa: E402
from webui import data  # noqa: E402

JOURNEYS = 10
THRESHOLDS = ("5m", "15m", "30m", "1h", "4h")


def config(base: str) -> Config:
    journeys = {f"j{k}": {"start": f"j{k}.started", "end": f"j{k}.done"} for k in range(JOURNEYS)}
    slos = [{"name": f"j{k}-{th}", "journey": f"j{k}", "objective": 0.99, "window": "30d",
             "sli": {"kind": "journey_latency", "threshold": th}} for k in range(JOURNEYS) for th in THRESHOLDS]
    return Config.model_validate({"data_dir": base, "store": {"dsn": f"chdb://{base}/data", "database": "bench"},
                                  "journeys": journeys, "slos": slos, "evaluator": {"enabled": False},
                                  "spool": {"dir": f"{base}/spool"}})


def generate(store, instances: int, chunk: int = 1_000_000) -> None:
    """`instances` journey instances over 30 days with amounts, start + end events (2 % never end), in SQL."""
    for off in range(0, instances, chunk):
        n = min(chunk, instances - off)
        store.command(f"""
            INSERT INTO bench.events (EventId, Type, CorrelationId, OccurredAt, Source, Amount, Currency, Attributes)
            SELECT concat('e', toString(number), '-', toString(side)),
                   concat('j', toString(number % {JOURNEYS}), if(side = 0, '.started', '.done')),
                   concat('c', toString(number)),
                   now64(3) - toIntervalSecond((number * 7919) % 2592000)
                       + toIntervalSecond(if(side = 0, 0, 30 + (cityHash64(number) % 7200))),
                   'bench', toDecimal64((number % 997) + 0.5, 2), if(number % 3 = 0, 'USD', 'EUR'),
                   map('customer_id', concat('C-', toString(number % 5000)))
            FROM numbers({off}, {n}) ARRAY JOIN [0, 1] AS side
            WHERE side = 0 OR cityHash64(number) % 50 != 0""")
        print(f"  generated {off + n:,} instances", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--instances", type=int, default=5_000_000)
    ap.add_argument("--dir", default="/tmp/rw-bench-ui")
    ap.add_argument("--reuse", action="store_true", help="keep data (and rollups) from an earlier run")
    a = ap.parse_args()
    if not a.reuse:
        shutil.rmtree(a.dir, ignore_errors=True)
    Path(a.dir).mkdir(parents=True, exist_ok=True)
    cfg = config(a.dir)
    store = open_store(cfg.store_dsn, "bench")
    t0 = time.perf_counter()
    if not store.query("SELECT count() FROM bench.events").scalar():
        generate(store, a.instances)
    n_events = store.query("SELECT count() FROM bench.events").scalar()
    print(f"{n_events:,} events ready in {time.perf_counter() - t0:.0f} s")
    app = create_app(cfg, store, start_background=False)
    ctx = app.state.ctx
    t0 = time.perf_counter()
    results = ctx.slo.evaluate_and_cache()
    print(f"SLO evaluation (scheduler job, cached for the page; includes the first rollup build): "
          f"{time.perf_counter() - t0:.1f} s, {len(results)} SLO results")
    key, _ = ctx.keys.create("read", "bench")
    with TestClient(app) as client:
        r = client.post("/ui/login", data={"key": key}, follow_redirects=False)
        assert r.status_code == 303, r.text
        t0 = time.perf_counter()
        first = client.get("/ui/")
        cold = time.perf_counter() - t0
        assert first.status_code == 200 and first.text.count('class="spark"') == 50, first.status_code
        times = []
        for _ in range(20):
            t0 = time.perf_counter()
            r = client.get("/ui/")
            times.append(time.perf_counter() - t0)
            assert r.status_code == 200
    t0 = time.perf_counter()
    data.sparklines(ctx)
    spark = time.perf_counter() - t0
    t0 = time.perf_counter()
    stuck = sum(d["stuck"] for d in data.journey_summaries(ctx))
    summaries = time.perf_counter() - t0
    p50, worst = statistics.median(times), max(times)
    print(f"overview page, 50 SLOs / {n_events:,} events / {stuck:,} stuck instances summed per journey: "
          f"p50 {p50 * 1000:.0f} ms, max {worst * 1000:.0f} ms over 20 requests (target < 300 ms), "
          f"{len(first.text) / 1024:.0f} KiB of HTML")
    print(f"first (cold) request, computing what later requests reuse: {cold * 1000:.0f} ms; background refresh "
          f"(every ui.refresh): 24 h sparklines of 50 SLOs {spark * 1000:.0f} ms, stuck items and money of "
          f"{JOURNEYS} journeys {summaries * 1000:.0f} ms")
    print(f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores while measuring)")


if __name__ == "__main__":
    main()

"""SLO evaluation cost: 50 SLOs over 30 days with ≥ 20 M events in the embedded store. Prints the time of one full
evaluation pass (rollups current, nothing new), of an incremental pass after a late batch, of the initial rollup
build, and the ratio to one bare `count()` over the raw events.

Beside it, in the same run and on the same events (issue #25): a second set of 50 SLOs mixing money-weighted
(`budgeting: amount`, per currency), grouped (by gateway) and counting SLOs — its full pass printed beside today's —
and the cost of the journey read model's other answers: a funnel of every journey (7 days), the attribution of
every SLO (7 days) and the in-flight forecast of every SLO.

    python bench/slo_eval.py [--instances 10250000] [--dir /tmp/rw-bench-slo]

Use the default size: with few instances most short windows (5m, 30m) are empty, and the coverage hold
(slo/coverage.py) re-evaluates every SLO × group as of its last minute with data, so a small run measures those
extra evaluations, not the pass (100 k instances under a load average of ~18 on 2 cores: today's pass 27.9 s).
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


def config(dsn: str, money: bool = False) -> Config:
    """Today's 50 counting SLOs, or (money) 50 SLOs: per journey 2 counting, 2 money-weighted (one grouped by
    gateway, so gateway × currency groups) and 1 counting grouped by gateway."""
    journeys = {f"j{k}": {"start": f"j{k}.started", "end": f"j{k}.done"} for k in range(JOURNEYS)}
    if not money:
        slos = [{"name": f"j{k}-{th}", "journey": f"j{k}", "objective": 0.99, "window": "30d",
                 "sli": {"kind": "journey_latency", "threshold": th}} for k in range(JOURNEYS) for th in THRESHOLDS]
    else:
        slos = []
        for k in range(JOURNEYS):
            base = {"journey": f"j{k}", "objective": 0.99, "window": "30d"}
            slos += [{**base, "name": f"m{k}-15m", "sli": {"kind": "journey_latency", "threshold": "15m"}},
                     {**base, "name": f"m{k}-1h", "sli": {"kind": "journey_latency", "threshold": "1h"}},
                     {**base, "name": f"m{k}-amount", "budgeting": "amount",
                      "sli": {"kind": "journey_latency", "threshold": "30m"}},
                     {**base, "name": f"m{k}-amount-gw", "budgeting": "amount", "group_by": ["gateway"],
                      "sli": {"kind": "journey_latency", "threshold": "30m"}},
                     {**base, "name": f"m{k}-gw", "group_by": ["gateway"],
                      "sli": {"kind": "journey_latency", "threshold": "4h"}}]
    return Config.model_validate({"store": {"dsn": dsn, "database": "bench"}, "journeys": journeys, "slos": slos})


def generate(store, instances: int, chunk: int = 2_000_000) -> None:
    """`instances` journey instances over 30 days, start + end events each (2 × instances events), in SQL; the
    start event carries an amount (0.00–999.99) in one of 3 currencies and a gateway (one of 4)."""
    for off in range(0, instances, chunk):
        n = min(chunk, instances - off)
        store.command(f"""
            INSERT INTO bench.events (EventId, Type, CorrelationId, OccurredAt, Source, Amount, Currency, Attributes)
            SELECT concat('e', toString(number), '-', toString(side)),
                   concat('j', toString(number % {JOURNEYS}), if(side = 0, '.started', '.done')),
                   concat('c', toString(number)),
                   now64(3) - toIntervalSecond((number * 7919) % 2592000)
                       + toIntervalSecond(if(side = 0, 0, 30 + (cityHash64(number) % 7200))),
                   'bench',
                   if(side = 0, toDecimal128(cityHash64(number, 1) % 100000, 2), NULL),
                   if(side = 0, ['EUR', 'USD', 'GBP'][number % 3 + 1], ''),
                   if(side = 0, map('gateway', ['stripe', 'adyen', 'mollie', 'paypal'][number % 4 + 1]), map())
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
    engine.evaluate(refresh=True)                  # the evaluator's pass writes the rollups (reads never write)
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
    money_part(store, dsn, full)


def _best(fn, runs: int = 3) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(runs):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def money_part(store, dsn: str, today_full: float) -> None:
    """Issue #25: the money/grouped SLO set's full pass beside today's, and funnels, attribution, forecasts."""
    import datetime as dt

    from revwatch.journeys.funnel import funnel
    from revwatch.units import utcnow
    from slo.attribution import attribute
    from slo.forecast import forecast
    cfg = config(dsn, money=True)
    engine = SloEngine(store, cfg)
    t0 = time.perf_counter()
    engine.evaluate_and_cache()                    # builds this set's rollups once (money: a join on start events)
    print(f"money/grouped set: initial rollup build {time.perf_counter() - t0:.1f} s")
    full, res = _best(engine.evaluate)
    groups = len(res)
    print(f"full evaluation pass, 50 money-weighted/grouped/counting SLOs ({groups} SLO × group results): "
          f"{full * 1000:.0f} ms — beside today's 50 counting SLOs: {today_full * 1000:.0f} ms "
          f"(ratio {full / today_full:.2f}; target < 1 s: {'met' if full < 1 else 'NOT met'})")
    now = utcnow()
    t_funnels, _ = _best(lambda: [funnel(store, cfg.journeys, j, now - dt.timedelta(days=7), now)
                                  for j in cfg.journeys], runs=1)
    print(f"funnels of all {len(cfg.journeys)} journeys over 7 days: {t_funnels * 1000:.0f} ms "
          f"({t_funnels / len(cfg.journeys) * 1000:.0f} ms each)")
    ungrouped = [s for s in engine.specs if not s.config.group_by]
    t_att, _ = _best(lambda: [attribute(engine, s, "EUR" if s.config.budgeting == "amount" else "",
                                        lookback=dt.timedelta(days=7)) for s in ungrouped], runs=1)
    print(f"attribution of {len(ungrouped)} ungrouped SLOs over 7 days: {t_att * 1000:.0f} ms "
          f"({t_att / len(ungrouped) * 1000:.0f} ms each)")
    t_fc, _ = _best(lambda: [forecast(engine, s) for s in engine.specs], runs=1)
    print(f"in-flight forecasts of all {len(engine.specs)} SLOs: {t_fc * 1000:.0f} ms "
          f"({t_fc / len(engine.specs) * 1000:.0f} ms each)")


if __name__ == "__main__":
    main()

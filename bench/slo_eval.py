"""SLO evaluation cost: 50 SLOs over 30 days with 20 M events (default) in the embedded store, in two designs in
one run, on the same events and rollups.

* previous design (`SloEngine(reuse_minutes=False)`): every pass sums 30 days of `slo_minutes FINAL` in SQL, reads the
  exact windows' sub-minute edges from raw rows, and evaluates once more as of each coverage-hold minute;
* today's (slo/series.py, slo/edges.py): the rollup minutes are kept in memory between passes and only the rows
  written since the previous pass are read (`Version >` the last seen); every window comes from cumulative sums over
  the minute series; the hold's as-of evaluations come from the same series; the edge minutes' decisions are kept
  and re-read only when late data rewrites them.

Printed per set (50 counting SLOs; 50 money-weighted/grouped/counting SLOs): the best full pass of each design
(rollups current, nothing new), its first pass, a pass after a late batch of 1,000 events, and whether both designs
return the same documents. Then the journey read model's other answers (funnels of every journey, attribution of
every ungrouped SLO, in-flight forecasts), per call, in the previous path (raw rows grouped in SQL per call) and from
the journey instance cache (revwatch/journeys/cache.py), with whether both return the same documents.

    python bench/slo_eval.py [--events 20000000 | --instances N] [--dir /tmp/rw-bench-slo] [--reuse]
                             [--money-only | --journeys-only]
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
from revwatch.units import utcnow  # noqa: E402
from slo.engine import SloEngine  # noqa: E402

JOURNEYS = 10
THRESHOLDS = ("5m", "15m", "30m", "1h", "4h")          # 10 journeys × 5 thresholds = 50 SLOs


def config(dsn: str, money: bool = False) -> Config:
    """Today's 50 counting SLOs, or (money) 50 SLOs: per journey 2 counting, 2 money-weighted (one grouped by
    gateway, so gateway × currency groups) and 1 counting grouped by gateway."""
    journeys = {f"j{k}": {"start": f"j{k}.started", "milestones": [f"j{k}.matched", f"j{k}.billed"],
                          "end": f"j{k}.done"} for k in range(JOURNEYS)}
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


STEPS = (".started", ".matched", ".billed", ".done")     # start, 2 milestones, end
EVENTS_PER_INSTANCE = 3.97                                # 2 % of instances stop before their end, at any step


def generate(store, instances: int, chunk: int = 2_000_000) -> None:
    """`instances` journey instances over 30 days, in SQL (`INSERT … SELECT … FROM numbers()`, no Python rows):
    started → matched → billed → done, each step after a per-instance delay (the mollie gateway's 3 × longer), 2 %
    stopping for good before one of the later steps. The start event carries an amount (0.00–999.99) in one of 3
    currencies (a tenth of them none), a gateway (one of 4), a region and a customer; 30 % of billed events carry
    their own amount (a partial one: money leaks between steps)."""
    for off in range(0, instances, chunk):
        n = min(chunk, instances - off)
        store.command(f"""
            INSERT INTO bench.events (EventId, Type, CorrelationId, OccurredAt, Source, Amount, Currency, Attributes)
            SELECT concat('e', toString(number), '-', toString(side)),
                   concat('j', toString(number % {JOURNEYS}), {list(STEPS)}[side + 1]),
                   concat('c', toString(number)),
                   now64(3) - toIntervalSecond((number * 7919) % 2592000)
                       + toIntervalMillisecond(arraySum(arraySlice(delays, 1, side))),
                   gw,
                   multiIf(side = 0 AND cityHash64(number, 7) % 10 != 0,
                           toDecimal128(cityHash64(number, 1) % 100000, 2) / 100,
                           side = 2 AND cityHash64(number, 5) % 10 < 3,
                           toDecimal128(cityHash64(number, 1) % 90000, 2) / 100, NULL),
                   if(side = 0 OR side = 2, ['EUR', 'USD', 'GBP'][number % 3 + 1], ''),
                   if(side = 0, map('gateway', gw, 'region', ['eu', 'us'][cityHash64(number, 6) % 2 + 1],
                                    'customer_id', concat('cus', toString(number % 5000))), map())
            FROM (
                SELECT number, ['stripe', 'adyen', 'mollie', 'paypal'][number % 4 + 1] AS gw,
                       arrayMap(x -> x * if(number % 4 = 2, 3, 1),
                                [cityHash64(number, 2) % 300000, cityHash64(number, 3) % 900000,
                                 30000 + cityHash64(number) % 2400000]) AS delays,
                       if(cityHash64(number) % 50 = 0, cityHash64(number, 4) % 3, 3) AS last_step
                FROM numbers({off}, {n})
            ) ARRAY JOIN [0, 1, 2, 3] AS side
            WHERE side <= last_step""")
        print(f"  generated {off + n:,} instances", flush=True)


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def passes(engine: SloEngine, runs: int = 3) -> dict:
    """One SLO set's cost in one design: the evaluator's pass (`refresh=True`: the rollup pass for the minutes time
    decided since, then the evaluation) — the first one (the minute cache and the edge minutes read) and the best of
    `runs` following ones (nothing new) — and the best read pass (no refresh: what an API read does, with the
    pending rollup rows laid over)."""
    first, res = _timed(lambda: engine.evaluate(refresh=True))
    best = min(_timed(lambda: engine.evaluate(refresh=True))[0] for _ in range(runs))
    read = min(_timed(engine.evaluate)[0] for _ in range(runs))
    return {"first": first, "full": best, "read": read, "results": res}


def late_batch(store, tag: str) -> None:
    store.command("INSERT INTO bench.events (EventId, Type, CorrelationId, OccurredAt, Source) "
                  f"SELECT concat('late{tag}', toString(number)), 'j3.done', concat('c', toString(number * 10 + 3)), "
                  "now64(3) - toIntervalDay(3), 'bench' FROM numbers(1000)")


def cursor_of(cfg: Config) -> str:
    """Each SLO set its own rollup cursor: two maintainers sharing one would consume each other's ingest-log rows
    and time-decided range (slo/rollup.py), leaving the other set's minutes stale."""
    return "slo:rollup:cursor:" + ("money" if any(s.budgeting == "amount" for s in cfg.slos) else "counting")


def compare(store, cfg: Config, label: str, old_runs: int) -> dict:
    """Both designs on one SLO set, in this run: the previous (`reuse_minutes=False`: 30 days of `slo_minutes FINAL`
    per pass, edges from raw rows, one as-of evaluation per coverage-hold minute) and today's (slo/series.py,
    slo/edges.py `EdgeCache`); checks they return the same documents."""
    new = SloEngine(store, cfg, rollup_cursor=cursor_of(cfg))
    old = SloEngine(store, cfg, reuse_minutes=False, rollup_cursor=cursor_of(cfg))
    print(f"{label}:", flush=True)
    n = passes(new)
    print(f"  full pass, minute cache:    {n['full'] * 1000:.0f} ms (first, reading the cache and edge minutes: "
          f"{n['first'] * 1000:.0f} ms); read pass {n['read'] * 1000:.0f} ms", flush=True)
    o = passes(old, runs=old_runs)
    print(f"  full pass, previous design: {o['full'] * 1000:.0f} ms (first {o['first'] * 1000:.0f} ms); read pass "
          f"{o['read'] * 1000:.0f} ms", flush=True)
    at = utcnow()
    same = [r.as_dict() for r in new.evaluate(at)] == [r.as_dict() for r in old.evaluate(at)]
    late_batch(store, label)
    t_new, _ = _timed(lambda: new.evaluate(refresh=True))
    t_old, _ = _timed(lambda: old.evaluate(refresh=True))
    at = utcnow()
    same_late = [r.as_dict() for r in new.evaluate(at)] == [r.as_dict() for r in old.evaluate(at)]
    print(f"  {len(n['results'])} SLO × group results; pass after a late batch of 1,000 events: previous design "
          f"{t_old * 1000:.0f} ms, minute cache {t_new * 1000:.0f} ms ({new.minutes.rows_read} rollup rows and "
          f"{new.edge_cache.read} edge minutes read)")
    print(f"  speed-up {o['full'] / n['full']:.1f}×; target < 1 s: {'met' if n['full'] < 1 else 'NOT met'}; "
          f"same documents as the previous design (as of one instant): {same} (after the late batch: {same_late})")
    return {"new": n["full"], "old": o["full"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=20_000_000,
                    help="raw events to generate (≈ 4 per instance; 2 %% of instances never complete)")
    ap.add_argument("--instances", type=int, default=None, help="instances instead of --events")
    ap.add_argument("--dir", default="/tmp/rw-bench-slo")
    ap.add_argument("--reuse", action="store_true", help="keep data (and rollups) from an earlier run")
    ap.add_argument("--old-runs", type=int, default=1, help="passes of the previous design (best of)")
    ap.add_argument("--money-only", action="store_true",
                    help="only the money set (its rollup build, passes in both designs, the journey reads and the "
                         "full pass), not the counting set: half the rollup build at 20 M events")
    ap.add_argument("--journeys-only", action="store_true",
                    help="only funnels, attribution and forecasts (no rollup build, no SLO passes; attribution "
                         "without its budget part, which is the pass's)")
    a = ap.parse_args()
    instances = a.instances or int(a.events / EVENTS_PER_INSTANCE)
    if not a.reuse:
        shutil.rmtree(a.dir, ignore_errors=True)
    dsn = f"chdb://{a.dir}/data"
    store = open_store(dsn, "bench")
    t0 = time.perf_counter()
    if not store.query("SELECT count() FROM bench.events").scalar():
        generate(store, instances)
    n_events = store.query("SELECT count() FROM bench.events").scalar()
    print(f"{n_events:,} events ({time.perf_counter() - t0:.0f} s to generate or open)")
    cfg, money_cfg = config(dsn), config(dsn, money=True)
    if a.journeys_only:
        money_part(store, money_cfg, with_pass=False)
        return
    sets = ((money_cfg, "money/grouped"),) if a.money_only else ((cfg, "counting"), (money_cfg, "money/grouped"))
    for c, what in sets:
        t0 = time.perf_counter()
        SloEngine(store, c, rollup_cursor=cursor_of(c)).evaluate(refresh=True)   # the evaluator's pass writes them
        print(f"initial rollup build, {what} set (once per SLO definition; ~0 when reused): "
              f"{time.perf_counter() - t0:.1f} s")
    money = compare(store, money_cfg, "50 money-weighted/grouped/counting SLOs", a.old_runs)
    if a.money_only:
        money_part(store, money_cfg, old_pass=money["old"])
        return
    today = compare(store, cfg, "50 counting SLOs (10 journeys × 5 thresholds)", a.old_runs)
    bare_count, _ = _timed(lambda: store.query("SELECT count() FROM bench.events").scalar())
    bare_filtered, _ = _timed(lambda: store.query("SELECT count() FROM bench.events WHERE Type = 'j3.done'").scalar())
    print(f"bare count() over {n_events:,} raw events: {bare_count * 1000:.1f} ms; filtered count(): "
          f"{bare_filtered * 1000:.1f} ms; counting pass / filtered count(): {today['new'] / bare_filtered:.1f}")
    engine = SloEngine(store, cfg, rollup_cursor=cursor_of(cfg))
    engine.evaluate()
    from slo.edges import has_exact_windows, leading_edges
    exact = [(s, w, length) for s in engine.specs if has_exact_windows(s)
             for w, length in engine.exact_lengths(s).items()]
    t_raw, _ = _timed(lambda: leading_edges(engine.rollups, exact, utcnow()))
    t_kept, _ = _timed(lambda: engine.edge_cache.edges(engine.rollups, exact, utcnow()))
    print(f"exact-window edges ({len(engine.specs)} SLOs × 8 windows): from raw rows {t_raw * 1000:.0f} ms; "
          f"from the kept edge minutes {t_kept * 1000:.0f} ms")
    money_part(store, money_cfg, old_pass=money["old"])


def _best(fn, runs: int = 3) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(runs):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def money_part(store, cfg: Config, with_pass: bool = True, old_pass: float = 0.0) -> None:
    """Issue #25: funnels, attribution and in-flight forecasts of the money set, per call, in both paths in this run:
    the previous one (every instance of the range grouped from raw milestones and events in SQL per call) and the
    journey instance cache's (revwatch/journeys/cache.py: instances kept in memory, only the ones new rows touched
    re-read); checks both return the same documents."""
    import datetime as dt

    from revwatch.journeys.funnel import funnel
    from slo.attribution import attribute
    from slo.forecast import forecast
    from slo import attribution as att
    engine = SloEngine(store, cfg, rollup_cursor=cursor_of(cfg))
    if with_pass:
        engine.evaluate_and_cache()
    now = utcnow()
    week = dt.timedelta(days=7)
    ungrouped = [s for s in engine.specs if not s.config.group_by]

    def funnels(cache):
        return [[f.as_dict() for f in funnel(store, cfg.journeys, j, now - week, now, now=now, cache=cache)]
                for j in cfg.journeys]

    def attributions(use_cache: bool):
        out = []
        for s in ungrouped:
            group = "EUR" if s.config.budgeting == "amount" else ""
            if with_pass:
                doc = attribute(engine, s, group, now=now, lookback=week, use_cache=use_cache)
                doc.pop("budget")
            else:              # the journey part alone: the budget part evaluates the SLO (its rollups not built)
                doc = att._journey_attribution(engine, s, group, now, week, "", use_cache)
            out.append(doc)
        return out

    def forecasts(use_cache: bool):
        return [forecast(engine, s, now=now, results=[r for r in engine.latest or [] if r.spec is s],
                         use_cache=use_cache) for s in engine.specs]

    from revwatch.journeys.cache import InstanceCache
    fresh = InstanceCache(store, cfg.journeys)
    t_build, _ = _timed(lambda: fresh.table(next(iter(cfg.journeys)), now - week, now))
    print(f"journey instance cache, first load ({sum(t.n for t in fresh.tables.values()):,} instances of "
          f"{len(cfg.journeys)} journeys over 8 days, once per process): {t_build:.1f} s")
    rows = []
    for what, old_fn, new_fn, n in (
            (f"funnels of all {len(cfg.journeys)} journeys, 7 days", lambda: funnels(None),
             lambda: funnels(engine.instances), len(cfg.journeys)),
            (f"attribution of {len(ungrouped)} ungrouped SLOs, 7 days", lambda: attributions(False),
             lambda: attributions(True), len(ungrouped)),
            (f"in-flight forecasts of all {len(engine.specs)} SLOs", lambda: forecasts(False),
             lambda: forecasts(True), len(engine.specs))):
        t_old, old = _timed(old_fn)
        t_new, new = _best(new_fn)
        rows.append((what, t_old, t_new, old == new, new))
        print(f"{what}: previous path {t_old * 1000:.0f} ms ({t_old / n * 1000:.0f} ms each); instance cache "
              f"{t_new * 1000:.0f} ms ({t_new / n * 1000:.1f} ms each); same documents: {old == new}", flush=True)
    full_pass(engine, rows, funnels, attributions, forecasts, old_pass, with_pass)
    late_batch(store, "cache")
    t_sync, _ = _timed(lambda: engine.instances.table(next(iter(cfg.journeys)), now - week, utcnow()))
    print(f"instance cache after a late batch of 1,000 events: sync {t_sync * 1000:.0f} ms "
          f"({engine.instances.reread} instances re-read)")


def full_pass(engine: SloEngine, rows: list[tuple], funnels, attributions, forecasts, old_pass: float,
              with_pass: bool) -> None:
    """The issue's "full pass": the evaluator's pass of the money set (rollups refreshed, every SLO evaluated) with
    the funnels of every journey, the attribution of every ungrouped SLO and the forecasts of every SLO, all under
    one sync of the instance cache (`InstanceCache.one_sync`, as the evaluator runs them), best of 3; beside it
    the same parts summed in the previous design and path (each measured above, in this run: `old_pass` is the
    previous design's full pass of the money set) and summed with one cache sync per call (each part measured alone
    above); checks the documents equal the per-call ones. Without `with_pass` (--journeys-only), the three
    journey parts alone."""
    def once():
        with engine.instances.one_sync():
            if with_pass:
                engine.evaluate(refresh=True)
            return funnels(engine.instances), attributions(True), forecasts(True)
    _timed(once)                                           # the minutes time decided since the parts above
    t, docs = _best(once)
    same = list(docs) == [r[4] for r in rows]
    if not with_pass:
        print(f"funnels + attribution + forecasts under one cache sync: {t * 1000:.0f} ms (one sync per call: "
              f"{sum(r[2] for r in rows) * 1000:.0f} ms); same documents: {same}", flush=True)
        return
    new_pass = min(_timed(lambda: engine.evaluate(refresh=True))[0] for _ in range(3))
    print(f"FULL PASS (money set's evaluator pass + funnels of every journey + attribution of every ungrouped SLO + "
          f"forecasts of every SLO, one cache sync): {t * 1000:.0f} ms; target < 1 s: "
          f"{'met' if t < 1 else 'NOT met'}; same documents as the per-call reads: {same}")
    print(f"  beside it, in this run: previous design and path {(old_pass + sum(r[1] for r in rows)) * 1000:.0f} ms "
          f"(pass {old_pass * 1000:.0f} ms); one sync per call {(new_pass + sum(r[2] for r in rows)) * 1000:.0f} ms "
          f"(pass alone {new_pass * 1000:.0f} ms)", flush=True)


if __name__ == "__main__":
    main()

"""The journey instance cache (revwatch/journeys/cache.py) gives burn attribution, funnels and in-flight forecasts
exactly the documents of the previous path (every instance grouped from raw rows in SQL per call), on a generated
business with milestones, money in several currencies (and none), groups, stuck, late and in-flight instances —
and again after late data (ends of stuck instances, earlier duplicates of starts, milestones out of order, new
instances), which the cache takes in by re-reading only the instances it touched.

Copies of one milestone whose times straddle a read's lower bound are generated on different days only: the SQL
path's answer for copies of one day depends on whether `milestones` merged them meanwhile (docs/journeys.md
"Instance cache")."""
import datetime as dt
import random
from decimal import Decimal

from collector.rows import EVENT_COLUMNS, EventRow
from revwatch.journeys.funnel import funnel
from slo.attribution import attribute
from slo.engine import SloEngine
from slo.forecast import forecast

NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
CFG = """
journeys:
  pay: {start: pay.settled, milestones: [pay.matched, pay.billed], end: pay.posted}
  ord: {start: ord.placed, end: ord.shipped}
slos:
  - {name: pay-15m, journey: pay, objective: 0.9, window: 7d, sli: {kind: journey_latency, threshold: 15m}}
  - {name: pay-gw, journey: pay, objective: 0.9, window: 7d, group_by: [gateway],
     sli: {kind: journey_latency, threshold: 1h}}
  - {name: pay-amt, journey: pay, objective: 0.9, window: 7d, budgeting: amount,
     sli: {kind: journey_latency, threshold: 30m}}
  - {name: pay-amt-gw, journey: pay, objective: 0.9, window: 7d, budgeting: amount, group_by: [gateway],
     sli: {kind: journey_latency, threshold: 30m}}
  - {name: ord-2h, journey: ord, objective: 0.9, window: 7d, group_by: [source],
     sli: {kind: journey_latency, threshold: 2h}}
"""
PAY = ["pay.settled", "pay.matched", "pay.billed", "pay.posted"]
_n = [0]
STARTS: dict[str, tuple] = {}                       # cid → (start, amount, currency, source, attributes)
MISSING: dict[str, tuple[str, dt.datetime]] = {}     # cid → (the first step not reached, the last step's time)
ENDS: dict[str, dt.datetime] = {}                    # cid → end


def ev(cid, typ, at, amount=None, cur="", source="stripe", **attrs):
    _n[0] += 1
    return list(EventRow(EventId=f"jc{_n[0]}", Type=typ, CorrelationId=cid, OccurredAt=int(at.timestamp() * 1000),
                         Source=source, Amount=Decimal(amount) if amount is not None else None, Currency=cur,
                         Attributes=attrs))


def business(rnd: random.Random, n: int, prefix: str) -> list[list]:
    rows = []
    for i in range(n):
        cid, gw = f"{prefix}{i}", rnd.choice(["stripe", "adyen", "mollie"])
        start = NOW - dt.timedelta(seconds=rnd.randint(0, 9 * 86400))      # some before the 7-day lookback
        money = rnd.random()
        amount, cur = ((f"{rnd.randint(1, 99999) / 100:.2f}", rnd.choice(["EUR", "USD"])) if money < 0.8
                       else ("3.125", "") if money < 0.85 else (None, ""))
        attrs = {"gateway": gw, "region": rnd.choice(["eu", "us"]), "customer_id": f"cus{rnd.randint(0, 40)}"}
        rows.append(ev(cid, "pay.settled", start, amount, cur, source=gw, **attrs))
        STARTS[cid] = (start, amount, cur, gw, attrs)
        t, fate = start, rnd.random()
        for step in PAY[1:]:
            if fate < (0.7 if gw == "mollie" else 0.1) and rnd.random() < 0.5:   # stops: stuck or in flight
                MISSING[cid] = (step, t)
                break
            t += dt.timedelta(seconds=rnd.choice([30, 200, 600, 1500, 4000] if gw == "mollie" else [10, 60, 120]))
            own = (f"{rnd.randint(1, 9999) / 100:.2f}", "EUR") if step == "pay.billed" and rnd.random() < 0.3 \
                else (None, "")
            rows.append(ev(cid, step, t, *own, source=gw))
            if step == PAY[-1]:
                ENDS[cid] = t
        if rnd.random() < 0.2:                                              # a re-delivery, later
            rows.append(ev(cid, "pay.settled", start + dt.timedelta(seconds=5), amount, cur, source=gw, **attrs))
        o = NOW - dt.timedelta(seconds=rnd.randint(0, 3 * 86400))
        rows.append(ev(f"o{prefix}{i}", "ord.placed", o, source=rnd.choice(["shop", "b2b"])))
        if rnd.random() < 0.7:
            rows.append(ev(f"o{prefix}{i}", "ord.shipped", o + dt.timedelta(seconds=rnd.randint(60, 4 * 3600))))
    return rows


def late_data(rnd: random.Random) -> list[list]:
    rows = []
    for cid, (_step, t) in sorted(MISSING.items())[1::3]:                   # ends arrive for open instances
        rows.append(ev(cid, "pay.posted", t + dt.timedelta(seconds=rnd.randint(60, 7200))))
    for i in range(1, 300, 11):             # a copy of the start with an earlier time: the first time wins
        start, amount, cur, gw, attrs = STARTS[f"a{i}"]
        rows.append(ev(f"a{i}", "pay.settled", start - dt.timedelta(seconds=3), amount, cur, source=gw, **attrs))
    for cid, (step, t) in sorted(MISSING.items())[::3]:                     # a missing milestone, late
        rows.append(ev(cid, step, t + dt.timedelta(seconds=rnd.randint(1, 900))))
    for cid, end in sorted(ENDS.items())[::5]:      # a re-delivered end stamped 3 days earlier (another day:
        rows.append(ev(cid, "pay.posted", end - dt.timedelta(days=3)))   # never merged with the first copy)
    return rows + business(rnd, 40, "new")


def everything(engine: SloEngine, use_cache: bool) -> dict:
    cfg, store = engine.cfg, engine.store
    out: dict = {}
    results = engine.evaluate(NOW)
    groups = {s.name: {r.group for r in results if r.spec.name == s.name} for s in engine.specs}
    for spec in engine.specs:
        for g in sorted(groups[spec.name] | {"", "nope"}):
            for now, lookback in ((NOW, dt.timedelta(days=7)), (NOW - dt.timedelta(hours=5), dt.timedelta(hours=30))):
                doc = attribute(engine, spec, g, now=now, lookback=lookback, use_cache=use_cache)
                doc.pop("budget")                    # the SLO evaluation's, not attribution's
                out[("attribution", spec.name, g, now, lookback)] = doc
        for now in (NOW, NOW - dt.timedelta(minutes=47)):
            out[("forecast", spec.name, now)] = forecast(engine, spec, now=now, use_cache=use_cache)
    cache = engine.instances if use_cache else None
    for j in cfg.journeys:
        for since, until, filters, by in (
                (NOW - dt.timedelta(days=7), NOW, None, None), (NOW - dt.timedelta(days=2), NOW, None, "gateway"),
                (NOW - dt.timedelta(days=3), NOW - dt.timedelta(hours=20), {"gateway": "stripe"}, "source"),
                (NOW - dt.timedelta(days=6), NOW, {"source": "shop"}, None)):
            out[("funnel", j, since, until, by, str(filters))] = [
                f.as_dict() for f in funnel(store, cfg.journeys, j, since, until, filters, by, now=until, cache=cache)]
    return out


def same(old: dict, new: dict) -> None:
    assert old.keys() == new.keys()
    for k in old:
        diff = ([{f: (a[f], b[f]) for f in a if a[f] != b[f]} for a, b in zip(new[k], old[k]) if a != b]
                if k[0] == "forecast" else "")
        assert new[k] == old[k], (k, diff)


def test_cache_and_sql_paths_agree_through_late_data(store, make_config):
    rnd = random.Random(25)
    store.insert("events", business(rnd, 300, "a"), EVENT_COLUMNS)
    engine = SloEngine(store, make_config(CFG))
    engine.evaluate(NOW, refresh=True)
    old, new = everything(engine, False), everything(engine, True)
    same(old, new)
    docs = [v for k, v in new.items() if k[0] == "attribution"]
    assert sum(d["instances"]["stuck"] for d in docs) and sum(d["instances"]["late"] for d in docs)
    assert any(d["over_represented"] for d in docs) and any(d["money_at_risk"] for d in docs)
    assert any(p["predicted_breaches"] for k, v in new.items() if k[0] == "forecast" for p in v)
    loaded = sum(t.n for t in engine.instances.tables.values())

    store.insert("events", late_data(rnd), EVENT_COLUMNS)
    engine.instances.table("pay", NOW - dt.timedelta(days=7), NOW)   # the same cache: it re-reads only the
    touched = engine.instances.reread                                  # instances the late rows touched
    engine.evaluate(NOW, refresh=True)
    new = everything(engine, True)
    old = everything(engine, False)
    same(old, new)
    assert 0 < touched < loaded / 2


def test_one_sync_scope_shares_one_sync_and_answers_alike(store, make_config):
    """Under `InstanceCache.one_sync` (the evaluator's pass) every answer reads the tables of one sync: the same
    attributions, forecasts and funnels as calls that each sync, one ingest-log read instead of one per call; data
    ingested during the scope is taken in by the first call after it."""
    from slo.attribution import _journey_attribution
    rnd = random.Random(7)
    store.insert("events", business(rnd, 120, "s"), EVENT_COLUMNS)
    engine = SloEngine(store, make_config(CFG))
    results = engine.evaluate(NOW, refresh=True)
    week = dt.timedelta(days=7)

    def reads() -> dict:
        out: dict = {}
        for spec in engine.specs:
            for g in sorted({r.group for r in results if r.spec is spec}):
                out[("attribution", spec.name, g)] = _journey_attribution(engine, spec, g, NOW, week, "")
            out[("forecast", spec.name)] = forecast(engine, spec, now=NOW,
                                                    results=[r for r in results if r.spec is spec])
        for j in engine.cfg.journeys:
            out[("funnel", j)] = [f.as_dict() for f in funnel(store, engine.cfg.journeys, j, NOW - week, NOW,
                                                              by="gateway", now=NOW, cache=engine.instances)]
        return out
    per_call = reads()
    cache = engine.instances
    before = cache.syncs
    with cache.one_sync():
        scoped = reads()
        assert cache.syncs == before + 1
        store.insert("events", [ev("late-one", "pay.settled", NOW - dt.timedelta(hours=2), "5.00", "EUR")],
                     EVENT_COLUMNS)
        assert "late-one" not in cache.table("pay", NOW - week, NOW).index
    assert per_call == scoped
    assert sum(d["instances"]["started"] for k, d in scoped.items() if k[0] == "attribution")
    assert "late-one" in cache.table("pay", NOW - week, NOW).index
    assert cache.syncs == before + 2


def test_time_decided_minutes_from_the_cache_equal_the_sql_counts(store, make_config):
    """slo/decided.py counts the rollup minutes time decides from the instance cache: per SLO, group and minute
    the same Good/Total (events, and money units for `budgeting: amount`, per gateway and currency) as the SQL the
    rollup ran (`counts_between`), for short and long ranges, a cutoff inside the range, and again after late
    data (ends of stuck instances, earlier copies of starts, milestones out of order, new instances)."""
    from slo.decided import decided_counts
    from revwatch.units import epoch_millis as ms
    rnd = random.Random(11)
    store.insert("events", business(rnd, 300, "a"), EVENT_COLUMNS)    # late_data re-sends a…
    engine = SloEngine(store, make_config(CFG))
    specs = [s for s in engine.specs if s.is_journey]
    h, m, d = dt.timedelta(hours=1), dt.timedelta(minutes=1), dt.timedelta(days=1)
    ranges = [(NOW - 2 * h, NOW + m, NOW), (NOW - 5 * d, NOW - 5 * d + 45 * m, NOW),
              (NOW - 26 * h, NOW - 20 * h, NOW - 21 * h), (NOW - 7 * d + 5 * h, NOW, NOW)]

    def check() -> int:
        n = 0
        for per_ms in (False, True):                # minutes (time-decided), milliseconds (exact-window edges)
            requests = [(specs, ms(lo), ms(hi), ms(cut)) for lo, hi, cut in ranges]
            sql = sorted(engine.rollups._counts_sql(list(enumerate(requests)), per_ms))
            mem, rest = decided_counts(engine.instances, engine.cfg.journeys, requests, per_ms)
            assert not rest
            assert sorted(mem) == sql, per_ms
            assert sorted(engine.rollups.counts_between(requests, per_ms, from_memory=True)) == sql
            n += len(sql)
            assert any(good < total for *_, good, total in sql)
        return n
    assert check() > 100
    counted = {r[1] for r in decided_counts(engine.instances, engine.cfg.journeys,
                                            [(specs, ms(lo), ms(hi), ms(cut)) for lo, hi, cut in ranges])[0]}
    assert {"pay-amt", "pay-amt-gw", "pay-gw", "ord-2h"} <= counted
    old = [(specs, ms(NOW - 9 * d), ms(NOW - 9 * d + 10 * m), ms(NOW))]      # before the kept history: SQL's
    assert decided_counts(engine.instances, engine.cfg.journeys, old) == ([], list(enumerate(old)))
    store.insert("events", late_data(rnd), EVENT_COLUMNS)
    check()


def _contents(cache, name: str, after_ms: int = 0) -> dict:
    """Per correlation ID of one journey's table (started after `after_ms`), everything a row holds, by value
    (codes spelled out)."""
    t = cache.tables[name]
    out = {}
    for cid, i in t.index.items():
        if t.ts[i, 0] <= after_ms:                    # 0: a cleared row, not an instance any more
            continue
        out[cid] = (t.ts[i].tolist(), sorted(t.later.get(i, [])), t.own_row[i].tolist(), t.own_has[i].tolist(),
                    t.own_amt[i].tolist(), [cache.currencies.values[c] for c in t.own_cur[i].tolist()],
                    cache.sources.values[int(t.src[i])], cache.attr_sets.values[int(t.attrs[i])])
    return out


def test_re_read_instances_equal_a_cache_built_from_scratch(store, make_config):
    """The rows a sync re-reads after late data (earlier copies of starts, ends of stuck instances, milestones out of
    order, new instances) are placed column by column exactly as a first load of the same data places them:
    times, later copies, each step's own money and currency, source and attribute set, for every instance."""
    from revwatch.journeys.cache import InstanceCache
    rnd = random.Random(7)
    store.insert("events", business(rnd, 300, "a"), EVENT_COLUMNS)    # late_data re-sends starts of a…
    cfg = make_config(CFG)
    kept = InstanceCache(store, cfg.journeys)
    week = dt.timedelta(days=7)
    kept.table("pay", NOW - week, NOW)
    store.insert("events", late_data(rnd), EVENT_COLUMNS)
    kept.table("pay", NOW - week, NOW)
    assert kept.reread > 0
    fresh = InstanceCache(store, cfg.journeys)
    fresh.table("pay", NOW - week, NOW)
    # the two floors lie a moment apart (each the kept history back from its own first load): compare what both hold
    after = int((max(kept.floor, fresh.floor) + dt.timedelta(minutes=1)).timestamp() * 1000)
    for name in cfg.journeys:
        a, b = _contents(kept, name, after), _contents(fresh, name, after)
        assert a == b and len(a) > 100, name
    assert any(v[1] for v in _contents(fresh, "pay").values())            # later copies are part of it
    assert any(any(v[3]) for v in _contents(fresh, "pay").values())       # and own amounts


def test_codes_are_interned_under_the_cache_lock(store, make_config):
    """The cache's code tables (sources, currencies, attribute sets) are shared by the evaluator's pass and API
    reads on other threads; `Interner.code` is a read-then-append, so two threads interning at once can give two
    values one code (an instance would then carry another attribute set). The sync interns under the cache lock;
    the explained sets that attribution, funnels and the SLO counts derive (`InstanceCache.explained`) must too."""
    from revwatch.journeys.cache import Interner
    rnd = random.Random(7)
    store.insert("events", business(rnd, 60, "l"), EVENT_COLUMNS)
    engine = SloEngine(store, make_config(CFG))
    cache = engine.instances
    unlocked: list = []

    class Checked(Interner):
        def code(self, v) -> int:
            if v not in self.codes and not cache.lock.locked():
                unlocked.append(v)
            return super().code(v)
    for name in ("sources", "currencies", "attr_sets"):
        checked = Checked()
        checked.values, checked.codes = getattr(cache, name).values, getattr(cache, name).codes
        setattr(cache, name, checked)
    everything(engine, True)
    assert cache.attr_sets.values[1:] and not unlocked, unlocked[:3]

"""The minute cache (slo/series.py) and the kept edge minutes (slo/edges.py `EdgeCache`) against the previous pass
design (`SloEngine(reuse_minutes=False)`: windows re-summed from `slo_minutes FINAL`, edges and the coverage hold's
as-of evaluations re-read each pass). The hand-count oracles are tests/test_slo_*.py; here both designs must return
the same documents, pass after pass, through late data, a gap that makes alerts hold, money and groups, and a budget
adjustment — and the cache must read only what changed."""
import datetime as dt

from collector.rows import EVENT_COLUMNS, EventRow
from revwatch.units import utcnow
from slo.engine import SloEngine
from slo.rollup import floor_minute
from tests.test_slo_amount import pay        # a payment: start (amount, currency, gateway) and optional end

M = dt.timedelta(minutes=1)
CFG = """
journeys: {p2p: {start: payment.settled, end: payment.posted}}
adjustments:
  - {name: deploy, start: "%s", duration: 10m, effect: exclude}
slos:
  - {name: pp, journey: p2p, objective: 0.99, window: 1d, sli: {kind: journey_latency, threshold: 15m},
     alerting: {min_events: 1}}
  - {name: pp-money-gw, journey: p2p, objective: 0.99, window: 1d, budgeting: amount, group_by: [gateway],
     sli: {kind: journey_latency, threshold: 15m}}
  - {name: pp-slow, journey: p2p, objective: 0.95, window: 30d, sli: {kind: journey_latency, threshold: 1h}}
"""


def docs(results):
    return [r.as_dict() for r in results]


def differences(a, b, path: str = "") -> list[str]:
    """Where two documents differ (paths and both values): a failure message short enough to read in CI's log."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b), key=str) for d in differences(a.get(k), b.get(k), f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def test_minute_cache_equals_the_previous_design_through_late_data_and_holds(store, make_config):
    now = floor_minute(utcnow())
    cfg = make_config(CFG % (now - 5 * 60 * M).isoformat())
    # 5 h of traffic, each 4th instance late or never finished, that stops 50 min ago: the 5m and 30m windows are
    # empty, so page tiers hold the state as of the last minute with data (slo/coverage.py)
    for i in range(125):
        start = now - 5 * 60 * M + i * 2 * M + dt.timedelta(seconds=7 * (i % 9))
        end = None if i % 8 == 3 else start + (20 * M if i % 4 == 1 else dt.timedelta(seconds=40 + i))
        pay(store, f"c{i}", start, end, f"{10 + i}.25", ("EUR", "USD")[i % 3 == 0], ("stripe", "adyen")[i % 2])
    new, old = SloEngine(store, cfg), SloEngine(store, cfg, reuse_minutes=False)
    new.evaluate(refresh=True)
    held = []
    for step in range(3):
        if step == 1:                               # late data: ends and starts hours back, inside edge minutes too
            for i in range(12):
                pay(store, f"late{i}", now - (4 * 60 - 7 * i) * M + dt.timedelta(seconds=11 * i),
                    now - (4 * 60 - 7 * i - 3) * M, "12.50", "EUR", "adyen")
        if step == 2:
            new.evaluate(refresh=True)              # the evaluator's pass rewrites the minutes: the cache reads them
        at = utcnow()
        a, b = new.evaluate(at), old.evaluate(at)
        assert docs(a) == docs(b)
        held += [h for r in a for h in r.coverage.held]
        assert new.evaluate() and docs(new.evaluate(at)) == docs(b)     # repeated passes read nothing new
    assert held, "the fixture makes alert tiers hold (the as-of evaluations from the minute series are compared)"
    assert new.minutes.rows_read == 0 and new.edge_cache.read == 0


def test_cache_reads_only_rewritten_minutes(store, make_config):
    now = floor_minute(utcnow())
    cfg = make_config(CFG % (now - 30 * 24 * 60 * M).isoformat())
    for i in range(40):
        pay(store, f"c{i}", now - (200 - i * 4) * M, now - (200 - i * 4 - 2) * M, "12.50", "EUR")
    engine = SloEngine(store, cfg)
    engine.evaluate(refresh=True)
    first = engine.minutes.rows_read
    engine.evaluate(refresh=True)
    assert first > 0 and engine.minutes.rows_read == 0    # nothing decided since: no minute rewritten, none read
    pay(store, "late", now - 100 * M + dt.timedelta(seconds=5), now - 99 * M, "12.50", "EUR")
    engine.evaluate(refresh=True)
    assert 0 < engine.minutes.rows_read < first           # the minutes the late instance can change (15 m, 1 h)
    assert docs(engine.evaluate(now + dt.timedelta(seconds=1))) == \
        docs(SloEngine(store, cfg, reuse_minutes=False).evaluate(now + dt.timedelta(seconds=1)))


def test_an_slo_without_rows_does_not_make_every_sync_reread_all(store, make_config):
    """A money SLO whose journey carries no amounts has no rollup rows: its watermark must still advance, or the
    sync's floor (the lowest watermark) stays at 0 and every pass re-reads every SLO's rows."""
    now = floor_minute(utcnow())
    cfg = make_config(CFG % (now - 30 * 24 * 60 * M).isoformat() + """
  - {name: none-money, journey: p2p, objective: 0.99, window: 1d, budgeting: amount, group_by: [region],
     sli: {kind: journey_latency, threshold: 15m}}
""")
    for i in range(40):                                   # no amounts at all: `none-money` has no rows
        pay(store, f"c{i}", now - (200 - i * 4) * M, now - (200 - i * 4 - 2) * M, None, "")
    engine = SloEngine(store, cfg)
    engine.evaluate(refresh=True)
    first = engine.minutes.rows_fetched
    engine.evaluate(refresh=True)
    assert first > 0 and engine.minutes.rows_fetched < first / 10


def test_late_data_rewrites_minutes_from_the_instance_cache_and_zeroes_lost_ones(store, make_config, monkeypatch):
    """The evaluator's pass after late data rewrites the touched minutes from the journey instance cache
    (`RollupMaintainer.rewrite_rows`, slo/decided.py), not from raw rows: no SQL count query runs for ranges the
    cache holds. An end re-delivered with an earlier time moves its instance's decision to another minute: the old
    minute must be written back as zero (it lost its only count), exactly as a rollup built from scratch has it."""
    now = floor_minute(utcnow())
    cfg = make_config(CFG % (now - 30 * 24 * 60 * M).isoformat())
    for i in range(30):                   # each posted 20 min after settling: late for `pp` (15 m), bad at s + 15 m
        pay(store, f"c{i}", now - (300 - i * 7) * M, now - (300 - i * 7 - 20) * M, "12.50", "EUR", "adyen")
    engine = SloEngine(store, cfg)
    engine.evaluate(refresh=True)
    sql_ranges: list = []
    counts_sql = engine.rollups._counts_sql
    monkeypatch.setattr(engine.rollups, "_counts_sql", lambda reqs, per_ms: sql_ranges.extend(reqs) or
                        counts_sql(reqs, per_ms))
    stored = lambda: {m.replace(tzinfo=dt.timezone.utc): (good, total) for m, good, total in store.query(  # noqa: E731
        f"SELECT Minute, argMax(Good, Version), argMax(Total, Version) FROM {store.table('slo_minutes')} "
        "WHERE Slo = 'pp' GROUP BY Minute").rows}
    assert stored()[now - 264 * M] == (0, 1)         # c3: settled at now - 279 m, bad at its 15th minute
    # c3's posting re-delivered with an earlier time (5 min after settling): good, decided at now - 274 m
    store.insert("events", [list(EventRow(EventId="late-end", Type="payment.posted", CorrelationId="c3",
                                          OccurredAt=int((now - 274 * M).timestamp() * 1000), Source="odoo"))],
                 EVENT_COLUMNS)
    engine.evaluate(refresh=True)
    assert sql_ranges == []                          # every rewritten range came from the cache
    after = stored()
    assert after[now - 264 * M] == (0, 0)            # the old decision minute: written back as zero
    assert after[now - 274 * M] == (1, 1)            # the new one: good at the earlier end
    fresh = SloEngine(store, cfg, rollup_cursor="slo:rollup:cursor:fresh")      # rolled up from scratch
    at = now + dt.timedelta(seconds=1)
    cached, scratch = docs(engine.evaluate(at)), docs(fresh.evaluate(at))
    raw = docs(SloEngine(store, cfg, reuse_minutes=False).evaluate(at))
    assert cached == scratch == raw, (differences(cached, scratch), differences(scratch, raw))


def test_start_and_end_re_delivered_earlier_within_the_threshold_move_the_old_decision(store, make_config):
    """A start re-delivered a few minutes earlier (within the threshold) moves a stuck instance's decision from
    s + 15m to s' + 15m, and an end re-delivered with a time just before its start makes a late one good at its
    start: the incremental pass must zero the old minute (slo/sli.py `dirty_span`: twice the threshold), as a
    rollup built from scratch has it."""
    now = floor_minute(utcnow()) - 5 * M
    cfg = make_config(CFG % (now - 30 * 24 * 60 * M).isoformat())
    s = now - 120 * M + dt.timedelta(seconds=20)
    pay(store, "stuck", s, None, "10.00", "EUR")                        # bad at s + 15m (pp), s + 1h (pp-slow)
    pay(store, "late", s - 340 * M, s - 310 * M, "20.00", "EUR")        # ends 30m after its start: bad at s - 325m
    engine = SloEngine(store, cfg)
    engine.rollups.refresh(now)
    store.insert("events", [list(EventRow(EventId="early-start", Type="payment.settled", CorrelationId="stuck",
                                          OccurredAt=int((s - 5 * M).timestamp() * 1000), Source="stripe",
                                          Amount="10.00", Currency="EUR", Attributes={"gateway": "stripe"})),
                            list(EventRow(EventId="early-end", Type="payment.posted", CorrelationId="late",
                                          OccurredAt=int((s - 343 * M).timestamp() * 1000), Source="odoo"))],
                 EVENT_COLUMNS)
    engine.rollups.refresh(now + M)
    minutes = lambda: {(name, g, m.replace(tzinfo=dt.timezone.utc)): (good, total)  # noqa: E731
                       for name, g, m, good, total in store.query(
        f"SELECT Slo, GroupKey, Minute, argMax(Good, Version), argMax(Total, Version) "
        f"FROM {store.table('slo_minutes')} GROUP BY Slo, GroupKey, Minute HAVING argMax(Total, Version) > 0").rows}
    incremental = minutes()
    assert incremental[("pp", "", floor_minute(s + 10 * M))] == (0, 1)      # the new decision of `stuck`
    assert incremental[("pp", "", floor_minute(s - 340 * M))] == (1, 1)     # `late`: good, decided at its start
    scratch = SloEngine(store, cfg, rollup_cursor="slo:rollup:cursor:scratch")
    scratch.rollups.refresh(now + M)                                         # every minute rewritten from raw rows
    assert incremental == minutes()

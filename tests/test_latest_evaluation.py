"""Issue #27: SLO reads are served from the evaluator's latest pass held in memory (slo/snapshot.py): no store query
per request, never held behind ingest; store reads (journey lookups, `at=` evaluations) still take their turn."""
from __future__ import annotations

import datetime as dt
import time
import traceback

from slo.snapshot import Evaluation, LatestEvaluation

SLO_CFG = """
journeys: {p2p: {start: payment.settled, end: payment.posted}}
slos:
  - {name: pp, journey: p2p, objective: 0.99, window: 1d, sli: {kind: journey_latency, threshold: 15m}}
"""


def ev(eid, t, kind="payment.settled"):
    return {"event_id": eid, "type": kind, "correlation_id": f"c-{eid[:-1]}", "occurred_at": t, "source": "t"}


def _busy(api):
    gate = api.ctx.priority
    for _ in range(120):
        gate.note_ingest()
    gate._bucket_start -= gate.busy_window
    assert gate.busy()


class CountingStore:
    """Counts the store queries request handlers make while it is installed (wraps the real store's query)."""

    def __init__(self, store):
        self.store, self.real, self.calls = store, store.query, 0

    def __enter__(self):
        def query(*a, **kw):
            if any(f.filename.endswith("routes.py") for f in traceback.extract_stack()):   # a request's, not
                self.calls += 1                                                   # a background job's
            return self.real(*a, **kw)
        self.store.query = query
        return self

    def __exit__(self, *exc):
        self.store.query = self.real


def test_slo_reads_come_from_the_latest_pass_without_store_queries_or_waiting(api_factory):
    api = api_factory(SLO_CFG + "server: {reads_per_second_under_ingest: 1}")
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    t = lambda m: (now - dt.timedelta(minutes=m)).isoformat()      # noqa: E731
    api.post("/api/v1/events", json=[ev("a1", t(50)), ev("a2", t(48), "payment.posted"),
                                     ev("b1", t(40)), ev("b2", t(10), "payment.posted")])
    api.drain()
    results = api.ctx.slo.evaluate_and_cache()            # one evaluator pass
    pass_ = api.ctx.slo.snapshot.current
    assert pass_ is not None and pass_.from_evaluator and pass_.results == tuple(results)
    _busy(api)
    paced = api.ctx.metrics.reads_paced_seconds_total._value.get()
    with CountingStore(api.ctx.store) as counted:
        for _ in range(5):                                 # at 1 read/s, five held reads would take 4 s
            listed = api.get("/api/v1/slos").json()
            one = api.get("/api/v1/slos/pp").json()
    assert counted.calls == 0
    # memory reads take turns of their own (150/s): not held — five store turns at 1/s would have waited ~4 s
    assert api.ctx.metrics.reads_paced_seconds_total._value.get() - paced < 0.3
    assert listed["slos"] == [r.as_dict() for r in results] and one["results"] == listed["slos"]
    assert listed["at"] == results[0].at.isoformat()
    # a journey of business events is looked up in memory too (the journey tier, once loaded)
    _wait_for_tier(api)
    with CountingStore(api.ctx.store) as counted:
        assert api.get("/api/v1/journeys/c-a").status_code == 200
    assert counted.calls == 0
    # a search still queries the store and takes a store turn: 1/s after a burst of 3
    paced = api.ctx.metrics.reads_paced_seconds_total._value.get()
    with CountingStore(api.ctx.store) as counted:
        for _ in range(4):
            assert api.get("/api/v1/journeys", params={"customer": "nobody"}).status_code == 200
    assert counted.calls == 4
    assert api.ctx.metrics.reads_paced_seconds_total._value.get() - paced > 0.5


def _wait_for_tier(api, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while api.ctx.journey_tier.state == "loading" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert api.ctx.journey_tier.state == "ready"


def test_the_next_pass_replaces_the_whole_snapshot(api_factory):
    api = api_factory(SLO_CFG)
    engine = api.ctx.slo
    first = engine.latest_or_evaluate()                    # before any pass: a read-only evaluation
    assert engine.snapshot.current is not None and not engine.snapshot.current.from_evaluator
    engine.evaluate_and_cache()
    cur = engine.snapshot.current
    assert cur.from_evaluator and cur.seconds is not None and engine.latest_at == cur.at
    assert engine.latest_journeys is cur.journeys and "p2p" in cur.journeys
    assert [r.as_dict()["name"] for r in engine.latest] == [r.as_dict()["name"] for r in first]
    holder = LatestEvaluation()                            # a read-only result never replaces a pass
    real = Evaluation(dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc), ())
    holder.publish(real)
    holder.publish(Evaluation(dt.datetime(2026, 1, 2, tzinfo=dt.timezone.utc), (), from_evaluator=False))
    assert holder.current is real


def test_a_pass_without_summaries_carries_the_previous_ones_and_says_when_they_were_computed(api_factory):
    api = api_factory(SLO_CFG)
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    api.post("/api/v1/events", json=[ev("s1", (now - dt.timedelta(hours=2)).isoformat())])   # overdue: stuck
    api.drain()
    engine = api.ctx.slo
    engine.evaluate_and_cache()
    first = engine.snapshot.current
    assert first.summaries_at is not None and [s.stuck for s in first.stuck] == [1]
    api.post("/api/v1/events", json=[ev("t1", (now - dt.timedelta(hours=1)).isoformat())])   # a second one
    api.drain()
    scans = []
    real = engine.journey_reader.summaries
    engine.journey_reader.summaries = lambda *a, **kw: scans.append(1) or real(*a, **kw)
    try:
        engine.evaluate_and_cache(summaries=False)         # between summary intervals: carried, not scanned
        carried = engine.snapshot.current
        assert not scans and carried is not first and carried.at >= first.at
        assert carried.summaries_at == first.summaries_at and [s.stuck for s in carried.stuck] == [1]
        engine.evaluate_and_cache()                        # when due: recomputed
        fresh = engine.snapshot.current
        assert scans == [1] and fresh.summaries_at > first.summaries_at and [s.stuck for s in fresh.stuck] == [2]
    finally:
        engine.journey_reader.summaries = real

"""Reads never write: every GET route and read command leaves the store untouched (only the evaluator writes
rollups), and a read-only evaluation is exactly what the evaluator computes after its next pass."""
from __future__ import annotations

import datetime as dt

from tests.support.slo_data import anchor, journey

CFG = """
journeys:
  p2p: {start: payment.settled, end: payment.posted}
slos:
  - {name: pp, journey: p2p, objective: 0.99, window: 1d, sli: {kind: journey_latency, threshold: 15m}}
  - {name: pp-by-gw, journey: p2p, objective: 0.9, window: 1d, group_by: [gateway],
     sli: {kind: journey_latency, threshold: 5m}}
"""


def _count_writes(store) -> list[str]:
    """Record every write the store performs (inserts, DDL, INSERT … SELECT) from now on."""
    writes: list[str] = []
    call = store._call

    def counting(fn, *args, write: bool = False, **kwargs):
        if write:
            writes.append(str(args[0])[:80] if args else getattr(fn, "__name__", "?"))
        return call(fn, *args, write=write, **kwargs)

    store._call = counting
    return writes


def _windows(results) -> dict:
    return {(r.spec.name, r.group): {w: (v.good, v.total) for w, v in r.windows.items()} for r in results}


def test_get_routes_and_reads_do_not_write_and_match_the_evaluator(api_factory):
    api = api_factory(CFG)
    store = api.ctx.store
    T = anchor(3)
    for i in range(6):                                  # on time, late, stuck, across two gateways
        end = T + dt.timedelta(minutes=2 if i % 2 else 30) if i < 5 else None
        journey(store, f"p{i}", T + dt.timedelta(minutes=i), end, {"gateway": "stripe" if i < 3 else "adyen"})
    api.ctx.slo.evaluate_and_cache()                    # the evaluator's pass: rollups written
    # late data into minutes the evaluator already rolled up, and a new instance since its pass
    journey(store, "late", T + dt.timedelta(minutes=1), T + dt.timedelta(minutes=50), {"gateway": "stripe"})
    journey(store, "new", T + dt.timedelta(hours=2), T + dt.timedelta(hours=2, minutes=1), {"gateway": "adyen"})

    api.ctx.deadletters.stop()     # its background upkeep (age samples, pruning) writes on a timer, not on reads
    writes = _count_writes(store)
    routes = ["/api/v1/slos", "/api/v1/slos/pp", "/api/v1/slos/pp-by-gw",
              "/api/v1/slos/pp?at=" + (T + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
              "/api/v1/journeys/p1", "/api/v1/journeys?stuck=p2p", "/api/v1/anomalies", "/metrics", "/",
              "/api/v1/slos/pp/attribution", "/api/v1/slos/pp-by-gw/attribution?group=stripe", "/api/v1/alerts",
              "/api/v1/notifications", "/api/v1/silences", "/ui/", "/ui/slos/pp", "/ui/slos/pp-by-gw?group=adyen",
              "/ui/journeys/p1", "/ui/journeys", "/ui/stuck", "/ui/stuck.csv", "/ui/anomalies", "/ui/alerts"]
    for path in routes:
        r = api.get(path, follow_redirects=False)       # a page must render, not send us to /ui/login
        assert r.status_code == 200, (path, r.status_code, r.text[:200])
    read_only = api.ctx.slo.evaluate()
    assert writes == [], f"read paths wrote to the store: {writes}"

    store._call = type(store)._call.__get__(store)      # the evaluator may write again
    api.ctx.slo.rollups.refresh(dt.datetime.now(dt.timezone.utc))
    after_pass = api.ctx.slo.evaluate()
    assert _windows(read_only) == _windows(after_pass)
    pp = next(r for r in read_only if r.spec.name == "pp")
    # p1, p3 (2 min) and 'new' (1 min) are good; p0, p2, p4 (30 min), 'late' (50 min) and stuck p5 are bad
    assert (pp.windows["1d"].good, pp.windows["1d"].total) == (3, 8)


def test_roles_split_ingest_from_evaluation(api_factory):
    """Several collectors and one evaluator on one ClickHouse: a collector ingests and never runs the evaluator's
    jobs; an evaluator runs them and has no ingest routes."""
    collector = api_factory(CFG + "\nserver: {role: collector}\nevaluator: {enabled: true}\n")
    jobs = {j.id for j in collector.ctx.scheduler.get_jobs()}
    assert jobs == set(), jobs
    ev = [{"event_id": "e1", "type": "payment.settled", "correlation_id": "c1",
           "occurred_at": "2026-11-20T10:00:00Z", "source": "stripe"}]
    assert collector.post("/api/v1/events", json=ev).status_code == 200

    evaluator = api_factory(CFG + "\nserver: {role: evaluator}\nevaluator: {enabled: true}\n")
    assert "anomaly-scan" in {j.id for j in evaluator.ctx.scheduler.get_jobs()}
    assert collector.ctx.evaluator is None and evaluator.ctx.evaluator is not None   # the SLO loop, own thread
    assert evaluator.post("/api/v1/events", json=ev).status_code == 404
    assert evaluator.get("/api/v1/slos").status_code == 200


def test_read_commands_do_not_write(api_factory):
    """The CLI's read commands on the embedded store (`slo status`, `trace`, `journeys search`, `anomaly list`,
    `keys list`) leave the store untouched too."""
    from revwatch.cli.target import FindingQuery, JourneyQuery, LocalTarget
    api = api_factory(CFG)
    store = api.ctx.store
    T = anchor(2)
    journey(store, "c1", T, T + dt.timedelta(minutes=3), {"gateway": "stripe"})
    journey(store, "c2", T, None, {"gateway": "adyen"})
    api.ctx.slo.evaluate_and_cache()
    target = LocalTarget(store, api.ctx.config)
    api.ctx.deadletters.stop()     # its background upkeep (age samples, pruning) writes on a timer, not on reads
    writes = _count_writes(store)
    slos, _ = target.slo_status(None, None)
    assert {s["name"] for s in slos} == {"pp", "pp-by-gw"}
    assert target.trace("c1") is not None
    target.journeys_search(JourneyQuery(attr=None, customer=None, journey="p2p", since=None, until=None,
                                        since_at=None, until_at=None, stuck=None, limit=10))
    target.journeys_search(JourneyQuery(attr=None, customer=None, journey=None, since=None, until=None,
                                        since_at=None, until_at=None, stuck="p2p", limit=10))
    target.anomaly_list(FindingQuery(kind=None, status=None, cause=None, customer=None, since=None, since_at=None,
                                     min_score=None), 10, None)
    assert target.keys_list()
    assert writes == [], f"read commands wrote to the store: {writes}"

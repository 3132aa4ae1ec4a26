"""Issue #10, case by case: "acknowledged means stored exactly once" under disk faults, poison rows, partition
bursts, new spool dirs, concurrent requests, conflicting re-sends, bad instants and oversized items."""
from __future__ import annotations

import datetime as dt
import errno
import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from collector.rowcodec import decode_lines, encode_events, event_line, event_records, fingerprint
from collector.spool import KIND_EVENTS, KIND_EVENTS_TEXT, Spool, SpoolFull, SpoolUnavailable, encode_record
from collector.writer import Writer, plan
from tests.support.faults import store_outage
from tests.support.tools import missing


def row(i, prefix="x", day=0):
    return [f"{prefix}{i:06d}", "payment.settled", f"c{i}", 1_763_000_000_000 + day * 86_400_000, "s", "", "1.50",
            "EUR", {}]


def records_of(rows):
    lines = [event_line(r) for r in rows]
    return event_records(rows, lines, [fingerprint(ln) for ln in lines])


def read_all(spool: Spool) -> list[str]:
    ids = []
    while (b := spool.next_batch(10**9)) is not None:
        ids += [r[0] for rec in b.records if rec.kind in (KIND_EVENTS, KIND_EVENTS_TEXT)
                for r in decode_lines(rec.payload)]
        spool.commit(b)
    return ids


def stored_ids(store) -> list[str]:
    return [r[0] for r in store.query(f"SELECT EventId FROM {store.table('events')} ORDER BY EventId").rows]


# -- case 1: the spool disk ------------------------------------------------------------------------------------
class FlakyDisk:
    """A file layer that writes at most `chunk` bytes per call and fails with `error` once `budget` is spent."""

    def __init__(self, chunk=7, budget=None, error=errno.ENOSPC):
        self.chunk, self.budget, self.error, self.syncs = chunk, budget, error, 0

    def write(self, fd, data):
        n = min(len(data), self.chunk)
        if self.budget is not None:
            if self.budget <= 0:
                raise OSError(self.error, os.strerror(self.error))
            n = min(n, self.budget)
            self.budget -= n
        return os.write(fd, bytes(data[:n]))

    def sync(self, fd):
        self.syncs += 1
        os.fdatasync(fd)


def flaky(spool: Spool, disk: FlakyDisk) -> Spool:
    spool._write, spool._sync = disk.write, disk.sync
    return spool


def test_short_writes_are_completed_not_ignored(tmp_path):
    spool = flaky(Spool(tmp_path / "sp"), FlakyDisk(chunk=5))
    for i in range(20):
        spool.append(KIND_EVENTS_TEXT, encode_events([row(i)]), day=0)
    spool.close()
    assert read_all(Spool(tmp_path / "sp")) == [f"x{i:06d}" for i in range(20)]


@pytest.mark.parametrize("error", [errno.ENOSPC, errno.EIO])
def test_disk_error_mid_append_is_undone_and_refused(tmp_path, error):
    disk = FlakyDisk(chunk=1000, budget=None, error=error)
    spool = flaky(Spool(tmp_path / "sp"), disk)
    for i in range(5):
        spool.append(KIND_EVENTS_TEXT, encode_events([row(i)]), day=0)
    size = (tmp_path / "sp" / "seg-000000000001.wal").stat().st_size
    disk.budget = 30                                   # the next append tears after 30 bytes
    with pytest.raises(SpoolUnavailable):
        spool.append(KIND_EVENTS_TEXT, encode_events([row(99)]), day=0)
    assert (tmp_path / "sp" / "seg-000000000001.wal").stat().st_size == size   # nothing torn left behind
    assert spool.fault is not None
    disk.budget = None                                 # space comes back: the spool recovers by itself
    for i in range(5, 10):
        spool.append(KIND_EVENTS_TEXT, encode_events([row(i)]), day=0)
    assert spool.fault is None
    spool.close()
    reopened = Spool(tmp_path / "sp")
    assert reopened.truncated_bytes == 0
    assert read_all(reopened) == [f"x{i:06d}" for i in range(10)]


def test_fsync_failure_is_not_acknowledged(tmp_path):
    spool = Spool(tmp_path / "sp")
    spool.append(KIND_EVENTS_TEXT, encode_events([row(0)]), day=0)

    def bad_sync(fd):
        raise OSError(errno.EIO, "I/O error")
    spool._sync = bad_sync
    with pytest.raises(SpoolUnavailable):
        spool.append(KIND_EVENTS_TEXT, encode_events([row(1)]), day=0)
    spool._sync = os.fdatasync
    spool.append(KIND_EVENTS_TEXT, encode_events([row(2)]), day=0)
    assert read_all(spool) == ["x000000", "x000002"]


def test_spool_disk_error_is_503_with_retry_after_and_not_ready(api):
    disk = FlakyDisk(chunk=1 << 20, budget=0)
    flaky(api.ctx.spool, disk)
    body = [{"event_id": "d1", "type": "payment.settled", "correlation_id": "c", "occurred_at": "2026-11-23T10:00:00Z",
             "source": "t"}]
    r = api.post("/api/v1/events", json=body)
    assert r.status_code == 503 and r.headers["Retry-After"] and "No space left" in r.json()["error"]
    rz = api.client.get("/readyz")
    assert rz.status_code == 503 and "spool disk error" in rz.json()["error"]
    assert api.ctx.metrics.spool_write_errors_total._value.get() >= 1
    disk.budget = None                                  # the disk has room again
    r = api.post("/api/v1/events", json=body)
    assert r.status_code == 200 and r.json()["accepted"] == 1
    api.drain()
    assert stored_ids(api.ctx.store) == ["d1"]


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def test_real_full_disk_loses_no_acknowledged_record(tmp_path):
    """A real 256 KiB tmpfs filled by 3 KB appends: every append that returned is readable, before and after a
    restart; the ones refused raise SpoolUnavailable; recovery cuts nothing."""
    mnt = tmp_path / "tiny"
    if not _mount_tmpfs(mnt, "256k"):
        missing("needs root to mount a tmpfs")
    try:
        spool = Spool(mnt / "sp", segment_bytes=1 << 30)
        acked, refused = [], 0
        for i in range(200):
            rows = [row(i * 10 + k, prefix="t") for k in range(10)]
            for r in rows:
                r[8] = {"pad": "p" * 250}
            try:
                spool.append(KIND_EVENTS_TEXT, encode_events(rows), day=0)
                acked += [r[0] for r in rows]
            except SpoolUnavailable:
                refused += 1
        assert refused > 0 and acked
        spool.close()
        reopened = Spool(mnt / "sp", segment_bytes=1 << 30)
        assert reopened.truncated_bytes == 0
        assert read_all(reopened) == acked
        reopened.close()
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_recovery_cuts_only_a_torn_tail_and_says_so(tmp_path, caplog):
    spool = Spool(tmp_path / "sp")
    for i in range(3):
        spool.append(KIND_EVENTS_TEXT, encode_events([row(i)]), day=0)
    spool.close()
    seg = tmp_path / "sp" / "seg-000000000001.wal"
    with open(seg, "ab") as f:                         # a crash mid-append: half a record
        f.write(encode_record(KIND_EVENTS_TEXT, encode_events([row(9)]), 0)[:20])
    with caplog.at_level("WARNING"):
        s2 = Spool(tmp_path / "sp")
    assert s2.truncated_bytes == 20 and "torn bytes" in caplog.text
    assert list((tmp_path / "sp").glob("*.torn-*"))    # the cut bytes are kept for inspection
    assert read_all(s2) == ["x000000", "x000001", "x000002"]


def test_damage_in_the_middle_never_discards_later_records(tmp_path, caplog):
    spool = Spool(tmp_path / "sp")
    for i in range(6):
        spool.append(KIND_EVENTS_TEXT, encode_events([row(i)]), day=0)
    spool.close()
    seg = tmp_path / "sp" / "seg-000000000001.wal"
    data = bytearray(seg.read_bytes())
    rec_len = len(encode_record(KIND_EVENTS_TEXT, encode_events([row(0)]), 0))
    data[2 * rec_len + 15] ^= 0xFF                     # flip a byte inside the third record
    seg.write_bytes(bytes(data))
    with caplog.at_level("WARNING"):
        s2 = Spool(tmp_path / "sp")
        ids = read_all(s2)
    assert s2.truncated_bytes == 0                     # nothing cut at recovery
    assert ids == ["x000000", "x000001", "x000003", "x000004", "x000005"]
    assert s2.skipped_bytes == rec_len and "skipped" in caplog.text


# -- case 2: rows the store cannot take never block the writer -------------------------------------------------
BAD_INSTANTS = ["1969-12-31T23:59:59.500Z", "1899-12-31T23:59:59Z", "0001-01-01T00:00:00Z",
                "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59.999Z", "9999-12-31T23:59:59-01:00",
                "2100-01-01T00:00:00Z"]


def ev(eid, occurred="2026-11-23T10:00:00Z", **kw):
    return {"event_id": eid, "type": "payment.settled", "correlation_id": f"c-{eid}", "occurred_at": occurred,
            "source": "t", **kw}


def test_out_of_range_instants_are_refused_at_the_door(api):
    r = api.post("/api/v1/events", json=[ev(f"b{i}", t) for i, t in enumerate(BAD_INSTANTS)] + [ev("good")])
    assert r.status_code == 200
    body = r.json()
    assert body["accepted"] == 1 and len(body["rejected"]) == len(BAD_INSTANTS)
    assert all(x["field"] == "occurred_at" and "range" in x["error"] for x in body["rejected"])
    api.drain(20)
    assert stored_ids(api.ctx.store) == ["good"]


def span_request(specs):
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    req = ExportTraceServiceRequest()
    ss = req.resource_spans.add().scope_spans.add()
    for i, (start, cid, attrs) in enumerate(specs):
        sp = ss.spans.add(trace_id=(i + 1).to_bytes(16, "big"), span_id=(i + 1).to_bytes(8, "big"), name=f"s{i}",
                          start_time_unix_nano=start, end_time_unix_nano=start)
        sp.attributes.add(key="correlation.id").value.string_value = cid
        for k, v in attrs.items():
            sp.attributes.add(key=k).value.string_value = v
    return req.SerializeToString()


def test_spans_outside_the_range_or_limits_are_rejected_not_stored(api):
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
    ok = 1_763_000_000 * 10**9
    body = span_request([(int(dt.datetime(2300, 1, 1, tzinfo=dt.timezone.utc).timestamp()) * 10**9, "a", {}),
                         (2**64 - 1001, "b", {}), (ok, "c" * 100_000, {}), (ok, "d", {"big": "x" * 70_000}),
                         (ok, "e", {f"k{i}": "v" for i in range(300)}), (ok, "fine", {}),
                         (86_400 * 10**9 + 5, "early", {})])      # 1970-01-02: inside the range, stored
    r = api.post("/v1/traces", content=body, headers={"Content-Type": "application/x-protobuf"})
    resp = ExportTraceServiceResponse.FromString(r.content)
    assert r.status_code == 200 and resp.partial_success.rejected_spans == 5
    api.drain(20)
    rows = api.ctx.store.query(f"SELECT CorrelationId FROM {api.ctx.store.table('spans')} ORDER BY 1").rows
    assert rows == [("early",), ("fine",)]
    assert api.ctx.writer.quarantined == 0


def test_150_days_in_one_batch_are_stored(api_factory):
    api = api_factory("spool: {flush_interval: 2s}")    # one writer batch gets all of them
    start = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    items = [ev(f"p{d:03d}", (start + dt.timedelta(days=d)).isoformat()) for d in range(150)]
    r = api.post("/api/v1/events", json=items)
    assert r.json()["accepted"] == 150
    api.drain(60)
    assert len(stored_ids(api.ctx.store)) == 150
    assert api.ctx.writer.last_error is None


def test_plan_splits_by_partition_deterministically(tmp_path):
    spool = Spool(tmp_path / "sp")
    rows = [row(d, day=d) for d in range(250)]
    spool.append_records(records_of(rows))
    batch = spool.next_batch(10**6)
    inserts = [i for i in plan(batch) if i.kind == KIND_EVENTS_TEXT]
    assert [sum(p.count(b"\n") + 1 for p in i.payloads) for i in inserts] == [100, 100, 50]
    assert len({i.token for i in inserts}) == 3 and all(batch.spool_id in i.token for i in inserts)
    assert [i.token for i in plan(batch)] == [i.token for i in plan(batch)]


def test_poison_row_is_quarantined_and_the_rest_stored(tmp_path, store):
    from revwatch.metrics import Metrics
    spool, metrics = Spool(tmp_path / "sp"), Metrics()
    good = [row(i, prefix="g") for i in range(40)]
    bad = row(0, prefix="bad")
    lines = encode_events(good[:20]) + b"\n" + json.dumps(
        [bad[0], "payment.settled", "c", "not-a-time", "s", "", None, "", {}, ""]).encode() + b"\n" \
        + encode_events(good[20:])
    spool.append(KIND_EVENTS_TEXT, lines, day=0)
    w = Writer(spool, store, metrics)
    w.write_batch(spool.next_batch(10**6))             # never raises, never blocks
    assert stored_ids(store) == sorted(r[0] for r in good)
    q = store.query(f"SELECT Kind, Error, Row FROM {store.table('ingest_quarantine')}").rows
    assert len(q) == 1 and q[0][0] == "event" and "bad000000" in q[0][2] and q[0][1]
    assert metrics.quarantined_total.labels("event")._value.get() == 1
    assert spool.pending_bytes() == 0


def test_readyz_not_ready_while_the_writer_fails(api):
    from revwatch.store import StoreError
    real = api.ctx.store.insert_lines

    def refuse(*a, **kw):
        raise StoreError("Code: 252. DB::Exception: Too many parts (TOO_MANY_PARTS)")
    api.ctx.store.insert_lines = refuse
    api.ctx.writer.unhealthy_after = 0.2
    try:
        assert api.post("/api/v1/events", json=[ev("w1")]).status_code == 200
        deadline = time.time() + 10
        while time.time() < deadline and api.client.get("/readyz").status_code == 200:
            time.sleep(0.1)
        rz = api.client.get("/readyz")
        assert rz.status_code == 503 and "writer failing" in rz.json()["error"]
        assert api.ctx.writer.quarantined == 0          # a transient refusal is retried, never quarantined
    finally:
        api.ctx.store.insert_lines = real
    api.drain(60)
    assert api.client.get("/readyz").status_code == 200
    assert stored_ids(api.ctx.store) == ["w1"]


# -- case 3: dedup tokens unique per spool for ever -------------------------------------------------------------
def test_new_spool_dir_on_an_old_store_stores_everything(tmp_path, store):
    first, second = Spool(tmp_path / "a"), Spool(tmp_path / "b")
    assert first.spool_id != second.spool_id
    for spool, prefix in ((first, "a"), (second, "b")):       # same byte sizes: the old tokens collided
        rows = [row(i, prefix=prefix) for i in range(10)]
        spool.append_records(records_of(rows))
        Writer(spool, store).write_batch(spool.next_batch(10**6))
    assert len(stored_ids(store)) == 20
    assert Spool(tmp_path / "a").spool_id == first.spool_id     # the identity survives restarts


# -- case 4: group commit; ingest never reads the store ---------------------------------------------------------
def test_concurrent_appends_share_fsyncs_and_all_are_durable(tmp_path):
    disk = FlakyDisk(chunk=1 << 20)
    slow_sync = disk.sync

    def sync(fd):
        time.sleep(0.005)                               # a disk where fsync costs something
        slow_sync(fd)
    spool = Spool(tmp_path / "sp")
    spool._write, spool._sync = disk.write, sync
    n_threads, per = 16, 20

    def worker(t):
        for i in range(per):
            spool.append(KIND_EVENTS_TEXT, encode_events([row(t * 1000 + i)]), day=0)
    threads = [threading.Thread(target=worker, args=(t,)) for t in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert spool.records_committed == n_threads * per
    assert disk.syncs < n_threads * per / 2             # shared: far fewer fsyncs than appends
    assert sorted(read_all(Spool(tmp_path / "sp"))) == sorted(f"x{t * 1000 + i:06d}" for t in range(n_threads)
                                                             for i in range(per))


def test_ingest_path_never_queries_the_store(api):
    calls = []
    real = api.ctx.store.query
    background = {"alert-dispatcher", "slo-evaluator", "revwatch-keys-refresh", "revwatch-deadletters"}  # timers

    def counting(*a, **kw):
        if threading.current_thread().name not in background:
            calls.append(a)
        return real(*a, **kw)
    api.ctx.store.query = counting
    try:
        for k in range(3):
            assert api.post("/api/v1/events", json=[ev(f"q{k}-{i}") for i in range(50)]).status_code == 200
        assert api.post("/api/v1/events", json=[ev("q0-1")]).json()["duplicates"] == 1
    finally:
        api.ctx.store.query = real
    assert calls == []


# -- case 5: conflicts --------------------------------------------------------------------------------------------
def test_resend_with_different_content_is_a_conflict(api):
    assert api.post("/api/v1/events", json=[ev("k1", amount="10.00", currency="EUR")]).json()["accepted"] == 1
    r = api.post("/api/v1/events", json=[ev("k1", amount="99.00", currency="EUR"), ev("k2")])
    body = r.json()
    assert r.status_code == 200 and body["accepted"] == 1 and body["duplicates"] == 0
    assert body["conflicts"][0]["index"] == 0 and body["conflicts"][0]["event_id"] == "k1"
    r = api.post("/api/v1/events", json=[ev("k1", amount="98.00", currency="EUR")])
    assert r.status_code == 409 and r.json()["field"] == "event_id"
    api.drain()
    api.ctx.intake.recent_events = type(api.ctx.intake.recent_events)(100)     # after a restart
    api.ctx.intake.remember_stored(3600)
    assert len(api.post("/api/v1/events", json=[ev("k1", amount="97.00", currency="EUR")]).json()["conflicts"]) == 1
    assert api.ctx.metrics.conflicts_total._value.get() == 3
    amounts = api.ctx.store.query(f"SELECT Amount FROM {api.ctx.store.table('events')} WHERE EventId = 'k1'").rows
    assert [str(a[0]) for a in amounts] == ["10"] or [str(a[0]) for a in amounts] == ["10.000000000"]


# -- case 6: bad instants on every route -------------------------------------------------------------------------
SLO_CFG = """
journeys: {p2p: {start: payment.settled, end: payment.posted}}
slos:
  - {name: pp, journey: p2p, objective: 0.99, window: 1d, sli: {kind: journey_latency, threshold: 15m}}
"""


@pytest.mark.parametrize("instant", BAD_INSTANTS)
def test_year_edge_instants_are_400_on_every_route(api_factory, instant):
    api = api_factory(SLO_CFG)
    gets = [("/api/v1/slos", "at"), ("/api/v1/slos/pp", "at"), ("/api/v1/anomalies", "since"),
            ("/api/v1/journeys", "since"), ("/api/v1/journeys", "until")]
    for path, param in gets:
        r = api.get(path, params={param: instant})
        assert r.status_code == 400 and r.json()["field"] == param, (path, param, r.status_code, r.text[:200])
    alert = {"status": "firing", "labels": {"alertname": "x"}, "startsAt": instant}
    r = api.post("/api/v1/alerts/alertmanager", json={"status": "firing", "alerts": [alert]})
    assert r.status_code == 400 and r.json()["field"] == "alerts.0.startsAt"
    alert = {"status": "resolved", "labels": {"alertname": "x"}, "startsAt": "2026-11-23T10:00:00Z",
             "endsAt": instant}
    r = api.post("/api/v1/alerts/alertmanager", json={"status": "resolved", "alerts": [alert]})
    if not instant.startswith("0001-"):                 # 0001-01-01… is Alertmanager's "no end"
        assert r.status_code == 400 and r.json()["field"] == "alerts.0.endsAt"
    r = api.post("/api/v1/events", json=[ev("e", instant)])
    assert r.status_code == 400 and r.json()["field"] == "occurred_at"


def test_deeply_nested_bodies_are_400(api):
    deep = b"[" * 100_000 + b"]" * 100_000
    r = api.post("/api/v1/alerts/alertmanager", content=b'{"alerts": ' + deep + b"}",
                 headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["field"] == "body"
    r = api.post("/api/v1/events", content=deep, headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    r = api.post("/v1/traces", content=b'{"resourceSpans": ' + deep + b"}",
                 headers={"Content-Type": "application/json"})
    assert r.status_code == 400


# -- case 7: limits and bounds ---------------------------------------------------------------------------------
def test_size_limits_agree_with_the_lookup_route(api):
    from collector.limits import MAX_ATTR_VALUE, MAX_EVENT_ATTRIBUTES, MAX_ID
    too_long = "c" * (MAX_ID + 1)
    items = [{**ev("l1"), "correlation_id": too_long},
             {**ev("l2"), "attributes": {"v": "x" * (MAX_ATTR_VALUE + 1)}},
             {**ev("l3"), "attributes": {f"k{i}": "v" for i in range(MAX_EVENT_ATTRIBUTES + 1)}},
             {**ev("l4"), "attributes": {"k" * 300: "v"}},
             {**ev("ok"), "correlation_id": "c" * MAX_ID}]
    body = api.post("/api/v1/events", json=items).json()
    assert body["accepted"] == 1 and [x["index"] for x in body["rejected"]] == [0, 1, 2, 3]
    api.drain()
    assert api.get(f"/api/v1/journeys/{'c' * MAX_ID}").status_code == 200       # what ingest takes, lookup finds
    assert api.get(f"/api/v1/journeys/{too_long}").status_code == 400


def test_a_huge_invalid_array_gets_a_bounded_reply(api):
    r = api.post("/api/v1/events", json=[{"nope": i} for i in range(5000)])
    body = r.json()
    assert r.status_code == 400 and len(body["rejected"]) == 1000 and body["rejected_total"] == 5000


def test_events_route_in_flight_bound_answers_429(api, monkeypatch):
    from collector import routes
    monkeypatch.setattr(routes, "EVENTS_INFLIGHT", routes.InflightBudget(max_requests=1, max_bytes=1 << 20))
    assert routes.EVENTS_INFLIGHT.try_acquire(10)       # someone else is in flight
    r = api.post("/api/v1/events", json=[ev("i1")])
    assert r.status_code == 429 and r.headers["Retry-After"] and r.json()["error"]
    routes.EVENTS_INFLIGHT.release(10)
    assert api.post("/api/v1/events", json=[ev("i1")]).status_code == 200


def test_spool_full_still_refuses_with_503(tmp_path):
    with pytest.raises(SpoolFull):
        Spool(tmp_path / "small", max_bytes=10).append(KIND_EVENTS, b'["x"]')


def test_a_read_that_would_wait_too_long_is_503_and_ingest_unaffected(api_factory):
    api = api_factory(SLO_CFG)
    store = api.ctx.store
    slots = []
    while store.read_slots.acquire(timeout=0):    # every read slot busy (long reads in progress)
        slots.append(1)
    store.read_wait = 0.2
    try:
        r = api.get("/api/v1/slos")
        assert r.status_code == 503 and r.headers["Retry-After"] and "busy" in r.json()["error"]
        assert api.post("/api/v1/events", json=[ev("busy1")]).status_code == 200   # ingest never waits on reads
        assert api.client.get("/readyz").json()["store"] in ("busy", "ok")
    finally:
        for _ in slots:
            store.read_slots.release()
    assert api.ctx.metrics.store_reads_refused_total._value.get() >= 1
    assert api.get("/api/v1/slos").status_code == 200


def test_writer_health_reports_a_stall_and_a_dead_thread(tmp_path, store):
    spool = Spool(tmp_path / "sp")
    w = Writer(spool, store)
    assert w.health_problem() is None
    spool.append_records(records_of([row(1)]))
    w.stall_after = 0.0
    w.last_progress -= 1
    assert "stalled" in w.health_problem()
    w.write_batch(spool.next_batch(10**6))             # progress clears it
    assert w.health_problem() is None
    w._thread = threading.Thread(target=lambda: None)
    w._thread.start()
    w._thread.join()
    assert "not running" in w.health_problem()


def test_edges_inside_the_range_are_answered_on_every_route(api_factory):
    api = api_factory(SLO_CFG)
    for instant in ("1970-01-01T00:00:00Z", "2099-12-31T23:59:59.999+00:00"):
        for path, param in (("/api/v1/slos", "at"), ("/api/v1/slos/pp", "at"), ("/api/v1/anomalies", "since"),
                            ("/api/v1/journeys", "since"), ("/api/v1/journeys", "until")):
            r = api.get(path, params={param: instant})
            assert r.status_code == 200, (path, param, instant, r.text[:200])
        r = api.post("/api/v1/events", json=[ev(f"edge-{instant[:4]}", instant)])
        assert r.status_code == 200 and r.json()["accepted"] == 1
    api.drain(30)
    assert stored_ids(api.ctx.store) == ["edge-1970", "edge-2099"]


def test_full_spool_disk_end_to_end_every_acknowledged_event_stored(api_factory, tmp_path):
    """The issue's scenario: a small spool disk (real tmpfs) fills while the store is down. Every 200 is stored
    exactly once, refusals are 503 + Retry-After, and once the store is back the spool frees its disk and accepts
    again with no operator action."""
    mnt = tmp_path / "spooldisk"
    if not _mount_tmpfs(mnt, "2m"):
        missing("needs root to mount a tmpfs")
    try:
        api = api_factory({"spool": {"dir": str(mnt / "spool")}})       # the default spool settings
        with store_outage(api.ctx.store, ConnectionError("down")):
            acked, refused = [], 0
            pad = {"note": "x" * 2000}
            for k in range(120):
                batch = [ev(f"f{k}-{i}", attributes=pad) for i in range(10)]
                r = api.post("/api/v1/events", json=batch)
                if r.status_code == 200:
                    acked += [e["event_id"] for e in batch]
                else:
                    assert r.status_code == 503 and r.headers["Retry-After"], r.text
                    refused += 1
            assert refused and acked
            assert api.client.get("/readyz").status_code == 503
        api.drain(120)
        assert sorted(stored_ids(api.ctx.store)) == sorted(acked)
        more = [ev(f"after-{i}", attributes=pad) for i in range(300)]      # the disk was freed: room again
        for i in range(0, 300, 10):
            assert api.post("/api/v1/events", json=more[i:i + 10]).status_code == 200
        api.drain(120)
        assert len(stored_ids(api.ctx.store)) == len(acked) + 300
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_an_old_spool_is_read_and_converted(tmp_path, store):
    """A spool written by the previous version (checkpoint.json, records without their day) drains as before."""
    d = tmp_path / "old"
    d.mkdir()
    legacy = [row(i, prefix="o", day=i * 40) for i in range(5)]         # 160 days apart: split by partition too
    payload = b"\n".join(json.dumps(r[:3] + [f"{r[3] // 1000}.{r[3] % 1000:03d}"] + r[4:]).encode() for r in legacy)
    (d / "seg-000000000001.wal").write_bytes(encode_record(KIND_EVENTS, payload))
    (d / "checkpoint.json").write_text('{"segment": 1, "offset": 0, "pending_end": null}')
    spool = Spool(d)
    assert (d / "checkpoint.bin").exists() and not (d / "checkpoint.json").exists()
    Writer(spool, store).write_batch(spool.next_batch(10**6))
    assert stored_ids(store) == [r[0] for r in legacy]


# -- small-request ingest: the writer batches a trickle, the event loop never blocks on the spool ---------------
def test_a_trickle_of_small_appends_becomes_few_inserts_and_a_bulk_load_never_waits(tmp_path, store):
    spool = Spool(tmp_path / "sp")
    w = Writer(spool, store, flush_interval=0.4)
    w.start()
    try:
        for i in range(60):                              # 60 one-event appends over ~1.2 s
            spool.append_records(records_of([row(i)]))
            time.sleep(0.02)
        deadline = time.time() + 10
        while spool.pending_bytes() and time.time() < deadline:
            time.sleep(0.02)
        assert len(stored_ids(store)) == 60
        assert w.batches_written <= 6, w.batches_written   # one insert per append would be 60
        w.flush_interval = 30.0                          # a trickle would now wait 30 s …
        spool.append_records(records_of([row(1, prefix="t")]))
        t0 = time.monotonic()
        spool.append_records(records_of([row(1000 + i, prefix="b") for i in range(12_000)]))   # … > 1 MiB does not
        while spool.pending_bytes() and time.monotonic() - t0 < 20:
            time.sleep(0.01)
        assert time.monotonic() - t0 < 10
        assert len(stored_ids(store)) == 12_061
    finally:
        w.stop()


def test_coroutine_appends_share_fsyncs_and_never_block_the_loop(tmp_path):
    import asyncio
    disk = FlakyDisk(chunk=1 << 20)
    real_sync = disk.sync

    def slow_sync(fd):
        time.sleep(0.01)                                 # each fsync costs 10 ms
        real_sync(fd)
    spool = Spool(tmp_path / "sp")
    spool._write, spool._sync = disk.write, slow_sync

    async def main():
        ticks = 0

        async def ticker():                              # the loop keeps running while appends wait for fsync
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.001)
        t = asyncio.create_task(ticker())
        await asyncio.gather(*[spool.submit_records(records_of([row(i)])) for i in range(200)])
        t.cancel()
        return ticks
    ticks = asyncio.run(main())
    assert spool.records_committed == 200 and disk.syncs < 50      # group commit: far fewer fsyncs than appends
    assert ticks >= disk.syncs                                      # the loop ran during the syncs
    assert sorted(read_all(Spool(tmp_path / "sp"))) == [f"x{i:06d}" for i in range(200)]


async def _append_async(spool, rows):
    await spool.submit_records(records_of(rows))


def test_a_coroutine_append_on_a_failing_disk_raises_and_leaves_nothing(tmp_path):
    import asyncio
    spool = Spool(tmp_path / "sp")
    spool._write = FlakyDisk(budget=10).write
    with pytest.raises(SpoolUnavailable):
        asyncio.run(_append_async(spool, [row(1)]))
    spool._write = os.write
    asyncio.run(_append_async(spool, [row(2)]))
    assert read_all(Spool(tmp_path / "sp")) == ["x000002"]


def test_a_request_cancelled_while_its_append_is_queued_is_settled_by_the_append(tmp_path):
    """The append lands anyway; its event ID must then be remembered, so a retry is a duplicate (not stored twice)
    and a different version a conflict (the first one is what is on disk)."""
    import asyncio
    from collector.intake import Intake
    from revwatch.metrics import Metrics
    spool = Spool(tmp_path / "sp")
    real_sync = spool._sync

    def slow_sync(fd):
        time.sleep(0.3)
        real_sync(fd)
    spool._sync = slow_sync
    intake = Intake(spool, None, Metrics())

    async def main():
        first = asyncio.create_task(intake.accept_event_rows_async([row(1)], [0]))
        await asyncio.sleep(0.05)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        await asyncio.sleep(0.6)                      # the append completes meanwhile
        same = await intake.accept_event_rows_async([row(1)], [0])
        other = row(1)
        other[6] = "2.00"
        changed = await intake.accept_event_rows_async([other], [0])
        return same, changed
    same, changed = asyncio.run(main())
    assert (same.accepted, same.duplicates) == (0, 1)
    assert changed.accepted == 0 and len(changed.conflicts) == 1
    spool._sync = real_sync
    assert read_all(Spool(tmp_path / "sp")) == ["x000001"]              # on disk once, the first version

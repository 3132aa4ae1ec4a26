"""Durability: a 2xx means on disk; store outages, a bounded spool, crash replay and SIGKILL lose nothing and
duplicate nothing."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import httpx
import pytest

from collector.rowcodec import decode_lines, encode_events
from collector.spool import KIND_EVENTS_TEXT, Spool, SpoolFull
from collector.writer import Writer
from tests.support.servers import free_port, revwatch_cmd
from tests.support.faults import store_outage
from tests.support.servers import start_serve
from tests.support.waits import until


def events(n, prefix="e"):
    return [{"event_id": f"{prefix}{i}", "type": "payment.settled", "correlation_id": f"{prefix}c{i}",
             "occurred_at": "2026-11-23T10:00:00Z", "source": "test"} for i in range(n)]


def counts(store):
    t = store.table("events")
    return store.query(f"SELECT count(), uniqExact(EventId) FROM {t}").rows[0]


def test_store_outage_then_recovery_exact_counts(api):
    store = api.ctx.store
    with store_outage(store, ConnectionError("simulated outage")):
        for k in range(5):
            r = api.post("/api/v1/events", json=events(20, prefix=f"b{k}-"))
            assert r.status_code == 200 and r.json()["accepted"] == 20
        r = api.client.get("/readyz")
        assert r.status_code == 503 and r.json()["store"] == "unreachable"
        until(lambda: api.ctx.writer.last_error is not None, 10, "the writer's failed attempt recorded")
        assert api.ctx.spool.pending_bytes() > 0
    api.drain(60)
    assert counts(store) == (100, 100)
    assert api.ctx.metrics.store_write_errors_total._value.get() >= 1


def test_full_spool_refuses_with_503_and_loses_nothing(api_factory):
    api = api_factory("spool: {max_bytes: 3000}")
    accepted, refused = 0, 0
    with store_outage(api.ctx.store, ConnectionError("down")):
        for k in range(20):
            r = api.post("/api/v1/events", json=events(5, prefix=f"f{k}-"))
            if r.status_code == 200:
                accepted += r.json()["accepted"]
            else:
                assert r.status_code == 503 and r.headers["Retry-After"] and "spool full" in r.json()["error"]
                refused += 1
        assert refused > 0 and accepted > 0
        assert api.client.get("/readyz").status_code == 503
    api.drain(60)
    assert counts(api.ctx.store) == (accepted, accepted)


def test_crash_between_insert_and_commit_replays_exactly_once(tmp_path, store):
    spool = Spool(tmp_path / "sp")
    rows = [[f"x{i}", "payment.settled", f"c{i}", 1_700_000_000_000, "s", "", "1.50", "EUR", {}] for i in range(50)]
    spool.append(KIND_EVENTS_TEXT, encode_events(rows[:25]))
    spool.append(KIND_EVENTS_TEXT, encode_events(rows[25:]))
    batch = spool.next_batch(10_000)
    # simulate a crash: the batch reached ClickHouse but the checkpoint was never committed
    spool.begin(batch)
    from collector.writer import TABLES, plan
    for ins in plan(batch):
        store.insert_lines(*TABLES[ins.kind], ins.payloads, dedup_token=ins.token)
    spool.close()
    spool2 = Spool(tmp_path / "sp")                    # restart
    replay = spool2.next_batch(10_000)
    assert (replay.start, replay.end) == (batch.start, batch.end)
    Writer(spool2, store).write_batch(replay)
    assert spool2.next_batch(10_000) is None
    assert counts(store) == (50, 50)
    ms = store.query(f"SELECT count() FROM {store.table('milestones')}").scalar()
    assert ms == 50                                    # the materialized view was deduplicated too


def test_torn_tail_is_cut_and_segments_roll(tmp_path):
    spool = Spool(tmp_path / "sp", segment_bytes=200)
    for i in range(5):
        spool.append(KIND_EVENTS_TEXT, encode_events([[f"id{i}", "a.b", "c", 1, "s", "", None, "", {}]]))
    spool.close()
    segs = sorted((tmp_path / "sp").glob("seg-*.wal"))
    assert len(segs) >= 2
    with open(segs[-1], "ab") as f:                    # a crash mid-append: half a record
        f.write(b"\x40\x00\x00\x00\x01\x02")
    spool2 = Spool(tmp_path / "sp", segment_bytes=200)
    seen = []
    while (b := spool2.next_batch(1)) is not None:
        seen += [r[0] for rec in b.records for r in decode_lines(rec.payload)]
        spool2.commit(b)
    assert seen == [f"id{i}" for i in range(5)]
    assert spool2.pending_bytes() == 0
    with pytest.raises(SpoolFull):
        Spool(tmp_path / "small", max_bytes=10).append(KIND_EVENTS_TEXT, b'["x"]')


KILL_CONFIG = """
store: {{dsn: 'chdb://{tmp}/data'}}
server: {{host: 127.0.0.1, port: {port}}}
spool: {{dir: '{tmp}/spool', flush_interval: 2s, batch_rows: 100000}}
evaluator: {{enabled: false}}
"""


def test_kill_9_then_restart_every_acknowledged_event_once(tmp_path):
    port = free_port()
    cfg = tmp_path / "rw.yaml"
    cfg.write_text(KILL_CONFIG.format(tmp=tmp_path, port=port))
    key = revwatch_cmd("keys", "create", "--scope", "admin", "--config", str(cfg)).stdout.strip().split()[-1]
    base = f"http://127.0.0.1:{port}"

    def start():
        return start_serve(cfg, base, 20)

    p = start()
    acked = 0
    hdr = {"Authorization": f"Bearer {key}"}
    for k in range(30):
        r = httpx.post(base + "/api/v1/events", json=events(50, prefix=f"k{k}-"), headers=hdr, timeout=10)
        assert r.status_code == 200
        acked += r.json()["accepted"]
    os.kill(p.pid, signal.SIGKILL)                     # flush interval 2 s: most of it is only in the spool
    p.wait()
    p = start()
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            r = httpx.get(base + "/readyz", timeout=5).json()
            if r["spool_bytes"] == 0:
                break
            time.sleep(0.2)
        # re-sending after the crash is recognised as duplicates (the store knows them)
        r = httpx.post(base + "/api/v1/events", json=events(50, prefix="k0-"), headers=hdr, timeout=10)
        assert r.json()["duplicates"] == 50
    finally:
        p.terminate()
        p.wait(30)
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        from revwatch.store import open_store
        s = open_store("chdb://{tmp_path}/data", "revwatch")
        print(s.query("SELECT count(), uniqExact(EventId) FROM revwatch.events").rows[0])
    """)], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == f"({acked}, {acked})", out.stderr

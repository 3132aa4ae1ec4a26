"""Issue #27: the spool on small disks, a /readyz that tells the truth about ingest, and Retry-After hints the
OpenTelemetry SDK can honour. Real tmpfs filesystems (root only) stand in for small and full spool disks."""
from __future__ import annotations

import errno
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from collector.spool import KIND_EVENTS_TEXT, Spool, SpoolTooSmall
from collector.rowcodec import encode_events
from revwatch.ingest import retry_after_hint
from tests.support.faults import store_outage
from tests.support.servers import free_port, live_server, revwatch_cmd
from tests.support.tools import missing


def ev(eid, **kw):
    return {"event_id": eid, "type": "payment.settled", "correlation_id": f"c-{eid}",
            "occurred_at": "2026-11-23T10:00:00Z", "source": "t", **kw}


def stored_ids(store) -> list[str]:
    return [r[0] for r in store.query(f"SELECT EventId FROM {store.table('events')} ORDER BY EventId").rows]


@pytest.fixture
def tmpfs(tmp_path):
    """Mount tmpfs filesystems of a given size under tmp_path (skips without root); unmounted afterwards."""
    mounts: list[Path] = []

    def mount(size: str) -> Path:
        if os.geteuid() != 0:
            missing("needs root to mount a tmpfs")
        path = tmp_path / f"fs{len(mounts)}"
        path.mkdir()
        if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode:
            missing("cannot mount a tmpfs here")
        mounts.append(path)
        return path
    yield mount
    for path in mounts:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(path: Path) -> Path:
    """Fill the filesystem of `path` with one file until it refuses (ENOSPC); returns the file."""
    filler = path / "filler"
    with open(filler, "wb", buffering=0) as f:
        chunk = b"\0" * 4096
        try:
            while True:
                f.write(chunk)
        except OSError as e:
            assert e.errno == errno.ENOSPC
    return filler


def wait_ready(api, want: int, timeout: float = 60.0):
    deadline = time.time() + timeout
    while True:
        r = api.client.get("/readyz")
        if r.status_code == want or time.time() > deadline:
            return r
        time.sleep(0.1)


# -- reclaim on a disk smaller than the default thresholds -------------------------------------------------------
def test_default_config_streams_many_times_a_2_mib_disk_through_it(api_factory, tmpfs):
    """The default spool settings (64 MiB segments, 1 GiB bound) on a 2 MiB filesystem under continuous traffic
    (the current segment is never exactly drained when an append comes): ~12 MB go through, every event is
    stored, and a 503 (the sender outran the store and met a full disk) clears within moments, never for good.
    The fill-while-the-store-is-down case is test_collector_faults.py::test_full_spool_disk_end_to_end…"""
    mnt = tmpfs("2m")
    api = api_factory({"spool": {"dir": str(mnt / "spool")}})
    assert api.ctx.spool.segment_bytes == 64 * 1024**2 and api.ctx.spool.max_bytes == 1024**3   # the defaults
    pad = {"note": "x" * 2000}
    total, retries = 0, 0
    deadline = time.time() + 120
    for k in range(600):            # ~12 MB through a 2 MiB disk: only possible if stored segments are reclaimed
        batch = [ev(f"after{k:04d}-{i}", attributes=pad) for i in range(10)]
        while (r := api.post("/api/v1/events", json=batch)).status_code == 503:   # a sender faster than the
            assert time.time() < deadline, r.text                                # store meets a full disk
            retries += 1                                                         # for a moment, never for good
            time.sleep(0.05)
        assert r.status_code == 200, r.text
        total += 10
    api.drain(120)
    assert len(stored_ids(api.ctx.store)) == total


def test_a_spool_dir_that_cannot_hold_one_segment_is_refused_at_start(tmpfs, tmp_path):
    mnt = tmpfs("64k")
    with pytest.raises(SpoolTooSmall, match="needs at least"):
        Spool(mnt / "sp")
    cfg = tmp_path / "rw.yaml"
    cfg.write_text(f"store: {{dsn: 'chdb://{tmp_path}/data'}}\nserver: {{port: {free_port()}}}\n"
                   f"spool: {{dir: '{mnt}/spool'}}\nevaluator: {{enabled: false}}\n")
    out = revwatch_cmd("serve", "--config", str(cfg), timeout=120)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2, out.stderr[-2000:]
    assert len(lines) == 1 and "spool.dir" in lines[0] and "KiB" in lines[0] and "Traceback" not in out.stderr


def test_a_full_disk_with_a_stored_segment_reclaims_it_on_demand(tmpfs):
    """Another tenant fills the disk; the current segment (below the reclaim threshold) is entirely stored: the
    append that meets ENOSPC frees it and succeeds instead of being refused."""
    mnt = tmpfs("1m")
    spool = Spool(mnt / "sp")
    rows = [[f"r{i}", "payment.settled", f"c{i}", 1_763_000_000_000, "s", "", "1.50", "EUR", {"p": "x" * 300}]
            for i in range(20)]
    spool.append(KIND_EVENTS_TEXT, encode_events(rows), day=0)
    while (b := spool.next_batch(10**6)) is not None:      # "stored"
        spool.commit(b)
    assert spool._write_size < spool.reclaim_bytes
    fill(mnt)
    spool.append(KIND_EVENTS_TEXT, encode_events(rows[:2]), day=0)
    assert spool.fault is None
    spool.close()


# -- /readyz: not ready exactly while ingest would be refused, ready again by itself ---------------------------
def test_readyz_spool_full_and_ready_again_by_itself(api_factory):
    api = api_factory("spool: {max_bytes: 20000}")
    with store_outage(api.ctx.store, ConnectionError("down")):
        k = 0
        while api.post("/api/v1/events", json=[ev(f"full{k}-{i}") for i in range(5)]).status_code == 200:
            k += 1
        rz = api.client.get("/readyz")
        assert rz.status_code == 503 and "spool full" in rz.json()["error"] and rz.headers["Retry-After"]
    rz = wait_ready(api, 200)
    assert rz.status_code == 200 and rz.json()["status"] == "ready"


def test_readyz_spool_disk_full_stays_not_ready_without_traffic_and_recovers(api_factory, tmpfs):
    """The store is fine; another file fills the spool's disk. Not ready for as long as that lasts — also when no
    ingest has been tried for a while (the old check forgot the disk error after 10 s) — and ready again once
    there is room, with no request needed."""
    mnt = tmpfs("2m")
    api = api_factory({"spool": {"dir": str(mnt / "spool")}})
    assert api.client.get("/readyz").status_code == 200
    filler = fill(mnt)
    r = api.post("/api/v1/events", json=[ev(f"d{i}", attributes={"n": "x" * 3000}) for i in range(10)])
    assert r.status_code == 503
    api.ctx.spool.fault_at = time.monotonic() - 60       # a minute without ingest attempts
    rz = api.client.get("/readyz")
    assert rz.status_code == 503 and "spool disk" in rz.json()["error"], rz.text
    filler.unlink()
    rz = api.client.get("/readyz")
    assert rz.status_code == 200, rz.text
    assert api.post("/api/v1/events", json=[ev("after")]).status_code == 200


def test_readyz_spool_disk_error_is_probed_until_the_disk_writes_again(api):
    state = {"broken": True}
    real_write = api.ctx.spool._write

    def write(fd, data):
        if state["broken"]:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real_write(fd, data)
    api.ctx.spool._write = write
    assert api.post("/api/v1/events", json=[ev("io1")]).status_code == 503
    api.ctx.spool.fault_at = time.monotonic() - 60       # long after the error, no ingest since
    rz = api.client.get("/readyz")
    assert rz.status_code == 503 and "spool disk error" in rz.json()["error"]
    state["broken"] = False
    assert api.client.get("/readyz").status_code == 200    # the probe write succeeded: ready, no request needed
    assert api.post("/api/v1/events", json=[ev("io2")]).status_code == 200
    api.drain()
    assert stored_ids(api.ctx.store) == ["io2"]


# -- Retry-After ---------------------------------------------------------------------------------------------------
def test_retry_after_hints_are_short_whole_seconds_and_jittered():
    values = [int(retry_after_hint()) for _ in range(200)]
    assert set(values) == {1, 2, 3}
    from collector.spool import SpoolFull, SpoolUnavailable
    for exc in (SpoolFull("x"), SpoolUnavailable("x")):
        drawn = {int(exc.retry_after) for _ in range(200)}
        assert len(drawn) > 1 and max(drawn) <= 5 and min(drawn) >= 1


def test_real_otel_sdk_on_default_settings_loses_nothing_across_a_4_s_spool_outage(api):
    """The OpenTelemetry SDK's OTLP/HTTP exporter with its defaults (10 s timeout, honours Retry-After and gives
    up when the hint is longer than the time left): spans exported while the spool's disk refuses writes for 4 s
    all arrive once it is back."""
    spool = api.ctx.spool
    real_write = spool._write
    outage_until = [0.0]
    refused = [0]

    def write(fd, data):
        if time.monotonic() < outage_until[0]:
            refused[0] += 1
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)
    spool._write = write
    with live_server(api.client.app) as base:
        exporter = OTLPSpanExporter(endpoint=f"{base}/v1/traces", headers=api.auth("ingest"))
        tp = TracerProvider(resource=Resource.create({"service.name": "gw"}))
        tp.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = tp.get_tracer("t")
        outage_until[0] = time.monotonic() + 4.0
        threads = []
        for i in range(3):
            def one(i=i):
                with tracer.start_as_current_span(f"op{i}", attributes={"correlation.id": f"otel-outage-{i}"}):
                    pass
            t = threading.Thread(target=one)
            t.start()
            threads.append(t)
            time.sleep(0.5)                 # spans spread over the 4 s outage: the OTLP exporter retries on its own
                                            # (real-time) schedule, which is what is tested
        for t in threads:
            t.join(30)
        tp.shutdown()
    assert refused[0] >= 3
    api.drain()
    rows = api.ctx.store.query(f"SELECT SpanName FROM {api.ctx.store.table('spans')} ORDER BY SpanName").rows
    assert [r[0] for r in rows] == ["op0", "op1", "op2"]

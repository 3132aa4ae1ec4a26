"""The durable spool: an fsync'd write-ahead log of accepted rows, drained into ClickHouse by the writer.

Promise: a 2xx is sent only after the bytes of its records are entirely in the segment file and fdatasync'd, so
an acknowledged item survives a crash of the process, an unreachable store or a full disk. Layout:

    spool.id               this spool's identity (random, written once at creation; part of every dedup token)
    seg-000000000001.wal   records: <u32 length><u32 crc32><u8 kind><payload>
    checkpoint.bin         two fixed 64-byte slots <u64 seq><i64 segment><i64 offset><i64 pending_end|-1><u32 crc>,
                           overwritten in place alternately (the newest valid slot wins): a checkpoint never
                           needs a free block, so the writer can still advance — and free segments — on a full
                           disk. (`checkpoint.json` of older versions is read once and converted.)

A record's kind byte may carry `DAY_FLAG`: its payload then starts with the UTC day (i32, days since 1970-01-01)
every row in it belongs to — the store's daily partition — so the writer can split inserts by partition without
parsing rows. Payloads are JSONCompactEachRow lines (collector.rowcodec).

Invariants:
* Group commit: concurrent appends (threads via `append_records`, coroutines via `submit_records`) queue
  their records; one committer thread writes everything queued with one write loop and one fdatasync, then tells
  every caller. Every caller returns only after its own bytes were synced, or raises — a shared fsync never
  weakens the promise.
* A failed write or sync (ENOSPC, EIO, a short write that cannot complete) is undone: the file is cut back to
  its length before the group, so no torn record ever sits in front of later records. The callers get
  `SpoolUnavailable` (HTTP 503 + Retry-After). If even the cut fails the spool refuses appends until a later
  attempt repairs it (`fault` says why; /readyz reports it).
* Recovery at start cuts only a torn *tail* (bytes after the last valid record that no valid record follows:
  a crash mid-append, never acknowledged), keeps a copy of the cut bytes next to the segment, logs it and counts
  it. Corruption followed by valid records is never cut: the reader skips just the damaged bytes (logged and
  counted) and keeps everything after them.
* The reader hands out batches `[offset, end)` of one segment. Before a batch is written to the store its range
  is recorded as `pending_end`; after a crash the same range is replayed with the same dedup tokens
  (`<spool id>-<segment>-<start>-<end>…`), so ClickHouse drops the part that already landed. The identity makes
  tokens unique for ever: a new spool directory, or several collectors on one store, never collide.
"""
from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import struct
import threading
import time
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, NamedTuple

from revwatch.ingest import IngestRefused

if TYPE_CHECKING:
    from revwatch.metrics import Metrics

log = logging.getLogger("revwatch.spool")

KIND_SPANS, KIND_EVENTS, KIND_EVENT_KEYS = 1, 2, 3
KIND_EVENTS_TEXT = 4                 # event rows followed by the amount exactly as sent (AmountText)
_KINDS = (KIND_SPANS, KIND_EVENTS, KIND_EVENT_KEYS, KIND_EVENTS_TEXT)
DAY_FLAG = 0x80
_HEADER = struct.Struct("<IIB")
_DAY = struct.Struct("<i")
_MAX_RECORD = 1 << 31
_CP = struct.Struct("<Qqqq")
_CP_SLOT = 64


# The least room (free space on the spool's filesystem plus the spool's own files) the spool starts with: below
# it a segment (a quarter of the room, see Spool._derive_sizes) would be smaller than one ordinary batch request.
MIN_ROOM_BYTES = 128 * 1024
# A drained segment is rolled over (and deleted) once it holds this much, or a quarter of the room if less.
RECLAIM_CAP_BYTES = 4 * 1024**2
# /readyz: with less than this free (or below max_bytes, whichever bound is nearer) ingest would be refused.
READY_HEADROOM_BYTES = 64 * 1024
_PROBE = b"\0" * 4096


class SpoolRefused(IngestRefused):
    """The spool cannot take this append now (HTTP 503 + Retry-After); nothing of it was acknowledged."""


class SpoolFull(SpoolRefused):
    """The spool holds max_bytes of data the store has not taken yet."""


class SpoolUnavailable(SpoolFull):
    """The spool's disk refused the write (ENOSPC, EIO, …); the partial write was undone. A SpoolFull, so every
    caller written for the bounded spool (503 + Retry-After, e.g. the Odoo webhook) handles it the same way."""
    retry_after_range = (1, 3)        # a disk error clears (or is repaired) in seconds, not minutes


class SpoolTooSmall(Exception):
    """The spool directory's filesystem cannot hold one segment: refused at start-up (`revwatch serve` exits 2
    with this message) rather than answering 503 to every request for ever."""


def _room_problem(directory: Path, room: int, segment_bytes: int) -> str | None:
    if room >= min(segment_bytes, MIN_ROOM_BYTES):
        return None
    return (f"spool.dir {directory} has room for {room // 1024} KiB (free space plus the spool's own files); it "
            f"needs at least {MIN_ROOM_BYTES // 1024} KiB to hold one segment: give it a larger filesystem or "
            f"point spool.dir elsewhere")


def spool_room_problem(directory: str | os.PathLike, segment_bytes: int) -> str | None:
    """Why a spool in `directory` could not start (its filesystem cannot hold one segment), or None. For a
    start-up check before anything else is opened; creates the directory like the spool would."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    st = os.statvfs(d)
    own = sum(p.stat().st_size for p in d.glob("seg-*.wal"))
    return _room_problem(d, st.f_bavail * st.f_frsize + own, segment_bytes)


class Record(NamedTuple):
    kind: int
    day: int | None          # UTC day of every row in the payload, None for old records without it
    payload: bytes


@dataclass
class Batch:
    spool_id: str
    segment: int
    start: int
    end: int
    records: list[Record]

    @property
    def token(self) -> str:
        """Identity of this batch, stable across replays and unique across spools (the dedup token prefix)."""
        return f"{self.spool_id}-{self.segment}-{self.start}-{self.end}"


def encode_record(kind: int, payload: bytes, day: int | None = None) -> bytes:
    """One record's bytes (header + payload), with the day prefix when `day` is given."""
    if day is not None:
        kind |= DAY_FLAG
        payload = _DAY.pack(day) + payload
    if len(payload) >= _MAX_RECORD:
        raise ValueError("record too large")
    return _HEADER.pack(len(payload), zlib.crc32(payload), kind) + payload


def _record_at(data: bytes | memoryview, pos: int) -> tuple[Record, int] | None:
    """The valid record starting at `pos` and the offset after it, or None (torn, corrupt or not a record)."""
    if pos + _HEADER.size > len(data):
        return None
    length, crc, kind = _HEADER.unpack_from(data, pos)
    end = pos + _HEADER.size + length
    if kind & ~DAY_FLAG not in _KINDS or end > len(data):
        return None
    payload = bytes(data[pos + _HEADER.size:end])
    if zlib.crc32(payload) != crc:
        return None
    if kind & DAY_FLAG:
        if length < _DAY.size:
            return None
        return Record(kind & ~DAY_FLAG, _DAY.unpack_from(payload)[0], payload[_DAY.size:]), end
    return Record(kind, None, payload), end


def _resync(data: bytes | memoryview, pos: int) -> int | None:
    """The first offset after `pos` where a valid record starts, or None (everything after `pos` is damaged)."""
    for q in range(pos + 1, len(data) - _HEADER.size + 1):
        if data[q + 8] & ~DAY_FLAG in _KINDS and _record_at(data, q) is not None:
            return q
    return None


def _seg_name(n: int) -> str:
    return f"seg-{n:012d}.wal"


class _Ticket:
    """One append waiting for the committer: its bytes, and how its caller is told the outcome — a thread blocked
    in `append_records` (done + the condition), or a coroutine awaiting `future` on `loop`."""
    __slots__ = ("data", "done", "error", "loop", "future", "on_done")

    def __init__(self, data: bytes, loop: asyncio.AbstractEventLoop | None = None,
                 future: asyncio.Future | None = None,
                 on_done: Callable[[SpoolRefused | None], None] | None = None):
        self.data, self.done = data, False
        self.error: SpoolRefused | None = None
        self.loop, self.future, self.on_done = loop, future, on_done


def _settle_futures(tickets: list[_Ticket]) -> None:
    """On the tickets' event loop: complete each awaiting coroutine's future (one loop callback per group)."""
    for t in tickets:
        fut = t.future
        if fut is None or fut.done():          # a caller that went away (cancelled) needs no answer
            continue
        if t.error is None:
            fut.set_result(None)
        else:
            fut.set_exception(t.error)


class Spool:
    """Append-only segments plus a checkpoint; group-committed appenders, one reader (the writer thread)."""

    def __init__(self, directory: str | os.PathLike, max_bytes: int = 1024**3, segment_bytes: int = 64 * 1024**2,
                 metrics: Metrics | None = None):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.metrics = metrics
        # File-layer hooks: tests replace them to inject short writes, ENOSPC and EIO.
        self._write = os.write
        self._sync = os.fdatasync
        self._lock = threading.Lock()                       # guards _write_seg/_write_size/_sizes (reader view)
        self._gc = threading.Condition(threading.Lock())     # group commit: queue, committer state, fault
        self._queue: list[_Ticket] = []
        self._queued_bytes = 0
        self._committer: threading.Thread | None = None
        self._closed = False
        self._refused_at: int | None = None                 # pending bytes when an append last did not fit
        self.fault: str | None = None                       # last disk error while appending, None when healthy
        self.fault_at: float | None = None
        self.truncated_bytes = 0
        self.skipped_bytes = 0
        self.groups_committed = 0
        self.records_committed = 0
        self.data_available = threading.Condition(threading.Lock())
        self.spool_id = self._identity()
        self._checkpoint = self._read_checkpoint()
        segs = self._segments()
        self._write_seg = segs[-1] if segs else max(1, self._checkpoint["segment"])
        self._recover_tail(self._write_seg)
        self._fd = os.open(self.dir / _seg_name(self._write_seg), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._write_size = os.fstat(self._fd).st_size
        self._sizes = {s: (self.dir / _seg_name(s)).stat().st_size for s in segs if s != self._write_seg}
        self._fsync_dir()
        room = self.room_bytes()
        problem = _room_problem(self.dir, room, segment_bytes)
        if problem:
            os.close(self._fd)
            os.close(self._cp_fd)
            raise SpoolTooSmall(problem)
        self.roll_bytes = self.reclaim_bytes = 0
        self._derive_sizes(room)

    # -- bookkeeping ----------------------------------------------------------------------------------------
    def _identity(self) -> str:
        """This spool's identity: read, or generated once and made durable before any record is written."""
        p = self.dir / "spool.id"
        if p.exists():
            ident = p.read_text().strip()
            if ident:
                return ident
        ident = f"sp{uuid.uuid4().hex}"
        tmp = self.dir / "spool.id.tmp"
        with open(tmp, "w") as f:
            f.write(ident + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
        self._fsync_dir()
        return ident

    def _segments(self) -> list[int]:
        return sorted(int(p.name[4:16]) for p in self.dir.glob("seg-*.wal"))

    @staticmethod
    def _cp_slot(seq: int, cp: dict) -> bytes:
        pend = cp["pending_end"]
        body = _CP.pack(seq, cp["segment"], cp["offset"], -1 if pend is None else pend)
        return (body + struct.pack("<I", zlib.crc32(body))).ljust(_CP_SLOT, b"\0")

    def _read_checkpoint(self) -> dict:
        """The newest valid checkpoint slot; created (preallocated) on first use."""
        p = self.dir / "checkpoint.bin"
        if not p.exists():
            legacy = self.dir / "checkpoint.json"
            cp = json.loads(legacy.read_text()) if legacy.exists() else {"segment": 1, "offset": 0,
                                                                          "pending_end": None}
            tmp = self.dir / "checkpoint.bin.tmp"
            with open(tmp, "wb") as f:
                f.write(self._cp_slot(1, cp) + self._cp_slot(0, cp))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, p)
            self._fsync_dir()
            legacy.unlink(missing_ok=True)
        self._cp_fd = os.open(p, os.O_RDWR)
        data = os.pread(self._cp_fd, 2 * _CP_SLOT, 0)
        best = None
        for i in range(2):
            raw = data[i * _CP_SLOT:i * _CP_SLOT + _CP.size + 4]
            if len(raw) < _CP.size + 4 or zlib.crc32(raw[:_CP.size]) != struct.unpack_from("<I", raw, _CP.size)[0]:
                continue
            seq, seg, off, pend = _CP.unpack_from(raw)
            if best is None or seq > best[0]:
                best = (seq, {"segment": seg, "offset": off, "pending_end": None if pend < 0 else pend})
        if best is None:
            raise OSError(f"spool checkpoint {p} is unreadable (both slots damaged)")
        self._cp_seq = best[0]
        return best[1]

    def _write_checkpoint(self, cp: dict) -> None:
        """Overwrite the older slot in place and sync: needs no free block, survives a crash at any point."""
        seq = self._cp_seq + 1
        os.pwrite(self._cp_fd, self._cp_slot(seq, cp), (seq % 2) * _CP_SLOT)
        os.fdatasync(self._cp_fd)
        self._cp_seq = seq
        self._checkpoint = cp

    def _fsync_dir(self) -> None:
        fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def free_bytes(self) -> int:
        """Bytes an unprivileged writer may still use on the spool's filesystem (statvfs f_bavail)."""
        st = os.statvfs(self.dir)
        return st.f_bavail * st.f_frsize

    def room_bytes(self) -> int:
        """What the spool can ever hold on its disk: the free space plus its own segment files (which the writer
        frees once stored). Other files on the filesystem can shrink it at any time."""
        with self._lock:
            own = self._write_size + sum(self._sizes.values())
        return self.free_bytes() + own

    def _derive_sizes(self, room: int) -> None:
        """Segment sizes from the room the disk gives: a segment is sealed at `roll_bytes` (`segment_bytes`, or a
        quarter of the room if less), and a segment the store already has entirely is rolled over (and deleted)
        once it holds `reclaim_bytes` (RECLAIM_CAP_BYTES, or `roll_bytes` if less).

        A quarter means that on a disk of any size the spool starts on, stored data is freed long before the
        disk is full, also under continuous traffic (when the current segment is never exactly drained): sealed
        segments are deleted by the reader as soon as they are stored. With fixed sizes (64 MiB segments, 4 MiB
        reclaim) a disk under 4 MiB filled for good and every later append was refused."""
        self.roll_bytes = min(self.segment_bytes, max(4096, room // 4))
        self.reclaim_bytes = min(self.roll_bytes, RECLAIM_CAP_BYTES)

    def _recover_tail(self, seg: int) -> None:
        """Cut a torn tail (a crash mid-append, never acknowledged) off the last segment; keep a copy, log, count.

        Only bytes that no valid record follows are cut. Damage followed by valid records is left in place for
        the reader to skip, so an acknowledged record after it is never discarded."""
        path = self.dir / _seg_name(seg)
        if not path.exists():
            return
        data = path.read_bytes()
        pos = 0
        while (r := _record_at(data, pos)) is not None:
            pos = r[1]
        if pos == len(data):
            return
        nxt = _resync(data, pos)
        if nxt is not None:
            log.error("spool segment %s is damaged at offset %d (%d bytes); valid records follow, so nothing is "
                      "cut: the reader will skip the damaged bytes", path.name, pos, nxt - pos)
            return
        torn = data[pos:]
        keep = self.dir / f"{path.name}.torn-{pos}-{int(time.time())}"
        keep.write_bytes(torn)
        with open(path, "r+b") as f:
            f.truncate(pos)
            os.fsync(f.fileno())
        self.truncated_bytes += len(torn)
        if self.metrics:
            self.metrics.spool_truncated_bytes_total.inc(len(torn))
        log.warning("spool recovery cut %d torn bytes off the end of %s at offset %d (an append interrupted by a "
                    "crash, never acknowledged); copy kept in %s", len(torn), path.name, pos, keep.name)

    # -- appenders (request handlers) -----------------------------------------------------------------------
    def pending_bytes(self) -> int:
        """Bytes appended but not yet checkpointed as stored."""
        cp = self._checkpoint
        with self._lock:
            total = self._write_size if self._write_seg >= cp["segment"] else 0
            total += sum(size for s, size in self._sizes.items() if s >= cp["segment"])
            if cp["segment"] <= self._write_seg:
                total -= cp["offset"]
        return max(total, 0)

    def refusal(self) -> str | None:
        """Why an append would be refused now, or None: the spool's one answer for /readyz.

        Full: less than a little headroom below `max_bytes`, or an append did not fit and the writer has not
        freed anything since. Disk error: the last append failed and a small synced probe write still fails
        (probed here, so readiness comes back without traffic). Disk full: less than READY_HEADROOM_BYTES free
        on the filesystem, counting the current segment when the store already has all of it (the next append
        deletes it first)."""
        if self._closed:
            return "spool closed"
        with self._gc:
            pending = self.pending_bytes() + self._queued_bytes
            if self._refused_at is not None and pending < self._refused_at:
                self._refused_at = None                  # the writer made room since the refusal
            refused_at = self._refused_at
        if self.max_bytes - pending < min(READY_HEADROOM_BYTES, self.max_bytes // 20) or refused_at is not None:
            return f"spool full: {pending} of {self.max_bytes} bytes wait for the store"
        if self.fault is not None and not self._probe():
            return f"spool disk error: {self.fault}"
        try:
            free = self.free_bytes() + self.reclaimable_bytes()
        except OSError as e:
            return f"spool disk error: {e.strerror or e}"
        if free < READY_HEADROOM_BYTES:
            return f"spool disk full: {free} bytes free on the filesystem of {self.dir}"
        return None

    def _probe(self) -> bool:
        """After a disk error: whether the disk takes a small synced write again (through the same file-layer
        hooks as appends). Not within a second of the error itself."""
        if self.fault_at is not None and time.monotonic() - self.fault_at < 1.0:
            return False
        path = self.dir / "ready.probe"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                if self._write(fd, _PROBE) <= 0:
                    return False
                self._sync(fd)
            finally:
                os.close(fd)
            return True
        except OSError:
            return False
        finally:
            path.unlink(missing_ok=True)

    def append(self, kind: int, payload: bytes, day: int | None = None) -> None:
        """Durably append one record (fdatasync'd before returning). Raises SpoolFull / SpoolUnavailable."""
        self.append_records([encode_record(kind, payload, day)])

    def append_records(self, records: list[bytes]) -> None:
        """Durably append records made by `encode_record`, contiguously, in one group commit (blocking).

        Returns only once every byte is written and synced; raises `SpoolFull` when the bound would be passed,
        `SpoolUnavailable` when the disk refused (nothing of these records is then acknowledged or left torn)."""
        ticket = self._enqueue(b"".join(records), None, None)
        if ticket is None:
            return
        with self._gc:
            while not ticket.done:
                self._gc.wait()
        if ticket.error is not None:
            raise ticket.error

    def submit_records(self, records: list[bytes],
                       on_done: Callable[[SpoolRefused | None], None] | None = None) -> asyncio.Future | None:
        """Queue records for the committer from a coroutine; the future (of the running loop) completes once they
        are synced, or with the refusal — the event loop is never blocked, which is what lets the ingest route
        answer hundreds of concurrent 1-event requests without a worker-thread hop each. None when there is nothing
        to write. Raises `SpoolFull` at once when the bound would be passed.

        Once queued, the append happens whatever becomes of the caller (a cancelled request, a closed loop), so
        whatever must follow its outcome goes in `on_done`: it is called in the committer thread with the outcome
        (None = synced), before the future completes, exactly once."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        ticket = self._enqueue(b"".join(records), loop, future, on_done)
        return future if ticket is not None else None

    def _enqueue(self, data: bytes, loop: asyncio.AbstractEventLoop | None, future: asyncio.Future | None,
                 on_done: Callable[[SpoolRefused | None], None] | None = None) -> _Ticket | None:
        """Queue `data` for the committer (started on first use); None when there is nothing to write. Raises
        `SpoolFull` at once when the bound would be passed."""
        if not data:
            return None
        ticket = _Ticket(data, loop, future, on_done)
        with self._gc:
            if self._closed:
                raise SpoolUnavailable("the spool is closed")
            pending = self.pending_bytes() + self._queued_bytes
            if pending + len(data) > self.max_bytes:
                self._refused_at = pending
                raise SpoolFull(f"spool holds {pending} of {self.max_bytes} bytes")
            self._queue.append(ticket)
            self._queued_bytes += len(data)
            if self._committer is None:
                self._committer = threading.Thread(target=self._commit_loop, name="spool-committer", daemon=True)
                self._committer.start()
            self._gc.notify_all()
        return ticket

    def _commit_loop(self) -> None:
        """The committer thread: take everything queued, write it with one write loop and one fdatasync, tell each
        caller its outcome; repeat. Appends that arrive during a sync form the next group (group commit)."""
        while True:
            with self._gc:
                while not self._queue and not self._closed:
                    self._gc.wait()
                if not self._queue:                      # closed and drained
                    self._committer = None
                    return
                group, self._queue = self._queue, []
            try:
                error = self._flush(group)
            except BaseException as e:                   # never leave a caller waiting for ever
                log.exception("spool committer failed")
                error = SpoolUnavailable(f"spool commit failed: {e}")
            for t in group:                              # outcome hooks first, so they happened when a caller resumes
                if t.on_done is not None:
                    try:
                        t.on_done(error)
                    except Exception:
                        log.exception("spool append outcome hook failed")
            by_loop: dict[asyncio.AbstractEventLoop, list[_Ticket]] = {}
            with self._gc:
                self._queued_bytes -= sum(len(t.data) for t in group)
                for t in group:
                    t.done, t.error = True, error
                    if t.loop is not None:
                        by_loop.setdefault(t.loop, []).append(t)
                self._gc.notify_all()
            for loop, tickets in by_loop.items():
                try:
                    loop.call_soon_threadsafe(_settle_futures, tickets)
                except RuntimeError:                     # that loop is closed: its callers are gone
                    pass
            if error is None:
                with self.data_available:
                    self.data_available.notify_all()

    def _flush(self, group: list[_Ticket]) -> SpoolRefused | None:
        """Write and sync one group (leader only); on failure undo it and return the error for every member."""
        data = b"".join(t.data for t in group)
        try:
            if self.fault is not None:
                self._repair()
            if self._write_size and (self._write_size + len(data) > self.roll_bytes or self._drained_enough()):
                self._roll()
        except OSError as e:
            return self._failed(e, "preparing the segment")
        start = self._write_size
        try:
            self._write_all(data, start)
        except OSError as e:
            if e.errno != errno.ENOSPC or not self._drained(any_size=True):
                return self._failed(e, "appending")
            try:                                         # the disk is full of data the store already has:
                self._roll()                             # free it and try once more in a fresh segment
                start = 0
                self._write_all(data, start)
            except OSError as e2:
                return self._failed(e2, "appending after reclaiming the stored segment")
        with self._lock:
            self._write_size = start + len(data)
        self.fault = self.fault_at = None
        self.groups_committed += 1
        self.records_committed += len(group)
        return None

    def _write_all(self, data: bytes, start: int) -> None:
        """Write and sync `data` at the end of the segment (which is `start` bytes long); on failure cut the file
        back to `start` (no torn record in front of later appends) and raise."""
        try:
            view, done = memoryview(data), 0
            while done < len(data):                      # a short write is continued, never ignored
                n = self._write(self._fd, view[done:])
                if n <= 0:
                    raise OSError(5, "write returned 0 bytes")
                done += n
            self._sync(self._fd)
        except OSError:
            try:
                os.ftruncate(self._fd, start)
                self._sync(self._fd)
            except OSError as e2:
                log.error("spool could not cut a failed append back to %d bytes: %s", start, e2)
            raise

    def _failed(self, e: OSError, what: str) -> SpoolUnavailable:
        self.fault, self.fault_at = f"{what}: {e.strerror or e}", time.monotonic()
        if self.metrics:
            self.metrics.spool_write_errors_total.inc()
        log.error("spool disk error while %s (%s); refusing ingest with 503 until it clears", what, e)
        return SpoolUnavailable(f"spool disk error: {e.strerror or e}")

    def _repair(self) -> None:
        """After a failed append: make sure the file ends where the last acknowledged record ends."""
        if os.fstat(self._fd).st_size != self._write_size:
            os.ftruncate(self._fd, self._write_size)
            self._sync(self._fd)

    def _drained_enough(self) -> bool:
        """The current segment is entirely in the store and already holds `reclaim_bytes`: start a new one so
        the reader can delete it. Without this a segment only rolls at `segment_bytes`, and a disk smaller than
        that would fill with data that is long stored."""
        return self._drained(any_size=False)

    def _drained(self, any_size: bool) -> bool:
        """Whether the current segment is non-empty and entirely in the store (and, unless `any_size`, holds at
        least `reclaim_bytes`)."""
        cp = self._checkpoint
        return (cp["segment"] == self._write_seg and cp["pending_end"] is None and cp["offset"] == self._write_size
                and self._write_size > 0 and (any_size or self._write_size >= self.reclaim_bytes))

    def reclaimable_bytes(self) -> int:
        """Bytes the next append frees before writing: the current segment when it is entirely in the store."""
        with self._lock:
            size = self._write_size
        return size if self._drained(any_size=True) else 0

    def _roll(self) -> None:
        drained = self._drained(any_size=True)
        os.fsync(self._fd)
        fd = os.open(self.dir / _seg_name(self._write_seg + 1), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._fsync_dir()
        os.close(self._fd)
        old = self._write_seg
        with self._lock:
            self._sizes[old] = self._write_size
            self._fd, self._write_seg, self._write_size = fd, old + 1, 0
        if drained:              # entirely in the store: free its blocks now (the disk may be full)
            (self.dir / _seg_name(old)).unlink(missing_ok=True)
        try:                     # the room changes with the disk's other tenants: re-derive the sizes
            self._derive_sizes(self.room_bytes())
        except OSError:
            pass

    # -- reader side (the writer thread) --------------------------------------------------------------------
    def next_batch(self, max_rows: int, max_bytes: int = 256 * 1024**2) -> Batch | None:
        """The next batch after the checkpoint (or the pending one to replay), or None when drained.

        `max_rows` counts the rows of the data tables (spans, events). The (event ID, fingerprint) rows that ride
        along with each events record are not counted: counting them halved every events insert (25,000 events
        for 50,000 rows), and an insert with its four materialised views costs per insert as well as per row —
        13.3 against 9.6 µs of CPU per event (bench/ingest.py's events, one run). A full batch still takes the
        key records that directly follow its last events record."""
        while True:
            cp = self._checkpoint
            seg, start = cp["segment"], cp["offset"]
            path = self.dir / _seg_name(seg)
            with self._lock:
                size = self._write_size if seg == self._write_seg else self._sizes.get(seg)
                newer = seg < self._write_seg
            if size is None or not path.exists():
                if newer:
                    with self._lock:
                        self._sizes.pop(seg, None)
                    self._write_checkpoint({"segment": seg + 1, "offset": 0, "pending_end": None})
                    continue
                return None
            limit = cp["pending_end"]
            if limit is None and start >= size:
                if newer:                         # this segment is finished: drop it, move on
                    path.unlink(missing_ok=True)
                    with self._lock:
                        self._sizes.pop(seg, None)
                    self._write_checkpoint({"segment": seg + 1, "offset": 0, "pending_end": None})
                    continue
                return None
            break
        end_cap = limit if limit is not None else size
        with open(path, "rb") as f:
            f.seek(start)
            data = f.read(min(end_cap - start, max_bytes) if limit is None else end_cap - start)
        capped = limit is None and start + len(data) < end_cap
        records, off, nrows = [], 0, 0
        while off < len(data):
            r = _record_at(data, off)
            if r is None:
                if capped and self._incomplete(data, off):
                    break                                 # the read cap cut a record: it starts the next batch
                nxt = _resync(data, off)
                skip_to = nxt if nxt is not None else len(data)
                self._skip(seg, start + off, skip_to - off)
                off = skip_to
                continue
            rec, end = r
            records.append(rec)
            if rec.kind != KIND_EVENT_KEYS:           # the events' companion rows: see the docstring
                nrows += rec.payload.count(b"\n") + 1
            off = end
            if limit is None and nrows >= max_rows and not self._keys_next(data, off):
                break
        if off == 0:
            return None
        return Batch(self.spool_id, seg, start, start + off, records)

    @staticmethod
    def _keys_next(data: bytes, off: int) -> bool:
        """Whether an event-keys record starts at `off`: a full batch still takes the keys of its last events."""
        return off + _HEADER.size <= len(data) and _HEADER.unpack_from(data, off)[2] & ~DAY_FLAG == KIND_EVENT_KEYS

    @staticmethod
    def _incomplete(data: bytes, off: int) -> bool:
        if off + _HEADER.size > len(data):
            return True
        length, _crc, kind = _HEADER.unpack_from(data, off)
        return kind & ~DAY_FLAG in _KINDS and off + _HEADER.size + length > len(data)

    def _skip(self, seg: int, offset: int, n: int) -> None:
        self.skipped_bytes += n
        if self.metrics:
            self.metrics.spool_skipped_bytes_total.inc(n)
        log.error("spool segment %d is corrupt at offset %d: skipped %d damaged bytes, kept the records after them",
                  seg, offset, n)

    def begin(self, batch: Batch) -> None:
        """Record that `batch` is being written (so a crash replays exactly this range)."""
        self._write_checkpoint({"segment": batch.segment, "offset": batch.start, "pending_end": batch.end})

    def commit(self, batch: Batch) -> None:
        """Record that `batch` is in the store."""
        self._write_checkpoint({"segment": batch.segment, "offset": batch.end, "pending_end": None})

    def pending_records(self) -> list[Record]:
        """Every record not yet committed to the store (startup only: rebuilds the intake's dedup memory)."""
        out: list[Record] = []
        cp = self._checkpoint
        for seg in self._segments():
            if seg < cp["segment"]:
                continue
            data = (self.dir / _seg_name(seg)).read_bytes()
            off = cp["offset"] if seg == cp["segment"] else 0
            while off < len(data):
                r = _record_at(data, off)
                if r is None:
                    nxt = _resync(data, off)
                    if nxt is None:
                        break
                    off = nxt
                    continue
                out.append(r[0])
                off = r[1]
        return out

    def close(self) -> None:
        """Finish what is queued, stop the committer and close the file descriptors."""
        with self._gc:
            self._closed = True
            self._gc.notify_all()
            committer = self._committer
        if committer is not None and committer is not threading.current_thread():
            committer.join(30)
        with self._gc:
            for fd in (self._fd, self._cp_fd):
                try:
                    os.close(fd)
                except OSError:
                    pass

"""The durable spool: an fsync'd write-ahead log of accepted rows, drained into ClickHouse by the writer.

A 2xx is sent only after `append` returned, i.e. after the record is on disk (fdatasync), so an acknowledged
item survives a crash of the process or an unreachable store. Layout of the spool directory:

    seg-000000000001.wal   records: <u32 length><u32 crc32><u8 kind><payload (JSONCompactEachRow lines)>
    checkpoint.json        {"segment": n, "offset": k, "pending_end": e | null}

The reader side hands out batches `[offset, end)` of one segment. Before a batch is written to the store its
range is recorded as `pending_end`; after a crash the same range is replayed with the same dedup tokens, so
ClickHouse drops the part that already landed: every acknowledged item reaches the store exactly once.
The spool is bounded (`max_bytes`): when full, `append` raises `SpoolFull` (HTTP 503 + Retry-After).
"""
from __future__ import annotations

import json
import os
import struct
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path

KIND_SPANS, KIND_EVENTS = 1, 2
_HEADER = struct.Struct("<IIB")


class SpoolFull(Exception):
    """The spool holds max_bytes of data the store has not taken yet."""


@dataclass
class Batch:
    segment: int
    start: int
    end: int
    records: list[tuple[int, bytes]]         # (kind, JSONCompactEachRow payload)

    @property
    def token(self) -> str:
        """Identity of this batch, stable across replays (the insert dedup token prefix)."""
        return f"spool-{self.segment}-{self.start}-{self.end}"


def _seg_name(n: int) -> str:
    return f"seg-{n:012d}.wal"


class Spool:
    """Append-only segments plus a checkpoint; one appender lock, one reader (the writer thread)."""

    def __init__(self, directory: str | os.PathLike, max_bytes: int = 1024**3, segment_bytes: int = 64 * 1024**2):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self._lock = threading.Lock()
        self.data_available = threading.Condition(threading.Lock())
        self._checkpoint = self._read_checkpoint()
        segs = self._segments()
        self._write_seg = segs[-1] if segs else max(1, self._checkpoint["segment"])
        self._recover_tail(self._write_seg)
        self._fd = os.open(self.dir / _seg_name(self._write_seg), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._write_size = os.fstat(self._fd).st_size
        self._fsync_dir()

    # -- bookkeeping ----------------------------------------------------------------------------------------
    def _segments(self) -> list[int]:
        return sorted(int(p.name[4:16]) for p in self.dir.glob("seg-*.wal"))

    def _read_checkpoint(self) -> dict:
        p = self.dir / "checkpoint.json"
        if p.exists():
            return json.loads(p.read_text())
        return {"segment": 1, "offset": 0, "pending_end": None}

    def _write_checkpoint(self, cp: dict) -> None:
        tmp = self.dir / "checkpoint.json.tmp"
        with open(tmp, "w") as f:
            f.write(json.dumps(cp))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.dir / "checkpoint.json")
        self._fsync_dir()
        self._checkpoint = cp

    def _fsync_dir(self) -> None:
        fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _recover_tail(self, seg: int) -> None:
        """Cut a torn record (a crash mid-append, never acknowledged) off the end of the last segment."""
        path = self.dir / _seg_name(seg)
        if not path.exists():
            return
        data = path.read_bytes()
        pos = 0
        while pos + _HEADER.size <= len(data):
            length, crc, _kind = _HEADER.unpack_from(data, pos)
            end = pos + _HEADER.size + length
            if end > len(data) or zlib.crc32(data[pos + _HEADER.size:end]) != crc:
                break
            pos = end
        if pos != len(data):
            with open(path, "r+b") as f:
                f.truncate(pos)
                os.fsync(f.fileno())

    # -- writer side (request handlers) ---------------------------------------------------------------------
    def pending_bytes(self) -> int:
        """Bytes appended but not yet checkpointed as stored."""
        cp = self._checkpoint
        total = 0
        for seg in self._segments():
            if seg < cp["segment"]:
                continue
            size = self._write_size if seg == self._write_seg else (self.dir / _seg_name(seg)).stat().st_size
            total += size - (cp["offset"] if seg == cp["segment"] else 0)
        return max(total, 0)

    def append(self, kind: int, payload: bytes) -> None:
        """Durably append a payload (fdatasync before returning). Raises SpoolFull when the bound is reached."""
        record = _HEADER.pack(len(payload), zlib.crc32(payload), kind) + payload
        with self._lock:
            if self.pending_bytes() + len(record) > self.max_bytes:
                raise SpoolFull(f"spool holds {self.pending_bytes()} of {self.max_bytes} bytes")
            if self._write_size and self._write_size + len(record) > self.segment_bytes:
                os.fsync(self._fd)
                os.close(self._fd)
                self._write_seg += 1
                self._fd = os.open(self.dir / _seg_name(self._write_seg),
                                   os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                self._write_size = 0
                self._fsync_dir()
            os.write(self._fd, record)
            os.fdatasync(self._fd)
            self._write_size += len(record)
        with self.data_available:
            self.data_available.notify_all()

    # -- reader side (the writer thread) --------------------------------------------------------------------
    def next_batch(self, max_rows: int, max_bytes: int = 256 * 1024**2) -> Batch | None:
        """The next batch after the checkpoint (or the pending one to replay), or None when drained."""
        cp = self._checkpoint
        seg, start = cp["segment"], cp["offset"]
        path = self.dir / _seg_name(seg)
        if not path.exists():
            if seg < self._write_seg:
                self._write_checkpoint({"segment": seg + 1, "offset": 0, "pending_end": None})
                return self.next_batch(max_rows, max_bytes)
            return None
        limit = cp["pending_end"]
        with self._lock:
            size = self._write_size if seg == self._write_seg else path.stat().st_size
            newer = seg < self._write_seg
        if limit is None and start >= size:
            if newer:                         # this segment is finished: drop it, move on
                path.unlink()
                self._write_checkpoint({"segment": seg + 1, "offset": 0, "pending_end": None})
                return self.next_batch(max_rows, max_bytes)
            return None
        end_cap = limit if limit is not None else size
        records, pos, nrows = [], start, 0
        with open(path, "rb") as f:
            f.seek(start)
            data = f.read(min(end_cap - start, max_bytes) if limit is None else end_cap - start)
        off = 0
        while off + _HEADER.size <= len(data):
            length, crc, kind = _HEADER.unpack_from(data, off)
            end = off + _HEADER.size + length
            if end > len(data):
                break
            payload = data[off + _HEADER.size:end]
            if zlib.crc32(payload) != crc:
                raise IOError(f"spool segment {seg} is corrupt at offset {start + off}")
            records.append((kind, payload))
            nrows += payload.count(b"\n") + 1
            off = end
            if limit is None and nrows >= max_rows:
                break
        pos = start + off
        if not records:
            return None
        return Batch(seg, start, pos, records)

    def begin(self, batch: Batch) -> None:
        """Record that `batch` is being written (so a crash replays exactly this range)."""
        self._write_checkpoint({"segment": batch.segment, "offset": batch.start, "pending_end": batch.end})

    def commit(self, batch: Batch) -> None:
        """Record that `batch` is in the store."""
        self._write_checkpoint({"segment": batch.segment, "offset": batch.end, "pending_end": None})

    def close(self) -> None:
        """Close the append file descriptor."""
        with self._lock:
            try:
                os.close(self._fd)
            except OSError:
                pass

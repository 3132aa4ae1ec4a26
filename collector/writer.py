"""The batched writer: one thread that drains the spool into ClickHouse, and that no single row can block.

Each spool batch is recorded as pending, inserted, then committed. Payloads are JSONCompactEachRow bytes that
ClickHouse parses itself (collector.rowcodec). The plan of inserts for a batch is deterministic (so a replay after
a crash re-sends the same blocks with the same dedup tokens and ClickHouse drops what already landed):

* rows are grouped by table and by UTC day (the daily partition, carried by each spool record), and one insert
  never spans more than `max_partitions` days (ClickHouse refuses more than 100 partitions per insert block);
* an insert the store refuses while the store itself answers is a data problem: the block is bisected, the
  halves inserted on their own, down to the single rows that fail; each such row goes to the
  `ingest_quarantine` table with the store's error, with a metric and a log line, and the rest is stored;
* an insert that fails because the store is unreachable or busy is retried with backoff (0.5 s doubling to
  30 s); ingestion keeps acknowledging into the spool until its bound is reached.

Health (`healthy()`, used by /readyz): failing for more than `unhealthy_after` seconds, or data waiting with no
progress for `stall_after` seconds, or the thread dead, is not healthy.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass

from collector.events import EVENT_COLUMNS
from collector.otlp import SPAN_COLUMNS
from collector.rowcodec import EVENT_KEY_COLUMNS, EVENT_WIRE_COLUMNS, day_of_line
from collector.spool import KIND_EVENT_KEYS, KIND_EVENTS, KIND_EVENTS_TEXT, KIND_SPANS, Batch, Spool
from revwatch.journeys.tier import JourneyTier
from revwatch.metrics import Metrics
from revwatch.store import Store, StoreError

log = logging.getLogger("revwatch.writer")

TABLES = {KIND_SPANS: ("spans", SPAN_COLUMNS), KIND_EVENTS: ("events", EVENT_COLUMNS),
          KIND_EVENTS_TEXT: ("events", EVENT_WIRE_COLUMNS), KIND_EVENT_KEYS: ("event_keys", EVENT_KEY_COLUMNS)}
KIND_NAMES = {KIND_SPANS: "span", KIND_EVENTS: "event", KIND_EVENTS_TEXT: "event", KIND_EVENT_KEYS: "event_key"}
QUARANTINE_COLUMNS = ("QuarantinedAt", "Kind", "SpoolToken", "Error", "Row")
# Errors that say "not now" rather than "not this row": never a reason to quarantine.
_TRANSIENT = ("TOO_MANY_PARTS", "MEMORY_LIMIT_EXCEEDED", "TIMEOUT_EXCEEDED", "TOO_MANY_SIMULTANEOUS_QUERIES",
              "NETWORK_ERROR", "SOCKET_TIMEOUT", "ABORTED", "QUERY_WAS_CANCELLED", "READONLY",
              "NOT_ENOUGH_SPACE", "CANNOT_WRITE_TO_FILE", "Connection", "timed out", "unavailable",
              # A broken schema is not a bad row: retry (and show it on /readyz) instead of quarantining everything.
              "UNKNOWN_TABLE", "UNKNOWN_DATABASE", "NO_SUCH_COLUMN_IN_TABLE", "THERE_IS_NO_COLUMN",
              "UNKNOWN_IDENTIFIER", "doesn't exist", "does not exist")


# With this many bytes waiting in the spool the writer inserts at once; with less it lingers (see Writer._linger).
LINGER_BELOW_BYTES = 1024**2


class StoreUnavailable(StoreError):
    """The store did not answer: retry the whole batch later."""


@dataclass
class Insert:
    kind: int
    payloads: list[bytes]
    token: str


def plan(batch: Batch, max_partitions: int = 100) -> list[Insert]:
    """The inserts of one batch: per table, rows grouped by day, at most `max_partitions` days per insert."""
    out: list[Insert] = []
    for kind in (KIND_SPANS, KIND_EVENTS, KIND_EVENTS_TEXT, KIND_EVENT_KEYS):
        by_day: dict[int, list[bytes]] = {}
        for rec in batch.records:
            if rec.kind != kind or not rec.payload:
                continue
            if rec.day is not None or kind == KIND_EVENT_KEYS:
                by_day.setdefault(rec.day or 0, []).append(rec.payload)
            else:                                     # a record from before records carried their day
                for line in rec.payload.split(b"\n"):
                    if line:
                        by_day.setdefault(day_of_line(kind, line), []).append(line)
        days = sorted(by_day)
        for i in range(0, len(days), max_partitions):
            payloads = [p for d in days[i:i + max_partitions] for p in by_day[d]]
            out.append(Insert(kind, payloads, f"{batch.token}-{kind}-{i // max_partitions}"))
    return out


class Writer:
    """Drains a Spool into a Store on a background thread."""

    def __init__(self, spool: Spool, store: Store, metrics: Metrics | None = None, batch_rows: int = 50_000,
                 flush_interval: float = 0.5, max_partitions: int = 100):
        self.spool, self.store, self.metrics = spool, store, metrics
        self.batch_rows, self.flush_interval, self.max_partitions = batch_rows, flush_interval, max_partitions
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None
        self.failing_since: float | None = None
        self.last_progress = time.monotonic()
        self.unhealthy_after = 5.0
        self.stall_after = 120.0
        self.batches_written = 0
        self.quarantined = 0
        self.journey_tier: JourneyTier | None = None      # told of an acknowledged event the store refuses

    def start(self) -> None:
        """Start the drain thread."""
        self._thread = threading.Thread(target=self._run, name="revwatch-writer", daemon=True)
        self._thread.start()

    def stop(self, drain_timeout: float = 10.0) -> None:
        """Drain what can be drained within `drain_timeout`, then stop (the rest stays in the spool)."""
        self.wait_drained(drain_timeout)
        self._stop.set()
        with self.spool.data_available:
            self.spool.data_available.notify_all()
        if self._thread:
            self._thread.join(timeout=drain_timeout)

    def wait_drained(self, timeout: float = 30.0) -> bool:
        """Block until everything appended so far is in the store; False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.spool.pending_bytes() == 0:
                return True
            with self.spool.data_available:
                self.spool.data_available.notify_all()
            time.sleep(0.02)
        return self.spool.pending_bytes() == 0

    def health_problem(self) -> str | None:
        """Why the writer is not healthy (failing, stalled, dead), or None."""
        now = time.monotonic()
        if self._thread is not None and not self._thread.is_alive() and not self._stop.is_set():
            return "writer thread is not running"
        if self.failing_since is not None and now - self.failing_since > self.unhealthy_after:
            return f"writer failing for {now - self.failing_since:.0f}s: {self.last_error}"
        if self.spool.pending_bytes() > 0 and now - self.last_progress > self.stall_after:
            return f"writer stalled: no progress for {now - self.last_progress:.0f}s"
        return None

    # -- one batch -----------------------------------------------------------------------------------------
    def write_batch(self, batch: Batch) -> None:
        """Insert one spool batch (idempotently, poison rows quarantined) and commit it."""
        self.spool.begin(batch)
        for ins in plan(batch, self.max_partitions):
            self._insert(ins.kind, ins.payloads, ins.token, batch.token)
        self.spool.commit(batch)
        self.batches_written += 1
        self.last_progress = time.monotonic()

    def _insert(self, kind: int, payloads: list[bytes], token: str, batch_token: str) -> None:
        table, columns = TABLES[kind]
        try:
            n = self.store.insert_lines(table, columns, payloads, dedup_token=token)
        except StoreError as e:
            if self._transient(e):
                raise StoreUnavailable(str(e)) from e
            lines = [ln for p in payloads for ln in p.split(b"\n") if ln]
            if len(lines) == 1:
                self._quarantine(kind, lines[0], str(e), token, batch_token)
                return
            half = len(lines) // 2             # bisect: the good rows go in, the poison ones are isolated
            log.info("insert of %d %s rows refused (%s); bisecting", len(lines), table, str(e)[:200])
            self._insert(kind, [b"\n".join(lines[:half])], token + "a", batch_token)
            self._insert(kind, [b"\n".join(lines[half:])], token + "b", batch_token)
            return
        if self.metrics and n:
            self.metrics.store_writes_total.labels(table).inc(n)

    def _transient(self, e: StoreError) -> bool:
        """Whether a refused insert says "the store cannot now" (retry) rather than "not these rows"."""
        text = str(e)
        return any(t in text for t in _TRANSIENT) or not self.store.ping()

    def _quarantine(self, kind: int, line: bytes, error: str, token: str, batch_token: str) -> None:
        row = (dt.datetime.now(dt.timezone.utc), KIND_NAMES[kind], batch_token, error[:2000],
               line.decode("utf-8", "replace"))
        try:
            self.store.insert("ingest_quarantine", [row], QUARANTINE_COLUMNS, dedup_token=token + "-q")
        except StoreError as e:
            raise StoreUnavailable(f"cannot write the quarantine table: {e}") from e
        self.quarantined += 1
        if self.journey_tier is not None and kind in (KIND_EVENTS, KIND_EVENTS_TEXT):
            self.journey_tier.forget_event_line(line)     # acknowledged, shown, and now refused for good
        if self.metrics:
            self.metrics.quarantined_total.labels(KIND_NAMES[kind]).inc()
        log.error("quarantined one %s row the store refuses (table ingest_quarantine, token %s): %s; row: %s",
                  KIND_NAMES[kind], token, error[:300], line[:300].decode("utf-8", "replace"))

    # -- the loop ------------------------------------------------------------------------------------------
    def _run(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            try:
                batch = self.spool.next_batch(self.batch_rows)
            except Exception as e:                          # a spool read error must be loud, not a hot loop
                self._failed(f"cannot read the spool: {e}")
                log.error("cannot read the spool: %s", e)
                self._stop.wait(5)
                continue
            if batch is None:
                self.last_progress = time.monotonic()
                if self.journey_tier is not None:      # nothing to store: index what the tier kept as it came
                    self.journey_tier.index_pending()  # (with intake processes, what they forwarded)
                if self.metrics:
                    self.metrics.spool_bytes.set(self.spool.pending_bytes())
                with self.spool.data_available:
                    self.spool.data_available.wait(self.flush_interval)
                continue
            started = time.monotonic()
            try:
                self.write_batch(batch)
                if self.journey_tier is not None and self.spool.pending_bytes() < LINGER_BELOW_BYTES:
                    self.journey_tier.index_pending()     # caught up: index what the tier has kept as it came
                backoff = 0.5
                self.last_error = None
                self.failing_since = None
                self._linger(started + self.flush_interval)
            except Exception as e:               # store down/busy, or a disk error on the checkpoint: retry
                self._failed(str(e))
                log.warning("spool batch write failed (retrying in %.1fs): %s", backoff, e,
                            exc_info=not isinstance(e, StoreError))
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
            if self.metrics:
                self.metrics.spool_bytes.set(self.spool.pending_bytes())

    def _linger(self, until: float) -> None:
        """Under light load, let rows gather until `until` (the rest of `flush_interval` after the last insert
        began) — or until LINGER_BELOW_BYTES are waiting, which is a worthwhile insert at once.

        Every ClickHouse insert has a fixed cost (a part, later a merge): a trickle of 1-event requests inserted
        as it comes would spend a CPU core on parts instead of on ingest. The rows wait in the fsync'd spool, so
        lingering delays their visibility by at most `flush_interval`, never their safety; a bulk load never
        lingers."""
        while not self._stop.is_set() and self.spool.pending_bytes() < LINGER_BELOW_BYTES:
            left = until - time.monotonic()
            if left <= 0:
                return
            with self.spool.data_available:
                self.spool.data_available.wait(min(left, 0.05))

    def _failed(self, error: str) -> None:
        self.last_error = error
        if self.failing_since is None:
            self.failing_since = time.monotonic()
        if self.metrics:
            self.metrics.store_write_errors_total.inc()

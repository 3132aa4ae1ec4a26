"""The batched writer: one thread that drains the spool into ClickHouse, retrying with backoff.

Each spool batch is recorded as pending, inserted with dedup tokens derived from its spool range, then
committed. Payloads are JSONCompactEachRow bytes that ClickHouse parses itself (collector.rowcodec). If the store is down the batch stays pending and is retried (0.5 s doubling to 30 s); ingestion keeps
acknowledging into the spool until the spool bound is reached.
"""
from __future__ import annotations

import logging
import threading
import time

from collector.events import EVENT_COLUMNS
from collector.otlp import SPAN_COLUMNS
from collector.spool import KIND_EVENTS, KIND_SPANS, Batch, Spool
from revwatch.metrics import Metrics
from revwatch.store import Store, StoreError

log = logging.getLogger("revwatch.writer")


class Writer:
    """Drains a Spool into a Store on a background thread."""

    def __init__(self, spool: Spool, store: Store, metrics: Metrics | None = None, batch_rows: int = 50_000,
                 flush_interval: float = 0.5):
        self.spool, self.store, self.metrics = spool, store, metrics
        self.batch_rows, self.flush_interval = batch_rows, flush_interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None
        self.batches_written = 0

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

    def write_batch(self, batch: Batch) -> None:
        """Insert one spool batch (idempotently) and commit it."""
        spans = [p for kind, p in batch.records if kind == KIND_SPANS]
        events = [p for kind, p in batch.records if kind == KIND_EVENTS]
        self.spool.begin(batch)
        n_spans = self.store.insert_lines("spans", SPAN_COLUMNS, spans, dedup_token=batch.token + "-spans")
        n_events = self.store.insert_lines("events", EVENT_COLUMNS, events, dedup_token=batch.token + "-events")
        self.spool.commit(batch)
        self.batches_written += 1
        if self.metrics:
            self.metrics.store_writes_total.labels("spans").inc(n_spans)
            self.metrics.store_writes_total.labels("events").inc(n_events)

    def _run(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            try:
                batch = self.spool.next_batch(self.batch_rows)
            except Exception as e:                          # a corrupt segment must be loud, not a hot loop
                log.error("cannot read the spool: %s", e)
                self._stop.wait(5)
                continue
            if batch is None:
                if self.metrics:
                    self.metrics.spool_bytes.set(self.spool.pending_bytes())
                with self.spool.data_available:
                    self.spool.data_available.wait(self.flush_interval)
                continue
            try:
                self.write_batch(batch)
                backoff = 0.5
                self.last_error = None
            except Exception as e:               # StoreError, or a disk error on the checkpoint: retry
                self.last_error = str(e)
                if self.metrics:
                    self.metrics.store_write_errors_total.inc()
                log.warning("spool batch write failed (retrying in %.1fs): %s", backoff, e,
                            exc_info=not isinstance(e, StoreError))
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
            if self.metrics:
                self.metrics.spool_bytes.set(self.spool.pending_bytes())

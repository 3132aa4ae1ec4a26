"""Ingest service: decoded spans and validated events → duplicate filtering → durable spool.

Re-deliveries are recognised here (recent keys in memory; for events also the store), so the reply can count
them; the store's ReplacingMergeTree tables and deduplicating readers remain the final guarantee for anything
recognised too late (a span re-sent after the dedup horizon, a concurrent duplicate).
"""
from __future__ import annotations

import hashlib
import logging
import threading

from collector.events import COL_EVENT_ID, ValidatedEvents
from collector.otlp import COL_SPAN_ID, COL_TRACE_ID
from collector.rowcodec import encode_events, encode_spans
from collector.spool import KIND_EVENTS, KIND_SPANS, Spool
from revwatch.metrics import Metrics
from revwatch.store import Store, StoreError

log = logging.getLogger("revwatch.intake")


class RecentKeys:
    """A bounded set of recently accepted keys: two generations, the older dropped when the newer fills."""

    def __init__(self, max_keys: int):
        self.half = max(1, max_keys // 2)
        self._new: set = set()
        self._old: set = set()

    def __contains__(self, key) -> bool:
        return key in self._new or key in self._old

    def add(self, key) -> None:
        """Remember a key."""
        if len(self._new) >= self.half:
            self._old, self._new = self._new, set()
        self._new.add(key)


def _span_key(row: list) -> int:
    return int.from_bytes(hashlib.blake2b((row[COL_TRACE_ID] + row[COL_SPAN_ID]).encode(), digest_size=8).digest(),
                          "little")


class Intake:
    """Accept spans and events durably, counting and dropping re-deliveries."""

    def __init__(self, spool: Spool, store: Store, metrics: Metrics, max_keys: int = 1_000_000):
        self.spool, self.store, self.metrics = spool, store, metrics
        self.recent_spans = RecentKeys(max_keys)
        self.recent_events = RecentKeys(max_keys)
        self._events_lock = threading.Lock()
        self._spans_lock = threading.Lock()

    def accept_spans(self, rows: list[list]) -> int:
        """Spool new spans; returns how many were duplicates of recently accepted ones. May raise SpoolFull."""
        with self._spans_lock:
            fresh, keys, seen = [], [], set()
            for row in rows:
                k = _span_key(row)
                if k in self.recent_spans or k in seen:
                    continue
                seen.add(k)
                fresh.append(row)
                keys.append(k)
            if fresh:
                self.spool.append(KIND_SPANS, encode_spans(fresh))
            for k in keys:
                self.recent_spans.add(k)
        dups = len(rows) - len(fresh)
        self.metrics.spans_total.inc(len(fresh))
        if dups:
            self.metrics.duplicates_total.labels("span").inc(dups)
        return dups

    def accept_events(self, validated: ValidatedEvents) -> tuple[int, int]:
        """Spool new events; returns (accepted, duplicates). May raise SpoolFull."""
        with self._events_lock:
            fresh, seen = [], set()
            for row in validated.rows:
                eid = row[COL_EVENT_ID]
                if eid in seen or eid in self.recent_events:
                    continue
                seen.add(eid)
                fresh.append(row)
            stored = self._already_stored([r[COL_EVENT_ID] for r in fresh])
            fresh = [r for r in fresh if r[COL_EVENT_ID] not in stored]
            if fresh:
                self.spool.append(KIND_EVENTS, encode_events(fresh))
            for r in fresh:
                self.recent_events.add(r[COL_EVENT_ID])
        dups = len(validated.rows) - len(fresh)
        self.metrics.events_total.inc(len(fresh))
        if dups:
            self.metrics.duplicates_total.labels("event").inc(dups)
        return len(fresh), dups

    def _already_stored(self, ids: list[str]) -> set[str]:
        if not ids:
            return set()
        try:
            r = self.store.query(f"SELECT DISTINCT EventId FROM {self.store.table('events')} "
                                 f"WHERE EventId IN {{ids:Array(String)}}", {"ids": ids})
            return {x[0] for x in r.rows}
        except StoreError as e:   # store down: accept; readers deduplicate whatever slips through
            log.info("duplicate check skipped, store unavailable: %s", e)
            return set()

"""Ingest service: decoded spans and validated events → duplicate/conflict check → durable spool.

Never touches the store on the request path: the reply's `duplicates` and `conflicts` come from a bounded memory
of recent event IDs and their content fingerprints (rebuilt at start from the `event_keys` table and the spool),
so its cost does not grow with the store and store reads can never hold ingest. Exact dedup stays where it is
exact: insert dedup tokens and the store's deduplicating readers catch whatever the memory no longer holds (an
event re-sent after the horizon is stored again and counted once by every reader).

Concurrency: the check runs under a short lock, the spool append (group-committed with other requests) outside
it. An event ID another request is appending right now is "in flight": a second request waits for that append;
if it failed, the second request fails too (503), so nobody is told "duplicate" for an item that was not stored.
"""
from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass, field

from collector.events import COL_CORRELATION as COL_EVENT_CORRELATION
from collector.events import COL_EVENT_ID, ValidatedEvents, validate_event
from collector.otlp import COL_CORRELATION as COL_SPAN_CORRELATION
from collector.otlp import COL_SPAN_ID, COL_TRACE_ID
from collector.rows import EventRow
from collector.rowcodec import event_lines, event_records, fingerprints, span_records
from collector.spool import KIND_EVENT_KEYS, Spool, SpoolRefused
from revwatch.ingest import Submitted
from revwatch.journeys.tier import JourneyTier
from revwatch.metrics import Metrics
from revwatch.store import Store, StoreError

log = logging.getLogger("revwatch.intake")

_EVENT_ATTRS = EventRow._fields.index("Attributes")


class RecentKeys:
    """A bounded map of recently accepted keys (→ a value): two generations, the older dropped when the newer
    fills, so memory is bounded by `max_keys` and the most recent `max_keys / 2` keys are always remembered."""

    def __init__(self, max_keys: int):
        self.half = max(1, max_keys // 2)
        self._new: dict = {}
        self._old: dict = {}

    def __contains__(self, key) -> bool:
        return key in self._new or key in self._old

    def get(self, key):
        """The value remembered for `key`, or None."""
        v = self._new.get(key)
        return self._old.get(key) if v is None else v

    def getters(self):
        """The two generations' `get`, newer first — `get` for a loop that looks up a whole batch (the caller holds
        whatever lock guards this map, so the generations cannot swap under it)."""
        return self._new.get, self._old.get

    def add(self, key, value=True) -> None:
        """Remember a key."""
        if len(self._new) >= self.half:
            self._old, self._new = self._new, {}
        self._new[key] = value

    def add_many(self, pairs: list[tuple]) -> None:
        """`add(key, value)` for each pair, in order: one dict update while the newer generation has room (a large
        batch of events adds thousands at once)."""
        if len(self._new) + len(pairs) < self.half:
            self._new.update(pairs)
            return
        for key, value in pairs:
            self.add(key, value)

    def __len__(self) -> int:
        return len(self._new) + len(self._old)


_NOT_IN_FLIGHT = (0, None)


class _Append:
    """One request's append in flight; later requests that carry the same event IDs wait for its outcome."""

    def __init__(self):
        self.finished = threading.Event()
        self.error: BaseException | None = None


@dataclass
class EventOutcome:
    accepted: int = 0
    duplicates: int = 0
    conflicts: list[dict] = field(default_factory=list)    # {"index", "event_id", "error"}


@dataclass
class _EventClaim:
    """One request's events between the duplicate check and the end of its append."""
    outcome: EventOutcome = field(default_factory=EventOutcome)
    fresh: list[list] = field(default_factory=list)
    fresh_fps: list[int] = field(default_factory=list)
    fresh_lines: list[bytes] = field(default_factory=list)
    records: list[bytes] = field(default_factory=list)
    waits: list[_Append] = field(default_factory=list)
    append: _Append = field(default_factory=_Append)


def _span_key(row: list) -> int:
    """A span's identity in the duplicate memory: a 64-bit hash of its trace and span IDs. The memory lives in this
    process only (never stored, never compared with another process's), so Python's own string hash (SipHash, 64
    bits, seeded per process) serves: as unlikely to collide as the 8-byte blake2b digest it replaced (a collision
    would count a new span as a re-delivery) at a fifth of the cost, paid once per span of every batch."""
    return hash(row[COL_TRACE_ID] + row[COL_SPAN_ID])


class Intake:
    """Accept spans and events durably, counting re-deliveries and reporting conflicting re-sends."""

    def __init__(self, spool: Spool, store: Store, metrics: Metrics, max_keys: int = 1_000_000):
        self.spool, self.store, self.metrics = spool, store, metrics
        self.recent_spans = RecentKeys(max_keys)
        self.recent_events = RecentKeys(max_keys)        # event ID → content fingerprint
        self._inflight: dict[str, tuple[int, _Append]] = {}
        self._events_lock = threading.Lock()
        self._spans_lock = threading.Lock()
        # every acknowledged event and the IDs of acknowledged spans go to the journey tier, when there is one
        # (revwatch/journeys/tier.py: lookups from memory; it is ahead of the store, never behind)
        self.journey_tier: JourneyTier | None = None

    # -- start-up ------------------------------------------------------------------------------------------
    def remember_stored(self, horizon_seconds: float, limit: int | None = None) -> int:
        """Rebuild the event memory from the store's `event_keys` (the last `horizon_seconds`) and from the
        spool's records not yet in the store; returns how many IDs are remembered. A store that does not answer
        only costs reply accuracy (readers deduplicate), never data."""
        limit = limit or self.recent_events.half
        n = 0
        try:
            rows = self.store.query(
                f"SELECT EventId, argMax(Fingerprint, SeenAt) FROM {self.store.table('event_keys')} "
                f"WHERE SeenAt >= now64(3) - toIntervalSecond({{h:UInt64}}) GROUP BY EventId "
                f"ORDER BY max(SeenAt) DESC LIMIT {{n:UInt64}}", {"h": int(horizon_seconds), "n": limit}).rows
            for eid, fp in reversed(rows):            # oldest first, so the newest end in the newer generation
                self.recent_events.add(eid, fp)
            n += len(rows)
        except StoreError as e:
            log.warning("could not load recent event IDs from the store (duplicates older than the spool will be "
                        "stored again and deduplicated by readers): %s", e)
        from collector.rowcodec import decode_lines
        for rec in self.spool.pending_records():
            if rec.kind == KIND_EVENT_KEYS:
                for eid, fp in decode_lines(rec.payload):
                    self.recent_events.add(eid, fp)
                    n += 1
        return n

    # -- spans ---------------------------------------------------------------------------------------------
    def accept_spans(self, rows: list[list]) -> int:
        """Spool new spans; returns how many were duplicates of recently accepted ones. May raise SpoolRefused."""
        with self._spans_lock:
            fresh, keys, seen = [], [], set()
            recent_new, recent_old = self.recent_spans.getters()
            for row in rows:
                k = _span_key(row)
                if k in seen or recent_new(k) is not None or recent_old(k) is not None:
                    continue
                seen.add(k)
                fresh.append(row)
                keys.append(k)
        if fresh:
            if self.journey_tier is not None:     # before the append: an ID with spans must never be answered
                self.journey_tier.add_spans({r[COL_SPAN_CORRELATION] for r in fresh})    # without them (tier.py)
            self.spool.append_records(span_records(fresh))
            with self._spans_lock:
                self.recent_spans.add_many([(k, True) for k in keys])
        dups = len(rows) - len(fresh)
        self.metrics.spans_total.inc(len(fresh))
        if dups:
            self.metrics.duplicates_total.labels("span").inc(dups)
        return dups

    # -- events --------------------------------------------------------------------------------------------
    def submit_events(self, items: list[dict], atomic: bool = False) -> Submitted:
        """`revwatch.ingest.EventSink` for producers inside revwatch (the probes): validate each item exactly as
        `POST /api/v1/events` does, then accept the valid ones (none when `atomic` and one is invalid)."""
        out, valid = Submitted(), ValidatedEvents()
        for i, item in enumerate(items):
            row, error, field_name = validate_event(item)
            if row is None:
                out.rejected.append((i, error or "invalid event", field_name))
            else:
                valid.rows.append(row)
        if valid.rows and not (atomic and out.rejected):
            out.accepted, out.duplicates = self.accept_events(valid)
        return out

    def accept_events(self, validated: ValidatedEvents) -> tuple[int, int]:
        """Spool new events; returns (accepted, already recorded). May raise SpoolRefused. For the probes, whose
        event IDs are deterministic per fact (`odoo:<db>:<model>:<id>:<what>`), a re-observation with other details
        (the poller seeing what a webhook already pushed) is the same fact already recorded: conflicts count as
        duplicates here, and, as everywhere, the first version stays the stored one."""
        out = self.accept_event_rows(validated.rows, validated.indexes or list(range(len(validated.rows))))
        return out.accepted, out.duplicates + len(out.conflicts)

    def accept_event_rows(self, rows: list[list], indexes: list[int]) -> EventOutcome:
        """Spool the new events among `rows` (request indexes `indexes`); duplicates are counted, conflicts (same
        ID, other content) listed and not stored. Returns only after the new ones are fsync'd in the spool."""
        claim = self._claim_events(rows, indexes)
        try:
            if claim.records:
                self.spool.append_records(claim.records)
        except BaseException as e:
            claim.append.error = e
            raise
        finally:
            self._release_events(claim)
        for other in claim.waits:                  # a duplicate of an append in flight counts only once it held
            other.finished.wait()
        return self._settle_events(claim)

    async def accept_event_rows_async(self, rows: list[list], indexes: list[int]) -> EventOutcome:
        """`accept_event_rows` for a coroutine on the event loop: the same checks and promise; the spool append is
        awaited (group-committed by the spool's committer thread), so no worker thread is held per request.

        The claim is settled by the committer when the append's outcome is known, not by this coroutine: if the
        request is cancelled while its append is queued, the append still lands, and its IDs are then remembered
        (not marked failed while their bytes are on disk — else a retry would be stored twice and a waiting
        duplicate told 503 for data that was written)."""
        claim = self._claim_events(rows, indexes)
        if not claim.records:
            self._release_events(claim)
        else:
            def settle(error: BaseException | None) -> None:
                claim.append.error = error
                self._release_events(claim)
            try:
                future = self.spool.submit_records(claim.records, on_done=settle)
            except BaseException as e:                 # refused before queueing: the hook will never run
                settle(e)
                raise
            if future is not None:
                await future
        for other in claim.waits:                  # rare: the same event ID in two requests at once
            if not other.finished.is_set():
                await asyncio.to_thread(other.finished.wait)
        return self._settle_events(claim)

    def _claim_events(self, rows: list[list], indexes: list[int]) -> _EventClaim:
        """Sort `rows` into fresh, duplicate and conflicting under the lock, and mark the fresh IDs in flight."""
        claim = _EventClaim()
        lines = event_lines(rows)
        fps = fingerprints(lines)
        out = claim.outcome
        fresh_lines = []
        fresh, fresh_fps = claim.fresh, claim.fresh_fps
        with self._events_lock:
            seen: dict[str, int] = {}
            in_flight = self._inflight.get                        # once per event of a batch: bound methods,
            recent_new, recent_old = self.recent_events.getters()  # RecentKeys.get inlined
            for row, line, fp, idx in zip(rows, lines, fps, indexes):
                eid = row[COL_EVENT_ID]
                known = seen.get(eid)
                if known is None:
                    flight = in_flight(eid)
                    if flight is not None:
                        known = flight[0]
                        claim.waits.append(flight[1])
                    else:
                        known = recent_new(eid)
                        if known is None:
                            known = recent_old(eid)
                if known is None:
                    seen[eid] = fp
                    fresh.append(row)
                    fresh_lines.append(line)
                    fresh_fps.append(fp)
                elif known == fp or known is True:
                    out.duplicates += 1
                else:
                    out.conflicts.append({"index": idx, "event_id": eid,
                                          "error": "event_id was already accepted with different content; "
                                                   "this copy is not stored"})
            mine = claim.append
            self._inflight.update((row[COL_EVENT_ID], (fp, mine)) for row, fp in zip(fresh, fresh_fps))
        if claim.fresh:
            claim.records = event_records(claim.fresh, fresh_lines, claim.fresh_fps)
            claim.fresh_lines = fresh_lines
        return claim

    def _release_events(self, claim: _EventClaim) -> None:
        """After the append: the IDs are no longer in flight; remembered if the append held."""
        mine = claim.append
        eids = [row[COL_EVENT_ID] for row in claim.fresh]
        with self._events_lock:
            inflight = self._inflight
            for eid in eids:
                if inflight.get(eid, _NOT_IN_FLIGHT)[1] is mine:
                    del inflight[eid]
            if mine.error is None:
                self.recent_events.add_many(list(zip(eids, claim.fresh_fps)))
        if mine.error is None and self.journey_tier is not None and claim.fresh:
            self.journey_tier.add_events([r[COL_EVENT_CORRELATION] for r in claim.fresh],
                                         [r[_EVENT_ATTRS] for r in claim.fresh], claim.fresh_lines)
        mine.finished.set()

    def _settle_events(self, claim: _EventClaim) -> EventOutcome:
        """The outcome, once every append this request waited on is known; counted in the metrics."""
        for other in claim.waits:
            if other.error is not None:
                raise SpoolRefused(f"a concurrent request carrying the same event IDs failed: {other.error}")
        out = claim.outcome
        out.accepted = len(claim.fresh)
        self.metrics.events_total.inc(out.accepted)
        if out.duplicates:
            self.metrics.duplicates_total.labels("event").inc(out.duplicates)
        if out.conflicts:
            self.metrics.conflicts_total.inc(len(out.conflicts))
            for c in out.conflicts[:20]:
                log.warning("event conflict", extra={"event_id": c["event_id"][:256], "index": c["index"]})
        return out

"""Every journey's events held in memory, so a lookup during a webhook storm costs no store query (issue #27).

Why: a journey lookup from the store is three engine statements, 9–13 ms of CPU however small the journey (the
engine's planning is most of it: README, "Reads during a webhook storm"). On two cores that ingest needs, ten
people reading then either wait seconds or take the CPU ingest needs. From memory the same document costs well
under a millisecond, and the store keeps its capacity for what must scan (search, stuck lists, SLO passes).

What is held: for every correlation ID, the encoded lines of its events exactly as the collector acknowledged them
(the spool's JSONCompactEachRow form: `wire_columns`), the (attribute, value) → correlation IDs index the store's
`attribute_links` view holds (same rule: a link attribute with a non-empty value), and the IDs that have spans —
those are always looked up in the store (spans, and the traces that join journeys, stay there).

Invariants:
* **Complete or silent.** `covers(cid)` is true only while the tier is ready and holds every event of every ID;
  then an ID it does not know has no events (and, not being in the span set, no spans either): 404 from memory.
  Over its memory budget the tier turns itself off (`state` "off", the reason in `reason`, in /metrics) and every
  lookup reads the store — never a partial answer.
* **Ahead, never behind.** Events enter when the spool has acknowledged them (collector.intake), before the writer
  stores them; an event the store refuses (quarantined) is taken out again, with the links only it carried. So
  once the spool has drained, a lookup from memory equals one from the store (tests/test_journey_tier.py compares
  the two documents), and until then it may show an acknowledged event up to `spool.flush_interval` sooner.
* **Duplicates are dropped at read**, the last stored copy kept: the one the store's ReplacingMergeTree keeps when
  it merges, and its read picks before (`ORDER BY IngestedAt DESC LIMIT 1 BY EventId`) — an event ID re-sent with
  other content after the intake's dedup memory forgot it (or to another intake process) is stored twice. Events
  are returned in EventId order (the lookup sorts the store's rows the same way, so ties in time read alike).
* **Warm start.** Built at process start, before ingest is accepted: what arrives while it loads is kept aside.
  `load()` takes every event from the store one day at a time (each day in the order stored), then the spool's
  records not yet stored, then what was kept aside: the order they were (or will be) stored in, so the last copy
  of a duplicate is the store's. (One case reads otherwise until the store merges nothing more: copies of one
  event ID stored on different days of OccurredAt load in day order, not in the order stored.)
* **Indexing yields to ingest, reads never see it stale.** A batch is kept as it came (`_pending`: one join) and
  indexed once the writer has caught up with the spool or is idle (collector.writer), or by the first read that
  needs it (every read indexes what is pending first, under the lock). A read on the event loop (`cheap=True`)
  never waits for a long index: it goes to a worker thread instead.
"""
from __future__ import annotations

import bisect
import datetime as dt
import logging
import re
import threading
from decimal import ROUND_DOWN, Decimal
from typing import Callable, Iterable, Sequence

import orjson

from revwatch.schema import LINK_ATTRIBUTES
from revwatch.store import Store

log = logging.getLogger("revwatch.journeys.tier")

_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")     # looked up as a whole trace: always the store (lookup.py)
_EPOCH = dt.datetime(1970, 1, 1)              # naive UTC, as the store's client returns DateTime64 values
RELATED_PER_VALUE = 20                        # links per (attribute, value) in a document (lookup._related)
# Memory accounting: bytes charged per held line beyond its own length (the newline that joins it to the ID's
# other lines), per correlation ID (dict entry, key string, bytes header) and per link (tuple key, value string,
# list) — CPython's object overheads; tests/test_journey_tier.py checks the estimate against tracemalloc.
LINE_OVERHEAD, ID_OVERHEAD, LINK_OVERHEAD = 1, 150, 120
# A lookup from memory costs ~46 µs of the server's CPU per event (parse, document, JSON: measured through the
# HTTP route on 3-1,000 event journeys); up to this many bytes of held lines (~130 events) it is cheap enough for a
# memory-read turn (revwatch.priority: 150/s, eight at once) — beyond, it takes a store-read turn (10/s, two at
# once) though it is still answered from memory: a 1,000-event journey cost 49 ms, 150 of those per second would
# take seven cores from ingest.
CHEAP_READ_BYTES = 16 * 1024
# a lookup indexes what is pending first (`index_pending`): up to this many events (~2.5 ms) it is still cheap
CHEAP_PENDING_EVENTS = 2_000
# how long a read on the event loop waits for the tier's lock before it goes to a worker thread instead (a feed
# holds it for ~2.5 ms per 2,000 events; the writer indexing a large backlog for much longer)
CHEAP_LOCK_WAIT = 0.005
# per event kept aside while loading: its correlation ID and attributes dict, held as the feed handed them over
ASIDE_OVERHEAD = 200

# The amount a lookup shows: the text as sent, else the store's rendering of the decimal (records_of's SQL).
AMOUNT_SQL = "if(AmountText != '', AmountText, toString(Amount))"


def amount_text(value: Decimal | str | None) -> str | None:
    """ClickHouse's `toString` of a Decimal(38, 9) (no exponent, no trailing zeros): the amount the store shows
    for a row inserted without its text (rows inserted by tools; the collector always keeps the text). Digits past
    the ninth decimal are cut, as the store cuts them (not rounded)."""
    if value is None:
        return None
    d = Decimal(value).quantize(Decimal("1e-9"), rounding=ROUND_DOWN)
    return "0" if d == 0 else format(d.normalize(), "f")


class JourneyTier:
    """The events of every correlation ID in memory (see the module docstring for what it promises)."""

    def __init__(self, budget_bytes: int, wire_columns: Sequence[str], encode_row: Callable[[list], bytes]):
        """`wire_columns`: the order of an event line (collector.rowcodec.EVENT_WIRE_COLUMNS: the event row, then
        the amount text); `encode_row`: an event row (OccurredAt in ms, amount text or None) → its line."""
        self.budget_bytes = budget_bytes
        self._col = {name: wire_columns.index(name) for name in
                     ("EventId", "Type", "CorrelationId", "OccurredAt", "Source", "Journey", "Amount", "Currency",
                      "Attributes")}
        self._amount_text = wire_columns.index("AmountText") if "AmountText" in wire_columns else None
        self._encode = encode_row
        self._lock = threading.Lock()
        self._events: dict[str, bytes] = {}          # correlation ID → its event lines, joined by newlines
        # attribute → value → the sorted correlation IDs carrying it (one dict per link attribute: no tuple key
        # to build and hash per event)
        self._links: dict[str, dict[str, tuple[str, ...]]] = {k: {} for k in LINK_ATTRIBUTES}
        self._links_by_key = list(self._links.items())
        self._with_spans: set[str] = set()
        self._aside: list[tuple[Callable, tuple]] | None = []     # feeds that arrive while loading
        self.bytes_held = 0
        self._aside_bytes = 0           # the estimate of what is kept aside (counted against the budget too)
        # acknowledged batches not indexed yet: (IDs, attributes, lines joined by newlines), their event count and
        # estimated bytes (counted against the budget). Why: indexing costs ~1.2 µs per event on the collector's
        # one interpreter — ~15 % of a large batch's intake; kept as the batch came it costs one join, and the
        # writer indexes once it has caught up (collector.writer), a read before it answers (never stale)
        self._pending: list[tuple[Sequence[str], Sequence[dict | None], bytes]] = []
        self._pending_events = 0
        self._pending_bytes = 0
        self.state = "loading"          # loading → ready, or off (over budget, or the load failed)
        self.reason = "loading the store's events"

    # -- feeding ------------------------------------------------------------------------------------------
    def add_events(self, cids: Sequence[str], attributes: Sequence[dict | None], lines: Sequence[bytes]) -> None:
        """Acknowledged events: their correlation IDs, attributes and encoded lines (the collector's hot path:
        nothing is parsed)."""
        self._feed(self._add_events, (cids, attributes, lines))      # the caller hands them over: no copy

    def add_event_lines(self, lines: Iterable[bytes]) -> None:
        """Encoded event lines only (what intake processes send their owner)."""
        self.add_events(*self._parsed(lines))

    def _parsed(self, lines: Iterable[bytes]) -> tuple[list[str], list[dict | None], list[bytes]]:
        """(correlation IDs, attributes, lines) of encoded event lines, empty lines left out."""
        keep = [ln for ln in lines if ln]
        rows = [orjson.loads(ln) for ln in keep]
        c = self._col
        return [r[c["CorrelationId"]] for r in rows], [r[c["Attributes"]] for r in rows], keep

    def add_spans(self, cids: Iterable[str]) -> None:
        """Correlation IDs that received spans: from now on looked up in the store."""
        self._feed(self._add_spans, (set(cids),))

    def add_span_lines(self, lines: Iterable[bytes], cid_index: int) -> None:
        """Encoded span lines (intake processes, the spool at start): their correlation IDs go to the store."""
        self.add_spans(orjson.loads(ln)[cid_index] for ln in lines if ln)

    def forget_event_line(self, line: bytes) -> None:
        """An acknowledged event the store refused for good (quarantined): no longer shown."""
        self._feed(self._forget, (line,))

    def _feed(self, apply: Callable, args: tuple) -> None:
        with self._lock:
            if self.state == "off":
                return
            if self._aside is not None:
                if apply == self._add_events:
                    # copies of their own size: orjson's results keep a 4 KiB buffer each (see _add_events),
                    # 40 MB per 10,000 events acknowledged while a large store loads — not counted, not bounded
                    cids, attributes, lines = args
                    args = (cids, attributes, [bytes(memoryview(ln)) for ln in lines])
                    self._aside_bytes += sum(len(ln) + ASIDE_OVERHEAD for ln in lines)
                self._aside.append((apply, args))
                if self.bytes_held + self._aside_bytes > self.budget_bytes:
                    self._turn_off(f"over its memory budget while loading ({self.budget_bytes / 2**20:.0f} MiB, "
                                   f"server.journey_memory_mb): lookups read the store")
                return
            if apply == self._add_events:
                # kept as the batch came, indexed later (`index_pending`): the collector's hot path pays one join
                cids, attributes, lines = args
                joined = b"\n".join(lines)
                self._pending.append((cids, attributes, joined))
                self._pending_events += len(cids)
                self._pending_bytes += len(joined) + len(cids) * ASIDE_OVERHEAD
                if self._pending_bytes > self.budget_bytes // 4:
                    self._index_pending()
                self._check_budget()
                return
            if apply != self._add_spans:             # (an ID's spans do not depend on its pending events)
                self._index_pending()
            apply(*args)
            self._check_budget()

    def index_pending(self) -> None:
        """Index the events fed since the last index (the writer calls this once it has caught up with the spool,
        a read before it answers): the per-event work yields to ingest while a batch is still being stored."""
        with self._lock:
            self._index_pending()

    @property
    def pending_events(self) -> int:
        return self._pending_events

    def _index_pending(self) -> None:
        # the count reads as pending until the index is done: `cheap` (no lock) sends no lookup to the event loop,
        # to wait for this lock, while a large backlog is indexed; over its budget once indexed (an indexed new ID
        # with new link values costs more than its pending estimate), the tier turns off
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        try:
            for cids, attributes, joined in pending:
                self._add_events(cids, attributes, joined.split(b"\n"))
        finally:
            self._pending_events = self._pending_bytes = 0
        self._check_budget()

    def give_up(self, reason: str) -> None:
        """Turn off for good (the load could not be done): lookups read the store."""
        with self._lock:
            if self.state != "off":
                self._turn_off(reason)

    def _add_events(self, cids: Sequence[str], attributes: Sequence[dict | None], lines: Sequence[bytes]) -> None:
        events, links_by_key, added = self._events, self._links_by_key, 0
        for cid, attrs, line in zip(cids, attributes, lines):
            held = events.get(cid)
            if held is None:
                # a copy of exactly its size: orjson's own result keeps a 4 KiB buffer (measured: 4,089 bytes
                # held for a 180-byte line), which a million kept lines would turn into 4 GB
                events[cid] = bytes(memoryview(line))
                added += ID_OVERHEAD + len(line)
            else:
                events[cid] = held + b"\n" + line
                added += len(line) + LINE_OVERHEAD
            if attrs:
                for k, by_value in links_by_key:
                    v = attrs.get(k)
                    if v:
                        # tuples, not lists: a tuple of strings leaves the garbage collector's lists at its
                        # next pass, a list never does — 333 k link lists made every full collection take
                        # 160 ms (measured at 1 M events), a stall of every request in this process
                        ids = by_value.get(v)
                        if ids is None:
                            by_value[v] = (cid,)
                            added += LINK_OVERHEAD + len(v)
                        elif ids[-1] != cid:         # the same ID again (its other events): nothing to add
                            at = bisect.bisect_left(ids, cid)
                            if at == len(ids) or ids[at] != cid:
                                by_value[v] = ids[:at] + (cid,) + ids[at:]
                                added += 8
        self.bytes_held += added

    def _add_spans(self, cids: set[str]) -> None:
        # a trace id is never answered from memory (`covers`): spans stored under one (exported without a
        # correlation attribute, one ID per trace) need no entry — keeping them would grow with every trace
        new = {c for c in cids if len(c) != 32 or not _TRACE_ID.match(c)} - self._with_spans
        self._with_spans |= new
        self.bytes_held += sum(len(c) + 90 for c in new)

    def _forget(self, line: bytes) -> None:
        row = orjson.loads(line)
        cid, at = row[self._col["CorrelationId"]], self._col["Attributes"]
        held = self._events.get(cid)
        lines = held.split(b"\n") if held else []
        if line not in lines:
            return
        lines.remove(line)
        if lines:
            self._events[cid] = b"\n".join(lines)
            self.bytes_held -= len(line) + LINE_OVERHEAD
        else:                         # no entry left: an empty one would read as an empty line when the ID's
            del self._events[cid]     # next event is appended to it
            self.bytes_held -= len(line) + ID_OVERHEAD
        # its links go too, unless another event of the ID carries them: the store never had this row, so its
        # `attribute_links` never had them (another ID's document must not list this one as related)
        gone = [(k, v) for k, v in (row[at] or {}).items() if v and k in self._links]
        kept = [orjson.loads(ln)[at] or {} for ln in lines] if gone else []
        for k, v in gone:
            if any(a.get(k) == v for a in kept):
                continue
            by_value = self._links[k]
            ids = by_value.get(v, ())
            i = bisect.bisect_left(ids, cid)
            if i < len(ids) and ids[i] == cid:
                if len(ids) == 1:
                    del by_value[v]
                    self.bytes_held -= LINK_OVERHEAD + len(v)
                else:
                    by_value[v] = ids[:i] + ids[i + 1:]
                    self.bytes_held -= 8

    def _check_budget(self) -> None:
        if self.bytes_held + self._pending_bytes > self.budget_bytes:
            self._turn_off(f"over its memory budget ({self.bytes_held / 2**20:.0f} MiB > "
                           f"{self.budget_bytes / 2**20:.0f} MiB, server.journey_memory_mb): lookups read the store")

    def _turn_off(self, reason: str) -> None:
        self.state, self.reason = "off", reason
        self._events, self._with_spans, self._aside, self._aside_bytes = {}, set(), None, 0
        self._pending, self._pending_events, self._pending_bytes = [], 0, 0
        self._links = {k: {} for k in LINK_ATTRIBUTES}
        self._links_by_key = list(self._links.items())
        self.bytes_held = 0
        log.warning("journey lookups from memory are off: %s", reason)

    # -- start-up -----------------------------------------------------------------------------------------
    def load(self, store: Store, pending_event_lines: Iterable[bytes] = (), pending_span_cids: Iterable[str] = (),
             day_rows: int = 500_000) -> None:
        """Fill from what is already recorded, then serve. `pending_*`: the spool's records not yet stored (they
        were acknowledged by an earlier process). Reads the store one day at a time (background priority)."""
        try:
            self._load(store, pending_event_lines, pending_span_cids, day_rows)
            with self._lock:
                if self.state == "off":
                    return
                aside, self._aside, self._aside_bytes = self._aside or [], None, 0
                for apply, args in aside:
                    apply(*args)
                self.state, self.reason = "ready", ""
                self._check_budget()
        except Exception as e:        # the store failed or the budget was hit: lookups read the store
            self.give_up(f"could not load the store's events: {e}")
            return
        log.info("journey lookups from memory: %d correlation IDs, %.0f MiB", len(self._events),
                 self.bytes_held / 2**20)

    def _load(self, store: Store, pending_event_lines: Iterable[bytes], pending_span_cids: Iterable[str],
              day_rows: int) -> None:
        t = store.table
        days = store.query(f"SELECT toDate(OccurredAt) AS d, count() FROM {t('events')} GROUP BY d ORDER BY d").rows
        total = sum(n for _, n in days)
        if total * (LINE_OVERHEAD + 120) > self.budget_bytes:       # a line is at least ~120 bytes: do not try
            raise MemoryError(f"the store holds {total:,} events, more than fit in server.journey_memory_mb")
        with self._lock:
            if self.state == "off":
                return
            self._add_spans(set(pending_span_cids))
        spans = store.query(f"SELECT DISTINCT CorrelationId FROM {t('correlation_ts')} WHERE notEmpty(Traces)").rows
        with self._lock:
            if self.state == "off":
                return
            self._add_spans({r[0] for r in spans})
        for day, n in days:
            for part in range(max(1, -(-n // day_rows))):       # a big day in slices of the ID hash
                rows = store.query(
                    f"SELECT EventId, Type, CorrelationId, toUnixTimestamp64Milli(OccurredAt), toString(Source), "
                    f"toString(Journey), {AMOUNT_SQL}, toString(Currency), CAST(Attributes, 'Map(String, String)') "
                    f"FROM {t('events')} WHERE toDate(OccurredAt) = {{d:Date}} "
                    f"AND cityHash64(CorrelationId) % {{k:UInt32}} = {{p:UInt32}} ORDER BY IngestedAt",
                    {"d": day, "k": max(1, -(-n // day_rows)), "p": part}).rows
                lines = [self._encode(list(r)) for r in rows]
                with self._lock:
                    if self.state == "off":
                        return
                    self._add_events([r[2] for r in rows], [r[8] for r in rows], lines)
                    if self.bytes_held + self._aside_bytes > self.budget_bytes:
                        raise MemoryError("the store's events do not fit in server.journey_memory_mb")
        parsed = self._parsed(pending_event_lines)      # stored after all of the above: their copies win
        with self._lock:
            if self.state != "off":      # turned off meanwhile (over its budget with what was kept aside)
                self._add_events(*parsed)

    # -- reading ------------------------------------------------------------------------------------------
    def covers(self, cid: str) -> bool:
        """Whether this ID's lookup is answered from memory (ready; not a trace id; no spans)."""
        return self.state == "ready" and cid not in self._with_spans and not _TRACE_ID.match(cid)

    def cheap(self, cid: str) -> bool:
        """Whether this ID's lookup is answered from memory at a small cost (`CHEAP_READ_BYTES`): a memory-read
        turn under ingest load, not a store-read one (revwatch.server `_served_from_memory`), on the event loop
        (collector.journey_routes). Not while many events wait to be indexed: that read indexes them first."""
        return (self.covers(cid) and self._pending_events <= CHEAP_PENDING_EVENTS
                and len(self._events.get(cid, b"")) <= CHEAP_READ_BYTES)

    def events_of(self, cid: str, cheap: bool = False) -> list[dict] | None:
        """The ID's events as `JourneyService.records_of` returns them (deduplicated, the last copy of an event
        ID kept; in EventId order); None when the tier is no longer ready (it turned off after `covers`). `cheap`
        (a read on the event loop): None too when the read is not cheap once under the lock — more pending than
        `CHEAP_PENDING_EVENTS` (fed since `cheap` said yes), or more than `CHEAP_READ_BYTES` held once indexed
        (`cheap` weighs the ID's indexed lines only), or when the lock is not free within `CHEAP_LOCK_WAIT` (the
        writer is indexing a backlog: the event loop must not wait for it)."""
        if not self._lock.acquire(timeout=CHEAP_LOCK_WAIT if cheap else -1):
            return None
        try:
            if self.state != "ready" or (cheap and self._pending_events > CHEAP_PENDING_EVENTS):
                return None
            self._index_pending()
            if self.state != "ready":           # indexing took it over its budget
                return None
            held = self._events.get(cid, b"")
            if cheap and len(held) > CHEAP_READ_BYTES:
                return None
        finally:
            self._lock.release()
        c, seen, out = self._col, set(), []
        for line in reversed(held.split(b"\n")) if held else ():
            r = orjson.loads(line)
            eid = r[c["EventId"]]
            if eid in seen:
                continue
            seen.add(eid)
            text = r[self._amount_text] if self._amount_text is not None and len(r) > self._amount_text else ""
            secs, _, frac = r[c["OccurredAt"]].partition(".")
            ms = int(secs) * 1000 + int((frac + "000")[:3])
            out.append({"EventId": eid, "Type": r[c["Type"]], "OccurredAt": _EPOCH + dt.timedelta(milliseconds=ms),
                        "Source": r[c["Source"]], "Journey": r[c["Journey"]],
                        "Amount": text if text else amount_text(r[c["Amount"]]),
                        "Currency": r[c["Currency"]], "Attributes": r[c["Attributes"]] or {}})
        out.sort(key=lambda e: e["EventId"])
        return out

    def linked(self, pairs: Iterable[tuple[str, str]], cid: str) -> dict[tuple[str, str], list[str]] | None:
        """For each (attribute, value): up to RELATED_PER_VALUE other correlation IDs carrying it, smallest
        first (`attribute_links`, as lookup._related reads it); None when the tier is no longer ready."""
        out: dict[tuple[str, str], list[str]] = {}
        with self._lock:
            if self.state != "ready":
                return None
            self._index_pending()
            if self.state != "ready":
                return None
            for key, value in pairs:
                ids = self._links.get(key, {}).get(value, ())
                out[(key, value)] = [x for x in ids[:RELATED_PER_VALUE + 1] if x != cid][:RELATED_PER_VALUE]
        return out

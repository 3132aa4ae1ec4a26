"""Dead letters (docs/sources.md): every rejected item or request — validation, mapping, signature, unknown
source, over-size — kept with its raw body (the first `deadletters.max_body_bytes`), door, source, reason, first and
last time seen and how often, so a sender's problem is visible and fixable, and replayable once it is fixed.

Identity: a letter's id is a hash of (door, source, reason, body), so the same bad payload re-sent by a retrying
sender is one letter with a count, not a thousand. Letters are recorded without touching the store on the request
path: `add` puts them in a bounded in-memory buffer (aggregating repeats) that a background thread flushes every
second; when the buffer is full (the store down for long), further letters are counted in
`revwatch_deadletters_dropped_total` and not kept — a rejection was already answered to its sender with a 4xx, so
no acknowledged data depends on a letter; what is lost is the copy.

Bounds: the maintenance pass (every flush, at most once a minute) deletes letters last seen before
`deadletters.max_age` and, beyond `deadletters.max_bytes` of stored bodies, the oldest letters first.

Status: a letter is `open` until a replay brings it in (`replayed`: its items were accepted or were already
stored); a replay that fails again records `rejected_again` and leaves it open. Replays are recorded in
`dead_letter_replays`.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import logging
import threading
from dataclasses import dataclass
from typing import Any, Iterable

from revwatch.config import DEADLETTER_AGE_SAMPLE, DeadLetterConfig
from revwatch.metrics import Metrics
from revwatch.store import Store, StoreError
from revwatch.units import epoch_millis as _ms

log = logging.getLogger("revwatch.deadletters")

# Letters that passed authentication and failed on content: replayable, and what the `deadletter_age` SLI waits on.
# Signature, token, size and unknown-source letters are never replayed (nothing proved who sent them).
REPLAYABLE = ("invalid_event", "mapping", "not_json")
DOORS = ("events", "cloudevents", "otlp_logs")          # the generic doors' source labels
COLUMNS = ("Id", "Door", "Source", "Reason", "Detail", "Body", "BodyBytes", "FirstSeen", "LastSeen", "Count")
MAX_PENDING = 10_000                 # letters waiting for the store; beyond this they are counted and dropped
MAX_DETAIL = 2000
_MAINTAIN_EVERY = dt.timedelta(minutes=1)


@dataclass
class _Pending:
    door: str
    source: str
    reason: str
    detail: str
    body: bytes
    size: int
    first: dt.datetime
    last: dt.datetime
    count: int


def letter_id(door: str, source: str, reason: str, body: bytes) -> str:
    """The identity of a letter: equal for the same rejected body from the same place for the same reason."""
    h = hashlib.blake2b(digest_size=12)
    for part in (door.encode(), source.encode(), reason.encode(), body):
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return h.hexdigest()




# A cursor is the last letter's LastSeen (ms, 16 hex digits) and id (24 hex digits); any string of that shape is a
# valid position (the API states the pattern, so every schema-valid cursor is answered).
CURSOR_PATTERN = r"^[0-9a-f]{40}$"


def encode_cursor(last_seen: dt.datetime, ident: str) -> str:
    """An opaque cursor after the letter (last_seen, id) in newest-first order."""
    return f"{_ms(last_seen):016x}{ident}"


def decode_cursor(cursor: str) -> tuple[int, str]:
    """(last_seen ms, id) from a cursor; ValueError for one of another shape."""
    if len(cursor) != 40 or any(c not in "0123456789abcdef" for c in cursor):
        raise ValueError("not a cursor from a previous page")
    return int(cursor[:16], 16), cursor[16:]


class DeadLetters:
    """The dead-letter store: a buffered writer, reads for the API/CLI/UI, replay bookkeeping."""

    def __init__(self, store: Store, metrics: Metrics, cfg: DeadLetterConfig, sources: Iterable[str] = ()):
        self.store, self.metrics, self.cfg = store, metrics, cfg
        self.sources = (*DOORS, *sources)          # the age sample has a row for each, every minute
        self._sampled: dt.datetime | None = None
        self._pending: dict[str, _Pending] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._maintained: dt.datetime | None = None

    # -- recording -----------------------------------------------------------------------------------------
    def add(self, door: str, source: str, reason: str, detail: str, body: bytes) -> str:
        """Keep a rejected item (never blocks on the store); returns its letter id."""
        size = len(body)
        kept = body[:self.cfg.max_body_bytes]
        ident = letter_id(door, source, reason, kept)
        now = dt.datetime.now(dt.timezone.utc)
        # an unknown source's name is whatever an unauthenticated caller put in the URL: never a label value
        self.metrics.deadletters_total.labels("-" if reason == "unknown_source" or not source else source,
                                              reason).inc()
        with self._lock:
            p = self._pending.get(ident)
            if p is not None:
                p.count += 1
                p.last = now
            elif len(self._pending) >= MAX_PENDING:
                self.metrics.deadletters_dropped_total.inc()
            else:
                self._pending[ident] = _Pending(door, source, reason, detail[:MAX_DETAIL], kept, size, now, now, 1)
        return ident

    def flush(self) -> int:
        """Write the buffered letters to the store; returns how many rows were written. On a store error they
        stay buffered (merged with newer repeats) for the next flush."""
        with self._lock:
            batch, self._pending = self._pending, {}
        if not batch:
            self._maintain()
            return 0
        rows = [(i, p.door, p.source, p.reason, p.detail, p.body.decode("utf-8", "replace"), p.size, p.first, p.last,
                 p.count) for i, p in batch.items()]
        try:
            self.store.insert("dead_letters", rows, COLUMNS)
        except StoreError as e:
            log.warning("could not store %d dead letter(s), kept for the next attempt: %s", len(rows), e)
            with self._lock:
                for i, p in batch.items():
                    q = self._pending.get(i)
                    if q is None:
                        self._pending[i] = p
                    else:
                        q.count, q.first = q.count + p.count, min(q.first, p.first)
            return 0
        self._maintain()
        return len(rows)

    def record_age_sample(self, now: dt.datetime | None = None) -> dict[str, float]:
        """Write this minute's `DEADLETTER_AGE_SAMPLE` rows: per source, the age in seconds of its oldest open
        replayable letter (0 when none), which the `deadletter_age` SLI compares with its threshold. Returns them."""
        now = now or dt.datetime.now(dt.timezone.utc)
        ages = dict.fromkeys(self.sources, 0.0)
        for source, _reason, age in self.open_ages(now):
            ages[source] = max(ages.get(source, 0.0), age)
        rows = [(DEADLETTER_AGE_SAMPLE, {"source": src}, age, now, "deadletters") for src, age in ages.items()]
        self.store.insert("samples", rows, ["Name", "Labels", "Value", "Timestamp", "Probe"])
        return ages

    def _maintain(self) -> None:
        now = dt.datetime.now(dt.timezone.utc)
        if self._sampled is None or now - self._sampled >= dt.timedelta(minutes=1):
            try:
                self.record_age_sample(now)
                self._sampled = now
            except StoreError as e:
                log.warning("could not record the dead-letter age sample: %s", e)
        if self._maintained is not None and now - self._maintained < _MAINTAIN_EVERY:
            return
        self._maintained = now
        t = self.store.table("dead_letters")
        try:
            self.store.command(f"DELETE FROM {t} WHERE LastSeen < now64(3) - toIntervalSecond({{a:UInt64}})",
                               {"a": int(self.cfg.max_age.total_seconds())})
            total = self.store.query(f"SELECT sum(length(Body)) FROM {t}").scalar() or 0
            if total > self.cfg.max_bytes:
                # the LastSeen at which the newest letters still fit: everything last seen before it goes
                cut = self.store.query(
                    f"SELECT min(ls) FROM (SELECT ls, sum(b) OVER (ORDER BY ls DESC) AS run FROM "
                    f"(SELECT max(LastSeen) AS ls, sum(length(Body)) AS b FROM {t} GROUP BY Id)) "
                    f"WHERE run <= {{m:UInt64}}", {"m": self.cfg.max_bytes}).scalar()
                if cut is not None:
                    self.store.command(f"DELETE FROM {t} WHERE Id IN (SELECT Id FROM {t} GROUP BY Id "
                                       f"HAVING max(LastSeen) < {{c:DateTime64(3)}})", {"c": cut})
        except StoreError as e:
            log.warning("dead-letter maintenance failed (retried next minute): %s", e)

    def start(self, interval: float = 1.0) -> None:
        """Flush in a background thread every `interval` seconds until `stop`."""
        if self._thread is not None:
            return
        self._stop.clear()

        def run() -> None:
            while not self._stop.wait(interval):
                self.flush()
        self._thread = threading.Thread(target=run, name="revwatch-deadletters", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread after a last flush."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        self.flush()

    # -- reading -------------------------------------------------------------------------------------------
    def _select(self, where: str, having: str, params: dict, limit: int, with_body: bool) -> list[dict]:
        t, r = self.store.table("dead_letters"), self.store.table("dead_letter_replays")
        body = "any(Body) AS body, " if with_body else "substring(any(Body), 1, 200) AS body, "
        sql = (f"SELECT Id AS id, any(Door) AS door, any(Source) AS source, any(Reason) AS reason, "
               f"any(Detail) AS detail, {body}max(BodyBytes) AS body_bytes, min(FirstSeen) AS first_seen, "
               f"max(LastSeen) AS last_seen, sum(Count) AS count FROM {t} WHERE {where} GROUP BY Id "
               f"HAVING {having} ORDER BY last_seen DESC, id DESC LIMIT {{limit:UInt32}}")
        rows = self.store.query(sql, {**params, "limit": limit}).dicts()
        if not rows:
            return rows
        replays = self.store.query(
            f"SELECT Id, argMax(Outcome, At), max(At), argMax(Detail, At), count() FROM {r} "
            f"WHERE Id IN {{ids:Array(String)}} GROUP BY Id", {"ids": [x["id"] for x in rows]}).rows
        by_id = {i: (o, at, d, n) for i, o, at, d, n in replays}
        for x in rows:
            o, at, d, n = by_id.get(x["id"], (None, None, None, 0))
            x["status"] = "replayed" if o == "replayed" else "open"
            x["replays"] = n
            x["last_replay"] = None if o is None else {"outcome": o, "at": _iso(at), "detail": d}
            x["first_seen"], x["last_seen"] = _iso(x["first_seen"]), _iso(x["last_seen"])
            x["truncated"] = x["body_bytes"] > len(x["body"].encode()) if with_body else None
        return rows

    def find(self, source: str | None = None, reason: str | None = None, since: dt.datetime | None = None,
             cursor: str | None = None, limit: int = 100, status: str | None = None) -> tuple[list[dict], str | None]:
        """Letters newest first (by last seen) with filters; (items, next cursor or None). Bodies are cut to their
        first 200 characters here (`get` has the whole kept body)."""
        where, having = ["1"], ["1"]
        params: dict[str, Any] = {}
        if source:
            where.append("Source = {source:String}")
            params["source"] = source
        if reason:
            where.append("Reason = {reason:String}")
            params["reason"] = reason
        if since:
            having.append("last_seen >= {since:DateTime64(3)}")
            params["since"] = since.astimezone(dt.timezone.utc).replace(tzinfo=None)
        if cursor:
            ms, ident = decode_cursor(cursor)
            having.append("(toUnixTimestamp64Milli(last_seen) < {cms:Int64} OR "
                          "(toUnixTimestamp64Milli(last_seen) = {cms:Int64} AND id < {cid:String}))")
            params.update(cms=ms, cid=ident)
        if status == "open":
            rt = self.store.table("dead_letter_replays")
            having.append(f"id NOT IN (SELECT Id FROM {rt} GROUP BY Id HAVING argMax(Outcome, At) = 'replayed')")
        rows = self._select(" AND ".join(where), " AND ".join(having), params, limit + 1, False)
        if status == "replayed":
            rows = [x for x in rows if x["status"] == "replayed"]
        nxt = None
        if len(rows) > limit:
            rows = rows[:limit]
            last = rows[-1]
            nxt = encode_cursor(dt.datetime.fromisoformat(last["last_seen"]), last["id"])
        return rows, nxt

    def get(self, ident: str) -> dict | None:
        """One letter with its whole kept body, or None."""
        rows = self._select("Id = {id:String}", "1", {"id": ident}, 1, True)
        return rows[0] if rows else None

    def record_replay(self, ident: str, outcome: str, accepted: int, duplicates: int, detail: str) -> None:
        """Record one replay of a letter (outcome `replayed` or `rejected_again`)."""
        self.store.insert("dead_letter_replays", [(ident, dt.datetime.now(dt.timezone.utc), outcome, accepted,
                                                   duplicates, detail[:MAX_DETAIL])],
                          ("Id", "At", "Outcome", "Accepted", "Duplicates", "Detail"))

    def open_ages(self, now: dt.datetime | None = None) -> list[tuple[str, str, float]]:
        """(source, reason, age in seconds of the oldest open replayable letter) per source and reason."""
        t, r = self.store.table("dead_letters"), self.store.table("dead_letter_replays")
        now = now or dt.datetime.now(dt.timezone.utc)
        return [(s, rs, max(0.0, float(a) / 1000)) for s, rs, a in self.store.query(
            f"SELECT Source, Reason, {{now:Int64}} - toUnixTimestamp64Milli(min(FirstSeen)) FROM {t} "
            f"WHERE Reason IN {{reasons:Array(String)}} AND Id NOT IN "
            f"(SELECT Id FROM {r} GROUP BY Id HAVING argMax(Outcome, At) = 'replayed') GROUP BY Source, Reason",
            {"now": int(now.timestamp() * 1000), "reasons": list(REPLAYABLE)}).rows]


def _iso(t) -> str | None:
    if t is None:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    return t.isoformat()

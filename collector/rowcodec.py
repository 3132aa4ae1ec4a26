"""Rows ⇄ the spool's wire form: JSONCompactEachRow lines that ClickHouse parses itself (in C++), so the writer
never rebuilds Python objects. Timestamps travel as 'seconds.fraction' strings (a JSON integer would be read as
seconds), amounts as exact decimal strings."""
from __future__ import annotations

import hashlib
import struct
from decimal import Decimal

import orjson

from collector.events import COL_EVENT_ID, COL_OCCURRED, EVENT_COLUMNS
from collector.otlp import COL_TIMESTAMP
from collector.rows import SpanRow
from collector.spool import KIND_EVENT_KEYS, KIND_EVENTS, KIND_EVENTS_TEXT, KIND_SPANS, encode_record

EVENT_KEY_COLUMNS = ("EventId", "Fingerprint")
# What the spool carries for events: the `events` columns plus the amount exactly as sent (Decimal(38, 9) would
# give "129" back for "129.00").
EVENT_WIRE_COLUMNS = EVENT_COLUMNS + ("AmountText",)
NS_PER_DAY, MS_PER_DAY = 86_400 * 10**9, 86_400_000

SPAN_EVENTS_TS = SpanRow._fields.index("Events__Timestamp")   # `Events.Timestamp` column of a span row
_AMOUNT = EVENT_COLUMNS.index("Amount")


# Seconds are zero-padded to 10 digits: ClickHouse reads a shorter digit run ("86400.000", any instant before
# 2001-09-09) as a date format and refuses the row. The supported range [1970, 2100) always fits 10 digits.
def _ns(ns: int) -> str:
    t = str(ns)               # 19 digits from 2001-09-09 on, as _ms below (one string, not two integer formats)
    if len(t) != 19:
        t = t.zfill(19)
    return f"{t[:10]}.{t[10:]}"


def _ms(ms: int) -> str:
    t = str(ms)               # 13 digits from 2001-09-09 on; the supported range [1970, 2100) never needs 14
    if len(t) != 13:
        t = t.zfill(13)
    return f"{t[:10]}.{t[10:]}"       # twice as fast as two integer formats: one per event of every batch


def encode_spans(rows: list[list]) -> bytes:
    """Span rows (int nanosecond timestamps) → JSONCompactEachRow bytes."""
    out = []
    for r in rows:
        r = list(r)
        r[COL_TIMESTAMP] = _ns(r[COL_TIMESTAMP])
        if r[SPAN_EVENTS_TS]:
            r[SPAN_EVENTS_TS] = [_ns(t) for t in r[SPAN_EVENTS_TS]]
        out.append(orjson.dumps(r))
    return b"\n".join(out)


def event_line(row: list) -> bytes:
    """One event row (int millisecond timestamp, decimal-string amount) → its JSONCompactEachRow line. Attribute
    keys are sorted, so the same content always gives the same bytes (the line is also the content fingerprint's
    input)."""
    r = list(row)
    r[COL_OCCURRED] = _ms(r[COL_OCCURRED])
    r.append(r[_AMOUNT] or "")
    return orjson.dumps(r, option=orjson.OPT_SORT_KEYS)


def event_lines(rows: list[list]) -> list[bytes]:
    """`[event_line(r) for r in rows]`, for a batch: the same bytes, without a copy of each row or a call per
    timestamp (a large batch encodes every event once, on the intake's one interpreter)."""
    out: list[bytes] = []
    dumps, append = orjson.dumps, out.append
    for r in rows:
        t = str(r[3])                                   # r[3]: COL_OCCURRED (checked at import below)
        if len(t) != 13:
            t = t.zfill(13)
        amount = r[6]                                   # r[6]: Amount
        append(dumps([r[0], r[1], r[2], f"{t[:10]}.{t[10:]}", r[4], r[5], amount, r[7], r[8], amount or ""],
                     option=orjson.OPT_SORT_KEYS))
    return out


# event_lines indexes a row by position: the positions it uses must be the row type's.
assert COL_OCCURRED == 3 and _AMOUNT == 6 and len(EVENT_COLUMNS) == 9


def encode_events(rows: list[list]) -> bytes:
    """Event rows → JSONCompactEachRow bytes (EVENT_WIRE_COLUMNS)."""
    return b"\n".join(event_lines(rows))


def _by_day(rows: list[list], col: int, per_day: int) -> dict[int, list[list]]:
    groups: dict[int, list[list]] = {}
    for r in rows:
        groups.setdefault(r[col] // per_day, []).append(r)
    return groups


def span_records(rows: list[list]) -> list[bytes]:
    """Span rows → spool records, one per UTC day (the `spans` partition), each tagged with its day."""
    return [encode_record(KIND_SPANS, encode_spans(g), day)
            for day, g in sorted(_by_day(rows, COL_TIMESTAMP, NS_PER_DAY).items())]


def event_records(rows: list[list], lines: list[bytes], fingerprints: list[int]) -> list[bytes]:
    """Event rows with their encoded lines → spool records, one per UTC day (the `events` partition), plus one
    record of (event ID, fingerprint) pairs for the `event_keys` table the dedup memory is rebuilt from."""
    by_day: dict[int, list[bytes]] = {}
    for r, line in zip(rows, lines):
        by_day.setdefault(r[COL_OCCURRED] // MS_PER_DAY, []).append(line)
    out = [encode_record(KIND_EVENTS_TEXT, b"\n".join(g), day) for day, g in sorted(by_day.items())]
    keys = b"\n".join(map(orjson.dumps, zip([r[COL_EVENT_ID] for r in rows], fingerprints)))   # tuples: arrays
    out.append(encode_record(KIND_EVENT_KEYS, keys))
    return out


def fingerprint(line: bytes) -> int:
    """A 64-bit digest of an event's encoded line: equal for a faithful re-send (same ID, same content), different
    when the same event ID comes back with other content (a conflict)."""
    return int.from_bytes(hashlib.blake2b(line, digest_size=8).digest(), "little")


_BLAKE2B_8 = hashlib.blake2b(digest_size=8)


def fingerprints(lines: list[bytes]) -> list[int]:
    """`[fingerprint(ln) for ln in lines]`, for a batch: the same numbers at half the cost — each digest from a
    copy of one prepared hash object (no keyword parsing per line), all turned into integers by one unpack.
    They must stay the same numbers: `event_keys` holds them, and the duplicate memory is rebuilt from it."""
    digests: list[bytes] = []
    append, blank = digests.append, _BLAKE2B_8.copy
    for line in lines:
        h = blank()
        h.update(line)
        append(h.digest())
    return list(struct.unpack(f"<{len(digests)}Q", b"".join(digests)))


def day_of_line(kind: int, line: bytes) -> int:
    """The UTC day of one encoded row (only for spool records written before records carried their day)."""
    row = orjson.loads(line)
    if kind == KIND_SPANS:
        return int(row[COL_TIMESTAMP].split(".")[0]) // 86_400
    if kind in (KIND_EVENTS, KIND_EVENTS_TEXT):
        return int(row[COL_OCCURRED].split(".")[0]) // 86_400
    return 0


def event_rows_for_insert(rows: list[list]) -> list[list]:
    """Validated event rows (amounts as exact decimal strings) → rows for a clickhouse-connect row insert, whose
    Decimal column wants Decimal objects (tests, tools and benchmarks; the writer inserts spool bytes)."""
    for r in rows:
        if r[_AMOUNT] is not None:
            r[_AMOUNT] = Decimal(r[_AMOUNT])
    return rows


def decode_lines(payload: bytes) -> list[list]:
    """Back to Python lists (tests and tools only; the writer inserts the bytes as they are)."""
    return [orjson.loads(line) for line in payload.split(b"\n") if line]

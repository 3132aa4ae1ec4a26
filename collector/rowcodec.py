"""Rows ⇄ the spool's wire form: JSONCompactEachRow lines that ClickHouse parses itself (in C++), so the writer
never rebuilds Python objects. Timestamps travel as 'seconds.fraction' strings (a JSON integer would be read as
seconds), amounts as exact decimal strings."""
from __future__ import annotations

import hashlib
from decimal import Decimal

import orjson

from collector.events import COL_EVENT_ID, COL_OCCURRED, EVENT_COLUMNS
from collector.otlp import COL_TIMESTAMP
from collector.spool import KIND_EVENT_KEYS, KIND_EVENTS, KIND_SPANS, encode_record

EVENT_KEY_COLUMNS = ("EventId", "Fingerprint")
NS_PER_DAY, MS_PER_DAY = 86_400 * 10**9, 86_400_000

SPAN_EVENTS_TS = 15                    # `Events.Timestamp` column of a span row
_AMOUNT = EVENT_COLUMNS.index("Amount")


def _ns(ns: int) -> str:
    return f"{ns // 1_000_000_000}.{ns % 1_000_000_000:09d}"


def _ms(ms: int) -> str:
    return f"{ms // 1000}.{ms % 1000:03d}"


def encode_spans(rows: list[list]) -> bytes:
    """Span rows (int nanosecond timestamps) → JSONCompactEachRow bytes."""
    out = []
    for r in rows:
        r = list(r)
        r[COL_TIMESTAMP] = _ns(r[COL_TIMESTAMP])
        r[SPAN_EVENTS_TS] = [_ns(t) for t in r[SPAN_EVENTS_TS]]
        out.append(orjson.dumps(r))
    return b"\n".join(out)


def encode_events(rows: list[list]) -> bytes:
    """Event rows (int millisecond timestamps, decimal-string amounts) → JSONCompactEachRow bytes."""
    out = []
    for r in rows:
        r = list(r)
        r[COL_OCCURRED] = _ms(r[COL_OCCURRED])
        out.append(orjson.dumps(r))
    return b"\n".join(out)


def _by_day(rows: list[list], col: int, per_day: int) -> dict[int, list[list]]:
    groups: dict[int, list[list]] = {}
    for r in rows:
        groups.setdefault(r[col] // per_day, []).append(r)
    return groups


def span_records(rows: list[list]) -> list[bytes]:
    """Span rows → spool records, one per UTC day (the `spans` partition), each tagged with its day."""
    return [encode_record(KIND_SPANS, encode_spans(g), day)
            for day, g in sorted(_by_day(rows, COL_TIMESTAMP, NS_PER_DAY).items())]


def event_records(rows: list[list], fingerprints: list[int]) -> list[bytes]:
    """Event rows → spool records, one per UTC day (the `events` partition), plus one record of
    (event ID, fingerprint) pairs for the `event_keys` table the dedup memory is rebuilt from."""
    out = [encode_record(KIND_EVENTS, encode_events(g), day)
           for day, g in sorted(_by_day(rows, COL_OCCURRED, MS_PER_DAY).items())]
    keys = b"\n".join(orjson.dumps([r[COL_EVENT_ID], fp]) for r, fp in zip(rows, fingerprints))
    out.append(encode_record(KIND_EVENT_KEYS, keys))
    return out


def fingerprint(row: list) -> int:
    """A 64-bit digest of an event's content (everything but its ID): equal for a faithful re-send, different
    when the same event ID comes back with other content (a conflict)."""
    body = orjson.dumps(row[COL_EVENT_ID + 1:], option=orjson.OPT_SORT_KEYS)
    return int.from_bytes(hashlib.blake2b(body, digest_size=8).digest(), "little")


def day_of_line(kind: int, line: bytes) -> int:
    """The UTC day of one encoded row (only for spool records written before records carried their day)."""
    row = orjson.loads(line)
    if kind == KIND_SPANS:
        return int(row[COL_TIMESTAMP].split(".")[0]) // 86_400
    if kind == KIND_EVENTS:
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

"""Rows ⇄ the spool's wire form: JSONCompactEachRow lines that ClickHouse parses itself (in C++), so the writer
never rebuilds Python objects. Timestamps travel as 'seconds.fraction' strings (a JSON integer would be read as
seconds), amounts as exact decimal strings."""
from __future__ import annotations

from decimal import Decimal

import orjson

from collector.events import COL_OCCURRED, EVENT_COLUMNS
from collector.otlp import COL_TIMESTAMP

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

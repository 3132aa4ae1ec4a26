"""Row types of the raw tables: the one definition of the column order of `spans` and `events` rows.

The collector builds rows as plain lists (the hot path fills and patches them in place), so the types below are
not the runtime representation: their `_fields` are the order, every column-name tuple and index constant is
derived from them, and `SpanRow(...)` / `EventRow(...)` with keyword arguments are the builders tests use instead
of positional list literals. A field `A__B` stands for the ClickHouse column `A.B` (the exporter's nested columns
`Events.*` and `Links.*`; a Python name cannot hold a dot).

Invariant: the order here is the order of the values in a row; the DDL may order its columns differently, because
every insert names its columns (`SPAN_COLUMNS`, `EVENT_COLUMNS`).
"""
from __future__ import annotations

from decimal import Decimal
from typing import NamedTuple


class SpanRow(NamedTuple):
    """One span, as the OpenTelemetry Collector ClickHouse exporter names the columns, plus CorrelationId/Journey."""
    Timestamp: int | str = 0               # start, ns since the epoch (the row codec writes it as text)
    TraceId: str = ""
    SpanId: str = ""
    ParentSpanId: str = ""
    TraceState: str = ""
    SpanName: str = ""
    SpanKind: str = "Internal"
    ServiceName: str = ""
    ResourceAttributes: dict[str, str] = {}
    ScopeName: str = ""
    ScopeVersion: str = ""
    SpanAttributes: dict[str, str] = {}
    Duration: int = 0                      # ns
    StatusCode: str = "Unset"
    StatusMessage: str = ""
    Events__Timestamp: list = []
    Events__Name: list[str] = []
    Events__Attributes: list[dict[str, str]] = []
    Links__TraceId: list[str] = []
    Links__SpanId: list[str] = []
    Links__TraceState: list[str] = []
    Links__Attributes: list[dict[str, str]] = []
    CorrelationId: str = ""
    Journey: str = ""


class EventRow(NamedTuple):
    """One business event (docs/events.md)."""
    EventId: str = ""
    Type: str = ""
    CorrelationId: str = ""
    OccurredAt: int | str = 0              # ms since the epoch (the row codec writes it as text)
    Source: str = ""
    Journey: str = ""
    Amount: Decimal | str | None = None
    Currency: str = ""
    Attributes: dict[str, str] = {}


def columns(row_type: type[NamedTuple]) -> tuple[str, ...]:
    """The ClickHouse column names of a row type, in row order."""
    return tuple(f.replace("__", ".") for f in row_type._fields)


SPAN_COLUMNS = columns(SpanRow)
EVENT_COLUMNS = columns(EventRow)

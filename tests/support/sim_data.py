"""A simulated day of business loaded straight into the store (no HTTP), for tests of what reads it."""
from __future__ import annotations

import datetime as dt
import random

from collector.events import validate_event
from collector.rowcodec import event_rows_for_insert
from collector.rows import EVENT_COLUMNS, SPAN_COLUMNS, SpanRow

END = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)).replace(second=0, microsecond=0)
START = END - dt.timedelta(days=1)


def load(store, events, spans):
    rows = [validate_event(e)[0] for e in events]
    store.insert("events", event_rows_for_insert(rows), EVENT_COLUMNS)
    rng = random.Random(0)
    out = []
    for s in spans:
        tid = f"{rng.getrandbits(128):032x}"
        out.append(list(SpanRow(
            Timestamp=int(s.start.timestamp() * 1e9), TraceId=tid, SpanId=f"{rng.getrandbits(64):016x}",
            SpanName=s.name, SpanKind=s.kind.title(), ServiceName=s.service,
            SpanAttributes={k: str(v) for k, v in s.attributes.items()},
            Duration=int((s.end - s.start).total_seconds() * 1e9), StatusCode="Error" if s.error else "Ok",
            StatusMessage=s.error or "", CorrelationId=s.attributes.get("correlation.id", tid))))
    store.insert("spans", out, SPAN_COLUMNS)

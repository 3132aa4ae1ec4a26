"""Helpers that put known data into the store for SLO tests."""
from __future__ import annotations

import datetime as dt
import itertools

from collector.rows import EVENT_COLUMNS, EventRow
from revwatch.units import utcnow

_ids = itertools.count()


def odoo_error_ratio_config(page_burn: float) -> str:
    """The `api` SLO the alerting tests share: 99 % of odoo spans without error over 1 d, a 5m/1m page tier at
    `page_burn` and a 1h/5m ticket tier at 2 (YAML for the config's `slos:`)."""
    return f"""
slos:
  - name: api
    objective: 0.99
    window: 1d
    sli: {{kind: span_ratio, service: odoo, bad_when: {{StatusCode: Error}}}}
    alerting:
      page: [{{long: 5m, short: 1m, burn_rate: {page_burn:g}}}]
      ticket: [{{long: 1h, short: 5m, burn_rate: 2}}]
"""


def anchor(hours_ago: float = 6) -> dt.datetime:
    """A whole-minute instant in the recent past to evaluate "as of"."""
    return (utcnow() - dt.timedelta(hours=hours_ago)).replace(second=0, microsecond=0)


def add_events(store, items: list[tuple]) -> None:
    """items: (type, correlation_id, occurred_at[, attributes]) → rows in `events`."""
    rows = []
    for it in items:
        typ, cid, at = it[:3]
        attrs = it[3] if len(it) > 3 else {}
        rows.append(list(EventRow(EventId=f"ev{next(_ids)}", Type=typ, CorrelationId=cid,
                                  OccurredAt=int(at.timestamp() * 1000), Source="test", Attributes=attrs)))
    store.insert("events", rows, EVENT_COLUMNS)


def journey(store, cid: str, start: dt.datetime, end: dt.datetime | None = None, attrs: dict | None = None,
            start_type: str = "payment.settled", end_type: str = "payment.posted") -> None:
    """One journey instance: a start event and optionally an end event."""
    items = [(start_type, cid, start, attrs or {})]
    if end is not None:
        items.append((end_type, cid, end, {}))
    add_events(store, items)


def add_spans(store, start: dt.datetime, minutes: int, per_minute: int, errors_per_minute: int = 0,
              error_from: dt.datetime | None = None, service: str = "odoo") -> None:
    """Uniform span traffic generated in SQL: `per_minute` spans each minute from `start`, evenly spread over
    the minute; `errors_per_minute` of them fail (all of them from `error_from` on, when given)."""
    t0 = int(start.timestamp() * 1e9)
    step = int(60e9 / per_minute)
    err_from = int(error_from.timestamp() * 1e9) if error_from else 2**62
    store.command(f"""
        INSERT INTO {store.table('spans')} (Timestamp, TraceId, SpanId, ServiceName, SpanName, StatusCode, Duration,
                                           CorrelationId)
        SELECT fromUnixTimestamp64Nano(toInt64({t0} + number * {step}), 'UTC') AS ts,
               lower(hex(MD5(toString(number)))) AS tid, lower(hex(substring(MD5(toString(number)), 1, 8))),
               '{service}', 'execute_kw',
               if((number % {per_minute}) < {errors_per_minute} OR toInt64({t0} + number * {step}) >= {err_from},
                  'Error', 'Ok'),
               1000000, tid
        FROM numbers({minutes * per_minute})""")


def add_span_list(store, spans: list[tuple[int, bool]], service: str = "odoo") -> None:
    """Spans at given instants: (epoch nanoseconds, failed) → rows in `spans` (one trace each)."""
    stamps = ",".join(str(ns) for ns, _ in spans)
    failed = ",".join(str(int(bad)) for _, bad in spans)
    store.command(f"""
        INSERT INTO {store.table('spans')} (Timestamp, TraceId, SpanId, ServiceName, SpanName, StatusCode, Duration,
                                           CorrelationId)
        SELECT fromUnixTimestamp64Nano(toInt64(p.1), 'UTC'), lower(hex(MD5(toString(p.1)))) AS tid,
               lower(hex(substring(MD5(toString(p.1)), 1, 8))), '{service}', 'execute_kw',
               if(p.2 = 1, 'Error', 'Ok'), 1000000, tid
        FROM (SELECT arrayJoin(arrayZip([{stamps}], [{failed}])) AS p)""")

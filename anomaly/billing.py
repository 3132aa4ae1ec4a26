"""The billing-variance scan against the store: all history the first time, then only what changed.

Incremental without a blind spot: the scan remembers the store's clock at its start (`IngestedAt` watermark in
kv_state). The next scan re-judges every transaction touched by an event *ingested* since then (minus a safety
overlap for inserts still in flight), however old the event's business time: a late invoice, a credit note for
last quarter or a corrected invoice is seen. Re-judging is idempotent (anomaly.findings writes only changes).
"""
from __future__ import annotations

import datetime as dt

from anomaly.findings import Finding, record
from anomaly.variance import CREDIT_TYPE, EXPECTATION_TYPES, INVOICE_TYPE, Event, detect
from revwatch.store import Store

KIND = "billing_variance"
WATERMARK_KEY = "anomaly.billing_variance.ingested_watermark"
OVERLAP = dt.timedelta(minutes=10)
_TYPES = (*EXPECTATION_TYPES, INVOICE_TYPE, CREDIT_TYPE)


def _types_sql() -> str:
    return ", ".join(f"'{t}'" for t in _TYPES)


def load_events(store: Store, since_ingested: dt.datetime | None) -> list[Event]:
    """Variance-relevant events: all of them, or those of transactions touched since `since_ingested`.

    Touched = same correlation ID, subscription or invoice reference as a newly ingested event, so that an
    invoice correlated elsewhere, or a credit note naming an old invoice, brings its whole transaction."""
    ev = store.table("events")
    scope, params = "", {}
    if since_ingested is not None:
        params["since"] = since_ingested
        touched = (f"SELECT CorrelationId, Attributes['subscription_id'] AS sub, Attributes['invoice_ref'] AS ref "
                   f"FROM {ev} WHERE IngestedAt >= {{since:DateTime64(3, 'UTC')}} AND Type IN ({_types_sql()})")
        keys = (f"SELECT CorrelationId FROM {ev} WHERE Type IN ({_types_sql()}) AND ("
                f"CorrelationId IN (SELECT CorrelationId FROM ({touched})) "
                f"OR (Attributes['subscription_id'] != '' AND Attributes['subscription_id'] IN "
                f"(SELECT sub FROM ({touched}))) "
                f"OR (Attributes['invoice_ref'] != '' AND Attributes['invoice_ref'] IN (SELECT ref FROM ({touched}))))")
        scope = (f"AND (CorrelationId IN ({keys}) OR (Attributes['subscription_id'] != '' AND "
                 f"Attributes['subscription_id'] IN (SELECT Attributes['subscription_id'] FROM {ev} "
                 f"WHERE CorrelationId IN ({keys}))))")
    rows = store.query(f"""
        SELECT EventId, Type, CorrelationId, OccurredAt, Amount, Currency, Attributes
        FROM {ev} WHERE Type IN ({_types_sql()}) {scope}
        ORDER BY OccurredAt LIMIT 1 BY EventId""", params).rows
    return [Event(eid, typ, cid, at.replace(tzinfo=dt.timezone.utc), amount, cur or "", dict(attrs))
            for eid, typ, cid, at, amount, cur, attrs in rows]


def scan_billing(store: Store, full: bool = False) -> dict:
    """Judge every transaction touched since the last scan (all of them the first time or with `full`)."""
    started = store.query("SELECT now64(3, 'UTC')").scalar().replace(tzinfo=dt.timezone.utc)
    mark = None if full else store.get_state(WATERMARK_KEY)
    since = dt.datetime.fromisoformat(mark) - OVERLAP if mark else None
    events = load_events(store, since)
    variances, judged = detect(events)
    found = [Finding(KIND, v.correlation_id, v.invoice_ref, v.score, v.reasons, v.details()) for v in variances]
    counts = record(store, KIND, found, judged, "the net billed amount now matches the expectation "
                                                "(credit note or corrected invoice)")
    store.put_state(WATERMARK_KEY, started.isoformat())
    by_cause: dict[str, int] = {}
    for v in variances:
        by_cause[v.cause] = by_cause.get(v.cause, 0) + 1
    return {"mode": "incremental" if since else "full", "transactions_judged": len(judged),
            "variances": len(variances), "by_cause": by_cause, **counts}

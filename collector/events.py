"""Business-event validation (DESIGN.md §4): a JSON array or NDJSON of events → rows of the `events` table.

Each item is checked on its own; a bad item is rejected with its index and a message naming the field, and
the good ones are accepted. Amounts are decimal strings (a JSON number is refused: floats lose cents),
timestamps must carry a timezone, currencies are ISO 4217 alphabetic codes. Unknown event types are stored.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Iterator

import orjson

from collector.limits import MAX_ATTR_KEY, MAX_ATTR_VALUE, MAX_EVENT_ATTRIBUTES, MAX_ID, MAX_REJECTED_LISTED
from revwatch.units import MIN_INSTANT, parse_instant

EVENT_COLUMNS = ("EventId", "Type", "CorrelationId", "OccurredAt", "Source", "Journey", "Amount", "Currency",
                 "Attributes")
COL_EVENT_ID, COL_TYPE, COL_CORRELATION, COL_OCCURRED = 0, 1, 2, 3

CANONICAL_TYPES = frozenset("""customer.created quote.accepted order.booked subscription.activated
subscription.renewed subscription.amended subscription.cancelled invoice.created invoice.posted invoice.sent
payment.received payment.settled payment.posted payment.reconciled payment.reconciliation_failed refund.issued
credit_note.issued webhook.delivered webhook.failed entitlement.updated""".split())

_REQUIRED = ("event_id", "type", "correlation_id", "occurred_at", "source")
_KNOWN = set(_REQUIRED) | {"journey", "amount", "currency", "attributes"}
_DECIMAL = re.compile(r"^-?\d{1,29}(\.\d{1,9})?$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_TYPE = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)+$")
MAX_ATTRIBUTES = MAX_EVENT_ATTRIBUTES
_MS = dt.timedelta(milliseconds=1)


class BodyError(ValueError):
    """The body as a whole is not a JSON array / NDJSON of objects."""


@dataclass
class ValidatedEvents:
    rows: list[list] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)     # the first MAX_REJECTED_LISTED, in index order
    indexes: list[int] = field(default_factory=list)       # the request index of each row
    rejected_count: int = 0                                # all of them

    def reject(self, index: int, error: str | None, fld: str | None) -> None:
        """Count a rejected item; list it while the reply has room."""
        self.rejected_count += 1
        if len(self.rejected) < MAX_REJECTED_LISTED:
            rej = {"index": index, "error": error}
            if fld:
                rej["field"] = fld
            self.rejected.append(rej)


class _Unparsable:
    def __init__(self, error: str):
        self.error = error


def validate_event(item) -> tuple[list | None, str | None, str | None]:
    """One item → (row, None, None) or (None, error, field)."""
    if isinstance(item, _Unparsable):
        return None, item.error, None
    if not isinstance(item, dict):
        return None, "each event must be a JSON object", None
    for f in _REQUIRED:
        v = item.get(f)
        if v is None or v == "":
            return None, f"'{f}' is required", f
        if not isinstance(v, str):
            return None, f"'{f}' must be a string", f
        if len(v) > MAX_ID:
            return None, f"'{f}' is longer than {MAX_ID} characters", f
    if not _TYPE.match(item["type"]):
        return None, "'type' must look like 'noun.verb' (lower case, dots), e.g. payment.settled", "type"
    try:
        occurred = parse_instant(item["occurred_at"])
    except ValueError as e:
        return None, f"'occurred_at': {e}", "occurred_at"
    amount = item.get("amount")
    if amount is not None:
        if not isinstance(amount, str):
            return None, "'amount' must be a decimal string such as \"129.00\" (not a JSON number)", "amount"
        if not _DECIMAL.match(amount):
            return None, f"'amount' {amount[:40]!r} is not a decimal string such as \"129.00\"", "amount"
        try:
            Decimal(amount)          # kept as the exact string until the writer builds the Decimal column
        except InvalidOperation:
            return None, "'amount' is not a decimal", "amount"
    currency = item.get("currency")
    if currency is not None and (not isinstance(currency, str) or not _CURRENCY.match(currency)):
        return None, "'currency' must be an ISO 4217 code such as EUR", "currency"
    journey = item.get("journey") or ""
    if not isinstance(journey, str):
        return None, "'journey' must be a string", "journey"
    if len(journey) > MAX_ID:
        return None, f"'journey' is longer than {MAX_ID} characters", "journey"
    attrs = item.get("attributes") or {}
    if not isinstance(attrs, dict):
        return None, "'attributes' must be an object of string values", "attributes"
    if len(attrs) > MAX_ATTRIBUTES:
        return None, f"'attributes' has more than {MAX_ATTRIBUTES} keys", "attributes"
    clean = {}
    for k, v in attrs.items():
        if isinstance(v, bool):
            v = "true" if v else "false"
        elif isinstance(v, (int, float)):
            v = str(v)
        elif not isinstance(v, str):
            return None, f"'attributes.{k[:64]}' must be a string", f"attributes.{k[:64]}"
        if not k or len(k) > MAX_ATTR_KEY:
            return None, f"attribute keys must be 1-{MAX_ATTR_KEY} characters", "attributes"
        if len(v) > MAX_ATTR_VALUE:
            return None, f"'attributes.{k[:64]}' is longer than {MAX_ATTR_VALUE} characters", f"attributes.{k[:64]}"
        clean[str(k)] = v
    unknown = set(item) - _KNOWN
    if unknown:
        return None, f"unknown field '{sorted(unknown)[0]}' (extra data goes in 'attributes')", sorted(unknown)[0]
    occurred_ms = (occurred - MIN_INSTANT) // _MS          # exact integer milliseconds (no float rounding)
    return [item["event_id"], item["type"], item["correlation_id"], occurred_ms, item["source"], journey,
            amount, currency or "", clean], None, None


def validate_events(body: bytes, content_type: str) -> ValidatedEvents:
    """Validate every item of a request body; raises BodyError only when the body as a whole is unusable."""
    out = ValidatedEvents()
    for chunk in validate_in_chunks(body, content_type, chunk_items=1 << 62):
        out.rows += chunk.rows
        out.indexes += chunk.indexes
        out.rejected += chunk.rejected[:MAX_REJECTED_LISTED - len(out.rejected)]
        out.rejected_count += chunk.rejected_count
    return out


def iter_items(body: bytes, content_type: str) -> Iterator:
    """The items of a body, one at a time: NDJSON is parsed line by line (memory ~ one line), a JSON array once
    (and each item is released once handed out). Raises BodyError before the first item if the body is unusable."""
    text = body.strip()
    if not text:
        raise BodyError("empty body: send a JSON array of events or NDJSON")
    if "ndjson" in content_type or "jsonlines" in content_type or (text[:1] == b"{" and b"\n" in text):
        return _ndjson_items(text)
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError as e:
        raise BodyError(f"body is not valid JSON: {e}") from None
    if isinstance(doc, dict):
        return iter([doc])
    if not isinstance(doc, list):
        raise BodyError("body must be a JSON array of event objects (or NDJSON)")
    return _release_items(doc)


def _ndjson_items(text: bytes) -> Iterator:
    pos, n = 0, 0
    while pos < len(text):
        nl = text.find(b"\n", pos)
        end = len(text) if nl < 0 else nl
        line = text[pos:end]
        pos, n = end + 1, n + 1
        if line.strip():
            try:
                yield orjson.loads(line)
            except orjson.JSONDecodeError as e:
                yield _Unparsable(f"line {n} is not valid JSON: {e}")


def _release_items(doc: list) -> Iterator:
    for i in range(len(doc)):
        item, doc[i] = doc[i], None
        yield item


def validate_in_chunks(body: bytes, content_type: str, chunk_items: int = 5000) -> Iterator[ValidatedEvents]:
    """Validate a body `chunk_items` items at a time, so a big body never exists as rows all at once."""
    chunk = ValidatedEvents()
    for i, item in enumerate(iter_items(body, content_type)):
        row, error, fld = validate_event(item)
        if row is None:
            chunk.reject(i, error, fld)
        else:
            chunk.rows.append(row)
            chunk.indexes.append(i)
        if len(chunk.rows) + chunk.rejected_count >= chunk_items:
            yield chunk
            chunk = ValidatedEvents()
    if chunk.rows or chunk.rejected_count:
        yield chunk

"""Business-event validation (DESIGN.md §4): a JSON array or NDJSON of events → rows of the `events` table.

Each item is checked on its own; a bad item is rejected with its index and a message naming the field, and
the good ones are accepted. Amounts are decimal strings (a JSON number is refused: floats lose cents),
timestamps must carry a timezone, currencies are ISO 4217 alphabetic codes. Unknown event types are stored.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

import orjson

from revwatch.units import parse_instant

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
MAX_ID = 256
MAX_ATTRIBUTES = 64
MIN_YEAR, MAX_YEAR = 1970, 2199     # the store parses 10-digit epoch seconds ≥ 0 (an 11-digit one poisons the batch)


class BodyError(ValueError):
    """The body as a whole is not a JSON array / NDJSON of objects."""


@dataclass
class ValidatedEvents:
    rows: list[list] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)


def split_body(body: bytes, content_type: str) -> list:
    """The items of a JSON array, a single JSON object or NDJSON body."""
    text = body.strip()
    if not text:
        raise BodyError("empty body: send a JSON array of events or NDJSON")
    if "ndjson" in content_type or "jsonlines" in content_type or (text[:1] == b"{" and b"\n" in text):
        items = []
        for n, line in enumerate(text.splitlines()):
            if line.strip():
                try:
                    items.append(orjson.loads(line))
                except orjson.JSONDecodeError as e:
                    items.append(_Unparsable(f"line {n + 1} is not valid JSON: {e}"))
        return items
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError as e:
        raise BodyError(f"body is not valid JSON: {e}") from None
    if isinstance(doc, dict):
        return [doc]
    if not isinstance(doc, list):
        raise BodyError("body must be a JSON array of event objects (or NDJSON)")
    return doc


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
    if not MIN_YEAR <= occurred.year <= MAX_YEAR:     # outside DateTime64(3): the batch would never insert
        return None, f"'occurred_at' must be between {MIN_YEAR} and {MAX_YEAR}", "occurred_at"
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
    journey = item.get("journey")
    journey = "" if journey is None else journey
    if not isinstance(journey, str):
        return None, "'journey' must be a string", "journey"
    attrs = item.get("attributes")
    attrs = {} if attrs is None else attrs
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
            return None, f"'attributes.{k}' must be a string", f"attributes.{k}"
        clean[str(k)] = v
    unknown = set(item) - _KNOWN
    if unknown:
        return None, f"unknown field '{sorted(unknown)[0]}' (extra data goes in 'attributes')", sorted(unknown)[0]
    occurred_ms = int(occurred.timestamp() * 1000)
    return [item["event_id"], item["type"], item["correlation_id"], occurred_ms, item["source"], journey,
            amount, currency or "", clean], None, None


def validate_events(body: bytes, content_type: str) -> ValidatedEvents:
    """Validate every item of a request body; raises BodyError only when the body as a whole is unusable."""
    out = ValidatedEvents()
    for i, item in enumerate(split_body(body, content_type)):
        row, error, fld = validate_event(item)
        if row is None:
            rej = {"index": i, "error": error}
            if fld:
                rej["field"] = fld
            out.rejected.append(rej)
        else:
            out.rows.append(row)
    return out

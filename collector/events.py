"""Business-event validation (docs/events.md): a JSON array or NDJSON of events → rows of the `events` table.

Each item is checked on its own; a bad item is rejected with its index and a message naming the field, and
the good ones are accepted. Amounts are decimal strings (a JSON number is refused: floats lose cents),
timestamps must carry a timezone, currencies are ISO 4217 alphabetic codes. Unknown event types are stored.
"""
from __future__ import annotations

import datetime as dt
import difflib
import functools
import re
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Sequence

import orjson

from collector import rows as _rows
from collector.limits import MAX_ATTR_KEY, MAX_ATTR_VALUE, MAX_EVENT_ATTRIBUTES, MAX_ID, MAX_REJECTED_LISTED
from collector.rows import EventRow
from revwatch.units import MAX_INSTANT, MIN_INSTANT, parse_instant

EVENT_COLUMNS = _rows.EVENT_COLUMNS       # the order of an event row: collector.rows.EventRow
COL_EVENT_ID, COL_TYPE, COL_CORRELATION, COL_OCCURRED = (
    EventRow._fields.index(f) for f in ("EventId", "Type", "CorrelationId", "OccurredAt"))

CANONICAL_TYPES = frozenset("""customer.created quote.accepted order.booked subscription.activated
subscription.renewed subscription.amended subscription.cancelled invoice.created invoice.posted invoice.sent
payment.received payment.settled payment.posted payment.reconciled payment.reconciliation_failed refund.issued
credit_note.issued webhook.delivered webhook.failed entitlement.updated""".split())

_REQUIRED = ("event_id", "type", "correlation_id", "occurred_at", "source")
_KNOWN = set(_REQUIRED) | {"journey", "amount", "currency", "attributes"}
# Matched whole (fullmatch): `$` would let a trailing newline through, and `\d` any Unicode digit — neither of
# which ClickHouse parses into a Decimal or FixedString, so such an item would be accepted and then quarantined.
_DECIMAL = re.compile(r"-?[0-9]{1,29}(\.[0-9]{1,9})?")
_CURRENCY = re.compile(r"[A-Z]{3}")
_TYPE = re.compile(r"[a-z0-9_]+(\.[a-z0-9_]+)+")
MAX_ATTRIBUTES = MAX_EVENT_ATTRIBUTES
_MS = dt.timedelta(milliseconds=1)


def type_name(raw: str, namespace: str) -> str:
    """`raw` when it is a valid event type (lower-case `noun.verb`), else `<namespace>.<raw>` made valid (lower
    case, other characters as `_`): how a provider's own type that no table maps is stored, never rejected."""
    if _TYPE.fullmatch(raw):
        return raw
    clean = [re.sub(r"[^a-z0-9_]+", "_", p.lower()).strip("_") or "x" for p in (namespace, *raw.split("."))]
    return ".".join(clean)[:MAX_ID]


class BodyError(ValueError):
    """The body as a whole is not a JSON array / NDJSON of objects."""


@dataclass
class ValidatedEvents:
    rows: list[list] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)     # the first MAX_REJECTED_LISTED, in index order
    indexes: list[int] = field(default_factory=list)       # the request index of each row
    rejected_count: int = 0                                # all of them
    warnings: list[dict] = field(default_factory=list)     # {"index", "field", "warning"} (first MAX_REJECTED_LISTED)
    # (index, the item as given, first error) of rejected items, for dead letters (first MAX_REJECTED_LISTED)
    rejected_items: list[tuple] = field(default_factory=list)

    def reject(self, index: int, problems: Sequence[tuple[str | None, str]]) -> None:
        """Count a rejected item; list it (first problem as error/field, all of them in `problems`) while the
        reply has room."""
        self.rejected_count += 1
        if len(self.rejected) < MAX_REJECTED_LISTED:
            fld, error = problems[0]
            rej: dict = {"index": index, "error": error}
            if fld:
                rej["field"] = fld
            if len(problems) > 1:
                rej["problems"] = [{"field": f, "error": e} for f, e in problems]
            self.rejected.append(rej)

    def warn(self, index: int, warnings: Sequence[tuple[str, str]]) -> None:
        """List an accepted item's warnings while the reply has room."""
        for fld, text in warnings:
            if len(self.warnings) < MAX_REJECTED_LISTED:
                if isinstance(text, _UnknownTypeWarning) and len(self.warnings) >= HINTED_WARNINGS:
                    text = text.short()
                self.warnings.append({"index": index, "field": fld, "warning": str(text)})


class ItemProblem:
    """An item an adapter (NDJSON line, OTLP log record, CloudEvent, webhook mapping) could not turn into an event
    object: validation rejects it with this error and field, like any invalid item."""
    __slots__ = ("error", "field", "raw")

    def __init__(self, error: str, field: str | None = None, raw: bytes | None = None):
        self.error, self.field, self.raw = error, field, raw      # raw: the input as received, for dead letters


FUTURE_TOLERANCE = dt.timedelta(minutes=5)   # later than now + this: stored, with a warning (clock skew?)
HINTED_WARNINGS = 20        # unknown-type warnings per chunk that carry the nearest-canonical-type hint


class _UnknownTypeWarning(str):
    """The unknown-type warning, its hint computed only for the first HINTED_WARNINGS listed per chunk: the nearest
    canonical type costs ~0.4 ms (difflib), and a body of new custom types would otherwise spend that on every item
    (on the event loop, for small bodies)."""

    def __str__(self) -> str:
        return f"{self.short()}; the nearest canonical type is {nearest_canonical_type(str.__str__(self))!r}"

    def short(self) -> str:
        """The warning without the hint."""
        return f"unknown event type {str.__str__(self)!r}: stored as a custom type"


@functools.lru_cache(maxsize=4096)
def nearest_canonical_type(event_type: str) -> str:
    """The canonical type closest in spelling to `event_type` (a hint for typos such as payment.setled)."""
    return difflib.get_close_matches(event_type, CANONICAL_TYPES, n=1, cutoff=0.0)[0]


def validate_event(item) -> tuple[list | None, str | None, str | None]:
    """One item → (row, None, None) or (None, first error, its field)."""
    row, problems, _ = check_event(item)
    if row is None:
        return None, problems[0][1], problems[0][0]
    return row, None, None


def check_event(item, now: dt.datetime | None = None) -> tuple[list | None, Sequence[tuple[str | None, str]],
                                                                Sequence[tuple[str, str]]]:
    """One item → (row or None, every problem as (field, error), warnings as (field, text)).

    All problems of an item are reported at once (a sender fixes them in one go); warnings never stop an item:
    an unknown type (stored as a custom type, with the nearest canonical type as a hint) and an `occurred_at`
    further in the future than FUTURE_TOLERANCE."""
    fast = _valid_row(item, now)
    if fast is not None:
        return fast[0], _NOTHING, fast[1]       # no lists built per item: a batch calls this once per item
    return check_event_fully(item, now)


def check_event_fully(item, now: dt.datetime | None = None) -> tuple[list | None, list[tuple[str | None, str]],
                                                                     list[tuple[str, str]]]:
    """`check_event` without the fast path: every rule, every problem named (what `_valid_row` must agree with)."""
    if isinstance(item, ItemProblem):
        return None, [(item.field, item.error)], []
    if not isinstance(item, dict):
        return None, [(None, "each event must be a JSON object")], []
    problems: list[tuple[str | None, str]] = []
    warnings: list[tuple[str, str]] = []
    for f in _REQUIRED:
        v = item.get(f)
        if v is None or v == "":
            problems.append((f, f"'{f}' is required"))
        elif not isinstance(v, str):
            problems.append((f, f"'{f}' must be a string"))
        elif len(v) > MAX_ID:
            problems.append((f, f"'{f}' is longer than {MAX_ID} characters"))
    typ = item.get("type")
    if isinstance(typ, str) and typ and len(typ) <= MAX_ID:
        if not _TYPE.fullmatch(typ):
            problems.append(("type", "'type' must look like 'noun.verb' (lower case, dots), e.g. payment.settled"))
        elif typ not in CANONICAL_TYPES:
            warnings.append(("type", _UnknownTypeWarning(typ)))
    occurred = None
    if isinstance(item.get("occurred_at"), str) and item["occurred_at"]:
        try:
            occurred = parse_instant(item["occurred_at"])
        except ValueError as e:
            problems.append(("occurred_at", f"'occurred_at': {e}"))
        else:
            ahead = occurred - (now or dt.datetime.now(dt.timezone.utc))
            if ahead > FUTURE_TOLERANCE:
                warnings.append(("occurred_at", f"'occurred_at' is {_human(ahead)} in the future (clock skew?); "
                                                f"stored as sent"))
    amount = item.get("amount")
    if amount is not None:
        if not isinstance(amount, str):
            problems.append(("amount", "'amount' must be a decimal string such as \"129.00\" (not a JSON number)"))
        elif not _DECIMAL.fullmatch(amount):     # kept as the exact string until ClickHouse builds the Decimal
            problems.append(("amount", f"'amount' {amount[:40]!r} is not a decimal string such as \"129.00\""))
    currency = item.get("currency")
    if currency is not None and (not isinstance(currency, str) or not _CURRENCY.fullmatch(currency)):
        problems.append(("currency", "'currency' must be an ISO 4217 code such as EUR"))
    journey = item.get("journey")
    journey = "" if journey is None else journey       # a falsy non-string (0, []) is an error, not "no journey"
    if not isinstance(journey, str):
        problems.append(("journey", "'journey' must be a string"))
    elif len(journey) > MAX_ID:
        problems.append(("journey", f"'journey' is longer than {MAX_ID} characters"))
    attrs = item.get("attributes")
    attrs = {} if attrs is None else attrs
    clean: dict[str, str] = {}
    if not isinstance(attrs, dict):
        problems.append(("attributes", "'attributes' must be an object of string values"))
    elif len(attrs) > MAX_ATTRIBUTES:
        problems.append(("attributes", f"'attributes' has more than {MAX_ATTRIBUTES} keys"))
    else:
        for k, v in attrs.items():
            if isinstance(v, bool):
                v = "true" if v else "false"
            elif isinstance(v, (int, float)):
                v = str(v)
            elif not isinstance(v, str):
                problems.append((f"attributes.{k[:64]}", f"'attributes.{k[:64]}' must be a string"))
                continue
            if not k or len(k) > MAX_ATTR_KEY:
                problems.append(("attributes", f"attribute keys must be 1-{MAX_ATTR_KEY} characters"))
            elif len(v) > MAX_ATTR_VALUE:
                problems.append((f"attributes.{k[:64]}",
                                 f"'attributes.{k[:64]}' is longer than {MAX_ATTR_VALUE} characters"))
            else:
                clean[k] = v
    for f in () if _KNOWN.issuperset(item) else sorted(set(item) - _KNOWN):
        problems.append((f[:64], f"unknown field '{f[:64]}' (extra data goes in 'attributes')"))
    if problems or occurred is None:
        return None, problems, warnings
    occurred_ms = (occurred - MIN_INSTANT) // _MS          # exact integer milliseconds (no float rounding)
    return [item["event_id"], item["type"], item["correlation_id"], occurred_ms, item["source"], journey,
            amount, currency or "", clean], [], warnings


_NOTHING: tuple = ()      # the fast check's problems, and its warnings when there are none (no list per item)
_UTC = dt.timezone.utc
# Currency codes that matched _CURRENCY: a set lookup instead of the regex for the next item (bounded: at most
# 26³ codes can ever match).
_CURRENCIES_SEEN: set[str] = set()


def _valid_row(item, now: dt.datetime | None) -> tuple[list, Sequence[tuple[str, str]]] | None:
    """The row and warnings of an item that passes every check of `check_event`, or None for anything else — the
    full check then runs and names each problem. The same rules, written for the common case: a large batch spent
    ~6 µs per item in the full check (about a third of its intake CPU), ~1.7 µs here. Exact types only (`type(x)
    is str`): a subclass, a number or bool attribute value (converted to text by the full check) or a future
    `occurred_at` (a warning) take the full path, so both paths give the same row. tests/test_events_batch_path.py
    holds the two equal on items at every rule's edge."""
    if type(item) is not dict:
        return None
    get = item.get
    eid, typ, cid, occurred_at, source = (get("event_id"), get("type"), get("correlation_id"), get("occurred_at"),
                                          get("source"))
    if (type(eid) is not str or type(typ) is not str or type(cid) is not str or type(occurred_at) is not str
            or type(source) is not str or not 0 < len(eid) <= MAX_ID or not 0 < len(typ) <= MAX_ID
            or not 0 < len(cid) <= MAX_ID or not 0 < len(occurred_at) <= MAX_ID or not 0 < len(source) <= MAX_ID):
        return None
    amount, currency, journey, attrs = get("amount"), get("currency"), get("journey"), get("attributes")
    # No unknown field: when the item holds no more keys than the known fields found with a value (the five
    # required ones are), every key is known and the set test is not needed.
    if (len(item) > 5 + (amount is not None) + (currency is not None) + (journey is not None) + (attrs is not None)
            and not _KNOWN.issuperset(item)):
        return None
    warnings: Sequence[tuple[str, str]] = _NOTHING
    if typ not in CANONICAL_TYPES:
        if not _TYPE.fullmatch(typ):
            return None
        warnings = [("type", _UnknownTypeWarning(typ))]
    if amount is not None and (type(amount) is not str or not _DECIMAL.fullmatch(amount)):
        return None
    if currency is not None and (type(currency) is not str or currency not in _CURRENCIES_SEEN):
        if type(currency) is not str or not _CURRENCY.fullmatch(currency):
            return None
        _CURRENCIES_SEEN.add(currency)
    if journey is None:
        journey = ""
    elif type(journey) is not str or len(journey) > MAX_ID:
        return None
    if attrs is None:
        attrs = {}
    elif type(attrs) is not dict or len(attrs) > MAX_ATTRIBUTES:
        return None
    else:                       # kept as it is, not copied: every value is already the string the row holds
        for k, v in attrs.items():
            if type(v) is not str or type(k) is not str or not 0 < len(k) <= MAX_ATTR_KEY or len(v) > MAX_ATTR_VALUE:
                return None
    try:                        # parse_instant's rules, for text it needs not clean up (no spaces, no lower-case z)
        occurred = dt.datetime.fromisoformat(occurred_at)
        tz = occurred.tzinfo
        if tz is not _UTC:      # an offset of zero is the UTC singleton: nothing to convert
            if tz is None:
                return None
            occurred = occurred.astimezone(_UTC)
    except (ValueError, OverflowError):
        return None
    if (not MIN_INSTANT <= occurred < MAX_INSTANT
            or occurred - (now or dt.datetime.now(_UTC)) > FUTURE_TOLERANCE):
        return None
    since = occurred - MIN_INSTANT           # exact integer milliseconds, as `// _MS` gives them (a third faster)
    return [eid, typ, cid, since.days * 86_400_000 + since.seconds * 1000 + since.microseconds // 1000, source,
            journey, amount, currency or "", attrs], warnings


def _human(td: dt.timedelta) -> str:
    secs = int(td.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= size:
            return f"{secs // size}{unit}"
    return f"{secs}s"


def validate_events(body: bytes, content_type: str) -> ValidatedEvents:
    """Validate every item of a request body; raises BodyError only when the body as a whole is unusable."""
    out = ValidatedEvents()
    for chunk in validate_in_chunks(body, content_type, chunk_items=1 << 62):
        out.rows += chunk.rows
        out.indexes += chunk.indexes
        out.rejected += chunk.rejected[:MAX_REJECTED_LISTED - len(out.rejected)]
        out.rejected_count += chunk.rejected_count
        out.warnings += chunk.warnings[:MAX_REJECTED_LISTED - len(out.warnings)]
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
                yield ItemProblem(f"line {n} is not valid JSON: {e}")


def _release_items(doc: list) -> Iterator:
    for i in range(len(doc)):
        item, doc[i] = doc[i], None
        yield item


def validate_in_chunks(body: bytes, content_type: str, chunk_items: int = 5000) -> Iterator[ValidatedEvents]:
    """Validate a body `chunk_items` items at a time, so a big body never exists as rows all at once. Lazy: a body
    that is unusable as a whole raises BodyError at the first `next`, not here."""
    yield from validate_items_in_chunks(iter_items(body, content_type), chunk_items)


def validate_items_in_chunks(items: Iterable, chunk_items: int = 5000) -> Iterator[ValidatedEvents]:
    """Validate event objects (or `ItemProblem`s) `chunk_items` at a time: the one validation every door shares —
    our own JSON/NDJSON, OTLP log events, CloudEvents and mapped webhooks all end here as canonical objects."""
    chunk = ValidatedEvents()
    rows, indexes = chunk.rows, chunk.indexes
    now = dt.datetime.now(dt.timezone.utc)
    for i, item in enumerate(items):
        row, problems, warnings = check_event(item, now)
        if warnings:
            chunk.warn(i, warnings)
        if row is None:
            chunk.reject(i, problems)
            if len(chunk.rejected_items) < MAX_REJECTED_LISTED:
                chunk.rejected_items.append((i, item, problems[0][1]))
        else:
            rows.append(row)
            indexes.append(i)
        if len(rows) + chunk.rejected_count >= chunk_items:
            yield chunk
            chunk = ValidatedEvents()
            rows, indexes = chunk.rows, chunk.indexes
    if rows or chunk.rejected_count:
        yield chunk

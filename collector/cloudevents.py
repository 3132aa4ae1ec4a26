"""CloudEvents 1.0 over HTTP → business events (docs/events.md "CloudEvents").

`POST /api/v1/events` takes the three HTTP content modes of the CloudEvents HTTP binding, chosen as the binding
says: `Content-Type: application/cloudevents+json` (structured: one event, attributes and data in the body),
`application/cloudevents-batch+json` (batched: a JSON array of structured events) and a `ce-specversion` header
(binary: attributes in `ce-*` headers, percent-encoded; the body is the data, described by Content-Type).

Each CloudEvent becomes one canonical event object, then the same validation, duplicate check and spool as our own
format. The mapping is fixed and documented:

* event_id    ← derived from `source` + `id` (the CloudEvents identity: "consumers MAY assume that events with
                identical source and id are duplicates"), so a sender's redelivery is a duplicate
* type        ← `type`, through the type table of the `sources:` entry named like the CloudEvent's `source`
* occurred_at ← `time` (required here: an event without a time cannot be measured; derived times would turn a
                redelivery into a conflict)
* correlation ← the `correlationid` extension attribute, else `subject`, else the trace id of `traceparent`
* amount, currency ← the data object's `amount` / `currency` when present (a string or an integer amount)
* journey     ← the `journey` extension attribute
* attributes  ← every other extension attribute, `ce.type` when the type was mapped, `traceparent`, and the data
                object's other top-level fields (nested values as JSON)
"""
from __future__ import annotations

import hashlib
from typing import Iterator, Mapping
from urllib.parse import unquote

import orjson

from collector.events import BodyError, ItemProblem
from collector.otlp_logs import TypeMap

STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
MEDIA_TYPES = (STRUCTURED, BATCH)
_CONTEXT = {"specversion", "id", "source", "type", "time", "subject", "datacontenttype", "dataschema", "data",
            "data_base64"}
_MAPPED_EXTENSIONS = {"correlationid", "journey", "traceparent", "tracestate"}
_DATA_FIELDS = {"amount", "currency"}


def is_cloudevents(media: str, headers: Mapping[str, str]) -> bool:
    """Whether a POST /api/v1/events request carries CloudEvents (by content type, or binary mode's header)."""
    return media in MEDIA_TYPES or "ce-specversion" in headers


def event_id(source: str, ident: str) -> str:
    """The canonical event id of a CloudEvent: deterministic in (source, id), at most 36 characters."""
    return "ce:" + hashlib.blake2b(orjson.dumps([source, ident]), digest_size=16).hexdigest()


def cloudevent_items(body: bytes, media: str, headers: Mapping[str, str],
                     type_of: TypeMap | None = None) -> Iterator[dict | ItemProblem]:
    """Canonical event objects (or ItemProblems) of a CloudEvents request. Raises BodyError when the body as a
    whole is unusable (not JSON, a batch that is not an array)."""
    if "ce-specversion" in headers and media not in MEDIA_TYPES:
        return iter([_binary(body, media, headers, type_of)])
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise BodyError(f"body is not valid JSON: {e}") from None
    if media == BATCH:
        if not isinstance(doc, list):
            raise BodyError("a CloudEvents batch (application/cloudevents-batch+json) must be a JSON array")
        return (_keep_raw(_structured(x, type_of), x) for x in doc)
    return iter([_keep_raw(_structured(doc, type_of), doc)])


def _keep_raw(item: dict | ItemProblem, ce) -> dict | ItemProblem:
    """A CloudEvent that could not be mapped keeps its JSON form as its dead-letter body (replayable as sent)."""
    if isinstance(item, ItemProblem):
        try:
            item.raw = orjson.dumps(ce)
        except TypeError:
            pass
    return item


def _binary(body: bytes, media: str, headers: Mapping[str, str], type_of: TypeMap | None) -> dict | ItemProblem:
    attrs: dict = {k[3:]: unquote(v) for k, v in headers.items() if k.startswith("ce-") and len(k) > 3}
    if media:
        attrs["datacontenttype"] = media
    if body.strip():
        if not media:                       # no datacontenttype: JSON when it parses, else text
            try:
                attrs["data"] = orjson.loads(body)
            except orjson.JSONDecodeError:
                attrs["data"] = body.decode("utf-8", "replace")
        elif media == "application/json" or media.endswith("+json"):
            try:
                attrs["data"] = orjson.loads(body)
            except orjson.JSONDecodeError as e:
                return ItemProblem(f"the data (the body, {media}) is not valid JSON: {e}", "data")
        else:
            attrs["data"] = body.decode("utf-8", "replace")
    return _keep_raw(_structured(attrs, type_of), attrs)


def _structured(ce, type_of: TypeMap | None) -> dict | ItemProblem:
    """One CloudEvent (its JSON format as a dict) → a canonical event object."""
    if not isinstance(ce, dict):
        return ItemProblem("each CloudEvent must be a JSON object", None)
    for name in ("specversion", "id", "source", "type", "time"):
        if not isinstance(ce.get(name), str) or not ce[name]:
            why = " (revwatch needs when it happened)" if name == "time" else ""
            return ItemProblem(f"CloudEvents attribute '{name}' is required and must be a string{why}", name)
    if ce["specversion"] != "1.0":
        return ItemProblem(f"specversion {ce['specversion'][:16]!r} is not supported (1.0)", "specversion")
    source, ce_type = ce["source"], ce["type"]
    name = source.rsplit("/", 1)[-1] or source
    typ = (type_of(source, ce_type) or type_of(name, ce_type) if type_of else None) or ce_type
    trace_id = _trace_id(ce.get("traceparent"))
    cid = ce.get("correlationid") or ce.get("subject") or trace_id
    if not isinstance(cid, str) or not cid:
        return ItemProblem("no correlation ID: set the 'correlationid' extension attribute, 'subject' or "
                           "'traceparent'", "correlationid")
    item: dict = {"event_id": event_id(source, ce["id"]), "type": typ, "correlation_id": cid,
                  "occurred_at": ce["time"], "source": source}
    attributes: dict = {}
    data = ce.get("data")
    if isinstance(data, dict):
        for k in _DATA_FIELDS:
            v = data.get(k)
            if v is None:
                continue
            if isinstance(v, int) and not isinstance(v, bool) and k == "amount":
                v = str(v)
            if not isinstance(v, str):
                return ItemProblem(f"data.{k} must be a string" + (" (a decimal string such as \"129.00\": a "
                                                                   "JSON number loses cents)" if k == "amount" else ""),
                                   f"data.{k}")
            item[k] = v
        for k, v in data.items():
            if k not in _DATA_FIELDS and v is not None:
                attributes[k] = v if isinstance(v, (str, int, float, bool)) else orjson.dumps(v).decode()
    elif data is not None:
        attributes["data"] = data if isinstance(data, str) else orjson.dumps(data).decode()
    if isinstance(ce.get("journey"), str):
        item["journey"] = ce["journey"]
    for k, v in ce.items():
        if k not in _CONTEXT and k not in _MAPPED_EXTENSIONS:
            attributes[k] = v if isinstance(v, (str, int, float, bool)) else orjson.dumps(v).decode()
    if trace_id:
        attributes["traceparent"] = ce["traceparent"]
    attributes["ce.id"] = ce["id"]
    if typ != ce_type:
        attributes["ce.type"] = ce_type
    item["attributes"] = attributes
    return item


def _trace_id(traceparent) -> str | None:
    """The trace id of a W3C traceparent (`00-<32 hex>-<16 hex>-<2 hex>`), or None."""
    if not isinstance(traceparent, str):
        return None
    parts = traceparent.split("-")
    if len(parts) >= 4 and len(parts[1]) == 32 and parts[1] != "0" * 32:
        try:
            int(parts[1], 16)
        except ValueError:
            return None
        return parts[1].lower()
    return None

"""OTLP/HTTP logs → business events (docs/events.md "OpenTelemetry log events").

A log record is a business event when it is an OpenTelemetry *event*: its `event_name` field is set, or (older
SDKs, the Collector's filelog receiver) it carries an `event.name` attribute. Every other record is counted and
rejected with a reason (it is a log line, not a fact revwatch can measure). An event record becomes one canonical
event object, which then takes the same validation and the same spool/idempotency path as `POST /api/v1/events`:

* type        ← the event name (through the source's type table when `sources:` declares one)
* event_id    ← an `event.id` / `event_id` attribute; else a hash of the record's content (name, time, trace and
                span id, body, attributes, resource), so an exporter's retry of the same record is a duplicate,
                never a second event. Two genuinely distinct records with identical content and timestamp collapse
                into one: give such events an `event.id`.
* correlation ← a `correlation.id` attribute (then the configured correlation attributes, as for spans),
                else the record's trace id
* occurred_at ← `time_unix_nano`, else `observed_time_unix_nano`
* source      ← a `source` attribute, else the resource's `service.name`, else "otlp"
* amount, currency, journey ← attributes of those names (an amount must be a string or an integer: a double
                loses cents and is refused)
* attributes  ← the body's entries when the body is a map (the events API's payload), then the other attributes;
                a string body is kept as `body`.
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
from typing import Callable, Iterator

import orjson
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from collector.correlation import CorrelationRules
from collector.events import ItemProblem
from collector.otlp import any_value_to_py, any_value_to_str, attributes_to_map, parse_request

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_ID_ATTRS = ("event.id", "event_id")
_CORRELATION_ATTRS = ("correlation.id", "correlation_id")
_FIELDS = {"event.name", "source", "amount", "currency", *_ID_ATTRS, *_CORRELATION_ATTRS}

# (source, event name) → canonical type or None (keep the name); the source mapping's type table (collector.sources)
TypeMap = Callable[[str, str], "str | None"]


def parse_logs(body: bytes, json_body: bool) -> ExportLogsServiceRequest:
    """Decode an ExportLogsServiceRequest (protobuf or OTLP/JSON); DecodeError when the body is not one."""
    return parse_request(body, json_body, ExportLogsServiceRequest, "resourceLogs")


def count_records(req: ExportLogsServiceRequest) -> int:
    """How many log records the request carries."""
    return sum(len(sl.log_records) for rl in req.resource_logs for sl in rl.scope_logs)


def _instant(ns: int) -> str:
    return (_EPOCH + dt.timedelta(microseconds=ns // 1000)).isoformat()


def _content_id(name: str, rec, attrs: dict, res_attrs: dict) -> str:
    """A deterministic event id from what the record says (not from when it was observed or exported)."""
    doc = [name, rec.time_unix_nano, rec.trace_id.hex(), rec.span_id.hex(),
           any_value_to_py(rec.body) if rec.HasField("body") else None, attrs, res_attrs]
    digest = hashlib.blake2b(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS), digest_size=16).hexdigest()
    return f"otlp-log:{digest}"


def log_event_items(req: ExportLogsServiceRequest, rules: CorrelationRules,
                    type_of: TypeMap | None = None) -> Iterator[dict | ItemProblem]:
    """One canonical event object (or an ItemProblem saying why not) per log record, in request order."""
    for rl in req.resource_logs:
        res_attrs = attributes_to_map(rl.resource.attributes)
        service = res_attrs.get("service.name", "")
        for sl in rl.scope_logs:
            for rec in sl.log_records:
                item = _record_item(rec, res_attrs, service, rules, type_of)
                if isinstance(item, ItemProblem):
                    item.raw = single_record_request(rl.resource, rec)
                yield item


def single_record_request(resource, rec) -> bytes:
    """One record with its resource as an OTLP/JSON ExportLogsServiceRequest (hex ids, as OTLP/JSON wants): a
    rejected record's dead-letter body, which `parse_logs` reads back when the letter is replayed."""
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    rl.resource.CopyFrom(resource)
    rl.scope_logs.add().log_records.add().CopyFrom(rec)
    doc = json_format.MessageToDict(req)
    for r in doc["resourceLogs"][0]["scopeLogs"][0]["logRecords"]:
        for k in ("traceId", "spanId"):
            if k in r:
                r[k] = base64.b64decode(r[k]).hex()
    return orjson.dumps(doc)


def _record_item(rec, res_attrs: dict[str, str], service: str, rules: CorrelationRules,
                 type_of: TypeMap | None) -> dict | ItemProblem:
    raw: dict = {}
    body_kind = rec.body.WhichOneof("value") if rec.HasField("body") else None
    if body_kind == "kvlist_value":                    # the events API's payload: its entries are fields too
        raw.update((kv.key, kv.value) for kv in rec.body.kvlist_value.values)
    raw.update((kv.key, kv.value) for kv in rec.attributes)      # attributes win over body entries
    attrs = {k: v.string_value if v.WhichOneof("value") == "string_value" else any_value_to_str(v)
             for k, v in raw.items()}
    name = rec.event_name or attrs.get("event.name", "")
    if not name:
        return ItemProblem("not an event: the log record has no event name (set the record's event_name or an "
                           "'event.name' attribute)", "event_name")
    source = attrs.get("source") or service or "otlp"
    typ = (type_of(source, name) if type_of else None) or name
    when = rec.time_unix_nano or rec.observed_time_unix_nano
    if not when:
        return ItemProblem(f"event {name[:64]!r}: the log record has neither time_unix_nano nor "
                           "observed_time_unix_nano", "time_unix_nano")
    event_id = (next((attrs[k] for k in _ID_ATTRS if attrs.get(k)), None)
                or _content_id(name, rec, attributes_to_map(rec.attributes), res_attrs))
    cid = next((attrs[k] for k in _CORRELATION_ATTRS if attrs.get(k)), None) or rules.from_span(attrs, res_attrs)
    if not cid:
        if len(rec.trace_id) != 16 or not any(rec.trace_id):
            return ItemProblem(f"event {name[:64]!r}: no 'correlation.id' attribute and no trace id",
                               "correlation.id")
        cid = rec.trace_id.hex()
    item: dict = {"event_id": event_id, "type": typ, "correlation_id": cid, "occurred_at": _instant(when),
                  "source": source}
    amount = raw.get("amount")
    if amount is not None:
        if amount.WhichOneof("value") == "double_value":
            return ItemProblem(f"event {name[:64]!r}: 'amount' is a double (it loses cents): send it as a "
                               "decimal string or an integer", "amount")
        item["amount"] = attrs["amount"]
    if attrs.get("currency"):
        item["currency"] = attrs["currency"]
    journey = rules.journey_of(attrs, res_attrs)
    if journey:
        item["journey"] = journey
    fields = {k: v for k, v in attrs.items() if k not in _FIELDS and k != rules.journey_attribute}
    if body_kind is not None and body_kind != "kvlist_value":
        fields["body"] = any_value_to_str(rec.body)
    if name != typ:
        fields["event.name"] = name
    if fields:
        item["attributes"] = fields
    return item

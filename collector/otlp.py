"""OTLP/HTTP trace decoding: ExportTraceServiceRequest (protobuf or OTLP/JSON) → rows of the `spans` table.

Follows the OTLP specification: JSON ids are case-insensitive hex (not base64), enums are integers, 64-bit
integers may be strings, unknown fields are ignored. A body that cannot be decoded is a `DecodeError` (HTTP 400,
not retryable); a decodable span that is invalid (bad id length, all-zero ids) is rejected alone and reported in
`partial_success`.
"""
from __future__ import annotations

import base64
from dataclasses import dataclass, field

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError as _ProtoDecodeError
from google.protobuf.message import Message
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (ExportTraceServiceRequest,
                                                                       ExportTraceServiceResponse)

from collector import rows as _rows
from collector.correlation import CorrelationRules
from collector.limits import (MAX_ATTR_KEY, MAX_ATTR_VALUE, MAX_ID, MAX_NAME, MAX_SPAN_ATTRIBUTES, MAX_SPAN_EVENTS,
                              MAX_SPAN_LINKS)
from collector.rows import SpanRow
from revwatch.units import MAX_INSTANT

# Column order and positions come from the row type (collector.rows), the one definition of a span row.
SPAN_COLUMNS = _rows.SPAN_COLUMNS
COL_TIMESTAMP, COL_TRACE_ID, COL_SPAN_ID, COL_SERVICE, COL_CORRELATION, COL_JOURNEY = (
    SpanRow._fields.index(f) for f in ("Timestamp", "TraceId", "SpanId", "ServiceName", "CorrelationId", "Journey"))

SPAN_KINDS = {0: "Unspecified", 1: "Internal", 2: "Server", 3: "Client", 4: "Producer", 5: "Consumer"}
STATUS_CODES = {0: "Unset", 1: "Ok", 2: "Error"}
_ZERO_TRACE, _ZERO_SPAN = bytes(16), bytes(8)
# A span without events or links (most of them) shares these empty columns instead of seven new lists per span;
# they are encoded like empty lists (JSON arrays) and never changed in place.
_NO_EVENTS: tuple = ((), (), ())
_NO_LINKS: tuple = ((), (), (), ())
MAX_UNIX_NANO = int(MAX_INSTANT.timestamp()) * 10**9      # exclusive: the supported range ends in 2100


class DecodeError(ValueError):
    """The request body is not a decodable ExportTraceServiceRequest."""


@dataclass
class DecodedTraces:
    rows: list[list] = field(default_factory=list)
    rejected: int = 0
    errors: list[str] = field(default_factory=list)


def any_value_to_str(v) -> str:
    """Flatten an OTLP AnyValue to the string form the exporter stores in Map(String, String) columns."""
    which = v.WhichOneof("value")
    if which == "string_value":
        return v.string_value
    if which == "bool_value":
        return "true" if v.bool_value else "false"
    if which == "int_value":
        return str(v.int_value)
    if which == "double_value":
        return repr(v.double_value)
    if which == "bytes_value":
        return base64.b64encode(v.bytes_value).decode()
    if which == "array_value":
        return orjson.dumps([any_value_to_py(x) for x in v.array_value.values]).decode()
    if which == "kvlist_value":
        return orjson.dumps({kv.key: any_value_to_py(kv.value) for kv in v.kvlist_value.values}).decode()
    return ""


def any_value_to_py(v):
    """An OTLP AnyValue as the Python value it carries (arrays and maps as lists and dicts, bytes as base64)."""
    which = v.WhichOneof("value")
    if which in ("array_value", "kvlist_value", None):
        return orjson.loads(any_value_to_str(v)) if which else None
    if which == "bytes_value":
        return any_value_to_str(v)
    return getattr(v, which)


def attributes_to_map(attrs) -> dict[str, str]:
    """KeyValue list → {key: string value} (strings, the common case, without the generic dispatch)."""
    out = {}
    for kv in attrs:
        v = kv.value
        text = v.string_value            # "" when the value is of another kind (or an empty string): then ask
        out[kv.key] = text if text else any_value_to_str(v)
    return out


# --- OTLP/JSON → protobuf -----------------------------------------------------------------------------------
_ID_KEYS = {"traceId", "spanId", "parentSpanId"}     # spans, links and log records


def _hex_ids_to_base64(node, path: str = ""):
    """OTLP/JSON carries ids as hex; protobuf's JSON mapping expects base64 for bytes. Convert in place."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k in _ID_KEYS and isinstance(v, str):
                try:
                    node[k] = base64.b64encode(bytes.fromhex(v)).decode() if v else ""
                except ValueError:
                    raise DecodeError(f"{path}{k}: not a hex string: {v[:40]!r}") from None
            elif k in _ID_KEYS and v is not None:
                raise DecodeError(f"{path}{k}: must be a hex string")
            else:
                _hex_ids_to_base64(v, f"{path}{k}.")
    elif isinstance(node, list):
        for i, item in enumerate(node):
            _hex_ids_to_base64(item, f"{path[:-1]}[{i}].")


def parse_request(body: bytes, json_body: bool, message: type[Message] = ExportTraceServiceRequest,
                  top: str = "resourceSpans"):
    """Decode an OTLP export request (`message`: ExportTraceServiceRequest by default, ExportLogsServiceRequest
    for logs; `top` its JSON list field) from protobuf or OTLP/JSON bytes."""
    what = message.DESCRIPTOR.name
    req = message()
    if json_body:
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as e:
            raise DecodeError(f"body is not valid JSON: {e}") from None
        if not isinstance(doc, dict):
            raise DecodeError(f"body must be a JSON object ({what})")
        items = doc.get(top)        # json_format would take a string or a list here as an empty item
        if items is not None and not (isinstance(items, list) and all(isinstance(x, dict) for x in items)):
            raise DecodeError(f"{top} must be an array of objects")
        try:
            _hex_ids_to_base64(doc)
        except RecursionError:
            raise DecodeError("body is nested too deeply") from None
        try:
            json_format.ParseDict(doc, req, ignore_unknown_fields=True)
        except (json_format.ParseError, ValueError, TypeError, RecursionError) as e:
            raise DecodeError(f"not an OTLP/JSON {what}: {str(e)[:200]}") from None
    else:
        try:
            req.ParseFromString(body)
        except (_ProtoDecodeError, ValueError, RecursionError) as e:
            raise DecodeError(f"not a protobuf {what}: {str(e)[:200]}") from None
    return req


def decode_traces(body: bytes, json_body: bool, rules: CorrelationRules) -> DecodedTraces:
    """Decode a request into span rows, assigning correlation IDs and journeys; invalid spans are rejected."""
    req = parse_request(body, json_body)
    out = DecodedTraces()
    trace_correlation: dict[str, str] = {}
    pending: list[tuple[list, bool]] = []
    from_span, journey_of = rules.from_span, rules.journey_of
    for rs in req.resource_spans:
        res_attrs = attributes_to_map(rs.resource.attributes)
        service = res_attrs.get("service.name", "")
        res_problem = _map_problem(res_attrs, "resource attributes")
        for ss in rs.scope_spans:
            scope_name, scope_version = ss.scope.name, ss.scope.version
            for sp in ss.spans:
                # every field is read from the message once (each read of a upb field builds a Python object)
                name, tid, sid = sp.name, sp.trace_id, sp.span_id
                start, events, links, status = sp.start_time_unix_nano, sp.events, sp.links, sp.status
                parent, trace_state, status_message = sp.parent_span_id, sp.trace_state, status.message
                problem = res_problem or _span_problem(name, tid, sid, parent, start, events, links, status_message,
                                                       trace_state)
                if problem:
                    out.rejected += 1
                    if len(out.errors) < 5:
                        out.errors.append(problem)
                    continue
                trace_id = tid.hex()
                span_attrs = attributes_to_map(sp.attributes)
                cid = from_span(span_attrs, res_attrs)
                if cid:
                    trace_correlation.setdefault(trace_id, cid)
                if events:
                    ev = ([e.time_unix_nano for e in events], [e.name for e in events],
                          [attributes_to_map(e.attributes) for e in events])
                else:
                    ev = _NO_EVENTS
                if links:
                    ln = ([x.trace_id.hex() for x in links], [x.span_id.hex() for x in links],
                          [x.trace_state for x in links], [attributes_to_map(x.attributes) for x in links])
                else:
                    ln = _NO_LINKS
                problem = (_map_problem(span_attrs, "attributes") or _nested_problem(ev[2], "event")
                           or _nested_problem(ln[3], "link"))
                if cid and len(cid) > MAX_ID:
                    problem = f"correlation ID is longer than {MAX_ID} characters"
                if problem:
                    out.rejected += 1
                    if len(out.errors) < 5:
                        out.errors.append(f"span {name[:64]!r}: {problem}")
                    continue
                row = [start, trace_id, sid.hex(), parent.hex(), trace_state, name,
                       SPAN_KINDS.get(sp.kind, "Unspecified"), service, res_attrs, scope_name, scope_version,
                       span_attrs, max(0, sp.end_time_unix_nano - start), STATUS_CODES.get(status.code, "Unset"),
                       status_message, *ev, *ln, cid or "", journey_of(span_attrs, res_attrs)]
                pending.append((row, bool(cid)))
    # Spans of a trace without their own correlation attribute inherit the one a sibling carries
    # (the child `odoo.execute_kw` of a `POST /payments` span), else fall back to the trace id (docs/events.md).
    for row, has_own in pending:
        if not has_own:
            row[COL_CORRELATION] = trace_correlation.get(row[COL_TRACE_ID], row[COL_TRACE_ID])
        out.rows.append(row)
    if out.rejected and len(out.errors) < out.rejected:
        out.errors.append(f"… {out.rejected} span(s) rejected in all")
    return out


def _span_problem(name: str, trace_id: bytes, span_id: bytes, parent_span_id: bytes, start: int, events, links,
                  status_message: str, trace_state: str) -> str | None:
    """Why a span cannot be stored (the span's fields, each read once by the caller), or None."""
    if len(trace_id) != 16 or trace_id == _ZERO_TRACE:
        return f"span {name!r}: trace_id must be 16 non-zero bytes"
    if len(span_id) != 8 or span_id == _ZERO_SPAN:
        return f"span {name!r}: span_id must be 8 non-zero bytes"
    if parent_span_id and len(parent_span_id) != 8:
        return f"span {name!r}: parent_span_id must be 8 bytes"
    if start == 0:
        return f"span {name[:64]!r}: start_time_unix_nano is missing"
    if start >= MAX_UNIX_NANO:
        return f"span {name[:64]!r}: start_time_unix_nano is after the supported range (2100-01-01)"
    if events or links:
        if len(events) > MAX_SPAN_EVENTS or len(links) > MAX_SPAN_LINKS:
            return f"span {name[:64]!r}: more than {MAX_SPAN_EVENTS} events or {MAX_SPAN_LINKS} links"
        if any(e.time_unix_nano >= MAX_UNIX_NANO for e in events):
            return f"span {name[:64]!r}: an event's time_unix_nano is after the supported range (2100-01-01)"
    if len(name) > MAX_NAME or len(status_message) > MAX_NAME or len(trace_state) > MAX_NAME:
        return f"span {name[:64]!r}: name, status message or trace state longer than {MAX_NAME} characters"
    return None


def _map_problem(attrs: dict[str, str], what: str) -> str | None:
    if len(attrs) > MAX_SPAN_ATTRIBUTES:
        return f"more than {MAX_SPAN_ATTRIBUTES} {what}"
    for k, v in attrs.items():
        if len(v) > MAX_ATTR_VALUE or len(k) > MAX_ATTR_KEY:
            return (f"{what}: key {k[:64]!r} longer than {MAX_ATTR_KEY} or value longer than {MAX_ATTR_VALUE} "
                    f"characters")
    return None


def _nested_problem(maps: list[dict[str, str]], what: str) -> str | None:
    for m in maps:
        if (p := _map_problem(m, f"{what} attributes")) is not None:
            return p
    return None


def encode_response(rejected: int, message: str, json_body: bool, response: type[Message] = ExportTraceServiceResponse,
                    rejected_field: str = "rejected_spans") -> bytes:
    """An OTLP export response (ExportTraceServiceResponse by default; `rejected_field` names its partial_success
    counter) in the request's encoding; partial_success only when something was rejected."""
    resp = response()
    if rejected or message:
        setattr(resp.partial_success, rejected_field, rejected)
        resp.partial_success.error_message = message
    if json_body:
        return json_format.MessageToJson(resp, indent=None).encode() if (rejected or message) else b"{}"
    return resp.SerializeToString()


def status_body(code: int, message: str, json_body: bool) -> bytes:
    """A google.rpc.Status body for OTLP error responses, in the request's encoding."""
    from google.rpc.status_pb2 import Status
    st = Status(code=code, message=message)
    if json_body:
        return orjson.dumps({"code": code, "message": message, "error": message})
    return st.SerializeToString()

"""The OpenAPI document of `revwatch serve`, made to say what the server really does.

FastAPI derives the document from the route signatures, but revwatch's ingest routes read raw bodies (OTLP
protobuf, NDJSON, gzip) and every error goes through one handler (`revwatch.api`), so the derived document has no
request bodies where it matters, promises 422 where 400 is sent, and omits 401/403/404/413/415/429/503. This
module completes it in one place, from facts the app already holds:

* request bodies come from pydantic models (`BusinessEvent`, the Alertmanager webhook model of `alerts`, an OTLP
  JSON outline) so clients and fuzzers see the field rules the validator enforces;
* each route's scope comes from its `require(scope)` dependency (`route_scopes`), which also drives the route
  table in docs/http.md (a test keeps the two equal);
* error responses use the one error shape `{"error", "field"}`; 429/503 carry Retry-After, 401 WWW-Authenticate;
* `/metrics` is text/plain (Prometheus exposition), `/` is HTML, `/v1/traces` and `/v1/logs` answer protobuf or JSON.
"""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from collector.limits import MAX_ATTR_KEY
from revwatch.auth import SCOPES
from revwatch.routing import api_routes as _api_routes

# The field rules of collector.events.validate_event, as a schema (kept equal by tests/test_openapi.py).
EVENT_TYPE_PATTERN = r"^[a-z0-9_]+(\.[a-z0-9_]+)+$"
DECIMAL_PATTERN = r"^-?[0-9]{1,29}(\.[0-9]{1,9})?$"
CURRENCY_PATTERN = r"^[A-Z]{3}$"
OCCURRED_PATTERN = r"^(197[1-9]|19[89][0-9]|20[0-9][0-9])-"   # within the store's range [1970, 2100) (revwatch.units)


class ErrorReply(BaseModel):
    """Every error the server sends: what is wrong and, when one is to blame, the field or parameter."""
    error: str
    field: str | None = None


# An attribute key: 1-MAX_ATTR_KEY characters (the schema's propertyNames; the validator refuses "" too).
AttributeKey = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ATTR_KEY)]


class BusinessEvent(BaseModel):
    """One business event (docs/events.md). Unknown types are stored; amounts are decimal strings, never numbers."""
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "event_id": "evt_01HZX3", "type": "payment.settled", "correlation_id": "pay_8812",
        "occurred_at": "2026-11-23T10:15:02.120Z", "source": "stripe", "journey": "payment_to_posting",
        "amount": "129.00", "currency": "EUR", "attributes": {"invoice_ref": "INV/2026/00042"}}]})
    event_id: str = Field(min_length=1, max_length=256, description="unique per event; re-sends are duplicates")
    type: str = Field(min_length=3, max_length=256, pattern=EVENT_TYPE_PATTERN,
                      description="noun.verb, lower case; the canonical types are listed in docs/events.md")
    correlation_id: str = Field(min_length=1, max_length=256, description="the business transaction")
    occurred_at: str = Field(min_length=1, max_length=256, pattern=OCCURRED_PATTERN,
                             json_schema_extra={"format": "date-time"},
                             description="RFC 3339 with a timezone offset (Z or ±hh:mm), years 1971-2099")
    source: str = Field(min_length=1, max_length=256, description="the system that saw it: stripe, odoo, crm …")
    journey: str | None = Field(None, description="optional journey name (journeys are also matched by type)")
    amount: str | None = Field(None, pattern=DECIMAL_PATTERN, description='decimal string such as "129.00"')
    currency: str | None = Field(None, pattern=CURRENCY_PATTERN, description="ISO 4217 code such as EUR")
    attributes: dict[AttributeKey, str | int | float | bool] | None = Field(
        None, max_length=64, description="string values (numbers and booleans are stored as text)")


class EventsReply(BaseModel):
    """Per-item result of an events POST; 400 (with error/field too) only when no item was usable."""
    accepted: int
    duplicates: int
    rejected: list[dict[str, Any]]


OTLP_JSON_OUTLINE = {
    "type": "object", "description": "ExportTraceServiceRequest in OTLP/JSON (opentelemetry-proto, "
                                     "collector/trace/v1/trace_service.proto); protobuf is the same message",
    "properties": {"resourceSpans": {"anyOf": [{"type": "array", "items": {"type": "object"}}, {"type": "null"}]}},
}
OTLP_LOGS_JSON_OUTLINE = {
    "type": "object", "description": "ExportLogsServiceRequest in OTLP/JSON (opentelemetry-proto, "
                                     "collector/logs/v1/logs_service.proto); protobuf is the same message",
    "properties": {"resourceLogs": {"anyOf": [{"type": "array", "items": {"type": "object"}}, {"type": "null"}]}},
}
OTLP_ROUTES = {("POST", "/v1/traces"): (OTLP_JSON_OUTLINE, "ExportTraceServiceResponse (partial_success names "
                                                           "rejected spans)"),
               ("POST", "/v1/logs"): (OTLP_LOGS_JSON_OUTLINE, "ExportLogsServiceResponse (partial_success names "
                                                              "rejected log records: not events, or invalid)")}

_ERROR_REF = {"$ref": "#/components/schemas/ErrorReply"}
_RETRY = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}
_ERRORS: dict[int, tuple[str, dict]] = {
    400: ("bad input: the field or parameter is named", {}),
    401: ("missing, unknown or revoked key", {"WWW-Authenticate": {"schema": {"type": "string"}}}),
    403: ("the key's scope does not allow this route", {}),
    404: ("no such resource", {}),
    409: ("every item conflicts with an event already stored under the same event_id (other content)", {}),
    405: ("method not allowed", {"Allow": {"schema": {"type": "string"}}}),
    413: ("body larger than server.max_body_bytes (after decompression)", {}),
    415: ("unsupported Content-Type or Content-Encoding", {}),
    429: ("too many concurrent requests", _RETRY),
    503: ("store unavailable or spool full", _RETRY),
}
INGEST_ROUTES = {*OTLP_ROUTES, ("POST", "/api/v1/events"), ("POST", "/api/v1/alerts/alertmanager")}


def route_scopes(app: FastAPI) -> dict[tuple[str, str], str | None]:
    """(method, path) → the scope its `require(scope)` dependency demands (None: open, such as health)."""
    out: dict[tuple[str, str], str | None] = {}
    for r in _api_routes(app.routes):
        scopes = [getattr(d.call, "scope", None) for d in r.dependant.dependencies]
        scope = next((s for s in scopes if s in SCOPES), None)
        for m in sorted((r.methods or set()) - {"HEAD", "OPTIONS"}):
            out[(m, r.path_format)] = scope
    ctx = getattr(app.state, "ctx", None)
    if ("GET", "/metrics") in out and not (ctx and ctx.config.server.metrics_public):
        out[("GET", "/metrics")] = "read"           # checked inside the handler so server.metrics_public can open it
    return out


def _error(status: int) -> dict:
    what, headers = _ERRORS[status]
    doc: dict = {"description": what, "content": {"application/json": {"schema": _ERROR_REF}}}
    if headers:
        doc["headers"] = headers
    return doc


def _json_body(schema: dict, required: bool = True) -> dict:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def build_openapi(app: FastAPI) -> dict:
    """The completed document (see the module docstring)."""
    doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    comps = doc.setdefault("components", {})
    schemas = comps.setdefault("schemas", {})
    for model in (ErrorReply, BusinessEvent, EventsReply):
        schemas[model.__name__] = model.model_json_schema(ref_template="#/components/schemas/{model}")
    from alerts.receiver import AmWebhook, SilenceRequest
    am = AmWebhook.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(am.pop("$defs", {}))
    schemas["AlertmanagerWebhook"] = am
    silence = SilenceRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(silence.pop("$defs", {}))
    schemas["SilenceRequest"] = silence
    for gone in ("HTTPValidationError", "ValidationError"):
        schemas.pop(gone, None)
    comps["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "an API key from `revwatch init` or `revwatch keys create`"}}
    scopes = route_scopes(app)
    for path, ops in doc.get("paths", {}).items():
        for method, op in ops.items():
            key = (method.upper(), path)
            scope = scopes.get(key)
            responses = op.setdefault("responses", {})
            responses.pop("422", None)
            statuses = {400}
            if scope:
                op["security"] = [{"bearer": []}]
                op["description"] = (op.get("description", "") + f"\n\nNeeds a key with scope `{scope}` "
                                     "(admin keys may call every route).").strip()
                statuses |= {401, 403, 503}
            if "{" in path:
                statuses.add(404)
            if key in INGEST_ROUTES:
                statuses |= {413, 415, 503}
            if key in OTLP_ROUTES or key == ("POST", "/api/v1/events"):
                statuses.add(429)
            if key == ("POST", "/api/v1/events"):
                statuses.add(409)
            for s in sorted(statuses):
                responses.setdefault(str(s), _error(s))
    _document_bodies(doc)
    _document_parameters(doc, app)
    return doc


_DATE_TIME = {"type": "string", "format": "date-time", "pattern": OCCURRED_PATTERN,
              "description": "RFC 3339 instant with an offset (years 1971-2099)"}


def _document_parameters(doc: dict, app: FastAPI) -> None:
    """Parameter rules the handlers enforce: instants, KEY:VALUE, the configured journeys, finding kinds."""
    ctx = getattr(app.state, "ctx", None)
    journeys = sorted(ctx.config.journeys) if ctx is not None else []
    from anomaly.routes import KINDS
    rules: dict[str, dict] = {
        "at": _DATE_TIME, "since": _DATE_TIME, "until": _DATE_TIME,
        "attr": {"type": "string", "pattern": r"^[^:]+:.+$", "description": "KEY:VALUE, e.g. invoice_ref:INV/1"},
        "journey": {"type": "string", "enum": journeys}, "stuck": {"type": "string", "enum": journeys},
        "kind": {"type": "string", "enum": list(KINDS)},
        "correlation_id": {"type": "string", "minLength": 1, "maxLength": 256},
    }
    for ops in doc.get("paths", {}).values():
        for op in ops.values():
            for prm in op.get("parameters", []):
                rule = rules.get(prm.get("name"))
                if rule is None or prm.get("in") not in ("query", "path"):
                    continue
                if rule.get("enum") == []:               # nothing configured: any value is a 400
                    continue
                prm["schema"] = dict(rule)
    key_req = doc.get("components", {}).get("schemas", {}).get("KeyRequest")
    if key_req:
        key_req["properties"]["scope"] = {"type": "string", "enum": list(SCOPES)}


def _document_bodies(doc: dict) -> None:
    paths = doc.get("paths", {})
    events = paths.get("/api/v1/events", {}).get("post")
    if events:
        item = {"$ref": "#/components/schemas/BusinessEvent"}
        events["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": {"anyOf": [{"type": "array", "items": item}, item]}},
            "application/x-ndjson": {"schema": {"type": "string", "description": "one BusinessEvent per line"}}}}
        ok = {"application/json": {"schema": {"$ref": "#/components/schemas/EventsReply"}}}
        events["responses"]["200"] = {"description": "accepted (items that failed are listed in `rejected`)",
                                      "content": ok}
        events["responses"]["400"] = {"description": "the body is unusable, or no item was valid (the reply then "
                                                     "carries `rejected` too)",
                                      "content": {"application/json": {"schema": {"anyOf": [
                                          _ERROR_REF, {"$ref": "#/components/schemas/EventsReply"}]}}}}
    for (_, path), (outline, summary) in OTLP_ROUTES.items():
        export = paths.get(path, {}).get("post")
        if not export:
            continue
        export["requestBody"] = {"required": True, "content": {
            "application/x-protobuf": {"schema": {"type": "string", "format": "binary"}},
            "application/json": {"schema": outline}}}
        otlp = {"application/x-protobuf": {"schema": {"type": "string", "format": "binary"}},
                "application/json": {"schema": {"type": "object"}}}
        export["responses"]["200"] = {"description": summary, "content": otlp}
        for s in ("400", "413", "415", "429", "503"):   # OTLP status bodies (google.rpc.Status), as the spec says
            export["responses"][s] = {"description": _ERRORS[int(s)][0], "headers": _ERRORS[int(s)][1],
                                      "content": otlp}
    alert = doc["components"]["schemas"].get("AmAlert")
    if alert:
        alert["properties"]["startsAt"] = dict(_DATE_TIME)
        alert["properties"]["endsAt"] = {"anyOf": [dict(_DATE_TIME), {"type": "string", "maxLength": 0},
                                                   {"type": "null"}]}
    am = paths.get("/api/v1/alerts/alertmanager", {}).get("post")
    if am:
        am["requestBody"] = _json_body({"$ref": "#/components/schemas/AlertmanagerWebhook"})
    silences = paths.get("/api/v1/silences", {}).get("post")
    if silences:
        silences["requestBody"] = _json_body({"$ref": "#/components/schemas/SilenceRequest"})
    silence = doc["components"]["schemas"].get("SilenceRequest")
    if silence:        # exactly one of endsAt and duration ("" and null count as absent): a silence must expire
        absent = {"anyOf": [{"type": "null"}, {"type": "string", "maxLength": 0}]}
        silence["oneOf"] = [{"required": [given], "properties": {given: {"type": "string", "minLength": 1},
                                                                  other: absent}}
                            for given, other in (("endsAt", "duration"), ("duration", "endsAt"))]
    metrics = paths.get("/metrics", {}).get("get")
    if metrics:
        metrics["responses"]["200"] = {"description": "Prometheus text exposition 0.0.4",
                                       "content": {"text/plain": {"schema": {"type": "string"}}}}
    overview = paths.get("/", {}).get("get")
    if overview:
        overview["responses"]["200"] = {"description": "HTML overview",
                                        "content": {"text/html": {"schema": {"type": "string"}}}}
    ready = paths.get("/readyz", {}).get("get")
    if ready:
        ready["responses"]["503"] = {"description": "not ready: ingest would be refused or not reach the store "
                                                    "(spool full, spool disk full or failing, store unreachable, "
                                                    "writer failing); `error` says which",
                                     "headers": _RETRY, "content": {"application/json": {"schema": {"type": "object"}}}}


def install_openapi(app: FastAPI) -> None:
    """Serve the completed document at /openapi.json (built once, on first request)."""
    def openapi() -> dict:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema
    app.openapi = openapi  # type: ignore[method-assign]

"""HTTP plumbing shared by every router: the app context, scoped API-key auth and the JSON error shape.

Errors are always `{"error": "...", "field": "..."}`: 4xx for the caller's fault, 429/503 with Retry-After
under back-pressure or when the store is down. Keys are never logged: only their public id is.
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, TypeVar

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from revwatch.auth import ApiKey, KeyStore, allows
from revwatch.config import Config
from revwatch.metrics import Metrics
from revwatch.priority import IngestFirst
from revwatch.store import Store, StoreBusy, StoreError
from revwatch.units import parse_instant

M = TypeVar("M", bound=BaseModel)

if TYPE_CHECKING:   # annotations only: core never imports the feature packages at run time
    from apscheduler.schedulers.base import BaseScheduler

    from anomaly.online import MetricWatcher
    from alerts.service import AlertService

    from collector.correlation import CorrelationRules
    from collector.intake import Intake
    from collector.deadletters import DeadLetters
    from collector.sequencing import Sequencer
    from collector.sources import SourceRegistry
    from revwatch.journeys import JourneyService
    from collector.pipeline import IngestPipeline
    from collector.spool import Spool
    from revwatch.journeys.tier import JourneyTier
    from collector.writer import Writer
    from probes.service import ProbeService
    from revwatch.evaluator import EvaluatorLoop
    from revwatch.remote_store import IntakeHealth
    from slo.engine import SloEngine
    from webui.routes import WebUi

log = logging.getLogger("revwatch.api")


@dataclass
class AppContext:
    """Everything a request handler may need, built once by `revwatch.server`."""
    config: Config
    store: Store
    keys: KeyStore
    metrics: Metrics
    priority: IngestFirst = field(default_factory=IngestFirst)   # reads yield to ingest under load
    # The services, typed; `revwatch.server.build_context` sets every one before the app serves a request.
    spool: Spool = field(init=False)
    writer: Writer = field(init=False)
    intake: Intake = field(init=False)
    ingest: IngestPipeline = field(init=False)
    correlation: CorrelationRules = field(init=False)
    slo: SloEngine = field(init=False)
    journeys: JourneyService = field(init=False)
    probes: ProbeService = field(init=False)
    alerts: AlertService = field(init=False)
    evaluator: EvaluatorLoop | None = None  # the SLO evaluator loop of an evaluating server (revwatch/evaluator.py)
    ui: WebUi = field(init=False)           # set by webui.install(app)
    scheduler: BaseScheduler | None = None
    background_running: bool = False   # one server owns the writer and scheduler even if the app is served twice
    metric_watcher: MetricWatcher | None = None   # online metric anomaly detector (configured series)
    sources: SourceRegistry | None = None   # named webhook sources and their mappings (collector.sources)
    deadletters: DeadLetters | None = None  # rejected items kept for inspection and replay (collector.deadletters)
    sequencer: Sequencer | None = None      # out-of-order milestone arrivals (collector.sequencing)
    # With intake processes (revwatch/intakes.py): on the owner, what each one last reported about refusing ingest;
    # in an intake process, the other intake processes' problems as the owner last answered them ({index: why}).
    intake_health: IntakeHealth | None = None
    peer_problems: dict[int, list[str]] = field(default_factory=dict)
    journey_tier: JourneyTier | None = None   # every journey's events in memory for lookups (journeys/tier.py)


class ApiError(Exception):
    """An error answered as JSON with a status code (and optional headers such as Retry-After)."""

    def __init__(self, status: int, error: str, field: str | None = None, headers: dict | None = None):
        super().__init__(error)
        self.status, self.error, self.field, self.headers = status, error, field, headers or {}


def error_response(status: int, error: str, field: str | None = None, headers: dict | None = None) -> JSONResponse:
    """The one JSON error shape."""
    body: dict[str, Any] = {"error": error}
    if field:
        body["field"] = field
    return JSONResponse(body, status_code=status, headers=headers)


def first_validation_error(e: ValidationError) -> ApiError:
    """A pydantic validation error as the one JSON error shape: the first problem and its key path."""
    first = e.errors()[0]
    return ApiError(400, first["msg"].removeprefix("Value error, "), ".".join(str(x) for x in first["loc"]) or None)


async def json_object(request: Request, what: str) -> dict:
    """The request's JSON body, which must be an object; anything else is a 400 naming `body`."""
    try:   # orjson refuses nesting deeper than 1024 (stdlib json would hit RecursionError → 500)
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError as e:
        raise ApiError(400, f"body is not valid JSON: {str(e)[:200]}", "body") from None
    if not isinstance(body, dict):
        raise ApiError(400, f"body must be {what}", "body")
    return body


async def validated_body(request: Request, model: type[M], what: str) -> M:
    """The request's JSON object validated by `model`; any problem is a 400 naming the field."""
    body = await json_object(request, what)
    try:
        return model.model_validate(body)
    except ValidationError as e:
        raise first_validation_error(e) from e


def instant_param(value: str | None, field: str) -> dt.datetime | None:
    """An optional RFC 3339 query parameter; a bad one is a 400 naming the parameter."""
    if value is None:
        return None
    try:
        when = parse_instant(value)
    except ValueError as e:
        raise ApiError(400, str(e), field) from e
    if not 1970 <= when.year <= 2199:          # what the store's DateTime64 columns compare against sanely
        raise ApiError(400, f"{value!r} is outside the years 1970-2199", field)
    return when


def ctx_of(request: Request) -> AppContext:
    """The app context of the request's app."""
    return request.app.state.ctx


def require(scope: str) -> Callable[[Request], Any]:
    """A FastAPI dependency: the caller must present a key granting `scope`. Async on purpose: verification is
    an in-memory lookup, so it runs on the event loop instead of costing every request a thread hop. Keys travel
    only in the Authorization header, never in a URL (a caller that cannot send headers, such as Odoo's webhook
    action, uses a named source's own token: collector.sources)."""
    async def check(request: Request) -> ApiKey:
        return authorize(request, scope)
    check.scope = scope            # type: ignore[attr-defined]  # read by revwatch.openapi.route_scopes
    return check


def bearer_token(header: str) -> str | None:
    """The key in an `Authorization: Bearer <key>` header value, or None when there is none."""
    kind, _, token = header.partition(" ")
    return token.strip() if kind.lower() == "bearer" and token.strip() else None


def authorize(request: Request, scope: str) -> ApiKey:
    """Check the request's bearer key grants `scope` (raises ApiError 401/403/503); the key's id goes to
    request.state for logs."""
    header = request.headers.get("authorization", "")
    token = bearer_token(header)
    if token is None:
        raise ApiError(401, "missing API key: send 'Authorization: Bearer <key>'", "Authorization",
                       {"WWW-Authenticate": "Bearer"})
    try:
        key = ctx_of(request).keys.verify(token)
    except StoreError:
        raise ApiError(503, "the store is unavailable to check the API key", headers={"Retry-After": "5"}) from None
    if key is None:
        raise ApiError(401, "invalid or revoked API key", "Authorization", {"WWW-Authenticate": "Bearer"})
    if not allows(key, scope):
        raise ApiError(403, f"this key has scope '{key.scope}'; this route needs '{scope}'", "Authorization")
    request.state.key_id = key.key_id
    return key


def install_error_handlers(app: FastAPI) -> None:
    """Map every failure to the JSON error shape; never answer bad input with a 5xx or a traceback."""
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError):
        return error_response(exc.status, exc.error, exc.field, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(p) for p in first.get("loc", []) if p not in ("body", "query", "path")]
        return error_response(400, first.get("msg", "invalid request"), ".".join(loc) or None)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:          # name every method of the path, not only the first route's
            from revwatch.routing import allowed_methods
            headers = {**(headers or {}), "Allow": ", ".join(allowed_methods(request.app, request.scope))}
        return error_response(exc.status_code, str(exc.detail), headers=headers)

    @app.exception_handler(StoreError)
    async def _store(request: Request, exc: StoreError):
        if isinstance(exc, StoreBusy):
            ctx_of(request).metrics.store_reads_refused_total.inc()
            return error_response(503, "the store is busy; retry later", headers={"Retry-After": "2"})
        log.warning("store error answering a request: %s", exc)
        return error_response(503, "the store is unavailable; retry later", headers={"Retry-After": "5"})

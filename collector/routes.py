"""HTTP routes of the collector: `POST /v1/traces` (OTLP/HTTP) and `POST /api/v1/events` (docs/events.md, http.md)."""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import threading
import time
import zlib
from typing import AsyncIterator, Iterator

import orjson
from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse

from collector.cloudevents import cloudevent_items, is_cloudevents
from collector.correlation import CorrelationRules
from collector.events import COL_CORRELATION as EV_CORRELATION
from collector.events import COL_EVENT_ID as EV_ID
from collector.events import COL_TYPE as EV_TYPE
from collector.events import COL_OCCURRED as EV_OCCURRED
from collector.events import BodyError, ItemProblem, ValidatedEvents, validate_in_chunks, validate_items_in_chunks
from collector.limits import MAX_REJECTED_LISTED
from collector.otlp import COL_CORRELATION, DecodeError, decode_traces, encode_response, status_body
from collector.otlp_logs import log_event_items, parse_logs
from collector.sources import SourceRegistry
from collector.spool import SpoolRefused, SpoolUnavailable
from revwatch.api import ApiError, AppContext, ctx_of, require
from revwatch.metrics import observe_many

log = logging.getLogger("revwatch.collector")
router = APIRouter()

PROTOBUF_TYPES = ("application/x-protobuf", "application/protobuf")
JSON_TYPES = ("application/json",)
MAX_INFLIGHT = 64
_inflight = threading.BoundedSemaphore(MAX_INFLIGHT)


class BodyTooLarge(Exception):
    pass


class InflightBudget:
    """Admission for a route: at most `max_requests` in flight and `max_bytes` of their declared bodies, so memory
    under load is bounded; over either bound the caller answers 429 + Retry-After instead of queueing."""

    def __init__(self, max_requests: int, max_bytes: int):
        self.max_requests, self.max_bytes = max_requests, max_bytes
        self.requests = self.bytes = 0
        self._lock = threading.Lock()

    def try_acquire(self, nbytes: int) -> bool:
        """Reserve a request slot and `nbytes`; False (nothing reserved) when over a bound."""
        with self._lock:
            if self.requests >= self.max_requests or (self.requests and self.bytes + nbytes > self.max_bytes):
                return False
            self.requests += 1
            self.bytes += nbytes
            return True

    def release(self, nbytes: int) -> None:
        """Give back what `try_acquire` reserved."""
        with self._lock:
            self.requests -= 1
            self.bytes -= nbytes


# Events: 1-event webhooks come in hundreds at once; a body counts with its declared size (or 1 MiB if chunked).
EVENTS_INFLIGHT = InflightBudget(max_requests=1024, max_bytes=256 * 1024**2)
_CHUNKED_RESERVE = 1024**2
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
_TRIM_AFTER = 8 * 1024**2


def _give_memory_back() -> None:
    """After a big body, return freed heap pages to the OS (glibc keeps them otherwise; RSS would stay high)."""
    try:
        _libc.malloc_trim(0)
    except AttributeError:          # not glibc
        pass


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, gunzipped when `Content-Encoding: gzip`; over `limit` (before or after) → 413."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge()
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge()
        chunks.append(chunk)
    body = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding != "gzip":
        raise ApiError(415, f"unsupported Content-Encoding {encoding!r} (gzip or identity)", "Content-Encoding")
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(body, limit + 1)
        if len(out) > limit or d.unconsumed_tail:
            raise BodyTooLarge()
        if not d.eof:
            raise ApiError(400, "gzip body is truncated", "body")
    except zlib.error as e:
        raise ApiError(400, f"body is not valid gzip: {e}", "body") from None
    return out


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _otlp_error(status: int, message: str, json_body: bool, headers: dict | None = None) -> Response:
    media = "application/json" if json_body else "application/x-protobuf"
    return Response(status_body(status, message, json_body), status_code=status, media_type=media, headers=headers)


class _OtlpRefusal(Exception):
    """An OTLP request refused before decoding (status, message, headers): answered as a google.rpc.Status."""

    def __init__(self, response: Response):
        self.response = response


async def _otlp_body(request: Request, ctx: AppContext, json_body: bool) -> bytes:
    """The (gunzipped) body of an OTLP export; raises _OtlpRefusal with the OTLP error answer on a bad request."""
    try:
        return await read_body(request, ctx.config.server.max_body_bytes)
    except BodyTooLarge:
        ctx.metrics.rejected_total.labels("too_large").inc()
        raise _OtlpRefusal(_otlp_error(413, f"body exceeds {ctx.config.server.max_body_bytes} bytes",
                                       json_body)) from None
    except ApiError as e:
        ctx.metrics.rejected_total.labels("decode").inc()
        raise _OtlpRefusal(_otlp_error(e.status, e.error, json_body)) from None


@contextlib.asynccontextmanager
async def _otlp_export(request: Request) -> AsyncIterator[tuple[AppContext, bool, bytes]]:
    """Admission of one OTLP export (traces or logs): Content-Type (415), the in-flight bound (429), the body
    (413/400) → (ctx, whether OTLP/JSON, body); the slot is held until the block ends. Refusals raise
    _OtlpRefusal carrying the OTLP error answer."""
    ctx = ctx_of(request)
    ctx.priority.note_ingest()
    media = _media_type(request)
    if media not in PROTOBUF_TYPES + JSON_TYPES:
        ctx.metrics.rejected_total.labels("content_type").inc()
        raise _OtlpRefusal(_otlp_error(415, f"unsupported Content-Type {media!r}: use application/x-protobuf or "
                                            "application/json", True))
    json_body = media in JSON_TYPES
    if not _inflight.acquire(blocking=False):
        ctx.metrics.rejected_total.labels("throttled").inc()
        raise _OtlpRefusal(_otlp_error(429, "too many concurrent exports", json_body, {"Retry-After": "1"}))
    try:
        yield ctx, json_body, await _otlp_body(request, ctx, json_body)
    finally:
        _inflight.release()


async def _serve_otlp(request: Request, accept) -> Response:
    """Admit an OTLP export (`_otlp_export`) and answer with `accept(request, ctx, json_body, body)`."""
    try:
        async with _otlp_export(request) as (ctx, json_body, body):
            return await accept(request, ctx, json_body, body)
    except _OtlpRefusal as e:
        return e.response


def _otlp_ok(body: bytes, json_body: bool) -> Response:
    return Response(body, status_code=200, media_type="application/json" if json_body else "application/x-protobuf")


@router.post("/v1/traces", dependencies=[Depends(require("ingest"))])
async def post_traces(request: Request) -> Response:
    """OTLP/HTTP trace export (protobuf or JSON, optionally gzip)."""
    return await _serve_otlp(request, _accept_traces)


async def _accept_traces(request: Request, ctx: AppContext, json_body: bool, body: bytes) -> Response:
    rules: CorrelationRules = ctx.correlation
    try:
        decoded = await run_in_threadpool(decode_traces, body, json_body, rules)
    except DecodeError as e:
        ctx.metrics.rejected_total.labels("decode").inc()
        return _otlp_error(400, str(e), json_body)
    if decoded.rejected:
        ctx.metrics.rejected_total.labels("invalid_span").inc(decoded.rejected)
        log.info("spans rejected", extra={"rejected": decoded.rejected, "errors": decoded.errors[:3],
                                          "key_id": getattr(request.state, "key_id", None)})
    if log.isEnabledFor(logging.DEBUG):
        for cid in sorted({r[COL_CORRELATION] for r in decoded.rows})[:100]:
            log.debug("spans accepted", extra={"correlation_id": cid})
    try:
        await run_in_threadpool(ctx.intake.accept_spans, decoded.rows)
    except SpoolRefused as e:
        ctx.metrics.rejected_total.labels(_refusal_reason(e)).inc()
        log.warning("spool refused an export: %s", e)
        return _otlp_error(503, f"{_refusal_text(e)}; retry later", json_body, {"Retry-After": e.retry_after})
    msg = "; ".join(decoded.errors) if decoded.rejected else ""
    return _otlp_ok(encode_response(decoded.rejected, msg, json_body), json_body)


@router.post("/v1/logs", dependencies=[Depends(require("ingest"))])
async def post_logs(request: Request) -> Response:
    """OTLP/HTTP log export (protobuf or JSON, optionally gzip): event records become business events through the
    same validation, duplicate check and spool as POST /api/v1/events; other records are rejected in
    partial_success (collector.otlp_logs)."""
    return await _serve_otlp(request, _accept_logs)


async def _accept_logs(request: Request, ctx: AppContext, json_body: bool, body: bytes) -> Response:
    try:
        req = await run_in_threadpool(parse_logs, body, json_body)
    except DecodeError as e:
        ctx.metrics.rejected_total.labels("decode").inc()
        return _otlp_error(400, str(e), json_body)
    items = log_event_items(req, ctx.correlation, ctx.sources.type_of if ctx.sources else None)
    try:
        reply = await ingest_items(ctx, validate_items_in_chunks(items), False,
                                   getattr(request.state, "key_id", None), door="otlp_logs")
    except ApiError as e:             # 503 + Retry-After from the spool: the exporter retries
        return _otlp_error(e.status, e.error, json_body, e.headers)
    rejected = reply.get("rejected_total", len(reply["rejected"])) + len(reply["conflicts"])
    problems = [f"record {r['index']}: {r['error']}" for r in reply["rejected"][:5]]
    problems += [f"record {c['index']}: {c['error']}" for c in reply["conflicts"][:5 - len(problems)]]
    if rejected > len(problems):
        problems.append(f"… {rejected} log record(s) rejected in all")
    return _otlp_ok(encode_response(rejected, "; ".join(problems), json_body, ExportLogsServiceResponse,
                                    "rejected_log_records"), json_body)


def _refusal_reason(e: SpoolRefused) -> str:
    return "spool_error" if isinstance(e, SpoolUnavailable) else "spool_full"


def _refusal_text(e: SpoolRefused) -> str:
    return f"the spool cannot write ({e})" if isinstance(e, SpoolUnavailable) else "spool full: the store is behind"


_EVENT_TYPES = ("application/json", "application/x-ndjson", "application/ndjson", "application/jsonlines",
                "application/json-seq", "text/plain",
                "application/x-www-form-urlencoded")    # curl -d sends this by default


@router.post("/api/v1/events", dependencies=[Depends(require("ingest"))])
async def post_events(request: Request) -> JSONResponse:
    """Business events: a JSON array or NDJSON; per-item validation; duplicates counted once, conflicts listed.

    Admission is bounded (429 + Retry-After); the body is validated and spooled off the event loop, a chunk of
    items at a time, so neither the loop nor memory grow with one request's size."""
    ctx = ctx_of(request)
    ctx.priority.note_ingest()
    media = _media_type(request)
    cloud = is_cloudevents(media, request.headers)
    if media and not cloud and media not in _EVENT_TYPES:
        raise ApiError(415, f"unsupported Content-Type {media!r}: use application/json, application/x-ndjson or "
                            "CloudEvents (application/cloudevents+json, application/cloudevents-batch+json, or "
                            "binary mode with ce-* headers)", "Content-Type")
    declared = request.headers.get("content-length", "")
    reserve = min(int(declared), ctx.config.server.max_body_bytes) if declared.isdigit() else _CHUNKED_RESERVE
    if not EVENTS_INFLIGHT.try_acquire(reserve):
        ctx.metrics.rejected_total.labels("throttled").inc()
        raise ApiError(429, "too many event requests in flight; retry later", headers={"Retry-After": "1"})
    try:
        try:
            body = await read_body(request, ctx.config.server.max_body_bytes)
        except BodyTooLarge:
            raise ApiError(413, f"body exceeds {ctx.config.server.max_body_bytes} bytes", "body") from None
        key_id = getattr(request.state, "key_id", None)
        if cloud:
            chunks = _cloudevent_chunks(body, media, dict(request.headers), ctx.sources)
            reply = await ingest_items(ctx, chunks, len(body) <= INLINE_BODY_BYTES, key_id, door="cloudevents")
        else:
            reply = await ingest_events(ctx, body, media, key_id)
        if len(body) > _TRIM_AFTER:
            del body
            await run_in_threadpool(_give_memory_back)
    finally:
        EVENTS_INFLIGHT.release(reserve)
    if reply["rejected"] and not reply["accepted"] and not reply["duplicates"] and not reply["conflicts"]:
        first = reply["rejected"][0]                      # nothing usable at all: a client error
        return JSONResponse({**reply, "error": first["error"], "field": first.get("field")}, status_code=400)
    if reply["conflicts"] and not reply["accepted"] and not reply["duplicates"]:
        first = reply["conflicts"][0]
        return JSONResponse({**reply, "error": first["error"], "field": "event_id"}, status_code=409)
    return JSONResponse(reply, status_code=200)


# A body this small is validated and checked on the event loop (a webhook: tens of microseconds; the worst case,
# ~5,000 tiny invalid items, ~10 ms); a bigger one off it.
INLINE_BODY_BYTES = 16 * 1024


async def ingest_events(ctx: AppContext, body: bytes, media: str, key_id: str | None) -> dict:
    """Validate and spool a body of our own event format chunk by chunk; the reply of docs/events.md plus `conflicts`.

    A small body (the 1-event webhook, ≤ INLINE_BODY_BYTES) stays on the event loop and awaits the spool's group
    commit: no worker thread per request, which is what sets the small-request throughput. A bigger one is
    validated and appended in worker threads, a chunk of items at a time, so the loop stays responsive and memory
    is bounded by the chunk."""
    return await ingest_items(ctx, validate_in_chunks(body, media), len(body) <= INLINE_BODY_BYTES, key_id)


def _cloudevent_chunks(body: bytes, media: str, headers: dict[str, str],
                       sources: SourceRegistry | None) -> Iterator[ValidatedEvents]:
    """Validated chunks of a CloudEvents request (lazy: an unusable body raises BodyError at the first `next`)."""
    yield from validate_items_in_chunks(cloudevent_items(body, media, headers, sources.type_of if sources else None))


def item_bytes(item) -> bytes:
    """A rejected item as dead-letter body: what the sender sent when the adapter kept it, else the item as JSON."""
    if isinstance(item, ItemProblem):
        return item.raw or b""
    try:
        return orjson.dumps(item, default=str)
    except TypeError:
        return repr(item).encode()


async def ingest_items(ctx: AppContext, chunks: Iterator[ValidatedEvents], inline: bool, key_id: str | None,
                       door: str = "events", source: str | None = None, letters: bool = True) -> dict:
    """The one way every door (our JSON, OTLP log events, CloudEvents, webhook sources) acknowledges events:
    validated chunks → the intake's duplicate/conflict check → the fsync'd spool. `inline` keeps the work on the
    event loop (small bodies). Raises ApiError 400 (body unusable) or 503 (spool refused: nothing acknowledged).
    `door` names the route in the rejection counters and dead letters, `source` (default: the door) labels the
    per-source delivery telemetry; with `letters`, each rejected item is kept as a dead letter."""
    label = source or door
    telemetry = ctx.metrics
    now_ms = int(time.time() * 1000)
    accepted = dups = rejected_total = 0
    rejected: list[dict] = []
    conflicts: list[dict] = []
    warnings: list[dict] = []
    try:
        while True:
            chunk = next(chunks, None) if inline else await run_in_threadpool(next, chunks, None)
            if chunk is None:
                break
            telemetry.source_received_total.labels(label).inc(len(chunk.rows) + chunk.rejected_count)
            if chunk.rejected_count:
                ctx.metrics.rejected_total.labels("invalid_event").inc(chunk.rejected_count)
                telemetry.source_rejected_total.labels(label, "invalid_event").inc(chunk.rejected_count)
                rejected += chunk.rejected[:MAX_REJECTED_LISTED - len(rejected)]
                rejected_total += chunk.rejected_count
                if letters and ctx.deadletters is not None:
                    for idx, item, error in chunk.rejected_items:
                        ctx.deadletters.add(door, label, "invalid_event", f"item {idx}: {error}", item_bytes(item))
            warnings += chunk.warnings[:MAX_REJECTED_LISTED - len(warnings)]
            if chunk.rows:
                if ctx.sequencer is not None:           # before the intake remembers them: retries are skipped
                    ctx.sequencer.observe(chunk.rows, label, ctx.intake.recent_events)
                if inline:
                    out = await ctx.intake.accept_event_rows_async(chunk.rows, chunk.indexes)
                else:
                    out = await run_in_threadpool(ctx.intake.accept_event_rows, chunk.rows, chunk.indexes)
                accepted, dups = accepted + out.accepted, dups + out.duplicates
                conflicts += out.conflicts[:MAX_REJECTED_LISTED - len(conflicts)]
                telemetry.source_accepted_total.labels(label).inc(out.accepted)
                if out.duplicates:
                    telemetry.source_duplicates_total.labels(label).inc(out.duplicates)
                if out.conflicts:
                    telemetry.source_conflicts_total.labels(label).inc(len(out.conflicts))
                observe_many(telemetry.source_lateness_seconds.labels(label),
                             [max(0.0, (now_ms - row[EV_OCCURRED]) / 1000) for row in chunk.rows])
                if log.isEnabledFor(logging.DEBUG):
                    for row in chunk.rows[:100]:
                        log.debug("event accepted", extra={"correlation_id": row[EV_CORRELATION],
                                                           "event_type": row[EV_TYPE], "event_id": row[EV_ID],
                                                           "key_id": key_id})
    except BodyError as e:
        ctx.metrics.rejected_total.labels("decode").inc()
        raise ApiError(400, str(e), "body") from e
    except SpoolRefused as e:
        ctx.metrics.rejected_total.labels(_refusal_reason(e)).inc()
        log.warning("spool refused events: %s", e)
        raise ApiError(503, f"{_refusal_text(e)}; retry later", headers={"Retry-After": e.retry_after}) from e
    for rej in rejected[:20]:
        log.info("event rejected", extra={"index": rej["index"], "error": rej["error"], "key_id": key_id})
    reply: dict = {"accepted": accepted, "duplicates": dups, "conflicts": conflicts, "rejected": rejected}
    if rejected_total > len(rejected):
        reply["rejected_total"] = rejected_total
    if warnings:
        reply["warnings"] = warnings
    return reply

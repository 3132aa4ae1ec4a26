"""HTTP routes of the collector: `POST /v1/traces` (OTLP/HTTP) and `POST /api/v1/events` (DESIGN.md §4, §6)."""
from __future__ import annotations

import logging
import threading
import zlib

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from collector.correlation import CorrelationRules
from collector.events import BodyError, validate_events
from collector.otlp import DecodeError, decode_traces, encode_response, status_body
from collector.spool import SpoolFull
from revwatch.api import ApiError, ctx_of, require

log = logging.getLogger("revwatch.collector")
router = APIRouter()

PROTOBUF_TYPES = ("application/x-protobuf", "application/protobuf")
JSON_TYPES = ("application/json",)
MAX_INFLIGHT = 64
_inflight = threading.BoundedSemaphore(MAX_INFLIGHT)


class BodyTooLarge(Exception):
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


@router.post("/v1/traces", dependencies=[Depends(require("ingest"))])
async def post_traces(request: Request) -> Response:
    """OTLP/HTTP trace export (protobuf or JSON, optionally gzip)."""
    ctx = ctx_of(request)
    media = _media_type(request)
    json_body = media in JSON_TYPES
    if media not in PROTOBUF_TYPES + JSON_TYPES:
        ctx.metrics.rejected_total.labels("content_type").inc()
        return _otlp_error(415, f"unsupported Content-Type {media!r}: use application/x-protobuf or "
                                "application/json", True)
    if not _inflight.acquire(blocking=False):
        ctx.metrics.rejected_total.labels("throttled").inc()
        return _otlp_error(429, "too many concurrent exports", json_body, {"Retry-After": "1"})
    try:
        try:
            body = await read_body(request, ctx.config.server.max_body_bytes)
        except BodyTooLarge:
            ctx.metrics.rejected_total.labels("too_large").inc()
            return _otlp_error(413, f"body exceeds {ctx.config.server.max_body_bytes} bytes", json_body)
        except ApiError as e:
            ctx.metrics.rejected_total.labels("decode").inc()
            return _otlp_error(e.status, e.error, json_body)
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
            for cid in sorted({r[22] for r in decoded.rows})[:100]:
                log.debug("spans accepted", extra={"correlation_id": cid})
        try:
            await run_in_threadpool(ctx.intake.accept_spans, decoded.rows)
        except SpoolFull as e:
            ctx.metrics.rejected_total.labels("spool_full").inc()
            log.warning("spool full, refusing export: %s", e)
            return _otlp_error(503, "spool full: the store is behind; retry later", json_body, {"Retry-After": "30"})
        msg = "; ".join(decoded.errors) if decoded.rejected else ""
        return Response(encode_response(decoded.rejected, msg, json_body), status_code=200,
                        media_type="application/json" if json_body else "application/x-protobuf")
    finally:
        _inflight.release()


@router.post("/api/v1/events", dependencies=[Depends(require("ingest"))])
async def post_events(request: Request) -> JSONResponse:
    """Business events: a JSON array or NDJSON; per-item validation; duplicates counted once."""
    ctx = ctx_of(request)
    media = _media_type(request)
    if media and media not in ("application/json", "application/x-ndjson", "application/ndjson",
                               "application/jsonlines", "application/json-seq", "text/plain",
                               "application/x-www-form-urlencoded"):   # curl -d sends this by default
        raise ApiError(415, f"unsupported Content-Type {media!r}: use application/json or application/x-ndjson",
                       "Content-Type")
    try:
        body = await read_body(request, ctx.config.server.max_body_bytes)
    except BodyTooLarge:
        raise ApiError(413, f"body exceeds {ctx.config.server.max_body_bytes} bytes", "body")
    try:
        validated = validate_events(body, media)
    except BodyError as e:
        ctx.metrics.rejected_total.labels("decode").inc()
        raise ApiError(400, str(e), "body")
    if validated.rejected:
        ctx.metrics.rejected_total.labels("invalid_event").inc(len(validated.rejected))
    try:
        accepted, dups = await run_in_threadpool(ctx.intake.accept_events, validated)
    except SpoolFull:
        ctx.metrics.rejected_total.labels("spool_full").inc()
        raise ApiError(503, "spool full: the store is behind; retry later", headers={"Retry-After": "30"})
    if log.isEnabledFor(logging.DEBUG):
        for row in validated.rows[:100]:
            log.debug("event accepted", extra={"correlation_id": row[2], "event_type": row[1], "event_id": row[0],
                                               "key_id": getattr(request.state, "key_id", None)})
    for rej in validated.rejected[:20]:
        log.info("event rejected", extra={"index": rej["index"], "error": rej["error"],
                                          "key_id": getattr(request.state, "key_id", None)})
    reply: dict = {"accepted": accepted, "duplicates": dups, "rejected": validated.rejected}
    if validated.rejected and not validated.rows:        # nothing usable at all: a client error
        reply.update(error=validated.rejected[0]["error"], field=validated.rejected[0].get("field"))
        return JSONResponse(reply, status_code=400)
    return JSONResponse(reply, status_code=200)

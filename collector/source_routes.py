"""HTTP routes of named webhook sources and dead letters (docs/sources.md):

* `POST /api/v1/sources/{name}` — a configured source's webhook, authenticated by the source's own signature or
  URL token (collector.sources), mapped, then the one validation and spool path of every door;
* `GET /api/v1/deadletters`, `GET /api/v1/deadletters/{id}` (read), `POST /api/v1/deadletters/replay` (admin).

Every refusal is dead-lettered with its reason: unknown source (404), over-size (413), signature/token (401),
a body that is not JSON or cannot be mapped as a whole (400); a payload with items that fail mapping or validation
is answered 2xx with per-item problems and dead-lettered whole, so a replay after the mapping is fixed re-runs it
(items already stored then count as duplicates: nothing is stored twice).
"""
from __future__ import annotations

import datetime as dt
import logging
from typing import Iterable, Iterator

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from collector.cloudevents import STRUCTURED, cloudevent_items
from collector.deadletters import CURSOR_PATTERN, REPLAYABLE, DeadLetters
from collector.events import BodyError, ValidatedEvents, validate_in_chunks, validate_items_in_chunks
from collector.otlp import DecodeError
from collector.otlp_logs import log_event_items, parse_logs
from collector.routes import EVENTS_INFLIGHT, INLINE_BODY_BYTES, BodyTooLarge, ingest_items, read_body
from collector.sources import MappingError, Refused, SourceMapper
from revwatch.api import ApiError, AppContext, ctx_of, instant_param, require

log = logging.getLogger("revwatch.sources")
router = APIRouter()            # ingest: served by collector roles
read_router = APIRouter()       # dead-letter reads and replay: every role (letters live in the shared store)
DOOR = "source"


def _letter(ctx: AppContext, source: str, reason: str, detail: str, body: bytes, door: str = DOOR) -> None:
    if ctx.deadletters is not None:
        ctx.deadletters.add(door, source, reason, detail, body)


@router.post("/api/v1/sources/{name}")
async def post_source(name: str, request: Request) -> JSONResponse:
    """A named source's webhook (Stripe, Odoo, generic HMAC): authenticated by the source's signature or URL token,
    not by an API key; mapped to canonical events; the reply of POST /api/v1/events plus `unknown_types`."""
    ctx = ctx_of(request)
    ctx.priority.note_ingest()
    mapper = ctx.sources.get(name) if ctx.sources else None
    limit = ctx.config.server.max_body_bytes
    if not EVENTS_INFLIGHT.try_acquire(_CAP):
        ctx.metrics.rejected_total.labels("throttled").inc()
        raise ApiError(429, "too many event requests in flight; retry later", headers={"Retry-After": "1"})
    try:
        try:
            body = await read_body(request, limit)
        except BodyTooLarge:
            ctx.metrics.source_rejected_total.labels(name if mapper else "-", "too_large").inc()
            _letter(ctx, name, "too_large", f"body exceeds {limit} bytes", b"")
            raise ApiError(413, f"body exceeds {limit} bytes", "body") from None
        if mapper is None:
            ctx.metrics.source_rejected_total.labels("-", "unknown_source").inc()
            _letter(ctx, name[:256], "unknown_source", f"no source named {name[:256]!r} is configured", body)
            raise ApiError(404, f"no source named {name!r} is configured (sources: in the config)", "name")
        try:
            ctx.sources.verify(mapper, request.headers, request.query_params, body)   # type: ignore[union-attr]
        except Refused as e:
            ctx.metrics.source_signature_failures_total.labels(name, e.reason).inc()
            ctx.metrics.source_rejected_total.labels(name, e.reason).inc()
            log.info("source request refused", extra={"source": name, "reason": e.reason})
            _letter(ctx, name, e.reason, str(e), body)
            raise ApiError(401, str(e), "signature") from None
        reply = await map_and_ingest(ctx, mapper, body, dt.datetime.now(dt.timezone.utc))
    finally:
        EVENTS_INFLIGHT.release(_CAP)
    status = 200
    if reply["rejected"] and not reply["accepted"] and not reply["duplicates"]:
        status = 400
        first = reply["rejected"][0]
        reply = {**reply, "error": first["error"], "field": first.get("field")}
    return JSONResponse(reply, status_code=status)


_CAP = 1024 * 1024            # admission reservation of one webhook (bodies are small; the cap bounds memory)


async def map_and_ingest(ctx: AppContext, mapper: SourceMapper, body: bytes, received: dt.datetime,
                         letters: bool = True) -> dict:
    """Map a verified payload and ingest its events (the one path); with `letters`, a payload with problems is
    dead-lettered whole. Raises ApiError 400 when the body is not JSON or cannot be mapped as a whole."""
    name = mapper.name
    if mapper.canonical:                        # an hmac source without a mapping: our own event format
        chunks = validate_in_chunks(body, "application/json")
        unknown: list[str] = []
    else:
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as e:
            ctx.metrics.source_rejected_total.labels(name, "not_json").inc()
            if letters:
                _letter(ctx, name, "not_json", f"body is not valid JSON: {e}", body)
            raise ApiError(400, f"body is not valid JSON: {e}", "body") from None
        try:
            items = mapper.items(payload, received)
        except MappingError as e:
            ctx.metrics.source_rejected_total.labels(name, "mapping").inc()
            if letters:
                _letter(ctx, name, "mapping", str(e), body)
            raise ApiError(400, str(e), e.field or "mapping") from None
        unknown = [i.get("attributes", {}).get("provider_type") or i["type"] for i in items
                   if isinstance(i, dict) and mapper.unknown_type(i)]
        for t in unknown:
            ctx.metrics.source_unknown_types_total.labels(name, t[:64]).inc()
        chunks = validate_items_in_chunks(items)
    try:
        reply = await ingest_items(ctx, chunks, len(body) <= INLINE_BODY_BYTES, None, door=DOOR, source=name,
                                   letters=False)
    except ApiError as e:
        if e.status == 400 and letters:
            _letter(ctx, name, "invalid_event", e.error, body)
        raise
    if reply["rejected"] and letters:
        problems = "; ".join(f"item {r['index']}: {r['error']}" for r in reply["rejected"][:5])
        _letter(ctx, name, "mapping" if not mapper.canonical else "invalid_event", problems, body)
    if unknown:
        reply["unknown_types"] = sorted(set(unknown))
    return reply


# -- dead letters -------------------------------------------------------------------------------------------------


def _letters(ctx: AppContext) -> DeadLetters:
    if ctx.deadletters is None:
        raise ApiError(503, "dead letters are not available in this process", headers={"Retry-After": "5"})
    return ctx.deadletters


@read_router.get("/api/v1/deadletters", dependencies=[Depends(require("read"))])
def list_deadletters(request: Request, source: str | None = Query(None, max_length=256),
                     reason: str | None = Query(None, max_length=64), since: str | None = None,
                     status: str | None = Query(None, pattern="^(open|replayed)$"),
                     cursor: str | None = Query(None, pattern=CURSOR_PATTERN),
                     limit: int = Query(100, ge=1, le=1000)) -> dict:
    """Rejected items, newest first: `{"items": [...], "next_cursor": ...}`; each with its source, reason, the start
    of its raw body, first/last seen, count and replay status. Filters: source, reason, since, status."""
    dl = _letters(ctx_of(request))
    try:
        items, nxt = dl.find(source, reason, instant_param(since, "since"), cursor, limit, status)
    except ValueError as e:
        raise ApiError(400, str(e), "cursor") from None
    return {"items": items, "next_cursor": nxt}


@router.get("/api/v1/deadletters/{letter_id}", dependencies=[Depends(require("read"))])
def get_deadletter(letter_id: str, request: Request) -> dict:
    """One dead letter with its whole kept body and its last replay."""
    letter = _letters(ctx_of(request)).get(letter_id[:64])
    if letter is None:
        raise ApiError(404, f"no dead letter {letter_id[:64]!r}", "letter_id")
    return letter





@read_router.post("/api/v1/deadletters/replay", dependencies=[Depends(require("admin"))])
async def replay_deadletters(request: Request, source: str | None = Query(None, max_length=256),
                             reason: str | None = Query(None, max_length=64), since: str | None = None,
                             letter_id: str | None = Query(None, max_length=64),
                             limit: int = Query(1000, ge=1, le=10000)) -> dict:
    """Re-run open letters through today's mapping and validation (admin). Letters refused for their signature or
    token (or size) are never replayed: their sender did not prove who it was. Each outcome is recorded."""
    ctx = ctx_of(request)
    return await replay(ctx, source, reason, instant_param(since, "since"), letter_id, limit)


async def replay(ctx: AppContext, source: str | None = None, reason: str | None = None,
                 since: dt.datetime | None = None, letter_id: str | None = None, limit: int = 1000) -> dict:
    """Replay open letters (filters as the route) through the one ingest path; `{"replayed", "rejected_again",
    "skipped", "letters": [...]}`. The CLI runs this too when it holds the store itself."""
    dl = _letters(ctx)
    dl.flush()                                  # letters still buffered are replayable too
    if letter_id:
        one = dl.get(letter_id)
        letters = [one] if one and one["status"] == "open" else []
    else:
        letters, _ = dl.find(source, reason, since, None, limit, "open")
    out: list[dict] = []
    totals = {"replayed": 0, "rejected_again": 0, "skipped": 0}
    for summary in letters:
        if summary["reason"] not in REPLAYABLE:
            totals["skipped"] += 1
            continue
        letter = dl.get(summary["id"])
        if letter is None:
            continue
        outcome, reply, detail = await _replay_one(ctx, letter)
        totals[outcome] += 1
        dl.record_replay(letter["id"], outcome, reply.get("accepted", 0), reply.get("duplicates", 0), detail)
        out.append({"id": letter["id"], "source": letter["source"], "reason": letter["reason"], "outcome": outcome,
                    "accepted": reply.get("accepted", 0), "duplicates": reply.get("duplicates", 0),
                    "detail": detail})
    return {**totals, "letters": out}


async def _replay_one(ctx: AppContext, letter: dict) -> tuple[str, dict, str]:
    """(outcome, ingest reply, detail) of re-running one letter through its door's current mapping."""
    body = letter["body"].encode()
    if letter.get("truncated"):
        return "rejected_again", {}, "the kept body is cut (deadletters.max_body_bytes): cannot replay"
    try:
        reply = await ingest_items(ctx, _replay_chunks(ctx, letter, body), False, None, door=letter["door"],
                                   source=letter["source"], letters=False) \
            if letter["door"] != DOOR else await _replay_source(ctx, letter, body)
    except ApiError as e:
        return "rejected_again", {}, e.error
    except (BodyError, DecodeError, MappingError) as e:
        return "rejected_again", {}, str(e)
    if reply["rejected"] or (reply["conflicts"] and not reply["accepted"] and not reply["duplicates"]):
        problems = reply["rejected"] or reply["conflicts"]
        return "rejected_again", reply, "; ".join(f"item {r['index']}: {r['error']}" for r in problems[:5])
    return "replayed", reply, f"{reply['accepted']} accepted, {reply['duplicates']} already stored"


async def _replay_source(ctx: AppContext, letter: dict, body: bytes) -> dict:
    mapper = ctx.sources.get(letter["source"]) if ctx.sources else None
    if mapper is None:
        raise ApiError(404, f"no source named {letter['source']!r} is configured", "source")
    received = dt.datetime.fromisoformat(letter["first_seen"])
    return await map_and_ingest(ctx, mapper, body, received, letters=False)


def _replay_chunks(ctx: AppContext, letter: dict, body: bytes):
    door = letter["door"]
    type_of = ctx.sources.type_of if ctx.sources else None
    if door == "otlp_logs" and body.startswith(b'{"resourceLogs"'):
        items = log_event_items(parse_logs(body, True), ctx.correlation, type_of)
    elif door == "cloudevents" and b'"specversion"' in body:        # the CloudEvent as sent (not yet mapped)
        items = cloudevent_items(body, STRUCTURED, {}, type_of)
    else:                                  # a canonical event object (events, or a mapped item that failed)
        return validate_in_chunks(body, "application/json")
    return _chunks_of(items)


def _chunks_of(items: Iterable) -> Iterator[ValidatedEvents]:
    yield from validate_items_in_chunks(items)


# -- delivery telemetry ---------------------------------------------------------------------------------------------
_STATS = {"revwatch_source_received": "received", "revwatch_source_accepted": "accepted",
          "revwatch_source_duplicates": "duplicates", "revwatch_source_conflicts": "conflicts",
          "revwatch_source_rejected": "rejected", "revwatch_source_signature_failures": "signature_failures",
          "revwatch_source_unknown_types": "unknown_types", "revwatch_source_out_of_order": "out_of_order"}


def source_stats(ctx: AppContext) -> list[dict]:
    """Delivery telemetry per source since this process started, read from the very counters /metrics exposes
    (one truth): received, accepted, duplicates, conflicts, rejected (and by reason), signature failures, unknown
    types, lateness (count, mean, share later than 5 min / 1 h), plus each configured source's preset."""
    out: dict[str, dict] = {}

    def row(source: str) -> dict:
        return out.setdefault(source, {"source": source, "preset": None, **dict.fromkeys(_STATS.values(), 0),
                                       "rejected_by_reason": {}, "lateness": {"count": 0, "mean_seconds": None,
                                                                              "over_5m": 0, "over_1h": 0}})
    for name in (ctx.config.sources or {}):
        row(name)["preset"] = ctx.config.sources[name].preset
    for family in ctx.metrics.registry.collect():
        what = _STATS.get(family.name)
        for s in family.samples:
            src = s.labels.get("source")
            if src is None:
                continue
            if what and s.name.endswith("_total"):
                r = row(src)
                r[what] += int(s.value)
                if what == "rejected":
                    r["rejected_by_reason"][s.labels["reason"]] = int(s.value)
                elif what == "out_of_order":          # arrivals only; `occurred` is a subset of them
                    if s.labels["order"] == "occurred":
                        r[what] -= int(s.value)
                        r["out_of_order_occurred"] = r.get("out_of_order_occurred", 0) + int(s.value)
            elif family.name == "revwatch_source_lateness_seconds":
                late = row(src)["lateness"]
                if s.name.endswith("_count"):
                    late["count"] = int(s.value)
                elif s.name.endswith("_sum"):
                    late["sum"] = s.value
                elif s.name.endswith("_bucket") and s.labels.get("le") in ("300.0", "3600.0"):
                    late["le300" if s.labels["le"] == "300.0" else "le3600"] = s.value
    for r in out.values():
        late = r["lateness"]
        n, total = late["count"], late.pop("sum", 0.0)
        late["mean_seconds"] = round(total / n, 3) if n else None
        late["over_5m"] = int(n - late.pop("le300", n))
        late["over_1h"] = int(n - late.pop("le3600", n))
    return sorted(out.values(), key=lambda r: r["source"])


@read_router.get("/api/v1/sources", dependencies=[Depends(require("read"))])
def list_sources(request: Request) -> dict:
    """Delivery telemetry per source (this process, since start; the same counters as /metrics)."""
    return {"sources": source_stats(ctx_of(request))}

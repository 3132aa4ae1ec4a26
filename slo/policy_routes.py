"""HTTP routes of SLO policy (docs/slo-policy.md): budget adjustments `GET /api/v1/adjustments` (read),
`POST /api/v1/adjustments` and `DELETE /api/v1/adjustments/{name}` (admin: an adjustment changes what every SLO
reports); annotations `POST /api/v1/annotations` (ingest: deploy pipelines write them) and `GET /api/v1/annotations`
(read)."""
from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool

from revwatch.api import ApiError, ctx_of, instant_param, require, validated_body
from revwatch.config import AdjustmentConfig
from revwatch.units import utcnow
from slo.adjustments import AdjustmentError
from slo.annotations import AnnotationError, AnnotationRequest, marks

router = APIRouter()


def _author(request: Request) -> str | None:
    """Who created something: the id of the key that did."""
    key_id = getattr(request.state, "key_id", None)
    return f"key {key_id}" if key_id else None


def _slo_names(request: Request) -> set[str]:
    engine = ctx_of(request).slo
    return {s.name for s in engine.specs + engine.prometheus_specs}


def _adjustment_doc(adj, lo: dt.datetime, hi: dt.datetime) -> dict:
    occ = adj.occurrences(lo, hi)
    return {**adj.as_dict(), "occurrences": [[a.isoformat(), b.isoformat()] for a, b in occ[:200]],
            "more_occurrences": max(len(occ) - 200, 0)}


@router.get("/api/v1/adjustments", dependencies=[Depends(require("read"))])
def list_adjustments(request: Request, start: str | None = Query(None, alias="from"), end: str | None = Query(None,
                                                                                                           alias="to")):
    """Every budget adjustment (config, imported, created here) with its occurrences in [from, to) (default: the
    last and the next 30 days)."""
    now = utcnow()
    lo = instant_param(start, "from") or now - dt.timedelta(days=30)
    hi = instant_param(end, "to") or now + dt.timedelta(days=30)
    if hi <= lo:
        raise ApiError(400, "to must be after from", "to")
    book = ctx_of(request).slo.adjustments
    return {"from": lo.isoformat(), "to": hi.isoformat(), "items": [_adjustment_doc(a, lo, hi) for a in book.all()]}


@router.post("/api/v1/adjustments", dependencies=[Depends(require("admin"))], status_code=201)
async def create_adjustment(request: Request):
    """A budget adjustment `{name, start, duration, rrule?, time_zone?, slos?, effect: exclude|good}`; it reaches
    back at most 30 days."""
    cfg = await validated_body(request, AdjustmentConfig, "an adjustment object")
    ctx = ctx_of(request)
    try:
        adj = await run_in_threadpool(ctx.slo.adjustments.add, cfg, _author(request), utcnow(), _slo_names(request))
    except AdjustmentError as e:
        raise ApiError(409 if "exists" in str(e) else 400, str(e), e.field) from e
    now = utcnow()
    return _adjustment_doc(adj, now - dt.timedelta(days=30), now + dt.timedelta(days=30))


@router.delete("/api/v1/adjustments/{name}", dependencies=[Depends(require("admin"))])
def delete_adjustment(name: str, request: Request):
    """Remove an adjustment created through the API (config ones live in the config)."""
    if not ctx_of(request).slo.adjustments.delete(name):
        raise ApiError(404, f"no adjustment named {name!r} created through the API", "name")
    return {"deleted": name}


@router.post("/api/v1/annotations", dependencies=[Depends(require("ingest"))], status_code=201)
async def create_annotation(request: Request):
    """An annotation `{time, text, slos?, tags?}` (a deploy, an Odoo upgrade, an incident) on the SLO charts."""
    req = await validated_body(request, AnnotationRequest, "an annotation object")
    try:
        a = await run_in_threadpool(ctx_of(request).slo.annotations.add, req, _author(request), _slo_names(request))
    except AnnotationError as e:
        raise ApiError(400, str(e), e.field) from e
    return a.as_dict()


@router.get("/api/v1/annotations", dependencies=[Depends(require("read"))])
def list_annotations(request: Request, start: str | None = Query(None, alias="from"),
                     end: str | None = Query(None, alias="to"), slo: str | None = Query(None),
                     tag: list[str] = Query([]), limit: int = Query(500, ge=1, le=5000)):
    """Annotations in [from, to] (default: the last 7 days), of one SLO (its own and the global ones), having every
    `tag`; budget adjustments' occurrences are included as annotations tagged `adjustment`. Newest first."""
    now = utcnow()
    lo = instant_param(start, "from") or now - dt.timedelta(days=7)
    hi = instant_param(end, "to") or now
    if hi < lo:
        raise ApiError(400, "to must not be before from", "to")
    engine = ctx_of(request).slo
    if slo is not None and engine.spec(slo) is None:
        raise ApiError(400, f"no SLO named {slo!r}", "slo")
    items = marks(engine.annotations, engine.adjustments.all(), lo, hi, slo, tag, limit)
    return {"from": lo.isoformat(), "to": hi.isoformat(), "items": [a.as_dict() for a in items]}

"""HTTP routes of the journey lookup: `GET /api/v1/journeys/{correlation_id}` and `GET /api/v1/journeys`."""
from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Depends, Query, Request

from revwatch.journeys import NotFound
from revwatch.api import ApiError, ctx_of, instant_param, require
from revwatch.units import utcnow

router = APIRouter()


@router.get("/api/v1/journeys", dependencies=[Depends(require("read"))])
def search_journeys(request: Request, attr: str | None = Query(None, description="KEY:VALUE, e.g. invoice_ref:INV/1"),
                    customer: str | None = None, journey: str | None = None, since: str | None = None,
                    until: str | None = None, stuck: str | None = None,
                    limit: int = Query(100, ge=1, le=1000)):
    """Find correlation IDs by attribute, customer, journey and time range, or list stuck instances."""
    svc = ctx_of(request).journeys
    lo, hi = instant_param(since, "since"), instant_param(until, "until")      # every parameter is checked,
    if journey is not None and journey not in svc.journeys:                     # whichever branch answers
        raise ApiError(400, f"unknown journey {journey!r}", "journey")
    pair = None
    if attr is not None:
        key, sep, value = attr.partition(":")
        if not sep or not key or not value:
            raise ApiError(400, "attr must be KEY:VALUE, e.g. invoice_ref:INV/2026/00042", "attr")
        pair = (key, value)
    if stuck is not None:
        if stuck not in svc.journeys:
            raise ApiError(400, f"unknown journey {stuck!r} (configured: {', '.join(svc.journeys) or 'none'})",
                           "stuck")
        return {"stuck": stuck, "items": [s.as_dict() for s in svc.stuck(stuck, limit=limit)]}
    if not any((pair, customer, journey, lo, hi)):      # no filter: what was seen in the last day, newest first
        lo = utcnow() - dt.timedelta(days=1)
    items = svc.search(pair, customer, journey, lo, hi, limit)
    return {"items": items}


@router.get("/api/v1/journeys/{correlation_id:path}", dependencies=[Depends(require("read"))])
def get_journey(correlation_id: str, request: Request):
    """Every span and event of a correlation ID, ordered, with journeys, milestones, lags, errors, links."""
    if not correlation_id or len(correlation_id) > 256:
        raise ApiError(400, "correlation_id must be 1-256 characters", "correlation_id")
    try:
        return ctx_of(request).journeys.lookup(correlation_id)
    except NotFound:
        raise ApiError(404, f"nothing is recorded for correlation ID {correlation_id!r}", "correlation_id") from None

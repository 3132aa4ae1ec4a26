"""HTTP routes of the journey read model: `GET /api/v1/journeys/{correlation_id}`, `GET /api/v1/journeys` and
`GET /api/v1/funnels/{journey}`."""
from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from typing import Annotated

from revwatch.journeys import NotFound
from revwatch.journeys.funnel import funnel
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
    journey, stuck, customer = journey or None, stuck or None, customer or None    # an empty filter is no filter
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
async def get_journey(correlation_id: str, request: Request):
    """Every span and event of a correlation ID, ordered, with journeys, milestones, lags, errors, links."""
    if not correlation_id or len(correlation_id) > 256:
        raise ApiError(400, "correlation_id must be 1-256 characters", "correlation_id")
    svc = ctx_of(request).journeys
    try:
        if svc.tier is not None and svc.tier.cheap(correlation_id):
            # from memory, well under a millisecond: on the event loop — a worker thread waits for the
            # interpreter lock behind ingest several times per lookup (one reader's p99 72 ms there, 25 ms here,
            # bench/reads_under_ingest.py --mix lookups); never a store query on the loop (None: read the store)
            doc = svc.lookup_in_memory(correlation_id)
            if doc is not None:
                return doc
        return await run_in_threadpool(svc.lookup, correlation_id)
    except NotFound:
        raise ApiError(404, f"nothing is recorded for correlation ID {correlation_id!r}", "correlation_id") from None


MAX_FUNNEL_RANGE = dt.timedelta(days=93)


def funnel_filters(attr: list[str], source: str | None) -> dict[str, str]:
    """KEY:VALUE filters on start-event attributes (and `source`), checked; 400 naming `attr` when malformed."""
    out: dict[str, str] = {}
    for a in attr:
        key, sep, value = a.partition(":")
        if not sep or not key or not value:
            raise ApiError(400, "attr must be KEY:VALUE, e.g. gateway:stripe", "attr")
        out[key] = value
    if source:
        out["source"] = source
    return out


@router.get("/api/v1/funnels/{journey}", dependencies=[Depends(require("read"))])
def get_funnel(journey: str, request: Request, since: str | None = None, until: str | None = None,
               attr: Annotated[list[str], Query(description="KEY:VALUE filter on the start event")] = [],  # noqa: B006
               source: str | None = None,
               by: str | None = Query(None, description="split per value of this start-event attribute")):
    """Count and money reaching each step, conversion, drop-off, per-step latency, where money stops
    (`revwatch.journeys.funnel`), over instances started in [since, until) (default: the last 7 days)."""
    ctx = ctx_of(request)
    if journey not in ctx.config.journeys:
        raise ApiError(404, f"unknown journey {journey!r} (configured: {', '.join(ctx.config.journeys) or 'none'})",
                       "journey")
    hi = instant_param(until, "until") or utcnow()
    asked = instant_param(since, "since") or hi - dt.timedelta(days=7)
    # the range read is at most MAX_FUNNEL_RANGE, ending at `until` (its cost grows with the days read); an inverted
    # range is empty. The reply states the range actually read and whether it was cut, so nothing is silent.
    lo = min(max(asked, hi - MAX_FUNNEL_RANGE), hi)
    filters = funnel_filters(attr, source)
    found = funnel(ctx.store, ctx.config.journeys, journey, lo, hi, filters, by, cache=ctx.slo.instances)
    return {"journey": journey, "filters": filters, "by": by, "since": lo.isoformat(), "until": hi.isoformat(),
            "range_cut": asked < hi - MAX_FUNNEL_RANGE, "funnels": [f.as_dict() for f in found]}

"""HTTP routes of the SLO engine: `GET /api/v1/slos`, `GET /api/v1/slos/{name}`, `GET /api/v1/slos/{name}/attribution`
`GET /api/v1/slos/{name}/forecast` (read scope)."""
from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Depends, Query, Request

from revwatch.api import ApiError, ctx_of, instant_param, require
from revwatch.units import parse_duration
from slo.attribution import attribute
from slo.forecast import forecast

router = APIRouter()


@router.get("/api/v1/slos", dependencies=[Depends(require("read"))])
def list_slos(request: Request, at: str | None = Query(None, description="RFC 3339 instant (default now)")):
    """Every SLO (per group): SLI, burn rate per window, budget, alert state."""
    engine = ctx_of(request).slo
    when = instant_param(at, "at")
    results = engine.evaluate(when) if when else engine.latest_or_evaluate()
    return {"at": results[0].at.isoformat() if results else None, "slos": [r.as_dict() for r in results],
            "prometheus_slos": engine.prometheus_results(when)}


@router.get("/api/v1/slos/{name}", dependencies=[Depends(require("read"))])
def get_slo(name: str, request: Request, at: str | None = Query(None)):
    """One SLO (all its groups) as of `at`."""
    engine = ctx_of(request).slo
    spec = engine.spec(name)
    if spec is None:
        raise ApiError(404, f"no SLO named {name!r}", "name")
    if spec.is_prometheus:
        return {"name": name, "results": engine.prometheus_results(instant_param(at, "at"), names=[name])}
    when = instant_param(at, "at")
    latest = engine.snapshot.current
    if when is None and latest is not None and latest.from_evaluator:
        results = latest.results_for(name)        # the evaluator's latest pass: no store query (slo/snapshot.py)
    else:
        results = engine.evaluate(when, names=[name])
    return {"name": name, "results": [r.as_dict() for r in results]}


@router.get("/api/v1/slos/{name}/attribution", dependencies=[Depends(require("read"))])
def get_attribution(name: str, request: Request, group: str = Query("", description="group value (group_by SLOs)"),
                    window: str = Query("7d", description="how far back to look (e.g. 1h, 6h, 1d, 7d)")):
    """Why the SLO (one group of it) burns: failing step, over-represented attributes, stuck examples, money,
    budget — the same document alert notifications carry (`slo.attribution`)."""
    ctx = ctx_of(request)
    spec = ctx.slo.spec(name)
    if spec is None:
        raise ApiError(404, f"no SLO named {name!r}", "name")
    try:
        lookback = parse_duration(window)
    except ValueError as e:
        raise ApiError(400, str(e), "window") from e
    if not dt.timedelta(minutes=1) <= lookback <= dt.timedelta(days=93):
        raise ApiError(400, "window must be between 1m and 93d", "window")
    return attribute(ctx.slo, spec, group, lookback=lookback, link_base=ctx.config.alerts.public_url)


@router.get("/api/v1/slos/{name}/forecast", dependencies=[Depends(require("read"))])
def get_forecast(name: str, request: Request, group: str | None = Query(None, description="one group only"),
                 within: str = Query("4h", description="page when the budget is forecast to run out this soon")):
    """In-flight instances of a journey SLO that will breach at the current step pace, when, their money, the
    budget that leaves and whether that is a page (`slo.forecast`)."""
    ctx = ctx_of(request)
    spec = ctx.slo.spec(name)
    if spec is None:
        raise ApiError(404, f"no SLO named {name!r}", "name")
    if not spec.is_journey:
        raise ApiError(400, f"{name!r} is a {spec.kind} SLO: forecasts follow journey instances in flight", "name")
    try:
        page_within = parse_duration(within)
    except ValueError as e:
        raise ApiError(400, str(e), "within") from e
    if page_within <= dt.timedelta(0) or page_within > dt.timedelta(days=30):
        raise ApiError(400, "within must be between 1s and 30d", "within")
    docs = forecast(ctx.slo, spec, page_within=page_within)
    if group is not None:
        docs = [d for d in docs if (d["group"] or "") == group]
    return {"name": name, "forecasts": docs}

"""HTTP routes of the SLO engine: `GET /api/v1/slos`, `GET /api/v1/slos/{name}`, `GET /api/v1/slos/{name}/attribution`
`GET /api/v1/slos/{name}/forecast` (read scope)."""
from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response

from revwatch.api import ApiError, ctx_of, instant_param, require
from revwatch.units import parse_duration
from slo.attribution import attribute
from slo.forecast import forecast
from slo.snapshot import Evaluation

router = APIRouter()


def _from_memory(engine) -> Evaluation | None:
    """The evaluator's latest pass when reads may be answered from it (slo/snapshot.py), else None."""
    latest = engine.snapshot.current
    return latest if latest is not None and latest.from_evaluator else None


def _json(content) -> bytes:
    return bytes(JSONResponse(jsonable_encoder(content)).body)


@router.get("/api/v1/slos", dependencies=[Depends(require("read"))])
async def list_slos(request: Request, at: str | None = Query(None, description="RFC 3339 instant (default now)")):
    """Every SLO (per group): SLI, burn rate per window, budget, alert state. Without `at`, from the evaluator's
    latest pass in memory (on the event loop: no store query, no worker thread)."""
    engine = ctx_of(request).slo
    when = instant_param(at, "at")
    latest = _from_memory(engine) if when is None else None
    if latest is not None and not engine.prometheus_specs:
        body = latest.render("slos", lambda: _json(_slo_list(latest.results, [])))
        return Response(body, media_type="application/json")
    return await run_in_threadpool(_list_slos, engine, when)


def _slo_list(results, prometheus: list[dict]) -> dict:
    return {"at": results[0].at.isoformat() if results else None, "slos": [r.as_dict() for r in results],
            "prometheus_slos": prometheus}


def _list_slos(engine, when: dt.datetime | None) -> dict:
    results = engine.evaluate(when) if when else engine.latest_or_evaluate()
    return _slo_list(results, engine.prometheus_results(when))


@router.get("/api/v1/slos/{name}", dependencies=[Depends(require("read"))])
async def get_slo(name: str, request: Request, at: str | None = Query(None)):
    """One SLO (all its groups) as of `at`; without `at`, from the evaluator's latest pass in memory."""
    engine = ctx_of(request).slo
    spec = engine.spec(name)
    if spec is None:
        raise ApiError(404, f"no SLO named {name!r}", "name")
    when = instant_param(at, "at")
    if spec.is_prometheus:
        return await run_in_threadpool(
            lambda: {"name": name, "results": engine.prometheus_results(when, names=[name])})
    latest = _from_memory(engine) if when is None else None
    if latest is not None:
        body = latest.render(f"slo:{name}", lambda: _json(
            {"name": name, "results": [r.as_dict() for r in latest.results_for(name)]}))
        return Response(body, media_type="application/json")
    results = await run_in_threadpool(engine.evaluate, when, names=[name])
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

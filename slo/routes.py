"""HTTP routes of the SLO engine: `GET /api/v1/slos`, `GET /api/v1/slos/{name}`, `GET /api/v1/slos/{name}/attribution`
(read scope)."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request

from revwatch.api import ApiError, ctx_of, instant_param, require
from slo.attribution import attribute

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
def get_attribution(name: str, request: Request, group: str = Query("", description="group value (group_by SLOs)")):
    """Why the SLO (one group of it) burns: failing step, over-represented attributes, stuck examples, money,
    budget — the same document alert notifications carry (`slo.attribution`)."""
    ctx = ctx_of(request)
    spec = ctx.slo.spec(name)
    if spec is None:
        raise ApiError(404, f"no SLO named {name!r}", "name")
    return attribute(ctx.slo, spec, group, link_base=ctx.config.alerts.public_url)

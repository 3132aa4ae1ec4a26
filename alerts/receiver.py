"""`POST /api/v1/alerts/alertmanager`: Alertmanager's webhook (version 4) in, alerts enriched with business impact
out — stored in the `alerts` table, listed by `GET /api/v1/alerts`, and forwarded to the webhooks of matching
routes (`alerts: {routes: [{match: {severity: page}, webhook: URL}]}`).

Impact of an SLO alert: the SLO's error budget left and days until exhausted, and for journey SLOs the instances
stuck right now (started, past the threshold, not finished) with the money they carry, per currency.
"""
from __future__ import annotations

import logging

import httpx
import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from revwatch.api import ApiError, ctx_of, require
from revwatch.units import parse_instant, utcnow

log = logging.getLogger("revwatch.alerts")
router = APIRouter()


class AmAlert(BaseModel):
    model_config = ConfigDict(extra="allow")
    status: str = Field(pattern="^(firing|resolved)$")
    labels: dict[str, str]
    annotations: dict[str, str] = {}
    startsAt: str
    endsAt: str | None = None
    fingerprint: str = ""


class AmWebhook(BaseModel):
    model_config = ConfigDict(extra="allow")
    version: str = "4"
    status: str
    receiver: str = ""
    alerts: list[AmAlert]


def impact(ctx, labels: dict[str, str]) -> dict:
    """Business impact of an alert that names an SLO."""
    engine, journeys = ctx.slo, ctx.journeys
    spec = engine.spec(labels.get("slo", ""))
    if spec is None:
        return {}
    res = [r for r in (engine.latest or []) if r.spec.name == spec.name] or engine.evaluate(names=[spec.name])
    out: dict = {"slo": spec.name, "objective": spec.config.objective}
    if res:
        b = res[0].budget
        out.update(budget_remaining_ratio=round(b["remaining_ratio"], 4),
                   days_until_exhausted=b["days_until_exhausted"].get("1h"))
    if spec.is_journey:
        stuck = journeys.stuck(spec.config.journey, limit=1000)
        out["stuck_instances"] = len(stuck)
        out["stuck_examples"] = [s["correlation_id"] for s in stuck[:5]]
        if stuck:
            money = journeys.reader.money(spec.config.journey, [s["correlation_id"] for s in stuck])
            out["amount_at_risk"] = {cur: f"{amt:.2f}" for cur, amt in money.items()}
    return out


def _routes(ctx, labels: dict[str, str]) -> list[str]:
    hooks = []
    for route in ctx.config.alerts.get("routes", []):
        match = route.get("match", {})
        if all(labels.get(k) == v for k, v in match.items()) and route.get("webhook"):
            hooks.append(route["webhook"])
    return hooks


def _notify(url: str, payload: dict) -> str | None:
    try:
        r = httpx.post(url, json=payload, timeout=10)
        return None if r.status_code < 400 else f"HTTP {r.status_code}"
    except httpx.HTTPError as e:
        return type(e).__name__


def receive(ctx, body: dict) -> dict:
    """Validate, enrich, store and route one webhook delivery."""
    try:
        hook = AmWebhook.model_validate(body)
    except ValidationError as e:
        first = e.errors()[0]
        raise ApiError(400, first["msg"], ".".join(str(x) for x in first["loc"]))
    rows, delivered, failed = [], 0, []
    now = utcnow()
    for i, a in enumerate(hook.alerts):
        try:
            starts = parse_instant(a.startsAt)
        except ValueError as e:
            raise ApiError(400, str(e), f"alerts.{i}.startsAt")
        try:   # Alertmanager's zero time (0001-01-01…) means "not resolved"
            ends = parse_instant(a.endsAt) if a.endsAt and not a.endsAt.startswith("0001-") else None
        except ValueError as e:
            raise ApiError(400, str(e), f"alerts.{i}.endsAt")
        enriched = impact(ctx, a.labels) if a.status == "firing" else {}
        annotations = {**a.annotations, **{f"impact_{k}": str(v) for k, v in enriched.items()}}
        rows.append((now, a.fingerprint, a.labels.get("alertname", ""), a.status, a.labels.get("severity", ""),
                     a.labels.get("slo", ""), a.labels, annotations, starts, ends))
        for url in _routes(ctx, a.labels):
            err = _notify(url, {"status": a.status, "labels": a.labels, "annotations": a.annotations,
                                "impact": enriched, "startsAt": a.startsAt})
            if err:
                failed.append({"alert": i, "webhook": url.split("?")[0], "error": err})
            else:
                delivered += 1
    ctx.store.insert("alerts", rows, ["ReceivedAt", "Fingerprint", "AlertName", "Status", "Severity", "Slo", "Labels",
                                      "Annotations", "StartsAt", "EndsAt"])
    return {"received": len(rows), "notified": delivered, "notify_failures": failed}


@router.post("/api/v1/alerts/alertmanager", dependencies=[Depends(require("ingest"))])
async def alertmanager(request: Request):
    """Alertmanager webhook receiver (webhook_configs url)."""
    try:   # orjson refuses nesting deeper than 1024 (stdlib json would hit RecursionError → 500)
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError as e:
        raise ApiError(400, f"body is not valid JSON: {str(e)[:200]}", "body")
    if not isinstance(body, dict):
        raise ApiError(400, "body must be an Alertmanager webhook object", "body")
    return await run_in_threadpool(receive, ctx_of(request), body)


@router.get("/api/v1/alerts", dependencies=[Depends(require("read"))])
def list_alerts(request: Request, slo: str | None = None, limit: int = Query(100, ge=1, le=1000)):
    """The alert log, newest first, with business impact."""
    store = ctx_of(request).store
    where, params = "1", {"limit": limit}
    if slo:
        where, params["slo"] = "Slo = {slo:String}", slo
    rows = store.query(f"SELECT ReceivedAt, AlertName, Status, Severity, Slo, Labels, Annotations, StartsAt "
                       f"FROM {store.table('alerts')} WHERE {where} ORDER BY ReceivedAt DESC LIMIT {{limit:UInt32}}",
                       params).dicts()
    return {"items": [{"received_at": r["ReceivedAt"].isoformat() + "Z", "alert": r["AlertName"], "status": r["Status"],
                       "severity": r["Severity"], "slo": r["Slo"], "labels": r["Labels"],
                       "annotations": r["Annotations"], "starts_at": r["StartsAt"].isoformat() + "Z"} for r in rows]}

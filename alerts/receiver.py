"""HTTP side of alerting: Alertmanager's webhook in, the alert log, notifications and silences.

`POST /api/v1/alerts/alertmanager` (ingest scope) validates Alertmanager's webhook (version 4), writes the alerts
to the durable inbox and answers — no enrichment, no delivery on the request path (`alerts.service` does both in
the background). Alerts for SLOs whose alerts the evaluator sends itself (alerts/direct.py) are counted in
`superseded` and not routed. When the inbox write fails the answer is 503 with Retry-After, so Alertmanager
retries and the page is not lost.

Silences (`/api/v1/silences`) need the admin scope to create or expire: a silence hides pages, and ingest keys
sit in exporters and scripts, where a leaked key must not be able to mute on-call. Listing needs read.
"""
from __future__ import annotations

import datetime as dt
import re

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from alerts.routing import Alert
from revwatch.api import (ApiError, ctx_of, first_validation_error as _first_error, json_object as _json_object,
                          require, validated_body)
from revwatch.units import parse_duration, parse_instant

router = APIRouter()
MAX_SILENCE = dt.timedelta(days=90)


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


def parse_webhook(body: dict) -> list[Alert]:
    """Alertmanager's webhook → alerts; a bad field is a 400 naming it."""
    try:
        hook = AmWebhook.model_validate(body)
    except ValidationError as e:
        raise _first_error(e) from e
    out = []
    for i, a in enumerate(hook.alerts):
        try:
            starts = parse_instant(a.startsAt)
        except ValueError as e:
            raise ApiError(400, str(e), f"alerts.{i}.startsAt") from e
        ends = None
        if a.endsAt and not a.endsAt.startswith("0001-"):      # Alertmanager's zero time: "not resolved"
            try:                            # a firing alert's endsAt is its expected end: checked, not kept
                parsed = parse_instant(a.endsAt).timestamp()
            except ValueError as e:
                raise ApiError(400, str(e), f"alerts.{i}.endsAt") from e
            ends = parsed if a.status == "resolved" else None
        out.append(Alert(a.fingerprint, a.status, a.labels, a.annotations, starts.timestamp(), ends, "alertmanager"))
    return out


@router.post("/api/v1/alerts/alertmanager", dependencies=[Depends(require("ingest"))])
async def alertmanager(request: Request):
    """Alertmanager webhook receiver (webhook_configs url): stored, then answered."""
    alerts = parse_webhook(await _json_object(request, "an Alertmanager webhook object"))
    n = await run_in_threadpool(ctx_of(request).alerts.submit, alerts)
    return {"received": n, "superseded": len(alerts) - n}


@router.get("/api/v1/alerts", dependencies=[Depends(require("read"))])
def list_alerts(request: Request, slo: str | None = None, limit: int = Query(100, ge=1, le=1000)):
    """The alert log (alerts as notified), newest first, with their business impact as JSON."""
    store = ctx_of(request).store
    where, params = "1", dict[str, object](limit=limit)
    if slo:
        where, params["slo"] = "Slo = {slo:String}", slo
    rows = store.query(f"SELECT ReceivedAt, AlertName, Status, Severity, Slo, Labels, Annotations, StartsAt "
                       f"FROM {store.table('alerts')} WHERE {where} ORDER BY ReceivedAt DESC LIMIT {{limit:UInt32}}",
                       params).dicts()
    items = []
    for r in rows:
        ann = dict(r["Annotations"])
        impact = orjson.loads(ann.pop("impact")) if "impact" in ann else None
        items.append({"notified_at": r["ReceivedAt"].isoformat() + "Z", "alert": r["AlertName"],
                      "status": r["Status"], "severity": r["Severity"], "slo": r["Slo"], "labels": r["Labels"],
                      "annotations": ann, "impact": impact, "starts_at": r["StartsAt"].isoformat() + "Z"})
    return {"items": items}


@router.get("/api/v1/notifications", dependencies=[Depends(require("read"))])
def list_notifications(request: Request, limit: int = Query(100, ge=1, le=1000)):
    """Recent notification deliveries (latest state of each), and what is pending per notifier."""
    ctx = ctx_of(request)
    store = ctx.store
    rows = store.query(f"""
        SELECT Id, Notifier, GroupId, CreatedAt, Status, Attempts, NextAttemptAt, LastError
        FROM (SELECT * FROM {store.table('notifications')} ORDER BY Version DESC LIMIT 1 BY Id)
        ORDER BY CreatedAt DESC, Id LIMIT {{limit:UInt32}}""", {"limit": limit}).dicts()
    pending = {name: len(q) for name, q in ctx.alerts.outbox.pending().items()}
    return {"pending": pending, "dispatcher_error": ctx.alerts.last_error, "items": [
        {"id": r["Id"], "notifier": r["Notifier"], "group": r["GroupId"],
         "created_at": r["CreatedAt"].isoformat() + "Z",
         "status": r["Status"], "attempts": r["Attempts"], "next_attempt_at": r["NextAttemptAt"].isoformat() + "Z",
         "last_error": r["LastError"]} for r in rows]}


# -- silences -------------------------------------------------------------------------------------------------
class Matcher(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    value: str
    isRegex: bool = False
    isEqual: bool = True


class SilenceRequest(BaseModel):
    """A silence must expire: exactly one of `endsAt` and `duration` (at most 90 days)."""
    model_config = ConfigDict(extra="forbid")
    matchers: list[Matcher] = Field(min_length=1)
    startsAt: str | None = None
    endsAt: str | None = None
    duration: str | None = Field(None, pattern=r"^[1-9][0-9]{0,3}(m|h|d)$", description="e.g. 2h, 3d (≤ 90d)")
    createdBy: str = ""
    comment: str = ""


def _silence_doc(s, now: float) -> dict:
    state = "active" if s.active(now) else "pending" if s.starts_at > now else "expired"
    iso = lambda t: dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat().replace("+00:00", "Z")   # noqa: E731
    return {"id": s.id, "matchers": [{"name": m["name"], "value": m["value"], "isRegex": m["is_regex"],
                                      "isEqual": m["is_equal"]} for m in s.matchers],
            "startsAt": iso(s.starts_at), "endsAt": iso(s.ends_at), "createdBy": s.created_by,
            "comment": s.comment, "status": {"state": state}}


@router.post("/api/v1/silences", dependencies=[Depends(require("admin"))])
async def create_silence(request: Request):
    """Mute alerts whose labels match every matcher, from startsAt (default now) until endsAt or for duration."""
    req = await validated_body(request, SilenceRequest, "a silence object")
    svc = ctx_of(request).alerts
    now = svc.clock()
    try:
        starts = parse_instant(req.startsAt).timestamp() if req.startsAt else now
    except ValueError as e:
        raise ApiError(400, str(e), "startsAt") from e
    ends_at, duration = req.endsAt or None, req.duration or None      # "" is as good as absent
    if (ends_at is None) == (duration is None):
        raise ApiError(400, "give exactly one of endsAt and duration (a silence must expire)", "endsAt")
    try:
        ends = parse_instant(ends_at).timestamp() if ends_at else \
            starts + parse_duration(duration or "").total_seconds()     # exactly one is given (checked above)
    except ValueError as e:
        raise ApiError(400, str(e), "endsAt" if req.endsAt else "duration") from e
    if ends <= max(starts, now):
        raise ApiError(400, "endsAt must be after startsAt and in the future", "endsAt")
    if ends - starts > MAX_SILENCE.total_seconds():
        raise ApiError(400, "a silence may last at most 90 days", "endsAt")
    for i, m in enumerate(req.matchers):
        if m.isRegex:
            try:
                re.compile(m.value)
            except re.error as e:
                raise ApiError(400, f"not a regular expression ({e})", f"matchers.{i}.value") from e
    matchers = [{"name": m.name, "value": m.value, "is_regex": m.isRegex, "is_equal": m.isEqual}
                for m in req.matchers]
    s = await run_in_threadpool(svc.add_silence, matchers, starts, ends, req.createdBy, req.comment)
    return _silence_doc(s, now)


@router.get("/api/v1/silences", dependencies=[Depends(require("read"))])
def list_silences(request: Request):
    svc = ctx_of(request).alerts
    now = svc.clock()
    return {"items": [_silence_doc(s, now) for s in sorted(svc.silences.values(), key=lambda s: -s.ends_at)]}


@router.delete("/api/v1/silences/{silence_id}", dependencies=[Depends(require("admin"))])
def expire_silence(silence_id: str, request: Request):
    svc = ctx_of(request).alerts
    s = svc.expire_silence(silence_id)
    if s is None:
        raise ApiError(404, f"no silence with id {silence_id!r}", "silence_id")
    return _silence_doc(s, svc.clock())

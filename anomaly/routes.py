"""HTTP routes of the anomaly findings (docs/http.md): list with filters and cursor paging, one finding, acknowledge,
scan now; and `revwatch_anomalies_open{kind}` at scrape time."""
from __future__ import annotations

import json
from typing import Literal, get_args

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from prometheus_client.core import GaugeMetricFamily

from anomaly.detectors import RISK_STATUS_KEY, scan
from anomaly.findings import CURSOR_PATTERN, STATUSES, CursorError, acknowledge, list_findings, open_counts
from revwatch.api import ApiError, ctx_of, instant_param, require

router = APIRouter()
KindParam = Literal["billing_variance", "reconciliation_risk", "billing_aggregate", "metric",
                    "schema_drift"]        # schema_drift: collector.drift, recorded by revwatch.server
StatusParam = Literal["open", "acknowledged", "resolved", "scored"]      # anomaly.findings.STATUSES
OrderParam = Literal["score", "money"]                                    # anomaly.findings.ORDERS
KINDS = get_args(KindParam)


@router.get("/api/v1/anomalies", dependencies=[Depends(require("read"))])
def get_anomalies(request: Request, kind: KindParam | None = None, status: StatusParam | None = None,
                  cause: str | None = None,
                  customer: str | None = None, since: str | None = None,
                  min_score: float | None = Query(None, ge=0, le=1),
                  cursor: str | None = Query(None, pattern=CURSOR_PATTERN,
                                             description="`next_cursor` of the previous page"),
                  limit: int = Query(100, ge=1, le=1000), order: OrderParam = "score"):
    """Findings, highest score first (`order=money`: highest money at risk first), one page at a time: follow
    `next_cursor` until it is null. `status=scored` lists payments scored below the risk threshold."""
    if kind is not None and kind not in KINDS:
        raise ApiError(400, f"kind must be one of {', '.join(KINDS)}", "kind")
    if status is not None and status not in STATUSES:
        raise ApiError(400, f"status must be one of {', '.join(STATUSES)}", "status")
    store = ctx_of(request).store
    try:
        items, nxt = list_findings(store, kind, status, cause, customer, instant_param(since, "since"), min_score,
                                   limit, cursor, order=order)
    except CursorError as e:
        raise ApiError(400, str(e), "cursor") from e
    body: dict = {"items": items, "next_cursor": nxt}
    if kind == "reconciliation_risk":
        raw = store.get_state(RISK_STATUS_KEY)
        body["model"] = json.loads(raw) if raw else {"model": None, "refused": "no scan has run yet"}
    return body


@router.get("/api/v1/anomalies/{finding_id}", dependencies=[Depends(require("read"))])
def get_anomaly(finding_id: str, request: Request):
    """One finding by id, in its current state."""
    items, _ = list_findings(ctx_of(request).store, limit=1, finding_id=finding_id)
    if not items:
        raise ApiError(404, f"no finding with id {finding_id!r}", "finding_id")
    return items[0]


@router.post("/api/v1/anomalies/scan", dependencies=[Depends(require("admin"))])
async def post_scan(request: Request, full: bool = False, retrain: bool = False):
    """Run the detectors now (`full=true`: re-judge all history; `retrain=true`: retrain the risk model)."""
    ctx = ctx_of(request)
    return await run_in_threadpool(scan, ctx.store, full, retrain, ctx.config.anomaly.risk_threshold)


@router.post("/api/v1/anomalies/{finding_id}/ack", dependencies=[Depends(require("admin"))])
async def post_ack(finding_id: str, request: Request):
    """Acknowledge a finding: it stays acknowledged through re-scans until it resolves."""
    note = ""
    if (request.headers.get("content-type") or "").startswith("application/json"):
        try:
            body = await request.json()
        except ValueError:
            raise ApiError(400, "body must be JSON", "body") from None
        note = str(body.get("note", "")) if isinstance(body, dict) else ""
    doc = await run_in_threadpool(acknowledge, ctx_of(request).store, finding_id, note)
    if doc is None:
        raise ApiError(404, f"no finding with id {finding_id!r}", "finding_id")
    return doc


class AnomalyCollector:
    """`revwatch_anomalies_open{kind}` (open or acknowledged, not yet resolved) at scrape time."""

    def __init__(self, store):
        self.store = store

    def describe(self):
        return []

    def collect(self):
        g = GaugeMetricFamily("revwatch_anomalies_open", "Open anomaly findings", labels=["kind"])
        try:
            counts = open_counts(self.store)
        except Exception:              # a scrape must not fail because the store is briefly unavailable
            counts = {}
        for k in KINDS:
            g.add_metric([k], counts.get(k, 0))
        yield g

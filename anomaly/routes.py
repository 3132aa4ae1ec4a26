"""HTTP routes: `GET /api/v1/anomalies` (read) and `POST /api/v1/anomalies/scan` (admin)."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from prometheus_client.core import GaugeMetricFamily

from anomaly.detectors import list_findings, open_counts, scan
from revwatch.api import ApiError, ctx_of, instant_param, require

router = APIRouter()
KINDS = ("billing_variance", "reconciliation_risk")


@router.get("/api/v1/anomalies", dependencies=[Depends(require("read"))])
def get_anomalies(request: Request, kind: str | None = None, since: str | None = None,
                  limit: int = Query(100, ge=1, le=1000)):
    """Findings, highest score first; each names its correlation ID / reference, a score and its reasons."""
    if kind is not None and kind not in KINDS:
        raise ApiError(400, f"kind must be one of {', '.join(KINDS)}", "kind")
    return {"items": list_findings(ctx_of(request).store, kind, instant_param(since, "since"), limit)}


@router.post("/api/v1/anomalies/scan", dependencies=[Depends(require("admin"))])
async def post_scan(request: Request):
    """Run the detectors now; returns the scan's summary."""
    return await run_in_threadpool(scan, ctx_of(request).store)


class AnomalyCollector:
    """`revwatch_anomalies_open{kind}` at scrape time."""

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

"""What each page shows, assembled from the services (no HTML here): plain dicts/lists the templates render.

Reads are batched per page: the overview is the cached SLO evaluation plus one rollup query for every sparkline,
one stuck read per journey with one money read for all of them, and the open alerts / anomalies lists.
"""
from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal
from typing import TYPE_CHECKING

import orjson

from anomaly.detectors import list_findings
from revwatch.journeys import money as jmoney
from revwatch.store import StoreError
from revwatch.units import as_utc, utcnow
from slo.breakdown import breakdown
from slo.engine import SloResult
from slo.forecast import forecast
from slo.history import Series, bucket_series, burn_down
from slo.state import SEVERITY

log = logging.getLogger("revwatch.webui")

if TYPE_CHECKING:
    from revwatch.api import AppContext

STUCK_LIMIT = 1000


def _page_threshold(r: SloResult) -> float | None:
    pages = [a["threshold"] for a in r.alerts if a["severity"] == "page"]
    return min(pages) if pages else None


def sparklines(ctx: AppContext) -> Series:
    """Hourly good/total of every SLO and group over the last 24 h (one rollup read)."""
    at = utcnow()
    return bucket_series(ctx.store, ctx.slo.specs, at - dt.timedelta(hours=24), at, dt.timedelta(hours=1))


def slo_rows(results: list[SloResult], series: Series) -> list[dict]:
    """One row per SLO and group: status, SLI vs objective, budget, exhaustion forecast, 24 h hourly burn rate."""
    rows = []
    for r in results:
        d = r.as_dict()
        b = d["budget"]
        buckets = series.of(r.spec.name, r.group)
        rows.append({"name": r.spec.name, "group": r.group, "journey": r.spec.config.journey, "status": r.state,
                     "description": r.spec.config.description, "objective": r.spec.config.objective,
                     "sli": d["sli"], "window": r.spec.config.window,
                     "remaining": None if r.state == "no_data" else b["remaining_ratio"],
                     "days_left": b["days_until_exhausted"].get("1h"), "burn_1h": d["windows"]["1h"]["burn_rate"],
                     "events": d["windows"]["slo"]["total"], "bad": d["windows"]["slo"]["bad"],
                     "spark": [bk.burn_rate(r.spec.config.objective) if bk.total else None for bk in buckets],
                     "page_threshold": _page_threshold(r),
                     "money": b.get("money"),        # budgeting amount: the budget in money (decimal strings)
                     "firing": [a for a in d["alerts"] if a["firing"]]})
    rows.sort(key=lambda x: (SEVERITY[x["status"]], x["name"], x["group"]))
    return rows


def stuck_items(ctx: AppContext, journey: str, now: dt.datetime | None = None) -> list[dict]:
    """Stuck instances of a journey (oldest first) with amount, currency, customer, age and aging bucket: the
    journey read model's stuck list (`revwatch.journeys`), as the API returns it."""
    return [s.as_dict() for s in ctx.journeys.stuck(journey, now=now, limit=STUCK_LIMIT)]


def money_at_risk(items: list[dict]) -> dict[str, Decimal]:
    """Sum of the listed items' amounts per currency, exactly ('?' when an item has no currency)."""
    return jmoney.total((it.get("currency"), jmoney.parse_amount(it.get("amount"))) for it in items)


def journey_summaries(ctx: AppContext, now: dt.datetime | None = None) -> list[dict]:
    """Per configured journey: stuck count, aging bucket counts and money at risk per currency over all overdue
    instances (`JourneyReader.summaries`, one round trip)."""
    return [s.as_dict() for s in ctx.journeys.reader.summaries(now)]


def open_alerts(ctx: AppContext, limit: int = 20) -> list[dict]:
    """Alertmanager alerts whose latest delivery is `firing`, newest first, with their business impact."""
    rows = ctx.store.query(
        f"SELECT AlertName, argMax(Status, ReceivedAt) AS st, argMax(Severity, ReceivedAt), argMax(Slo, ReceivedAt), "
        f"argMax(Annotations, ReceivedAt), min(StartsAt), max(ReceivedAt) AS last "
        f"FROM {ctx.store.table('alerts')} GROUP BY AlertName, Fingerprint HAVING st = 'firing' "
        f"ORDER BY last DESC LIMIT {{limit:UInt32}}", {"limit": limit}).rows
    return [{"alert": a, "severity": sev, "slo": slo, "annotations": ann, "starts_at": _iso(starts),
             "impact": impact_summary(ann)}
            for a, _, sev, slo, ann, starts, _ in rows]


def alert_log(ctx: AppContext, slo: str | None = None, limit: int = 200) -> list[dict]:
    """Every delivery of the alert log, newest first, with business impact annotations split out."""
    where, params = "1", dict[str, object](limit=limit)
    if slo:
        where, params["slo"] = "Slo = {slo:String}", slo
    rows = ctx.store.query(
        f"SELECT ReceivedAt, AlertName, Status, Severity, Slo, Labels, Annotations, StartsAt, EndsAt "
        f"FROM {ctx.store.table('alerts')} WHERE {where} ORDER BY ReceivedAt DESC LIMIT {{limit:UInt32}}",
        params).dicts()
    return [{"received_at": _iso(r["ReceivedAt"]), "alert": r["AlertName"], "status": r["Status"],
             "severity": r["Severity"], "slo": r["Slo"], "labels": r["Labels"], "starts_at": _iso(r["StartsAt"]),
             "ends_at": _iso(r["EndsAt"]),
             "summary": r["Annotations"].get("summary") or r["Annotations"].get("description", ""),
             "impact": impact_summary(r["Annotations"])} for r in rows]


def anomalies(ctx: AppContext, status: str | None = None, kind: str | None = None, limit: int = 200) -> list[dict]:
    """Latest anomaly findings, most money at risk first (amount × probability for a payment, the difference for
    an invoice), optionally only one status (open / acknowledged / scored)."""
    return list_findings(ctx.store, kind=kind, limit=limit, status=status, order="money")

def impact_summary(annotations: dict) -> dict[str, str]:
    """The business impact of a logged alert as flat, printable fields: alerts/ stores it as one JSON annotation
    (`impact`: class, reason, recommended team, attribution); older rows carry `impact_*` text annotations."""
    if "impact" not in annotations:
        return {k[7:]: v for k, v in annotations.items() if k.startswith("impact_")}
    try:
        doc = orjson.loads(annotations["impact"])
    except orjson.JSONDecodeError:
        return {}
    att = doc.get("attribution") or {}
    out = {"class": doc.get("class"), "reason": doc.get("reason"), "recommended_team": doc.get("recommended_team"),
           "stuck_instances": (att.get("instances") or {}).get("stuck"),
           "amount_at_risk": str(att.get("money_at_risk") or {}) if att.get("money_at_risk") else None,
           "budget_remaining_ratio": (att.get("budget") or {}).get("remaining_ratio"),
           "failing_step": att.get("failing_step"),
           "stuck_examples": str([e.get("correlation_id") for e in att.get("oldest_stuck") or []])}
    return {k: str(v) for k, v in out.items() if v not in (None, "", "[]")}



RANGES = {"24h": dt.timedelta(hours=24), "7d": dt.timedelta(days=7), "window": None}


def slo_detail(ctx: AppContext, name: str, group: str | None, span: str = "window") -> dict | None:
    """Everything of the SLO detail page over `span` (the SLO window, or its last 7 d / 24 h); None when no SLO
    has that name. About 144 points per chart whatever the range; bad events over at most the last 7 days."""
    spec = ctx.slo.spec(name)
    if spec is None:
        return None
    results = [r for r in (ctx.slo.latest or []) if r.spec.name == name] or ctx.slo.evaluate(names=[name])
    at = results[0].at if results else utcnow()
    lo, hi = spec.window_bounds(at)
    shown = RANGES.get(span)
    if shown:
        lo = max(lo, hi - shown)
    minutes = max(1, int((hi - lo).total_seconds() // 60 // 144))
    series = bucket_series(ctx.store, [spec], lo, hi, dt.timedelta(minutes=minutes))
    thresholds = sorted({(a["severity"], a["threshold"]) for r in results for a in r.alerts}, key=lambda x: -x[1])
    top = max((t for _, t in thresholds), default=1.0)
    cap = 3 * top
    groups = []
    for r in results:
        if group is not None and r.group != group:
            continue
        buckets = series.of(name, r.group)
        obj = spec.config.objective
        burn = [b.burn_rate(obj) if b.total else None for b in buckets]
        down = burn_down(buckets, obj)
        groups.append({"group": r.group, "status": r.state, "result": r.as_dict(),
                       "times": [b.start for b in buckets], "sli": [b.sli for b in buckets], "burn": burn,
                       "burn_max": min(cap, max([v for v in burn if v is not None] + [1.2 * top])),
                       "burn_clipped": any(v is not None and v > cap for v in burn),
                       "burn_down": down, "burn_down_min": max(-1.0, min(down + [0.0]))})
    bd_lo = max(lo, hi - dt.timedelta(days=7))
    return {"spec": spec, "at": at, "window": (lo, hi), "bucket_minutes": minutes, "groups": groups,
            "all_groups": [r.group for r in results], "thresholds": thresholds, "span": span,
            "ranges": list(RANGES), "selected_group": group,
            "breakdown": breakdown(ctx.store, ctx.config, spec, bd_lo, hi), "breakdown_from": bd_lo,
            "forecast": _forecast(ctx, spec, group)}


def _forecast(ctx: AppContext, spec, group: str | None) -> list[dict] | None:
    """The in-flight forecast of a journey SLO (slo.forecast; the API's /forecast), None for other SLOs or when
    the store cannot answer (the rest of the page still shows)."""
    if not spec.is_journey:
        return None
    try:
        docs = forecast(ctx.slo, spec)
    except StoreError as e:
        log.warning("forecast unavailable: %s", e)
        return None
    return [d for d in docs if group is None or (d["group"] or "") == group]


def _iso(t: dt.datetime | None) -> str | None:
    return as_utc(t).isoformat().replace("+00:00", "Z") if t else None

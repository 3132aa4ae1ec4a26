"""What each page shows, assembled from the services (no HTML here): plain dicts/lists the templates render.

Reads are batched per page: the overview is the cached SLO evaluation plus one rollup query for every sparkline,
one stuck read per journey with one money read for all of them, and the open alerts / anomalies lists.
"""
from __future__ import annotations

import datetime as dt
from collections import defaultdict
import logging
from decimal import Decimal
from typing import TYPE_CHECKING

import orjson

from alerts.history import history as alert_history
from anomaly.detectors import list_findings
from revwatch.journeys import money as jmoney
from revwatch.store import StoreError
from revwatch.units import as_utc, utcnow
from slo.annotations import marks
from slo.attribution import attribute
from slo.engine import SloResult
from slo.forecast import forecast
from slo.history import Bucket, Series, bucket_series, slice_series
from slo.state import SEVERITY, budget_of

log = logging.getLogger("revwatch.webui")

if TYPE_CHECKING:
    from revwatch.api import AppContext

STUCK_LIMIT = 1000
MINUTE_ = dt.timedelta(minutes=1)


def _page_threshold(r: SloResult) -> float | None:
    pages = [a["threshold"] for a in r.alerts if a["severity"] == "page"]
    return min(pages) if pages else None


def sparklines(ctx: AppContext) -> Series:
    """Hourly good/total of every SLO and group over the last 24 h (one rollup read)."""
    at = utcnow()
    return bucket_series(ctx.store, ctx.slo.specs, at - dt.timedelta(hours=24), at, dt.timedelta(hours=1),
                         ctx.slo.adjustments)


def slo_matches(r: SloResult, q: str) -> bool:
    """The overview's SLO search: `q` (case-insensitive) in the name, description or group, or in the ownership
    keys (slo.ownership.Ownership.matches: owner, team, service, tier)."""
    if not q:
        return True
    needle = q.lower()
    c = r.spec.config
    return (any(needle in (x or "").lower() for x in (c.name, c.description, r.group, c.journey))
            or (r.spec.ownership.matches(q)))


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
                     "page_threshold": _page_threshold(r), "ownership": r.spec.ownership.as_dict(),
                     "money": b.get("money"),        # budgeting amount: the budget in money (decimal strings)
                     "firing": [a for a in d["alerts"] if a["firing"]]})
    rows.sort(key=lambda x: (SEVERITY[x["status"]], x["name"], x["group"]))
    return rows


def alert_groups(rows: list[dict], delivered: list[dict] | None) -> list[dict]:
    """Open alerts grouped per SLO, as Grafana / Pyrra show them: one entry per SLO (and group) with its state (the
    one decision), its firing burn-rate conditions and the Alertmanager alerts that name it inside; Alertmanager
    alerts that name no configured SLO come last, one entry each. Most urgent first (the rows' order)."""
    by_slo: dict[str, list[dict]] = defaultdict(list)
    loose: list[dict] = []
    names = {r["name"] for r in rows}
    for a in delivered or []:
        (by_slo[a["slo"]] if a.get("slo") in names else loose).append(a)
    out, placed = [], set()
    for r in rows:
        am = by_slo.get(r["name"], []) if r["name"] not in placed else []
        if r["firing"] or am:
            placed.add(r["name"])
            out.append({"slo": r["name"], "group": r["group"], "status": r["status"], "conditions": r["firing"],
                        "delivered": am})
    out += [{"slo": None, "group": "", "status": a.get("severity") or "", "conditions": [], "delivered": [a]}
            for a in loose]
    return out


def stuck_items(ctx: AppContext, journey: str, now: dt.datetime | None = None) -> list[dict]:
    """Stuck instances of a journey (oldest first) with amount, currency, customer, age and aging bucket: the
    journey read model's stuck list (`revwatch.journeys`), as the API returns it."""
    return [s.as_dict() for s in ctx.journeys.stuck(journey, now=now, limit=STUCK_LIMIT)]


def money_at_risk(items: list[dict]) -> dict[str, Decimal]:
    """Sum of the listed items' amounts per currency, exactly ('?' when an item has no currency)."""
    return jmoney.total((it.get("currency"), jmoney.parse_amount(it.get("amount"))) for it in items)


def journey_summaries(ctx: AppContext, now: dt.datetime | None = None) -> list[dict]:
    """Per configured journey: stuck count, aging bucket counts and money at risk per currency over all overdue
    instances (`JourneyReader.summaries`, one round trip), read now."""
    return [s.as_dict() for s in ctx.journeys.reader.summaries(now)]


def latest_journey_summaries(ctx: AppContext) -> tuple[list[dict], dt.datetime] | None:
    """The stuck summaries of the evaluator's latest pass and when they were computed, or None before its first
    pass. One truth: these are the numbers `/metrics` exposes (`revwatch_journey_stuck`, `…_stuck_amount`) and alert
    enrichment uses, so the overview never shows a stuck count or amount a moment apart from them (a read of its
    own, taken up to `evaluator.summary_interval` later, could differ)."""
    ev = ctx.slo.snapshot.current
    if ev is None or not ev.from_evaluator or ev.summaries_at is None:
        return None
    return [s.as_dict() for s in ev.stuck], ev.summaries_at


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



RANGES = {"1h": dt.timedelta(hours=1), "6h": dt.timedelta(hours=6), "24h": dt.timedelta(hours=24),
          "7d": dt.timedelta(days=7), "30d": dt.timedelta(days=30), "window": None}
MAX_CUSTOM_RANGE = dt.timedelta(days=400)
HISTORY_PERIODS = 6                          # budget history: this many SLO windows back, for monthly reporting


def _zoomed_sli_axis(values: list[float | None], objective: float) -> tuple[float, float]:
    """The SLI axis around the objective (as Grafana SLO / Pyrra draw it): from a little below the lowest point or
    five error budgets below the objective, whichever is lower, to 100 %, never below 0."""
    finite = [v for v in values if v is not None]
    lo = min(finite + [objective - 5 * (1 - objective)])
    return max(0.0, lo - (1 - objective) * 0.5), 1.0


TIME_SLICES = ("timeslices", "ratio_timeslices")


def _budget_line(buckets: list[Bucket], result: SloResult, window_start: dt.datetime) -> list[float | None]:
    """The SLO window's error budget left after each point, ending exactly at the header's number: going back from
    the evaluation, remaining(t) = remaining(now) + bad after t / allowed, with remaining and allowed from the one
    budget function (slo.state.budget_of) and `bad` in the budget's unit — events, currency units (the buckets count
    them in 1/scale, as the window does), or for time-slice budgets the bad slices (`slo.history.slice_series`).
    Points before the window started are gaps (that budget did not exist yet)."""
    b = budget_of(result)
    allowed = b.allowed * result.windows["slo"].scale
    final = b.remaining_ratio
    if allowed <= 0:
        return [None if x.start < window_start else final for x in buckets]
    out: list[float | None] = []
    after = sum(x.bad for x in buckets)
    for x in buckets:
        after -= x.bad
        out.append(None if x.start < window_start else final + after / allowed)
    return out


def slo_detail(ctx: AppContext, name: str, group: str | None, span: str = "window",
               frm: dt.datetime | None = None, to: dt.datetime | None = None) -> dict | None:
    """Everything of the SLO detail page over a range: a preset (`RANGES`: the last 1 h … 30 d, or the SLO window)
    or a custom `frm`/`to`; None when no SLO has that name.

    What each part computes (the page says it too): the header, windows table and alert conditions are the SLO
    evaluated as of the range's end (`to`, else the evaluator's latest); the SLI and burn-rate charts are each
    point's own ratio (about 144 points), with the previous period of the same length for comparison; the budget
    chart is the SLO window's budget as it stood after each point, ending at the header's number (never a budget
    of the range's own traffic, never clipped). The budget history (`budget_history`, its own page: it evaluates
    the SLO HISTORY_PERIODS times) is linked. Bad events are attributed over the range, at most its last 7 days."""
    spec = ctx.slo.spec(name)
    if spec is None:
        return None
    if to is not None:
        results = ctx.slo.evaluate(at=to, names=[name])
    else:
        results = [r for r in (ctx.slo.latest or []) if r.spec.name == name] or ctx.slo.evaluate(names=[name])
    at = results[0].at if results else (to or utcnow())
    wlo, whi = spec.window_bounds(at)
    hi = min(whi, at + MINUTE_) if to is None else at
    if frm is not None:
        lo, span = frm, "custom"
    elif span == "window":
        lo = wlo
    else:
        lo = hi - (RANGES.get(span) or dt.timedelta(hours=24))
    minutes = max(1, int((hi - lo).total_seconds() // 60 // 144))
    step = dt.timedelta(minutes=minutes)
    series = bucket_series(ctx.store, [spec], lo, hi, step, ctx.slo.adjustments)
    previous = bucket_series(ctx.store, [spec], lo - (hi - lo), lo, step, ctx.slo.adjustments)
    # a time-slice budget counts slices: its budget chart sums bad slices, the SLI and burn charts stay per minute
    slices = slice_series(ctx.store, spec, lo, hi, step, ctx.slo.adjustments, clip_from=wlo) \
        if spec.config.budgeting in TIME_SLICES else None
    thresholds = sorted({(a["severity"], a["threshold"]) for r in results for a in r.alerts}, key=lambda x: -x[1])
    top = max((t for _, t in thresholds), default=1.0)
    cap = 3 * top
    obj = spec.config.objective
    groups = []
    for r in results:
        if group is not None and r.group != group:
            continue
        buckets = series.of(name, r.group)
        before = previous.of(name, r.group)
        burn = [b.burn_rate(obj) if b.total else None for b in buckets]
        sli = [b.sli for b in buckets]
        prev_sli = [b.sli for b in before][:len(sli)]
        down = _budget_line(slices.of(name, r.group) if slices is not None else buckets, r, wlo)
        finite_down = [v for v in down if v is not None]
        totals = {k: (sum(b.good for b in bs), sum(b.total for b in bs)) for k, bs in (("range", buckets),
                                                                                      ("previous", before))}
        groups.append({"group": r.group, "status": r.state, "result": r.as_dict(),
                       "times": [b.start for b in buckets], "sli": sli, "previous_sli": prev_sli,
                       "sli_axis": _zoomed_sli_axis(sli + prev_sli, obj), "burn": burn,
                       "burn_max": min(cap, max([v for v in burn if v is not None] + [1.2 * top])),
                       "burn_clipped": any(v is not None and v > cap for v in burn),
                       "burn_down": down, "burn_down_min": min(finite_down + [0.0]),
                       "burn_down_max": max(finite_down + [1.0]),
                       "range_totals": {k: {"good": g, "total": t, "bad": t - g, "sli": g / t if t else None}
                                        for k, (g, t) in totals.items()}})
    bd_lo = max(lo, hi - dt.timedelta(days=7))
    notes = marks(ctx.slo.annotations, ctx.slo.adjustments.all(), lo, hi, spec.name, limit=50)   # slo/annotations.py
    return {"spec": spec, "at": at, "window": (lo, hi), "slo_window": (wlo, whi), "bucket_minutes": minutes,
            "marks": notes,
            "groups": groups, "all_groups": [r.group for r in results], "thresholds": thresholds, "span": span,
            "ranges": list(RANGES), "selected_group": group, "custom": (frm, to),
            "previous": (lo - (hi - lo), lo), "ownership": spec.ownership.as_dict(),
            "attribution": _attribution(ctx, spec, group, results, bd_lo, hi), "breakdown_from": bd_lo,
            "forecast": _forecast(ctx, spec, group), "alert_history": _alert_history(ctx, spec.name, group, lo, hi)}


def _alert_history(ctx: AppContext, name: str, group: str | None, lo: dt.datetime,
                   hi: dt.datetime) -> list[dict] | None:
    """The SLO's alert incidents (revwatch's own evaluations, alerts/history.py) firing during the range, newest
    first; None (shown as unavailable) when the store fails."""
    try:
        items = alert_history(ctx.store, name, lo, limit=200, until=hi)
    except StoreError as e:
        log.warning("SLO alert history unavailable: %s", e)
        return None
    return [i for i in items if group is None or (i["group"] or "") == group]


def budget_history(ctx: AppContext, spec, at: dt.datetime, group: str | None,
                   periods: int = HISTORY_PERIODS) -> list[dict]:
    """The SLO over its last `periods` windows, newest first — the monthly (or weekly) report: each window's SLI,
    bad and total, budget left at its end and state, from the same evaluation as everything else (as of each
    window's end; the current window as of now). Calendar windows are the calendar periods; rolling windows are
    back-to-back windows ending at `at`. A store failure leaves the history out (the rest of the page shows)."""
    out: list[dict] = []
    end = at
    try:
        for _ in range(periods):
            lo, _hi = spec.window_bounds(end)
            for r in ctx.slo.evaluate(at=end, names=[spec.name]):
                if group is None or r.group == group:
                    w = r.windows["slo"]
                    out.append({"from": lo, "to": end, "group": r.group, "sli": w.sli, "good": w.good,
                                "total": w.total, "bad": w.total - w.good, "state": r.state,
                                "remaining_ratio": None if r.state == "no_data" else r.budget["remaining_ratio"],
                                "met": None if w.sli is None else w.sli >= spec.config.objective})
            end = lo - dt.timedelta(seconds=1)          # the window before this one, up to its last minute
    except StoreError as e:
        log.warning("budget history unavailable: %s", e)
    return out


def _attribution(ctx: AppContext, spec, group: str | None, results: list[SloResult], lo: dt.datetime,
                 hi: dt.datetime) -> dict | None:
    """Where the range's bad instances (or spans) come from, over at most its last 7 days: the burn attribution of
    the selected group, else the SLO's first (slo/attribution.py — what the API and the alerts' impact show: the
    step they are stuck at or late in, the over-represented attribute values, money). None (shown as unavailable)
    when the store fails."""
    g = group if group is not None else (results[0].group if results else "")
    try:
        return attribute(ctx.slo, spec, g, now=hi, lookback=hi - lo)
    except StoreError as e:
        log.warning("attribution unavailable: %s", e)
        return None


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

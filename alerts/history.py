"""Per-SLO alert history from revwatch's own evaluations: when each of an SLO's alert conditions fired and resolved,
its severity and group, and the tiers (windows, burn rates, threshold, held or not) as evaluated when it fired.

Written by the direct path (alerts/direct.py) for every transition it submits, after the inbox has it; read by
`GET /api/v1/slos/{name}/alerts` and the SLO page. This is what revwatch decided — independent of what
Alertmanager or a notifier did with it (the alert log, `GET /api/v1/alerts`, is what was notified: silenced or
grouped alerts are missing there, they are here).

Limits, named: a history row that cannot be written (store down right after the inbox write) is logged and lost —
the alert itself is durable in the inbox and routes normally; the history covers only SLOs revwatch evaluates
(Prometheus-sourced SLOs alert through Alertmanager and are in the alert log).
"""
from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from alerts.routing import Alert
from revwatch.api import ApiError, ctx_of, instant_param, require
from revwatch.store import Store, StoreError

log = logging.getLogger("revwatch.alerts.history")
COLUMNS = ["At", "Slo", "SloGroup", "Severity", "AlertName", "Fingerprint", "Status", "StartsAt", "EndsAt", "Tiers"]
DEFAULT_SINCE = dt.timedelta(days=30)
router = APIRouter()


def _ts(t: float | None) -> dt.datetime | None:
    return None if t is None else dt.datetime.fromtimestamp(t, dt.timezone.utc)


def _iso(t: dt.datetime | None) -> str | None:
    """A stored DateTime64 (naive UTC) as RFC 3339 with Z."""
    if t is None:
        return None
    t = t.replace(tzinfo=dt.timezone.utc) if t.tzinfo is None else t.astimezone(dt.timezone.utc)
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def record(store: Store, alerts: Sequence[Alert], tiers: Mapping[str, Sequence[dict]], at: float) -> None:
    """Store one history row per transition of SLO alerts (alerts without an `slo` label are not SLO alerts).
    A store failure is logged, never raised: the transitions are already durable in the inbox."""
    rows = [(_ts(at), a.labels["slo"], a.labels.get("group", ""), a.labels.get("severity", ""),
             a.labels.get("alertname", ""), a.fingerprint, a.status, _ts(a.starts_at), _ts(a.ends_at),
             orjson.dumps(list(tiers.get(a.fingerprint, ()))).decode() if a.status == "firing" else "[]")
            for a in alerts if a.labels.get("slo")]
    if not rows:
        return
    try:
        store.insert("slo_alert_history", rows, COLUMNS)
    except StoreError as e:
        log.warning("cannot write the SLO alert history (%d transition(s)): %s", len(rows), e)


def history(store: Store, slo: str, since: dt.datetime, limit: int = 100,
            until: dt.datetime | None = None) -> list[dict[str, Any]]:
    """The SLO's alert incidents that were firing at or after `since` (and fired by `until`), newest first: one per
    (fingerprint, fired at), resolved_at None while it still fires."""
    rows = store.query(f"""
        SELECT Fingerprint, StartsAt, any(AlertName) AS name, any(Severity) AS severity, any(SloGroup) AS grp,
               anyIf(EndsAt, Status = 'resolved') AS ends, anyIf(Tiers, Status = 'firing') AS tiers
        FROM {store.table('slo_alert_history')}
        WHERE Slo = {{slo:String}} AND StartsAt <= {{until:DateTime64(3, 'UTC')}}
        GROUP BY Fingerprint, StartsAt
        HAVING ends IS NULL OR ends >= {{since:DateTime64(3, 'UTC')}}
        ORDER BY StartsAt DESC, Fingerprint LIMIT {{limit:UInt32}}""",
                       {"slo": slo, "since": since, "limit": limit,
                        "until": until or dt.datetime(2199, 12, 31, tzinfo=dt.timezone.utc)}).rows
    out = []
    for fp, starts, name, severity, grp, ends, tiers in rows:
        parsed = orjson.loads(tiers) if tiers else []
        out.append({"alert": name, "severity": severity, "group": grp or None, "fingerprint": fp,
                    "status": "firing" if ends is None else "resolved",
                    "fired_at": _iso(starts), "resolved_at": _iso(ends),
                    "duration_seconds": None if ends is None else round((ends - starts).total_seconds(), 3),
                    "held": any(t.get("held") for t in parsed), "tiers": parsed})
    return out


class TierAtFiring(BaseModel):
    """One tier of the alert's severity as evaluated in the pass that made the alert fire."""
    long: str | None = None
    short: str | None = None
    threshold: float | None = None
    long_burn_rate: float | None = None
    short_burn_rate: float | None = None
    firing: bool | None = None
    held: bool | None = None              # the tier had no data and held its last state (slo/coverage.py)
    held_from: str | None = None


class Incident(BaseModel):
    alert: str
    severity: str
    group: str | None
    fingerprint: str
    status: str                           # firing | resolved
    fired_at: str | None
    resolved_at: str | None
    duration_seconds: float | None
    held: bool
    tiers: list[TierAtFiring]


class SloAlertHistory(BaseModel):
    name: str
    since: str | None
    items: list[Incident]


@router.get("/api/v1/slos/{name}/alerts", dependencies=[Depends(require("read"))], response_model=SloAlertHistory)
def get_slo_alerts(name: str, request: Request,
                   since: str | None = Query(None, description="RFC 3339 instant: incidents firing at or after it "
                                                               "(default 30 days ago)"),
                   limit: int = Query(100, ge=1, le=1000)):
    """The SLO's alert history from revwatch's own evaluations (alerts.history), newest first."""
    ctx = ctx_of(request)
    if ctx.slo.spec(name) is None:
        raise ApiError(404, f"no SLO named {name!r}", "name")
    when = instant_param(since, "since") or dt.datetime.now(dt.timezone.utc) - DEFAULT_SINCE
    return {"name": name, "since": _iso(when), "items": history(ctx.store, name, when, limit)}

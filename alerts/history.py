"""Per-SLO alert history from revwatch's own evaluations: when each of an SLO's alert conditions fired and resolved,
its severity and group, and the tiers (windows, burn rates, threshold, held or not) as evaluated when it fired.

Written by the direct path (alerts/direct.py) for every transition it submits, after the inbox has it; read by
`GET /api/v1/slos/{name}/alerts` and the SLO page. This is what revwatch decided — independent of what
Alertmanager or a notifier did with it (the alert log, `GET /api/v1/alerts`, is what was notified: silenced or
grouped alerts are missing there, they are here).

Writes never block or undo a page, and never lose a row silently (`HistoryLog`):
* a row the store refuses stays pending in memory and is written again at the next evaluator pass (`flush`, one
  attempt per pass: a store that is down costs each pass one failed insert, never a wait); at most
  `MAX_PENDING` rows wait, beyond that the oldest are dropped — counted and logged, and restored by the backfill;
  `revwatch_slo_alert_history_pending`, `…_write_failures_total` and `…_dropped_total` show it all;
* backfill (`backfill`, once per process, at the direct path's first pass): the inbox (`alert_inbox`) holds every
  transition the direct path submitted, durably, before the history row is even attempted — so transitions of the
  last `alerts.direct.history_retention` (at most the inbox's 90 days) that have no history row (pending rows lost
  in a crash or restart, rows refused before it) are written from it, with the tiers unknown (`[]`). A condition
  firing across a restart keeps its one incident: the direct path adopts it with its original start
  (alerts/direct.py), so there is no second "firing" row and no gap;
* retention: each row carries `ExpiresAt` = its instant + `alerts.direct.history_retention` (default 400 days: a
  year of monthly reports and a margin), and the table's TTL (schema migration 30) drops rows past it. A retried
  or backfilled row written twice is harmless: readers group by (Fingerprint, StartsAt, Status).

Limits, named: the history covers only SLOs revwatch evaluates (Prometheus-sourced SLOs alert through Alertmanager
and are in the alert log); backfilled firing rows have no tiers; an incident still firing after its retention
loses its firing row (its resolve shows it again).
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from pydantic import BaseModel

from alerts.routing import Alert
from revwatch.api import ApiError, ctx_of, instant_param, require
from revwatch.store import Store, StoreError

log = logging.getLogger("revwatch.alerts.history")
COLUMNS = ["At", "Slo", "SloGroup", "Severity", "AlertName", "Fingerprint", "Status", "StartsAt", "EndsAt", "Tiers",
           "ExpiresAt"]
DEFAULT_SINCE = dt.timedelta(days=30)
MAX_PENDING = 10_000                      # rows kept for a retry while the store refuses (about 5 MB at most)
INBOX_DAYS = 90                           # the inbox's TTL (revwatch/schema.py): the backfill cannot reach further
router = APIRouter()


def _ts(t: float | None) -> dt.datetime | None:
    return None if t is None else dt.datetime.fromtimestamp(t, dt.timezone.utc)


def _utc_ms(t: dt.datetime) -> dt.datetime:
    """A datetime as stored in a DateTime64(3, 'UTC') column: aware, whole milliseconds (for comparisons)."""
    t = t.replace(tzinfo=dt.timezone.utc) if t.tzinfo is None else t.astimezone(dt.timezone.utc)
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


def _iso(t: dt.datetime | None) -> str | None:
    """A stored DateTime64 (naive UTC) as RFC 3339 with Z."""
    if t is None:
        return None
    t = t.replace(tzinfo=dt.timezone.utc) if t.tzinfo is None else t.astimezone(dt.timezone.utc)
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def rows_of(alerts: Sequence[Alert], tiers: Mapping[str, Sequence[dict]], at: float,
            retention: dt.timedelta) -> list[tuple]:
    """One history row per transition of SLO alerts (alerts without an `slo` label are not SLO alerts)."""
    when = _ts(at)
    assert when is not None
    return [(when, a.labels["slo"], a.labels.get("group", ""), a.labels.get("severity", ""),
             a.labels.get("alertname", ""), a.fingerprint, a.status, _ts(a.starts_at), _ts(a.ends_at),
             orjson.dumps(list(tiers.get(a.fingerprint, ()))).decode() if a.status == "firing" else "[]",
             when + retention)
            for a in alerts if a.labels.get("slo")]


class HistoryLog:
    """The writer of the SLO alert history: rows the store refuses stay pending and are retried at the next pass;
    `backfill` writes what the inbox has and the history lacks. Thread-safe; never raises on a store failure."""

    def __init__(self, store: Store, retention: dt.timedelta, clock: Callable[[], float] = time.time,
                 metrics=None, max_pending: int = MAX_PENDING):
        self.store, self.retention, self.clock, self.max_pending = store, retention, clock, max_pending
        self.pending: list[tuple] = []
        self.failures = 0
        self.dropped = 0
        self.backfilled = 0
        self._lock = threading.Lock()
        if metrics is not None:
            metrics.register(self)

    def record(self, alerts: Sequence[Alert], tiers: Mapping[str, Sequence[dict]], at: float) -> None:
        """Queue the rows of these transitions and try to write everything pending (one attempt)."""
        rows = rows_of(alerts, tiers, at, self.retention)
        with self._lock:
            self.pending += rows
            over = len(self.pending) - self.max_pending
            if over > 0:                    # bounded: the oldest go, counted; the backfill restores them later
                del self.pending[:over]
                self.dropped += over
                log.error("SLO alert history: %d pending row(s) dropped (more than %d waiting); the backfill "
                          "at the next start restores them from the inbox", over, self.max_pending)
        self.flush()

    def flush(self) -> int:
        """One attempt to write every pending row; returns how many were written (0 when the store refuses)."""
        with self._lock:
            rows = list(self.pending)
            if not rows:
                return 0
            try:
                self.store.insert("slo_alert_history", rows, COLUMNS)
            except Exception as e:          # StoreError, or anything else: the page goes on, the rows wait
                self.failures += 1
                log.warning("cannot write the SLO alert history (%d row(s) pending, retried next pass): %s",
                            len(rows), e, exc_info=not isinstance(e, StoreError))
                return 0
            del self.pending[:len(rows)]
            return len(rows)

    def backfill(self) -> int:
        """Write the direct path's transitions the inbox holds and the history lacks (within the retention, at most
        the inbox's 90 days); returns how many. Raises StoreError (the caller tries again next pass)."""
        horizon = _ts(self.clock() - min(self.retention, dt.timedelta(days=INBOX_DAYS)).total_seconds())
        table = self.store.table("slo_alert_history")
        missing = self.store.query(f"""
            SELECT ReceivedAt, Labels['slo'], Labels['group'], Labels['severity'], Labels['alertname'], Fingerprint,
                   Status, StartsAt, EndsAt
            FROM {self.store.table('alert_inbox')}
            WHERE Origin = 'evaluator' AND Labels['slo'] != '' AND ReceivedAt >= {{h:DateTime64(3, 'UTC')}}
              AND (Fingerprint, StartsAt, Status) NOT IN (
                  SELECT Fingerprint, StartsAt, Status FROM {table} WHERE At >= {{h:DateTime64(3, 'UTC')}})
            ORDER BY Seq LIMIT 1 BY Fingerprint, StartsAt, Status""", {"h": horizon}).rows
        with self._lock:                    # rows still pending here are not missing: they are being retried
            queued = {(r[5], _utc_ms(r[7]), r[6]) for r in self.pending}
        rows = []
        for at, slo, grp, sev, name, fp, status, starts, ends in missing:
            starts, at = _utc_ms(starts), _utc_ms(at)
            if (fp, starts, status) in queued:
                continue
            ends = None if ends is None else _utc_ms(ends)
            rows.append((at, slo, grp, sev, name, fp, status, starts, ends, "[]", at + self.retention))
        if rows:
            self.store.insert("slo_alert_history", rows, COLUMNS)
            self.backfilled += len(rows)
            log.info("SLO alert history: %d transition(s) backfilled from the inbox", len(rows))
        return len(rows)

    # -- prometheus_client collector --------------------------------------------------------------------------
    def describe(self):
        return []

    def collect(self):
        g = GaugeMetricFamily("revwatch_slo_alert_history_pending",
                              "SLO alert history rows waiting to be written (the store refused them; retried at "
                              "each evaluator pass)")
        g.add_metric([], len(self.pending))
        yield g
        c = CounterMetricFamily("revwatch_slo_alert_history_write_failures",
                                "Failed attempts to write SLO alert history rows (each retried)")
        c.add_metric([], self.failures)
        yield c
        d = CounterMetricFamily("revwatch_slo_alert_history_dropped",
                                "SLO alert history rows dropped from the pending queue (over its bound; the "
                                "backfill restores them from the inbox at the next start)")
        d.add_metric([], self.dropped)
        yield d


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

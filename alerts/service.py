"""The alert pipeline of one server: inbox → routing groups → notifications → outbox → notifiers.

* `submit` (the Alertmanager receiver, the evaluator's direct path `alerts.direct`, internal alert sources) writes
  alerts to `alert_inbox` and returns; the receiver answers only after that write, and answers 503 when it fails,
  so Alertmanager retries. Alertmanager alerts the direct path already sends (`superseded`) are counted, not routed.
* The dispatcher thread reads the inbox after its durable cursor, applies alerts to the routing groups
  (`alerts.routing`), flushes due groups into notifications enriched with business impact (`alerts.impact`),
  renders them per notifier and hands them to the outbox (`alerts.outbox`). Order of durable writes: outbox
  rows, then group state, then the cursor — a crash in between repeats work (same notification ids), never
  loses it.
* Internal alerts (anomaly findings over thresholds, probes going down / up) are generated here every
  `alerts.internal.interval` and enter through the same inbox and routes.
* Silences live in `silences` (versioned rows), cached in memory; expiring one writes a new version.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any, Callable, overload
from urllib.parse import quote

import orjson
from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily

from alerts.config import AlertsConfig, PagerDutyNotifier
from alerts.impact import assess
from alerts.notifiers import render
from alerts.outbox import Delivery, Outbox
from alerts.routing import Alert, Flush, Group, Router, Silence, fingerprint
from revwatch.metrics import Metrics
from revwatch.store import Store, StoreError

if TYPE_CHECKING:
    from probes.service import ProbeService
    from slo.engine import SloEngine

log = logging.getLogger("revwatch.alerts")
INBOX_COLUMNS = ["Seq", "ReceivedAt", "Origin", "Fingerprint", "Status", "Labels", "Annotations", "StartsAt",
                 "EndsAt"]
LOG_COLUMNS = ["ReceivedAt", "Fingerprint", "AlertName", "Status", "Severity", "Slo", "Labels", "Annotations",
               "StartsAt", "EndsAt"]
_CURSOR = "alerts.inbox_cursor"
_ANOMALY_CURSOR = "alerts.anomaly_cursor"


def _ts(t: float | None) -> dt.datetime | None:
    return None if t is None else dt.datetime.fromtimestamp(t, dt.timezone.utc)


def _iso(t: float | None) -> str | None:
    return None if t is None else \
        dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@overload
def _epoch(t: dt.datetime) -> float: ...
@overload
def _epoch(t: None) -> None: ...
def _epoch(t: dt.datetime | None) -> float | None:
    """Seconds since the epoch of a stored DateTime64 (naive values are UTC); NULL stays None."""
    return None if t is None else t.replace(tzinfo=dt.timezone.utc).timestamp() if t.tzinfo is None \
        else t.timestamp()


class AlertService:
    """Owns the inbox, the routing groups, silences, internal alerts and the outbox of one server."""

    def __init__(self, store: Store, cfg: AlertsConfig, metrics: Metrics, engine: SloEngine,
                 probes: ProbeService | None = None, clock=time.time):
        self.store, self.cfg, self.engine, self.probes, self.clock = store, cfg, engine, probes, clock
        self.router = Router(cfg)
        self.outbox = Outbox(store, cfg, metrics, clock)
        self.groups: dict[str, Group] = {}
        self.silences: dict[str, Silence] = {}
        self.cursor = 0
        self.last_error: str | None = None
        self._last_seq = 0
        self._submit_lock = threading.Lock()
        self._state_lock = threading.RLock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._probe_up: dict[str, bool] = {}
        self._journey_silent: dict[str, bool] = {}     # journeys with no_data_alert: alerting at last submit
        self._next_internal = 0.0
        # set by the composition root while the direct path is on: Alertmanager alerts it already sends
        self.superseded: Callable[[dict[str, str]], bool] | None = None
        self.superseded_total = Counter(
            "revwatch_alerts_superseded", "Alertmanager alerts not routed because the evaluator sends the same SLO "
            "alert directly (alerts/direct.py)", registry=metrics.registry)
        metrics.register(self)

    # -- prometheus_client collector: the dispatcher's own health -----------------------------------------------
    def describe(self):
        return []

    def collect(self):
        ok = GaugeMetricFamily("revwatch_alert_dispatcher_healthy",
                               "1 when the last alert dispatcher pass succeeded (0: store unavailable, retrying)")
        ok.add_metric([], 0.0 if self.last_error else 1.0)
        groups = GaugeMetricFamily("revwatch_alert_groups", "Alert groups being tracked by the router")
        groups.add_metric([], len(self.groups))      # no lock: a scrape must never wait for a flush
        yield ok
        yield groups

    # -- intake -------------------------------------------------------------------------------------------
    def submit(self, alerts: list[Alert]) -> int:
        """Durably record alerts in the inbox (raises StoreError when the store refuses); wakes the dispatcher.

        Sequence numbers are assigned and written under one lock, so the dispatcher's cursor never passes a
        row that is still being written."""
        if self.superseded is not None:    # the direct path sends these itself (alerts/direct.py): never twice
            kept = [a for a in alerts if a.origin != "alertmanager" or not self.superseded(a.labels)]
            if len(kept) < len(alerts):
                self.superseded_total.inc(len(alerts) - len(kept))
            alerts = kept
        if not alerts:
            return 0
        now = self.clock()
        with self._submit_lock:
            if not self._last_seq:
                self._last_seq = int(self.store.query(
                    f"SELECT max(Seq) FROM {self.store.table('alert_inbox')}").scalar() or 0)
            seq = max(time.time_ns(), self._last_seq + 1)
            rows = []
            for i, a in enumerate(alerts):
                rows.append((seq + i, _ts(now), a.origin, a.fingerprint or fingerprint(a.labels), a.status, a.labels,
                             a.annotations, _ts(a.starts_at), _ts(a.ends_at)))
            self.store.insert("alert_inbox", rows, INBOX_COLUMNS)
            self._last_seq = seq + len(alerts) - 1
        self._wake.set()
        return len(rows)

    def evaluator_firing(self) -> list[Alert]:
        """The direct path's alerts (origin `evaluator`, alerts/direct.py) firing now, with their original start:
        those whose latest transition in the inbox is "firing" — the inbox is written before anything else, so
        this holds even when the dispatcher has not processed the row yet or has not loaded its groups — plus the
        ones a persisted routing group holds firing and the inbox no longer has (past its TTL). Raises StoreError."""
        rows = self.store.query(
            f"SELECT Fingerprint, argMax(Status, Seq), argMax(Labels, Seq), argMax(Annotations, Seq), "
            f"argMax(StartsAt, Seq) FROM {self.store.table('alert_inbox')} WHERE Origin = 'evaluator' "
            f"GROUP BY Fingerprint").rows
        known = {r[0] for r in rows}
        out = [Alert(fp, "firing", dict(labels), dict(ann), _epoch(starts), None, "evaluator")
               for fp, status, labels, ann, starts in rows if status == "firing"]
        with self._state_lock:
            out += [a for g in self.groups.values() for fp, a in g.alerts.items()
                    if fp not in known and a.origin == "evaluator" and a.status == "firing" and a.ends_at is None]
        return out

    def settled(self) -> bool:
        """Nothing decided is on its way: every alert submitted so far is applied to the groups, no group's flush
        is due, no delivery is pending. What a test (or a shutdown) waits for instead of sleeping "long enough"."""
        with self._submit_lock:
            last = self._last_seq
        with self._state_lock:
            due = Router.due(self.groups, self.clock())
        return self.cursor >= last and not due and not any(self.outbox.pending().values())

    # -- lifecycle ------------------------------------------------------------------------------------------
    def load(self) -> None:
        """Restore groups, silences, the cursor and pending deliveries from the store."""
        with self._state_lock:
            self.cursor = int(self.store.get_state(_CURSOR) or 0)
            rows = self.store.query(f"SELECT GroupId, argMax(State, Version), argMax(Deleted, Version) "
                                    f"FROM {self.store.table('alert_groups')} GROUP BY GroupId").rows
            self.groups = {gid: Group.from_json(orjson.loads(state)) for gid, state, deleted in rows if not deleted}
            rows = self.store.query(f"SELECT Id, argMax(Matchers, Version), argMax(StartsAt, Version), "
                                    f"argMax(EndsAt, Version), argMax(CreatedBy, Version), argMax(Comment, Version) "
                                    f"FROM {self.store.table('silences')} GROUP BY Id").rows
            self.silences = {r[0]: Silence(r[0], orjson.loads(r[1]), _epoch(r[2]), _epoch(r[3]), r[4], r[5])
                             for r in rows}
        self.outbox.load()

    def start(self) -> None:
        try:
            self.load()
        except StoreError as e:             # the dispatcher retries loading until the store answers
            self.last_error = str(e)
        self.outbox.start()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="alert-dispatcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(10)
        self.outbox.stop()

    def _run(self) -> None:
        tick = self.cfg.delivery.tick.total_seconds()
        loaded = self.last_error is None
        while not self._stop.is_set():
            self._wake.clear()              # before the pass: a submit during it wakes the next wait at once
            try:
                if not loaded:
                    self.load()
                    loaded = True
                self.step()
                self.last_error = None
            except StoreError as e:
                self.last_error = str(e)
                log.warning("alert dispatcher: store unavailable (%s); retrying", e)
                self._stop.wait(1.0)
            except Exception:               # a bug must not stop paging for good
                log.exception("alert dispatcher step failed")
                self._stop.wait(1.0)
            with self._state_lock:
                wake = Router.next_wake(self.groups, self.clock() + tick)
            self._wake.wait(max(0.01, min(tick, wake - self.clock())))

    def step(self) -> None:
        """One dispatcher pass: internal alerts when due, the inbox, due flushes."""
        now = self.clock()
        if self.cfg.internal.enabled and now >= self._next_internal:
            self._next_internal = now + self.cfg.internal.interval.total_seconds()
            self.internal_alerts()
        self.process_inbox()
        self.flush_due()

    # -- inbox → groups ---------------------------------------------------------------------------------------
    def process_inbox(self, batch: int = 1000) -> int:
        rows = self.store.query(
            f"SELECT Seq, Origin, Fingerprint, Status, Labels, Annotations, StartsAt, EndsAt "
            f"FROM {self.store.table('alert_inbox')} WHERE Seq > {{c:UInt64}} ORDER BY Seq LIMIT {batch}",
            {"c": self.cursor}).rows
        if not rows:
            return 0
        now = self.clock()
        with self._state_lock:
            changed: set[str] = set()
            for _seq, origin, fp, status, labels, annotations, starts, ends in rows:
                a = Alert(fp, status, dict(labels), dict(annotations), _epoch(starts), _epoch(ends), origin)
                changed.update(self.router.ingest(self.groups, a, now))
            self._save_groups([self.groups[g] for g in changed if g in self.groups])
            self.store.put_state(_CURSOR, str(rows[-1][0]))
            self.cursor = rows[-1][0]
        return len(rows)

    def _save_groups(self, groups: list[Group], deleted: tuple[str, ...] = ()) -> None:
        v = time.time_ns()
        rows = [(g.id, orjson.dumps(g.to_json()).decode(), 0, v) for g in groups]
        rows += [(gid, "{}", 1, v) for gid in deleted]
        if rows:
            self.store.insert("alert_groups", rows, ["GroupId", "State", "Deleted", "Version"])

    # -- groups → notifications ---------------------------------------------------------------------------
    def flush_due(self) -> int:
        sent = 0
        with self._state_lock:
            now = self.clock()
            sources = [a for grp in self.groups.values() for a in grp.alerts.values() if not a.resolved(now)]
            for g in Router.due(self.groups, now):
                before = Group.from_json(g.to_json())
                f = self.router.flush(g, now, list(self.silences.values()), sources)
                if f is not None:
                    n = self.notification(f, now)
                    try:
                        self.outbox.enqueue(self.deliveries(n, f, now))
                    except StoreError:      # not stored, so not sent: undo the flush, it is decided again
                        self.groups[g.id] = before
                        raise
                    self._log(n, now)
                    sent += 1
                if g.alerts:
                    self._save_groups([g])
                else:
                    self._save_groups([], (g.id,))
                    del self.groups[g.id]
        return sent

    def notification(self, f: Flush, now: float) -> dict:
        """The notification document of a flush (see alerts.notifiers for how each notifier renders it)."""
        g, base = f.group, self.cfg.public_url.rstrip("/")
        impacts: dict[tuple, dict] = {}
        alerts = []
        for a in f.firing + f.resolved:
            doc: dict[str, Any] = {"fingerprint": a.fingerprint, "status": "firing" if a in f.firing else "resolved",
                   "labels": a.labels, "annotations": a.annotations, "starts_at": _iso(a.starts_at),
                   "ends_at": _iso(a.ends_at) if a.resolved(now) else None, "origin": a.origin, "links": {}}
            if a.labels.get("slo") and base:       # pages a person opens (the web UI signs them in)
                group = f"?group={quote(a.labels['group'])}" if a.labels.get("group") else ""
                doc["links"]["slo"] = f"{base}/ui/slos/{quote(a.labels['slo'], safe='')}{group}"
            if a.labels.get("journey") and base:
                doc["links"]["journeys"] = f"{base}/ui/stuck?journey={quote(a.labels['journey'])}"
            if doc["status"] == "firing":
                key = (a.labels.get("slo"), a.labels.get("group"), a.labels.get("severity"), a.labels.get("journey"),
                       a.labels.get("team"), a.labels.get("probe"))
                if key not in impacts:
                    impacts[key] = assess(self.engine, self.cfg, a.labels, _ts(now))
                doc["impact"] = impacts[key]
            alerts.append(doc)
        # the id is the same when a flush is replayed after a crash (outbox dedup), and new for every incident
        return {"id": f"{g.id}-{int(g.created * 1000)}-{g.flushes}", "route": g.route, "group_key": g.id,
                "group_labels": g.labels, "status": "firing" if f.firing else "resolved", "alerts": alerts,
                "public_url": base, "created_at": _iso(now)}

    def deliveries(self, n: dict, f: Flush, now: float) -> list[Delivery]:
        out = []
        for name in self.router.routes[f.group.route].notifiers:
            notifier = self.cfg.notifiers[name]
            try:
                bodies = render(notifier, n)
            except Exception:      # a rendering bug must cost one notifier's message, never the others'
                log.exception("cannot render notification %s for %s", n["id"], name)
                self.outbox.counter.labels(name, "render_error").inc()
                continue
            for i, body in enumerate(bodies):
                order = body["dedup_key"] if isinstance(notifier, PagerDutyNotifier) else f.group.id
                out.append(Delivery(f"{n['id']}:{name}:{i}", name, f"{name}:{order}", f.group.id, now, body))
        return out

    def _log(self, n: dict, now: float) -> None:
        """The alert log (`GET /api/v1/alerts`): every alert as notified, with its impact as JSON."""
        rows = []
        for a in n["alerts"]:
            ann = dict(a["annotations"])
            if a.get("impact"):
                ann["impact"] = orjson.dumps(a["impact"]).decode()
            rows.append((_ts(now), a["fingerprint"], a["labels"].get("alertname", ""), a["status"],
                         a["labels"].get("severity", ""), a["labels"].get("slo", ""), a["labels"], ann,
                         _ts(_epoch(dt.datetime.fromisoformat(a["starts_at"].replace("Z", "+00:00")))),
                         dt.datetime.fromisoformat(a["ends_at"].replace("Z", "+00:00")) if a["ends_at"] else None))
        try:
            self.store.insert("alerts", rows, LOG_COLUMNS)
        except StoreError as e:
            log.warning("cannot write the alert log: %s", e)

    # -- silences ---------------------------------------------------------------------------------------------
    def add_silence(self, matchers: list[dict], starts_at: float, ends_at: float, created_by: str,
                    comment: str) -> Silence:
        s = Silence(uuid.uuid4().hex, matchers, starts_at, ends_at, created_by, comment)
        self._save_silence(s)
        return s

    def expire_silence(self, sid: str) -> Silence | None:
        with self._state_lock:
            s = self.silences.get(sid)
        if s is None:
            return None
        now = self.clock()
        if s.ends_at > now:
            s = Silence(s.id, s.matchers, min(s.starts_at, now), now, s.created_by, s.comment)
            self._save_silence(s)
        return s

    def _save_silence(self, s: Silence) -> None:
        self.store.insert("silences", [(s.id, orjson.dumps(s.matchers).decode(), _ts(s.starts_at), _ts(s.ends_at),
                                        s.created_by, s.comment, time.time_ns())],
                          ["Id", "Matchers", "StartsAt", "EndsAt", "CreatedBy", "Comment", "Version"])
        with self._state_lock:
            self.silences[s.id] = s

    # -- internal alerts ----------------------------------------------------------------------------------------
    def internal_alerts(self) -> int:
        """Submit anomaly findings over the thresholds and probe state changes as alerts; the anomaly cursor
        moves only after the inbox has them."""
        anomalies, cursor = self._anomaly_alerts()
        n = self.submit(anomalies + self._probe_alerts() + self._journey_no_data_alerts())
        if cursor:
            self.store.put_state(_ANOMALY_CURSOR, cursor)
        return n

    def _anomaly_alerts(self, page: int = 1000) -> tuple[list[Alert], str | None]:
        """Findings detected after the cursor (keyset on DetectedAt, Id: a scan stores many findings with one
        DetectedAt) whose score or amount reaches the thresholds. A re-scan re-reports a finding under the same
        fingerprint, which only pushes its resolve time (`anomaly_ttl`) further out."""
        ic = self.cfg.internal
        state = self.store.get_state(_ANOMALY_CURSOR) or "1970-01-01T00:00:00+00:00|"
        since, _, last_id = state.partition("|")
        params: dict[str, Any] = {
            "since": dt.datetime.fromisoformat(since), "id": last_id, "score": ic.anomaly_min_score,
            "amount": ic.anomaly_min_amount if ic.anomaly_min_amount is not None else float("inf")}
        out, cursor = [], None
        while True:
            rows = self.store.query(f"""
                SELECT Id, Kind, DetectedAt, CorrelationId, Ref, Score, Reasons, Details,
                       coalesce(toFloat64OrNull(Details['amount']), toFloat64OrNull(Details['billed']),
                                toFloat64OrNull(Details['expected'])) AS amount
                FROM {self.store.table('anomalies')}
                WHERE (DetectedAt, Id) > ({{since:DateTime64(3, 'UTC')}}, {{id:String}})
                ORDER BY DetectedAt, Id LIMIT {page}""", params).rows
            for fid, kind, detected, cid, ref, score, reasons, details, amount in rows:
                if score < ic.anomaly_min_score and (amount is None or amount < params["amount"]):
                    continue
                labels = {"alertname": "RevwatchAnomaly", "severity": ic.anomaly_severity, "anomaly_kind": kind,
                          "ref": ref, "correlation_id": cid}
                why = f"score {score:.2f} ≥ {ic.anomaly_min_score}" if score >= ic.anomaly_min_score else \
                    f"amount {amount:.2f} ≥ {ic.anomaly_min_amount}"
                start = _epoch(detected)
                annotations = {"summary": f"{kind} anomaly on {ref or cid} ({why})",
                               "description": "; ".join(reasons)[:2000],
                               **{f"detail_{k}": v for k, v in details.items()}}
                out.append(Alert(fingerprint({**labels, "id": fid}), "firing", labels, annotations, start,
                                 start + ic.anomaly_ttl.total_seconds(), "internal"))
            if rows:
                params["since"], params["id"] = rows[-1][2].replace(tzinfo=dt.timezone.utc), rows[-1][0]
                cursor = f"{params['since'].isoformat()}|{params['id']}"
            if len(rows) < page:
                return out, cursor

    def _journey_no_data_alerts(self) -> list[Alert]:
        """Journeys that should always flow (`no_data_alert`, slo/coverage.py): an alert while none of their events
        occurred for that long, resolved when one does; submitted on change only, like probe alerts."""
        out, now = [], self.clock()
        for name, sil in dict(self.engine.latest_silence).items():
            if self._journey_silent.get(name) == sil.alerting:
                continue
            self._journey_silent[name] = sil.alerting
            labels = {"alertname": "RevwatchJourneyNoData", "severity": sil.severity, "journey": name,
                      **sil.ownership.labels()}
            d = sil.as_dict()
            what = "never in the last 35 days" if d["no_data_for_minutes"] is None else \
                f"for {d['no_data_for_minutes']} minutes"
            annotations = {"summary": f"journey {name}: no data {what}" if sil.alerting else
                           f"journey {name}: events flow again",
                           "description": f"no event of journey {name} occurred {what} (alert after "
                                          f"{d['no_data_alert']})"}
            if sil.ownership.runbook:
                annotations["runbook_url"] = sil.ownership.runbook
            out.append(Alert(fingerprint(labels), "firing" if sil.alerting else "resolved", labels, annotations,
                             now, None if sil.alerting else now, "internal"))
        return out

    def _probe_alerts(self) -> list[Alert]:
        if self.probes is None:
            return []
        out, now = [], self.clock()
        with self.probes._lock:
            results = dict(self.probes.last_results)
        for name, res in results.items():
            up = bool(res.get("up"))
            if self._probe_up.get(name) == up:      # unchanged (the first result is always submitted: a resolve
                continue                            # for a probe no group holds is a no-op)
            self._probe_up[name] = up
            labels = {"alertname": "RevwatchProbeDown", "severity": self.cfg.internal.probe_severity, "probe": name,
                      "probe_type": res.get("type", "")}
            notes = "; ".join(str(n) for n in (res.get("notes") or []))[:2000]
            out.append(Alert(fingerprint(labels), "resolved" if up else "firing", labels,
                             {"summary": f"probe {name} ({res.get('type')}) is {'up again' if up else 'down'}",
                              "description": notes or "the probe's target did not answer as expected"},
                             now, now if up else None, "internal"))
        return out

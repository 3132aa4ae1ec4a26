"""The durable notification outbox: every request a notifier must make is a row in `notifications` before any
attempt, and its state (pending → delivered | rejected | gave_up) is versioned there, so a restart resumes every
pending delivery (`load`).

Delivery runs in one thread per notifier (a dead or slow Slack never delays PagerDuty, and nothing here runs on
the request or ingest path). Each row is retried with bounded exponential backoff — `backoff_initial` doubling
per attempt up to `backoff_max`, "equal jitter" (half fixed, half random, so retries of many rows spread out but
never come sooner than half the step) — until delivered, answered 4xx other than 408/429 (rejected: retrying the
same body cannot succeed), or older than `give_up_after`. Rows with the same `OrderKey` (a PagerDuty dedup key,
an alert group) are delivered strictly in creation order, so a resolve never overtakes its trigger.

Metrics: `revwatch_notifications_total{notifier,outcome}` (delivered, retry, rejected, gave_up),
`revwatch_notification_queue_depth{notifier}`, `revwatch_notification_oldest_pending_seconds{notifier}`.
"""
from __future__ import annotations

import datetime as dt
import logging
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import httpx
import orjson
from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily

from alerts.config import AlertsConfig
from alerts.notifiers import NotConfigured, prepare
from revwatch.metrics import Metrics
from revwatch.store import Store, StoreError

log = logging.getLogger("revwatch.alerts.outbox")
COLUMNS = ["Id", "Notifier", "OrderKey", "GroupId", "CreatedAt", "Body", "Status", "Attempts", "NextAttemptAt",
           "LastError", "Version"]


def _ts(t: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc)


@dataclass
class Delivery:
    """One request to make: `body` is the provider payload without secrets."""
    id: str
    notifier: str
    order_key: str
    group_id: str
    created_at: float
    body: dict
    status: str = "pending"
    attempts: int = 0
    next_attempt_at: float = 0.0
    last_error: str = ""
    seq: int = field(default=0, compare=False)     # creation order within this process (ties of created_at)

    def row(self) -> tuple:
        return (self.id, self.notifier, self.order_key, self.group_id, _ts(self.created_at),
                orjson.dumps(self.body).decode(), self.status, self.attempts, _ts(self.next_attempt_at),
                self.last_error[:500], time.time_ns())


class Outbox:
    """Pending deliveries in memory, mirrored durably in the store; one worker thread per notifier."""

    def __init__(self, store: Store, cfg: AlertsConfig, metrics: Metrics, clock: Callable[[], float] = time.time):
        self.store, self.cfg, self.clock = store, cfg, clock
        self._pending: dict[str, list[Delivery]] = {name: [] for name in cfg.notifiers}
        self._lock = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._seq = 0
        self.counter = Counter("revwatch_notifications", "Notification delivery attempts by outcome",
                               ["notifier", "outcome"], registry=metrics.registry)
        metrics.register(self)

    # -- durable state ----------------------------------------------------------------------------------------
    def load(self) -> int:
        """Read every pending delivery back from the store (at start-up); returns how many."""
        horizon = self.clock() - self.cfg.delivery.give_up_after.total_seconds() - 86400
        rows = self.store.query(f"""
            SELECT Id, Notifier, OrderKey, GroupId, CreatedAt, Body, Status, Attempts, NextAttemptAt, LastError
            FROM (SELECT * FROM {self.store.table('notifications')}
                  WHERE CreatedAt >= fromUnixTimestamp64Milli({{h:Int64}}, 'UTC')
                  ORDER BY Version DESC LIMIT 1 BY Id)
            WHERE Status = 'pending' ORDER BY CreatedAt, Id""", {"h": int(horizon * 1000)}).rows
        with self._lock:
            known = {d.id for q in self._pending.values() for d in q}
            for r in rows:
                if r[0] in known:
                    continue
                d = Delivery(r[0], r[1], r[2], r[3], r[4].replace(tzinfo=dt.timezone.utc).timestamp(),
                             orjson.loads(r[5]), r[6], int(r[7]),
                             r[8].replace(tzinfo=dt.timezone.utc).timestamp(), r[9])
                self._seq += 1
                d.seq = self._seq
                self._pending.setdefault(d.notifier, []).append(d)
            self._lock.notify_all()
        return len(rows)

    def enqueue(self, deliveries: list[Delivery]) -> None:
        """Store the deliveries (raises StoreError when the store refuses), then hand them to the workers."""
        with self._lock:       # a flush repeated after a crash re-creates the same ids: keep one of each
            known = {d.id for q in self._pending.values() for d in q}
        deliveries = [d for d in deliveries if d.id not in known]
        if not deliveries:
            return
        for d in deliveries:
            d.next_attempt_at = d.next_attempt_at or d.created_at
        self.store.insert("notifications", [d.row() for d in deliveries], COLUMNS)
        with self._lock:
            for d in deliveries:
                self._seq += 1
                d.seq = self._seq
                self._pending.setdefault(d.notifier, []).append(d)
            self._lock.notify_all()

    def _persist(self, d: Delivery) -> None:
        try:
            self.store.insert("notifications", [d.row()], COLUMNS)
        except StoreError as e:   # at-least-once: a lost state write means a possible re-send, never a loss
            log.warning("cannot record state %s of notification %s: %s", d.status, d.id, e)

    # -- workers --------------------------------------------------------------------------------------------
    def start(self) -> None:
        self._stop.clear()
        for name in self.cfg.notifiers:
            t = threading.Thread(target=self._worker, args=(name,), name=f"notifier-{name}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        with self._lock:
            self._lock.notify_all()
        for t in self._threads:
            t.join(timeout)
        self._threads = []

    def _next_due(self, name: str) -> tuple[Delivery | None, float]:
        """The first deliverable row (earliest of its order key) that is due, and when the next one will be."""
        heads: dict[str, Delivery] = {}
        now, wake = self.clock(), float("inf")
        for d in sorted(self._pending.get(name, []), key=lambda x: (x.created_at, x.seq)):
            heads.setdefault(d.order_key, d)
        for d in sorted(heads.values(), key=lambda x: (x.next_attempt_at, x.created_at, x.seq)):
            if d.next_attempt_at <= now:
                return d, now
            wake = min(wake, d.next_attempt_at)
        return None, wake

    def _worker(self, name: str) -> None:
        notifier = self.cfg.notifiers[name]
        tick = self.cfg.delivery.tick.total_seconds()
        with httpx.Client(timeout=notifier.timeout.total_seconds(), follow_redirects=False) as client:
            while not self._stop.is_set():
                with self._lock:
                    d, wake = self._next_due(name)
                    if d is None:
                        self._lock.wait(timeout=max(0.01, min(tick * 5, wake - self.clock())))
                        continue
                self._attempt(client, notifier, d)

    def _attempt(self, client: httpx.Client, notifier, d: Delivery) -> None:
        error, permanent = None, False
        try:
            url, raw, headers = prepare(notifier, d.body)
            r = client.post(url, content=raw, headers=headers)
            if r.status_code >= 300:
                error = f"HTTP {r.status_code}"
                permanent = 400 <= r.status_code < 500 and r.status_code not in (408, 429)
        except NotConfigured as e:
            error = str(e)
        except httpx.HTTPError as e:
            error = type(e).__name__          # never the URL: a Slack webhook URL is a secret
        now = self.clock()
        d.attempts += 1
        if error is None:
            d.status, outcome = "delivered", "delivered"
        elif permanent:
            d.status, outcome = "rejected", "rejected"
        elif now - d.created_at >= self.cfg.delivery.give_up_after.total_seconds():
            d.status, outcome = "gave_up", "gave_up"
        else:
            d.next_attempt_at, outcome = now + self.backoff(d.attempts), "retry"
        d.last_error = error or ""
        if outcome != "delivered":
            log.warning("notification %s via %s: %s (%s, attempt %d)", d.id, d.notifier, error, outcome,
                        d.attempts)
        self.counter.labels(d.notifier, outcome).inc()
        self._persist(d)
        if d.status != "pending":          # leaves the queue once its final state is recorded
            with self._lock:
                self._pending[d.notifier] = [x for x in self._pending.get(d.notifier, []) if x is not d]

    def backoff(self, attempts: int) -> float:
        """Seconds before the next attempt after `attempts` failures: bounded exponential, equal jitter."""
        step = min(self.cfg.delivery.backoff_max.total_seconds(),
                   self.cfg.delivery.backoff_initial.total_seconds() * 2 ** max(0, attempts - 1))
        return step / 2 + random.uniform(0, step / 2)

    # -- introspection -------------------------------------------------------------------------------------
    def pending(self) -> dict[str, list[Delivery]]:
        with self._lock:
            return {k: list(v) for k, v in self._pending.items()}

    def wait_idle(self, timeout: float) -> bool:
        """Block until nothing is pending (tests, shutdown); True when idle."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if not any(self.pending().values()):
                return True
            time.sleep(0.05)
        return False

    def describe(self):
        return []

    def collect(self):
        depth = GaugeMetricFamily("revwatch_notification_queue_depth", "Notifications waiting for delivery",
                                  labels=["notifier"])
        oldest = GaugeMetricFamily("revwatch_notification_oldest_pending_seconds",
                                   "Age of the oldest notification waiting for delivery", labels=["notifier"])
        now = self.clock()
        for name, q in self.pending().items():
            depth.add_metric([name], len(q))
            oldest.add_metric([name], max((now - d.created_at for d in q), default=0.0))
        yield depth
        yield oldest

"""The evaluator loop of an evaluating server: SLO pass → alert conditions → direct alert path, every interval.

A dedicated thread, not a scheduler job: a pass that takes longer than the interval delays the next one, it never
skips it (the scheduler refused overlapping runs with "maximum number of running instances reached", so under
read load passes were dropped and pages came 30 s late). A pass starts `evaluator.interval` after the previous
one started, or at once when that is already past — or half an interval after it when this process's writer has
stored new data since (a burn in fresh data need not wait a whole interval; time-decided burns still need one).

`revwatch_slo_evaluation_lag_seconds`: how old the newest completed evaluation is (now − its instant; before the
first one, the time since the loop started). It stays near the interval plus one pass when all is well; it grows
when passes slow down or fail, which is exactly how far pages can trail a burn. The web UI shows it
(`EvaluatorLoop.lag`).
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from prometheus_client.core import GaugeMetricFamily

from alerts.direct import DirectAlerts
from revwatch.metrics import Metrics
from slo.conditions import conditions
from slo.engine import SloEngine

log = logging.getLogger("revwatch.evaluator")


class EvaluatorLoop:
    """Runs `engine.evaluate_and_cache` every `interval` seconds and feeds the alert conditions to `direct`."""

    def __init__(self, engine: SloEngine, direct: DirectAlerts | None, interval: float, external_url: str,
                 metrics: Metrics | None = None, clock: Callable[[], float] = time.time,
                 data_version: Callable[[], int] | None = None, summary_interval: float = 30.0):
        self.engine, self.direct, self.interval, self.external_url = engine, direct, interval, external_url
        self.summary_interval = summary_interval   # journey summaries and forecasts at most this often (config)
        self._summaries_at: float | None = None
        self.data_version = data_version     # moves when this process's writer stored new data (None: interval only)
        self.clock = clock
        self._next_at, self._last_start = clock(), 0.0
        self._seen = data_version() if data_version is not None else None
        self.started_at = clock()
        self.evaluated_at: float | None = None
        self.last_error: str | None = None
        self.passes = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if metrics is not None:
            metrics.register(self)

    def run_once(self) -> None:
        """One pass: evaluate (refreshing rollups), then hand the alert conditions to the direct path."""
        began = self.clock()
        due = self._summaries_at is None or not 0 <= began - self._summaries_at < self.summary_interval
        results = self.engine.evaluate_and_cache(summaries=due)
        if due:
            self._summaries_at = began
        self.evaluated_at = began          # the pass evaluated "now" as of (about) its start
        if self.direct is not None:
            self.direct.feed(conditions(results, self.external_url))
        self.passes += 1

    def _due(self, next_at: float, last_start: float, seen: int | None) -> bool:
        """A pass is due at its interval, or earlier — half an interval after the last one — when new data reached
        the store (`data_version` moved): a burn in freshly ingested data pages without waiting a whole interval."""
        now = self.clock()
        if now >= next_at:
            return True
        return (self.data_version is not None and now - last_start >= self.interval / 2
                and self.data_version() != seen)

    def step(self) -> float:
        """The loop's body: run a pass if one is due (`_due`); returns how long to wait before asking again (0 right
        after a pass). Driven by `clock` alone, so a test steps it on a simulated clock without sleeping."""
        if not self._due(self._next_at, self._last_start, self._seen):
            return min(0.1, max(0.01, self._next_at - self.clock()))
        self._seen = self.data_version() if self.data_version is not None else None
        self._last_start = self.clock()
        self._next_at = self._last_start + self.interval            # never a burst of catch-up passes
        try:
            self.run_once()
            self.last_error = None
        except Exception as e:          # a failing pass must not stop the next ones
            self.last_error = str(e)[:500]
            log.exception("evaluator pass failed")
        return 0.0

    def _run(self) -> None:
        self._next_at, self._last_start = self.clock(), 0.0
        self._seen = self.data_version() if self.data_version is not None else None
        while not self._stop.is_set():
            wait = self.step()
            if wait:
                self._stop.wait(wait)

    def start(self) -> None:
        self.started_at = self.clock()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="slo-evaluator", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def lag(self) -> float:
        """Seconds between now and the instant of the newest completed evaluation (since the start if none)."""
        since = self.evaluated_at if self.evaluated_at is not None else self.started_at
        return max(0.0, self.clock() - since)

    # -- prometheus_client collector ----------------------------------------------------------------------------
    def describe(self):
        return []

    def collect(self):
        g = GaugeMetricFamily("revwatch_slo_evaluation_lag_seconds",
                              "Age of the newest completed SLO evaluation (how far alerts can trail a burn)")
        g.add_metric([], self.lag())
        yield g

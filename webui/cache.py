"""Stale-while-revalidate values for the overview: readers never wait for a recompute once a value exists.

The overview's costly parts (24 h sparklines of every SLO, stuck items and money of every journey) change on the
evaluator's cadence, not per request. A `Refreshing` value is computed on first use; after `ttl` the next reader
starts one background recompute and still gets the previous value at once, with the time it was computed (the
page shows it). A failing recompute keeps the last good value and is retried on a later read.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from typing import Callable, Generic, TypeVar

T = TypeVar("T")
log = logging.getLogger("revwatch.webui")


class Refreshing(Generic[T]):
    def __init__(self, compute: Callable[[], T], ttl_seconds: float):
        self._compute, self.ttl = compute, ttl_seconds
        self._value: T | None = None
        self._at: dt.datetime | None = None
        self._mono = 0.0
        self._lock = threading.Lock()
        self._busy = False

    def get(self) -> tuple[T, dt.datetime]:
        """The value and when it was computed; computes now only when there is none yet."""
        with self._lock:
            have = self._at is not None
            stale = have and time.monotonic() - self._mono > self.ttl and not self._busy
            if stale:
                self._busy = True
        if not have:
            self._refresh()
        elif stale:
            threading.Thread(target=self._refresh, name="webui-refresh", daemon=True).start()
        return self._value, self._at  # type: ignore[return-value]

    def _refresh(self) -> None:
        try:
            value = self._compute()
        except Exception:
            log.exception("web UI overview data could not be refreshed; keeping the last value")
            with self._lock:
                self._busy = False
            if self._at is None:
                raise
            return
        with self._lock:
            self._value, self._at, self._mono, self._busy = value, dt.datetime.now(dt.timezone.utc), \
                time.monotonic(), False

"""Store read slots that serve people before background work.

Why: the store has few read slots (a chDB connection runs one query at a time, and the embedded store reads
through `EMBEDDED_READ_CONNECTIONS` connections of its own, revwatch/store.py). When every slot is busy with an
evaluator pass, a journey lookup waits for the queries of the pass still queued in front of it (at 1 M stored events
a pass is ~12 queries and ~1 s; with one connection the p99 of a lone reader's lookups was the pass time, not the
lookup's own 15 ms). The slots cannot interrupt a query that is running; what they decide is who runs next.

Rule: an *interactive* read — a store query made while answering an HTTP request (`INTERACTIVE`, set by the
server's middleware for every request) — takes the next free slot before any *background* query (evaluator pass,
probes, anomaly scans, dead-letter upkeep, key refresh). A background query yields to waiting interactive reads for
at most `max_yield` seconds, then takes its turn anyway: a stream of readers delays each background query by at most
`max_yield` and can never starve the evaluator (a page must not wait for a dashboard; docs/http.md).

Invariants: at most `n` holders at any time; a waiter gives up after its timeout and then holds nothing; between
interactive waiters the order is the condition variable's (no starvation in practice: each release wakes all).
"""
from __future__ import annotations

import contextvars
import threading
import time
from typing import Callable

# True while the current context answers an HTTP request (copied into the worker thread that runs the route).
INTERACTIVE: contextvars.ContextVar[bool] = contextvars.ContextVar("revwatch_interactive_read", default=False)


class ReadSlots:
    """`n` read slots; interactive reads first, background reads after at most `max_yield` seconds of yielding."""

    def __init__(self, n: int, max_yield: float = 0.25, clock: Callable[[], float] = time.monotonic):
        if n < 1:
            raise ValueError("n must be >= 1")
        self.n, self.max_yield, self.clock = n, max_yield, clock
        self._held = 0
        self._interactive_waiting = 0
        self._cond = threading.Condition()

    @property
    def held(self) -> int:
        """Slots in use now."""
        return self._held

    def acquire(self, interactive: bool | None = None, timeout: float | None = None) -> bool:
        """Take a slot; False when none was free within `timeout` seconds (None: wait as long as it takes).

        `interactive` defaults to the calling context's `INTERACTIVE`."""
        if interactive is None:
            interactive = INTERACTIVE.get()
        start = self.clock()
        deadline = None if timeout is None else start + timeout
        with self._cond:
            if interactive:
                self._interactive_waiting += 1
            try:
                while True:
                    now = self.clock()
                    if self._held < self.n and (interactive or self._interactive_waiting == 0
                                                or now - start >= self.max_yield):
                        self._held += 1
                        return True
                    wait = None if deadline is None else deadline - now
                    if not interactive:       # wake up when the yield is over, even if nobody releases
                        left = self.max_yield - (now - start)
                        if left > 0:
                            wait = left if wait is None else min(wait, left)
                    if wait is not None and wait <= 0:
                        return False
                    self._cond.wait(wait)
            finally:
                if interactive:
                    self._interactive_waiting -= 1
                    self._cond.notify_all()    # a background waiter may now go

    def release(self) -> None:
        with self._cond:
            if self._held <= 0:
                raise ValueError("release() without a held slot")
            self._held -= 1
            self._cond.notify_all()

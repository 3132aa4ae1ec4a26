"""Ingest first: while the collector is taking a stream of data, reads yield to it.

Why: everything Python does in one process shares one interpreter lock, and one event loop runs every request. A
1-event ingest request costs ~0.3 ms of it; a read (routing, auth, a store query, a JSON reply) several times that,
and a dashboard or a script reading in a loop takes whatever share it can — measured with bench/ingest_small.py,
ten closed-loop readers took 19-26 % of the 1-event ingest rate. A webhook that is refused or slowed is lost or
late business data; a read that waits a little is not. So under ingest load reads are rationed.

Rule (only while ingest is busy: at least `busy_rate` ingest requests per second over the last `busy_window`):
reads run one at a time, at most `read_rate` per second (`server.reads_per_second_under_ingest`, default 10;
0 turns this off), and their store queries use one thread (`READ_THREADS`). `/healthz`, `/readyz` and `/metrics`
are never held: monitoring must see the truth. With no ingest load nothing is rationed. Time spent waiting is
counted in `revwatch_reads_paced_seconds_total`.

Why a rate and not a share of time: under load a read's wall time is mostly queueing behind ingest work on the
event loop (each await point waits its turn), so a time share charges reads for ingest's own work — measured, it
throttled reads to 5/s while their real cost would allow several times that.
"""
from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import time
from typing import Any, AsyncIterator, Awaitable, Callable, MutableMapping

from revwatch.read_slots import INTERACTIVE

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

NEVER_PACED = ("/healthz", "/readyz", "/metrics")
NEVER_PACED_PREFIXES = ("/ui/static/",)       # the UI's own files: no store work
# ClickHouse `max_threads` for the store queries of the current request (None: the store's default). Set to 1 for
# reads served while ingest is busy, so that one read uses one core, not all of them (`revwatch.store` applies it
# on the embedded engine; the context is copied into the worker thread that runs the route).
READ_THREADS: contextvars.ContextVar[int | None] = contextvars.ContextVar("revwatch_read_threads", default=None)


class IngestFirst:
    """Tracks the ingest rate and hands out read turns. Event-loop only (no locks needed but the read turn)."""

    def __init__(self, read_rate: float = 10.0, busy_rate: float = 50.0, busy_window: float = 0.5,
                 max_hold: float = 1.0, clock: Callable[[], float] = time.monotonic,
                 on_paced: Callable[[float], None] | None = None):
        if read_rate < 0:
            raise ValueError("read_rate must be >= 0 (0 turns rationing off)")
        self.read_rate, self.busy_rate, self.busy_window, self.max_hold = read_rate, busy_rate, busy_window, max_hold
        self.clock, self.on_paced = clock, on_paced
        self._bucket_start = clock()
        self._bucket = 0          # ingest requests in the current window
        self._last_rate = 0.0     # ingest requests/s over the previous window
        self._next_read = 0.0
        self._turn: asyncio.Lock | None = None
        self._running: asyncio.Event | None = None    # set when the read that started last has finished
        self._loop: asyncio.AbstractEventLoop | None = None   # the loop the two above belong to
        self.waiting = 0                                     # reads waiting for their turn
        self.noted = 0                                       # ingest requests noted since start (reported on)

    def note_ingest(self, n: int = 1) -> None:
        """`n` ingest requests arrived (called by the collector's routes; with intake processes, by the owner for
        the requests its intake processes report: revwatch/intakes.py)."""
        self._roll()
        self._bucket += n
        self.noted += n

    def _roll(self) -> None:
        now = self.clock()
        elapsed = now - self._bucket_start
        if elapsed >= self.busy_window:
            # a window with no ingest at all in between means the rate has dropped to zero
            self._last_rate = self._bucket / elapsed if elapsed < 2 * self.busy_window else 0.0
            self._bucket, self._bucket_start = 0, now

    def busy(self) -> bool:
        """Whether ingest ran at `busy_rate` or more over the last full window."""
        self._roll()
        return self.read_rate > 0 and self._last_rate >= self.busy_rate

    @contextlib.asynccontextmanager
    async def read_turn(self) -> AsyncIterator[None]:
        """Take a read turn: one read at a time, each starting at least 1 / read_rate after the previous one.

        A read that runs longer than `max_hold` stops holding the others back (a slow query must not freeze every
        page while ingest is busy): the next read may start then, so at most one slow read is overtaken per
        `max_hold`."""
        loop = asyncio.get_running_loop()
        if self._turn is None or self._loop is not loop:   # asyncio primitives belong to one loop (a second server
            self._turn, self._running, self._loop = asyncio.Lock(), None, loop     # on the same app has its own)
        turn = self._turn
        entered = self.clock()
        self.waiting += 1
        try:
            await turn.acquire()                     # guards the start of reads, in order
        finally:
            self.waiting -= 1
        try:
            running = self._running
            if running is not None and not running.is_set():
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(running.wait(), self.max_hold)
            wait = self._next_read - self.clock()
            if wait > 0:
                await asyncio.sleep(wait)
            waited = self.clock() - entered
            if waited > 0 and self.on_paced:
                self.on_paced(waited)
            self._next_read = self.clock() + 1 / self.read_rate
            mine = self._running = asyncio.Event()
        finally:
            turn.release()
        try:
            yield
        finally:
            mine.set()


class IngestFirstMiddleware:
    """ASGI middleware: while ingest is busy, GET/HEAD requests that present credentials take a read turn.

    Not held: health, readiness, metrics, the UI's static files, reads answered from memory (`from_memory`: the
    evaluator's latest pass, slo/snapshot.py — microseconds, no store work), and requests without a valid key or
    session cookie (`credentialed`): they are answered at once (401, a redirect to sign-in), cost no store work, and
    must not be able to queue in front of real readers. At most `max_waiting` reads wait; beyond that a read is answered
    503 + Retry-After at once."""

    def __init__(self, app: ASGIApp, gate: IngestFirst, credentialed: Callable[[Scope], bool] | None = None,
                 max_waiting: int = 64, from_memory: Callable[[Scope], bool] | None = None):
        self.app, self.gate, self.credentialed, self.max_waiting = app, gate, credentialed, max_waiting
        self.from_memory = from_memory

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token = INTERACTIVE.set(True)        # this request's store reads go before background queries
        try:
            await self._serve(scope, receive, send)
        finally:
            INTERACTIVE.reset(token)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope["method"] not in ("GET", "HEAD") or scope["path"] in NEVER_PACED
                or scope["path"].startswith(NEVER_PACED_PREFIXES) or not self.gate.busy()
                or (self.credentialed is not None and not self.credentialed(scope))
                or (self.from_memory is not None and self.from_memory(scope))):
            await self.app(scope, receive, send)
            return
        if self.gate.waiting >= self.max_waiting:
            await _too_many_waiting(send)
            return
        async with self.gate.read_turn():
            token = READ_THREADS.set(1)
            try:
                await self.app(scope, receive, send)
            finally:
                READ_THREADS.reset(token)


async def _too_many_waiting(send: Send) -> None:
    body = json.dumps({"error": "too many reads are waiting while ingest is busy; retry shortly"}).encode()
    await send({"type": "http.response.start", "status": 503,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"retry-after", b"1")]})
    await send({"type": "http.response.body", "body": body})

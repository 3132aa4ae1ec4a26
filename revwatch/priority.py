"""Ingest first: while the collector is taking a stream of data, reads yield to it.

Why: everything Python does in one process shares one interpreter lock, and one event loop runs every request. A
1-event ingest request costs ~0.3 ms of it; a read (routing, auth, a store query, a JSON reply) several times that,
and a dashboard or a script reading in a loop takes whatever share it can — measured with bench/ingest_small.py,
ten closed-loop readers took 19-26 % of the 1-event ingest rate. A webhook that is refused or slowed is lost or
late business data; a read that waits a little is not. So under ingest load reads are rationed.

Rule (only while ingest is busy: at least `busy_rate` ingest requests per second over the last `busy_window`):
reads that query the store start at most `read_rate` per second on average (`server.reads_per_second_under_ingest`,
default 10; 0 turns all rationing off), a few at once after a quiet spell, at most two running, and their store
queries use one thread (`READ_THREADS`); reads answered from memory start at most `memory_rate` per second
(`server.memory_reads_per_second_under_ingest`, default 150). `/healthz`, `/readyz` and `/metrics`
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


class ReadTurns:
    """Read turns as a token bucket: `rate` turns per second on average, up to `burst` at once after a quiet spell,
    with at most `concurrency` reads running. Event-loop only (the asyncio primitives belong to one loop).

    Why a bucket and not an even spacing: one person opening a page sends a few reads together and then reads for
    seconds; evenly spaced turns made each of those reads wait up to 1 / rate (100 ms at 10/s) although the rate was
    nowhere near its limit. Why more than one running: a lookup under ingest load takes tens of milliseconds of wall
    time, mostly waiting for a core, so one at a time capped reads far below the rate and queued ten readers for a
    second; the rate, not the count running, is what bounds the CPU reads take from ingest."""

    def __init__(self, rate: float, burst: int, concurrency: int, max_hold: float,
                 clock: Callable[[], float], on_paced: Callable[[float], None] | None):
        if rate < 0:
            raise ValueError("a read rate must be >= 0 (0 turns rationing off)")
        if burst < 1 or concurrency < 1:
            raise ValueError("burst and concurrency must be >= 1")
        self.rate, self.burst, self.concurrency, self.max_hold = rate, burst, concurrency, max_hold
        self.clock, self.on_paced = clock, on_paced
        self._tokens = float(burst)          # read turns available now
        self._refilled = clock()             # when _tokens was last brought up to date
        self._turn: asyncio.Lock | None = None
        self._running: list[tuple[float, asyncio.Event]] = []   # (start, done) of reads that may still hold others
        self._loop: asyncio.AbstractEventLoop | None = None   # the loop the two above belong to
        self.waiting = 0                                     # reads waiting for their turn

    def _refill(self) -> None:
        now = self.clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._refilled) * self.rate)
        self._refilled = now

    async def _wait_for_a_running_slot(self) -> None:
        """Until fewer than `concurrency` reads hold the others back. A read stops holding once it finishes or
        has run `max_hold` (a slow query must not freeze every page while ingest is busy)."""
        while True:
            now = self.clock()
            self._running = [(t, e) for t, e in self._running if not e.is_set() and now - t < self.max_hold]
            if len(self._running) < self.concurrency:
                return
            oldest = min(t for t, _ in self._running)
            waits = [asyncio.ensure_future(e.wait()) for _, e in self._running]
            try:
                await asyncio.wait(waits, timeout=max(0.0, oldest + self.max_hold - now),
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Take a read turn: in arrival order, when a token is there and fewer than `concurrency` reads run."""
        loop = asyncio.get_running_loop()
        if self._turn is None or self._loop is not loop:   # asyncio primitives belong to one loop (a second server
            self._turn, self._running, self._loop = asyncio.Lock(), [], loop     # on the same app has its own)
        turn = self._turn
        entered = self.clock()
        self.waiting += 1
        try:
            await turn.acquire()                     # guards the start of reads, in order
        finally:
            self.waiting -= 1
        try:
            await self._wait_for_a_running_slot()
            self._refill()
            if self._tokens < 1:
                await asyncio.sleep((1 - self._tokens) / self.rate)
                self._refill()
            self._tokens -= 1
            waited = self.clock() - entered
            if waited > 0 and self.on_paced:
                self.on_paced(waited)
            mine = asyncio.Event()
            self._running.append((self.clock(), mine))
        finally:
            turn.release()
        try:
            yield
        finally:
            mine.set()


class IngestFirst:
    """Tracks the ingest rate and hands out read turns (event-loop only, but `busy_seen`).

    Two kinds of turns, each a `ReadTurns` bucket: store reads (`read_rate`, default 10/s, at most two running) and
    reads answered from memory (`memory_rate`, default 150/s, eight running: SLO states from the evaluator's pass,
    journey lookups from the tier — a fraction of a millisecond each, so a far higher rate costs ingest less than
    the store reads do; unrationed, ten readers in a loop made ~1,100 of them per second and took a quarter of the
    ingest rate, measured with bench/reads_under_ingest.py --mix slos)."""

    def __init__(self, read_rate: float = 10.0, busy_rate: float = 50.0, busy_window: float = 0.5,
                 max_hold: float = 1.0, clock: Callable[[], float] = time.monotonic,
                 on_paced: Callable[[float], None] | None = None, burst: int = 3, concurrency: int = 2,
                 memory_rate: float = 150.0):
        self.read_rate, self.memory_rate = read_rate, memory_rate
        self.busy_rate, self.busy_window, self.max_hold = busy_rate, busy_window, max_hold
        self.clock, self.on_paced = clock, on_paced
        self.store_turns = ReadTurns(read_rate, burst, concurrency, max_hold, clock, self._paced)
        self.memory_turns = ReadTurns(memory_rate, max(burst, 10), 8, max_hold, clock, self._paced)
        self._bucket_start = clock()
        self._bucket = 0          # ingest requests in the current window
        self._last_rate = 0.0     # ingest requests/s over the previous window
        self.noted = 0                                       # ingest requests noted since start (reported on)

    def _paced(self, waited: float) -> None:
        if self.on_paced is not None:
            self.on_paced(waited)

    @property
    def waiting(self) -> int:
        """Reads waiting for their turn, of both kinds."""
        return self.store_turns.waiting + self.memory_turns.waiting

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

    def busy_seen(self) -> bool:
        """`busy()` for other threads (the store's background queries ask it): reads the last full window without
        rolling it (only the event loop rolls), and a window that is overdue by a whole window means ingest has
        stopped."""
        return (self.read_rate > 0 and self._last_rate >= self.busy_rate
                and self.clock() - self._bucket_start < 2 * self.busy_window)

    def read_turn(self, from_memory: bool = False):
        """A turn of the right kind (an async context manager); a memory read with `memory_rate` 0 takes none."""
        if from_memory:
            return self.memory_turns.turn() if self.memory_rate > 0 else contextlib.nullcontext()
        return self.store_turns.turn()


class IngestFirstMiddleware:
    """ASGI middleware: while ingest is busy, GET/HEAD requests that present credentials take a read turn.

    Not held: health, readiness, metrics, the UI's static files, and requests without a valid key or
    session cookie (`credentialed`): they are answered at once (401, a redirect to sign-in), cost no store work, and
    must not be able to queue in front of real readers. Reads answered from memory (`from_memory`: the evaluator's
    latest pass, slo/snapshot.py; journey lookups the tier covers, revwatch/journeys/tier.py) take a memory-read
    turn, the others a store-read turn. At most `max_waiting` reads wait; beyond that a read is answered 503 +
    Retry-After at once."""

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
                or (self.credentialed is not None and not self.credentialed(scope))):
            await self.app(scope, receive, send)
            return
        if self.gate.waiting >= self.max_waiting:
            await _too_many_waiting(send)
            return
        memory = self.from_memory is not None and self.from_memory(scope)
        async with self.gate.read_turn(from_memory=memory):
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

"""Store read slots: people's reads go before background queries, and background work is never starved."""
from __future__ import annotations

import contextvars
import threading

import pytest

from revwatch.read_slots import INTERACTIVE, ReadSlots


def _waiter(slots: ReadSlots, interactive: bool, order: list[str], name: str, started: threading.Event):
    def run():
        started.set()
        assert slots.acquire(interactive=interactive, timeout=30)
        order.append(name)
        slots.release()
    t = threading.Thread(target=run)
    t.start()
    return t


def _wait_for(cond, what: str) -> None:
    ev = threading.Event()
    for _ in range(3000):
        if cond():
            return
        ev.wait(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def test_an_interactive_read_overtakes_a_background_query_that_waited_first():
    slots = ReadSlots(1, max_yield=30.0)
    assert slots.acquire(interactive=False, timeout=0)           # a query of the evaluator pass is running
    order: list[str] = []
    bg = _waiter(slots, False, order, "background", threading.Event())
    _wait_for(lambda: bg.is_alive(), "the background waiter")
    ui = _waiter(slots, True, order, "interactive", threading.Event())
    _wait_for(lambda: slots._interactive_waiting == 1, "the interactive waiter")
    slots.release()
    ui.join(30)
    bg.join(30)
    assert order == ["interactive", "background"]
    assert slots.held == 0


def test_a_background_query_goes_after_max_yield_even_while_readers_keep_waiting():
    now = [0.0]
    slots = ReadSlots(2, max_yield=0.25, clock=lambda: now[0])
    assert slots.acquire(interactive=True, timeout=0)
    assert slots.acquire(interactive=True, timeout=0)            # both slots held by readers
    slots._interactive_waiting = 1                               # and another reader is queued (simulated)
    got: list[bool] = []
    t = threading.Thread(target=lambda: got.append(slots.acquire(interactive=False, timeout=60)))
    t.start()
    slots.release()                                              # a slot is free, but a reader is waiting
    _wait_for(lambda: t.is_alive(), "the background waiter")
    assert not got                                               # yields while the reader waits …
    now[0] = 0.3                                                 # … until max_yield has passed
    with slots._cond:
        slots._cond.notify_all()
    t.join(30)
    assert got == [True]


def test_a_read_that_gets_no_slot_in_time_holds_nothing():
    slots = ReadSlots(1)
    assert slots.acquire(interactive=True, timeout=0)
    assert not slots.acquire(interactive=True, timeout=0.01)
    assert not slots.acquire(interactive=False, timeout=0.01)
    assert slots.held == 1 and slots._interactive_waiting == 0
    slots.release()
    with pytest.raises(ValueError):
        slots.release()


def test_the_context_decides_when_not_told():
    slots = ReadSlots(1, max_yield=30.0)
    assert slots.acquire(timeout=0)
    token = INTERACTIVE.set(True)
    try:
        order: list[str] = []
        ctx = contextvars.copy_context()          # as the server's worker threads get the request's context
        ctx_thread = threading.Thread(target=ctx.run, args=(lambda: (slots.acquire(timeout=30), order.append("ui")),))
        ctx_thread.start()
        _wait_for(lambda: slots._interactive_waiting == 1, "a waiter counted as interactive from its context")
    finally:
        INTERACTIVE.reset(token)
    slots.release()
    ctx_thread.join(30)
    assert order == ["ui"]


def test_a_request_s_store_reads_are_interactive_and_the_evaluator_s_are_not(api_factory):
    api = api_factory("journeys: {p2p: {start: payment.settled, end: payment.posted}}\n"
                      "slos:\n  - {name: pp, journey: p2p, objective: 0.99, window: 1d, "
                      "sli: {kind: journey_latency, threshold: 15m}}\n")
    store = api.ctx.store
    seen: list[bool] = []
    real = store.read_slots.acquire

    def recording(interactive=None, timeout=None):
        seen.append(INTERACTIVE.get() if interactive is None else interactive)
        return real(interactive, timeout)
    store.read_slots.acquire = recording
    try:
        # a store query for a person (a search: a lookup may be answered from memory, revwatch/journeys/tier.py)
        assert api.get("/api/v1/journeys?customer=no-such-customer").status_code == 200
        assert seen and all(seen)
        seen.clear()
        bg = threading.Thread(target=api.ctx.slo.evaluate_and_cache)   # a background pass
        bg.start()
        _wait_for(lambda: len(seen) > 0, "the pass's store reads")
        bg.join(60)
        assert not any(seen)
    finally:
        store.read_slots.acquire = real

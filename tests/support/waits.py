"""Waiting in tests: for a condition, under a deadline — never a fixed sleep standing in for "long enough"."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def until(condition: Callable[[], T], timeout: float, what: str, every: float = 0.05) -> T:
    """Poll `condition` until it returns something truthy (returned) or `timeout` seconds pass (AssertionError
    naming `what`)."""
    end = time.monotonic() + timeout
    while True:
        got = condition()
        if got:
            return got
        if time.monotonic() >= end:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        time.sleep(every)

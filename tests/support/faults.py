"""Fault injection from the outside: production code carries no test hooks."""
from __future__ import annotations

import contextlib
import queue
from collections.abc import Iterator

from revwatch.store import Store


class _Unreachable:
    """Stands in for a ClickHouse client whose server cannot be reached: every call raises `error`."""

    def __init__(self, error: Exception):
        self.error = error

    def __getattr__(self, name: str):
        def fail(*args, **kwargs):
            raise self.error
        return fail


@contextlib.contextmanager
def store_outage(store: Store, error: Exception) -> Iterator[None]:
    """Every query, insert and ping of `store` fails with `error` (as the driver would raise it) until the block
    ends; the store's own error handling turns it into StoreError exactly as for a real outage."""
    real, readers = store._client, store._readers
    down: queue.SimpleQueue = queue.SimpleQueue()
    for _ in range(store.read_slots.n):                 # every reader client is down too
        down.put(_Unreachable(error))
    store._client, store._readers = _Unreachable(error), down   # type: ignore[assignment]
    try:
        yield
    finally:
        store._client, store._readers = real, readers

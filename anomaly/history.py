"""Outcome history as of a moment: how many payments sharing a key (a customer, a gateway, an attribute's value)
had been decided before that moment, and how many of those failed to reconcile.

Why "as of a moment" and not "as of settlement": a payment is described at a moment of its wait (anomaly.risk,
`waiting_rows`: a decided payment once per step it waited, an open one at the step it has reached). Counting
every outcome decided before that moment uses all that was known then — the newest outcomes included, however
late the business reports them — and is the same rule at training and at scoring: a training row at step s and an
open payment at step s see exactly what anyone could have known at that point of their wait. The payment's own
outcome is never counted (it is still open at every moment it is described at).

The index sorts the decided payments once by (key, decision time) and answers a batch of (key, moment) questions
with two binary searches each (numpy `searchsorted`): O((n + q) log n), no per-key structures.
"""
from __future__ import annotations

import numpy as np


class DecidedIndex:
    """Decided outcomes by key, searchable by decision time.

    Invariant: a question (k, t) counts exactly the outcomes of key k decided strictly before t (and, with a
    window w, at or after t − w)."""

    def __init__(self, keys: list[str], decided_ms: np.ndarray, failed: np.ndarray):
        self._codes: dict[str, int] = {}
        codes = np.array([self._codes.setdefault(k, len(self._codes)) for k in keys], dtype=np.int64)
        decided_ms = np.asarray(decided_ms, dtype=np.int64)
        self._base = int(decided_ms.min()) if len(decided_ms) else 0
        rel = decided_ms - self._base
        # one int64 per outcome, key-major: code × span + ms since the oldest (span > every offset asked for)
        self._span = int(rel.max()) + 2 if len(rel) else 2
        order = np.lexsort((rel, codes))
        self._sorted = codes[order] * self._span + rel[order]
        self._failed = np.concatenate([[0], np.cumsum(np.asarray(failed, dtype=np.int64)[order])])

    def counts(self, keys: list[str], moments_ms: np.ndarray, window_ms: int | None = None) \
            -> tuple[np.ndarray, np.ndarray]:
        """(failures, decided) per question i: outcomes of `keys[i]` decided before `moments_ms[i]` (within
        `window_ms` before it, when given)."""
        q = np.array([self._codes.get(k, -1) for k in keys], dtype=np.int64)
        known = q >= 0
        q = np.where(known, q, 0)
        rel = np.asarray(moments_ms, dtype=np.int64) - self._base
        hi = np.searchsorted(self._sorted, q * self._span + np.clip(rel, 0, self._span - 1), side="left")
        lo_rel = np.clip(rel - window_ms, 0, self._span - 1) if window_ms is not None else np.zeros_like(rel)
        lo = np.searchsorted(self._sorted, q * self._span + lo_rel, side="left")
        lo = np.minimum(lo, hi)
        n = np.where(known, hi - lo, 0)
        f = np.where(known, self._failed[hi] - self._failed[lo], 0)
        return f, n

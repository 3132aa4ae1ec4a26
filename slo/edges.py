"""Exact burn-rate windows: the sub-minute leading edge of each window, counted from raw rows.

A window of length L evaluated at instant `at` covers exactly (at − L, at]: an event counts when its decision time
d (docs/slo-policy.md: journeys are decided at min(end, start + threshold), spans at their start) satisfies
at − L < d ≤ at. The engine builds it from three parts:

* the whole minutes [floor(at) − L + 1m, floor(at)) from the `slo_minutes` rollup (cost: minutes, not rows);
* the minute containing `at`, counted with decisions ≤ at (stored by the pass that ran at `at`, else live);
* the leading edge: the part of minute floor(at) − L after at − L, i.e. decisions in
  (at − L, floor(at) − L + 1m) — counted here from raw rows, one UNION ALL round trip for every SLO and every
  window length (≤ 1 minute of decisions per window; journeys read their starts up to the threshold before);
  `EdgeCache` counts journey SLIs' edge minutes from the journey instance cache instead (slo/decided.py: at 20 M
  events the raw read was two thirds of a pass, every edge minute the time-decided rewrites invalidate).

The decisions of an edge minute are read once and kept (`EdgeCache`, per SLO and minute, every decision's
millisecond): a past minute's decisions change only when late data rewrites that minute of the rollup, and the engine
drops those minutes then (`EdgeCache.invalidate`, from the rows the minute cache reads and the pending overlay,
slo/series.py). A pass cuts the kept minutes at its own millisecond; a minute not kept is read with the next
`AHEAD` minutes of the same SLOs (the edges of later passes), in one round trip for all of them.

So a constant error stream gives a constant burn at every second of a minute (the whole-minute construction held
0–60 s of data in a "1m" window and flapped), and the numbers equal Prometheus' `rate()` ratio over the same
samples (tests/test_slo_exact_windows.py runs the real Prometheus).

Which windows are exact: occurrence-budgeted journey and span SLIs, in every rolling window (burn windows and a
rolling SLO window). Gauge SLIs count minutes and timeslice budgets count slices: their unit is a whole slice, so
their windows stay the W/slice slices ending with the one containing `at`; calendar SLO windows start on a
boundary and are exact already.
"""
from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterable

import numpy as np

from slo.rollup import MINUTE, RollupMaintainer, floor_minute
from slo.spec import SloSpec

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_MS = dt.timedelta(milliseconds=1)


def epoch_ms(t: dt.datetime) -> int:
    """Whole milliseconds since the epoch, floored, in integer arithmetic (float timestamps round wrongly)."""
    return (t - _EPOCH) // _MS


def has_exact_windows(spec: SloSpec) -> bool:
    """Whether the SLO's windows are exact to the millisecond (see the module docstring for which are not)."""
    return spec.config.budgeting == "occurrences" and not spec.is_gauge and not spec.is_prometheus


def rolling_length(spec: SloSpec) -> dt.timedelta | None:
    """The SLO window's length when it is rolling (None: a calendar window, which starts on a boundary)."""
    c = spec.config
    if c.calendar is not None or c.window in ("calendar_month", "calendar_week"):
        return None
    return spec.period(_EPOCH)


def edge_bounds(at: dt.datetime, length: dt.timedelta) -> tuple[int, int]:
    """[lo_ms, hi_end_ms) of the leading edge of the window of `length` at `at`: decisions d with
    at − length < d < floor(at) − length + 1m (milliseconds; empty when lo ≥ hi)."""
    return epoch_ms(at - length) + 1, epoch_ms(floor_minute(at) - length + MINUTE)


def leading_edges(rollups: RollupMaintainer, windows: Iterable[tuple[SloSpec, str, dt.timedelta]],
                  at: dt.datetime) -> dict[tuple[str, str, str], tuple[int, int]]:
    """{(slo, group, window name): (good, total)} of the leading edges of the given (spec, window name, length)
    windows at `at`; one round trip for all of them (windows of equal length share their edge)."""
    by_length: dict[dt.timedelta, list[SloSpec]] = {}
    names: dict[tuple[str, dt.timedelta], list[str]] = {}
    for spec, name, length in windows:
        if spec not in by_length.setdefault(length, []):
            by_length[length].append(spec)
        names.setdefault((spec.name, length), []).append(name)
    lengths, requests = [], []
    for length, specs in by_length.items():
        lo, hi = edge_bounds(at, length)
        if lo < hi:
            lengths.append(length)
            requests.append((specs, lo, hi, epoch_ms(at)))
    out: dict[tuple[str, str, str], tuple[int, int]] = {}
    for req, slo, group, _minute, good, total in rollups.counts_between(requests):
        for name in names.get((slo, lengths[req]), []):
            g, t = out.get((slo, group, name), (0, 0))
            out[(slo, group, name)] = (g + good, t + total)
    return out


AHEAD = 10                     # minutes of decisions read beyond a missing edge minute (the edges of later passes)
_UNUSED_FOR = 600.0            # seconds after which a kept minute nobody read is dropped


class EdgeCache:
    """Per (SLO, spec hash, minute index): the decisions of that past minute, [(group, decision ms, good, total)]."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.minutes: dict[tuple[str, str, int], list[tuple[str, int, int, int]]] = {}
        self.used: dict[tuple[str, str, int], float] = {}
        self.generation = 0
        self.read = 0                  # minutes read from raw rows by the latest call (bench/slo_eval.py)

    def invalidate(self, changed: dict[str, np.ndarray]) -> None:
        """Drop the kept minutes that the rollup rewrote ({slo: minute indexes}): late data may have moved their
        decisions."""
        with self.lock:
            for slo, minutes in changed.items():
                keys = [k for k in self.minutes if k[0] == slo]
                if not keys or not len(minutes):
                    continue
                for key, hit in zip(keys, np.isin([k[2] for k in keys], minutes)):
                    if hit:
                        del self.minutes[key]
                        self.used.pop(key, None)
                        self.generation += 1

    def edges(self, rollups: RollupMaintainer, windows: list[tuple[SloSpec, str, dt.timedelta]],
              at: dt.datetime) -> dict[tuple[str, str, str], tuple[int, int]]:
        """What `leading_edges` returns, from the kept minutes (missing ones read first)."""
        at_min = _minute(floor_minute(at))
        wanted: list[tuple[SloSpec, str, int, int, int]] = []
        for spec, name, length in windows:
            lo, hi = edge_bounds(at, length)
            if lo < hi:
                wanted.append((spec, name, _minute(floor_minute(at) - length), lo, hi))
        with self.lock:
            gen = self.generation
            missing: dict[int, list[SloSpec]] = {}
            for spec, _n, m, _lo, _hi in wanted:
                if (spec.name, spec.spec_hash, m) not in self.minutes and spec not in missing.get(m, []):
                    missing.setdefault(m, []).append(spec)
        self.read = 0
        if missing:
            requests, spans = [], []
            for m, specs in sorted(missing.items()):
                end = max(min(m + AHEAD, at_min), m + 1)      # settled minutes only: all their decisions are ≤ at
                requests.append((specs, m * 60_000, end * 60_000, epoch_ms(at)))
                spans.append((specs, m, end))
            fetched: dict[tuple[str, str, int], list[tuple[str, int, int, int]]] = {}
            owner: dict[tuple[str, str, int], int] = {}         # ranges may overlap: one request owns a minute
            for r, (specs, m, end) in enumerate(spans):
                for s in specs:
                    for k in range(m, end):
                        owner.setdefault((s.name, s.spec_hash, k), r)
                        fetched.setdefault((s.name, s.spec_hash, k), [])
            hashes = {s.name: s.spec_hash for specs in missing.values() for s in specs}
            for req, slo, group, d, good, total in rollups.counts_between(requests, per_ms=True, from_memory=True):
                d_ms = epoch_ms(d)
                key = (slo, hashes[slo], d_ms // 60_000)
                if owner.get(key) == req:
                    fetched[key].append((group, d_ms, good, total))
            self.read = len(fetched)
            with self.lock:
                if gen == self.generation:        # no late data invalidated anything meanwhile
                    for key, rows in fetched.items():
                        self.minutes.setdefault(key, rows)
        out: dict[tuple[str, str, str], tuple[int, int]] = {}
        now = time.monotonic()
        with self.lock:
            for spec, name, m, lo, hi in wanted:
                key = (spec.name, spec.spec_hash, m)
                kept = self.minutes.get(key)
                if kept is None:                  # dropped meanwhile: read them all as the previous design did
                    return leading_edges(rollups, windows, at)
                self.used[key] = now
                for group, d_ms, good, total in kept:
                    if lo <= d_ms < hi:
                        g, t = out.get((spec.name, group, name), (0, 0))
                        out[(spec.name, group, name)] = (g + good, t + total)
            for key in [k for k in self.minutes if now - self.used.get(k, now) > _UNUSED_FOR]:
                del self.minutes[key]
                self.used.pop(key, None)
            for key in self.minutes:
                self.used.setdefault(key, now)
        return out


def _minute(t: dt.datetime) -> int:
    return epoch_ms(t) // 60_000

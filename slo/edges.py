"""Exact burn-rate windows: the sub-minute leading edge of each window, counted from raw rows.

A window of length L evaluated at instant `at` covers exactly (at − L, at]: an event counts when its decision time
d (docs/slo-policy.md: journeys are decided at min(end, start + threshold), spans at their start) satisfies
at − L < d ≤ at. The engine builds it from three parts:

* the whole minutes [floor(at) − L + 1m, floor(at)) from the `slo_minutes` rollup (cost: minutes, not rows);
* the minute containing `at`, counted with decisions ≤ at (stored by the pass that ran at `at`, else live);
* the leading edge: the part of minute floor(at) − L after at − L, i.e. decisions in
  (at − L, floor(at) − L + 1m) — counted here from raw rows, one UNION ALL round trip for every SLO and every
  window length (≤ 1 minute of decisions per window; journeys read their starts up to the threshold before).

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
from collections.abc import Iterable

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

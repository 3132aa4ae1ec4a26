"""SLO history for charts: good/total per time bucket, read from the `slo_minutes` rollup in one query.

The rollup holds, per SLO, group and minute, the latest (FINAL) good/total of the SLO's current spec hash, so a
series is a sum over minutes — no raw events are read, and the cost grows with minutes × SLOs, not with events.
`bucket_series` counts time-slice SLOs in minutes (a minute is good when its own ratio meets the slice target) —
the SLI and burn-rate charts; `slice_series` counts their slices as the engine scores them — the budget chart.
Buckets are aligned to the epoch and returned dense (empty buckets as 0/0) from `lo` up to `hi`.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from revwatch.store import Store
from slo.adjustments import AdjustmentBook, adjusted_columns
from revwatch.units import epoch_millis as ms
from slo.spec import SloSpec


@dataclass(frozen=True)
class Bucket:
    start: dt.datetime
    good: float                  # events, minutes or slices (a whole number), or ratio_timeslices' ratio sum
    total: int

    @property
    def bad(self) -> float:
        return self.total - self.good

    def burn_rate(self, objective: float) -> float:
        """Error ratio of the bucket over the allowed error ratio (0 when it has no events)."""
        return (self.bad / self.total) / (1 - objective) if self.total else 0.0

    @property
    def sli(self) -> float | None:
        return self.good / self.total if self.total else None


@dataclass
class Series:
    """Dense buckets per (slo, group); `of` gives all-zero buckets for a pair without rows."""
    starts: list[dt.datetime]
    counts: dict[tuple[str, str], dict[dt.datetime, tuple[float, int]]]

    def of(self, slo: str, group: str) -> list[Bucket]:
        by = self.counts.get((slo, group), {})
        return [Bucket(s, *by.get(s, (0, 0))) for s in self.starts]


def _grid(lo: dt.datetime, hi: dt.datetime, bucket: dt.timedelta) -> tuple[int, dt.datetime, list[dt.datetime]]:
    """(minutes per bucket, first bucket start, bucket starts): buckets aligned to the epoch, covering [lo, hi)."""
    minutes = max(1, int(bucket.total_seconds() // 60))
    step = dt.timedelta(minutes=minutes)
    first = dt.datetime.fromtimestamp((int(lo.timestamp()) // (minutes * 60)) * minutes * 60, dt.timezone.utc)
    starts = []
    t = first
    while t < hi:
        starts.append(t)
        t += step
    return minutes, first, starts


def _minutes_source(store: Store, specs: list[SloSpec], params: dict, plans: dict) -> str:
    """The rollup minutes of `specs` (current spec hash) in [{lo}, {hi}), adjusted as in every evaluation, with
    the columns Slo, GroupKey, Minute, g, t; fills `params` (names, hashes, adjustment intervals)."""
    params.update(names=[s.name for s in specs], hashes=[s.spec_hash for s in specs])
    return f"""
    SELECT Slo, GroupKey, Minute, {adjusted_columns(params, plans)}
    FROM {store.table('slo_minutes')} FINAL
    WHERE (Slo, SpecHash) IN (SELECT arrayJoin(arrayZip({{names:Array(String)}}, {{hashes:Array(String)}})))
      AND Minute >= fromUnixTimestamp64Milli({{lo:Int64}}, 'UTC')
      AND Minute < fromUnixTimestamp64Milli({{hi:Int64}}, 'UTC')"""


def _series(starts: list[dt.datetime], rows: list[tuple]) -> Series:
    sparse: dict[tuple[str, str], dict[dt.datetime, tuple[float, int]]] = {}
    for slo, group, b, good, total in rows:
        sparse.setdefault((slo, group), {})[b.replace(tzinfo=dt.timezone.utc)] = (good, int(total))
    return Series(starts, sparse)


def bucket_series(store: Store, specs: list[SloSpec], lo: dt.datetime, hi: dt.datetime,
                  bucket: dt.timedelta, adjustments: AdjustmentBook | None = None) -> Series:
    """Dense buckets covering [lo, hi) for every spec and group, in one round trip; with `adjustments`, budget
    adjustments apply as in every evaluation (slo/adjustments.py), so charts and numbers agree."""
    minutes, first, starts = _grid(lo, hi, bucket)
    if not specs:
        return Series(starts, {})
    params: dict = {}
    plans = adjustments.plans([s.name for s in specs], first, hi) if adjustments is not None else {}
    source = _minutes_source(store, specs, params, plans)
    rows = store.query(f"""
SELECT Slo, GroupKey, toStartOfInterval(Minute, toIntervalMinute({{m:UInt32}})) AS B,
       if(ts = 1, countIf(t > 0 AND g / t >= target), sum(g)) AS G,
       if(ts = 1, countIf(t > 0), sum(t)) AS T
FROM (
    SELECT *, transform(Slo, {{names:Array(String)}}, {{timeslices:Array(UInt8)}}, toUInt8(0)) AS ts,
           transform(Slo, {{names:Array(String)}}, {{targets:Array(Float64)}}, toFloat64(1)) AS target
    FROM ({source})
)
GROUP BY Slo, GroupKey, B, ts ORDER BY B""",
        {**params, "m": minutes, "lo": ms(first), "hi": ms(hi),
         "timeslices": [int(s.config.budgeting == "timeslices") for s in specs],
         "targets": [float(s.config.timeslice_target or s.config.objective) for s in specs]}).rows
    return _series(starts, [(slo, g, b, int(good), total) for slo, g, b, good, total in rows])


def slice_series(store: Store, spec: SloSpec, lo: dt.datetime, hi: dt.datetime, bucket: dt.timedelta,
                 adjustments: AdjustmentBook | None = None, clip_from: dt.datetime | None = None) -> Series:
    """The time slices of a `timeslices` / `ratio_timeslices` SLO per bucket, scored as the engine scores them
    (slo/engine.py): slices aligned to multiples of `timeslice_window` since the epoch, a slice with data counts 1
    in the total and, good, 1 (`timeslices`: its good/total meets `timeslice_target`) or its ratio
    (`ratio_timeslices`). A slice belongs to the bucket of its first minute with data; minutes before `clip_from`
    (the SLO window's start) are left out, as the engine clips a slice straddling the window's start. So a bucket's
    `bad` is in the budget's own unit, slices — what the SLO page's budget chart needs."""
    minutes, first, starts = _grid(lo, hi, bucket)
    params: dict = {}
    plans = adjustments.plans([spec.name], first, hi) if adjustments is not None else {}
    source = _minutes_source(store, [spec], params, plans)
    score = "toFloat64(G / T >= {target:Float64})" if spec.config.budgeting == "timeslices" else "G / T"
    rows = store.query(f"""
SELECT Slo, GroupKey, toStartOfInterval(F, toIntervalMinute({{m:UInt32}})) AS B, sum({score}) AS Good,
       count() AS Total
FROM (
    SELECT Slo, GroupKey, intDiv(toInt64(toUnixTimestamp(Minute)), {{length:Int64}}) AS slice,
           minIf(Minute, t > 0) AS F, sum(g) AS G, sum(t) AS T
    FROM ({source})
    GROUP BY Slo, GroupKey, slice
    HAVING T > 0
)
GROUP BY Slo, GroupKey, B ORDER BY B""",
        {**params, "m": minutes, "lo": ms(max(first, clip_from) if clip_from else first), "hi": ms(hi),
         "length": int(spec.config.timeslice_window.total_seconds()),
         "target": float(spec.config.timeslice_target or spec.config.objective)}).rows
    return _series(starts, [(slo, g, b, float(good), total) for slo, g, b, good, total in rows])


def burn_down(buckets: list[Bucket], objective: float) -> list[float]:
    """Error budget remaining (ratio of the allowed bad events of the whole window) after each bucket."""
    total = sum(b.total for b in buckets)
    allowed = (1 - objective) * total
    out: list[float] = []
    bad = 0.0
    for b in buckets:
        bad += b.bad
        out.append(1 - bad / allowed if allowed > 0 else (1.0 if bad == 0 else -1.0))
    return out

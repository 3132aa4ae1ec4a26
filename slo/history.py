"""SLO history for charts: good/total per time bucket, read from the `slo_minutes` rollup in one query.

The rollup holds, per SLO, group and minute, the latest (FINAL) good/total of the SLO's current spec hash, so a
series is a sum over minutes — no raw events are read, and the cost grows with minutes × SLOs, not with events.
Time-slice SLOs count minutes (a minute is good when its own ratio meets the slice target), as the engine does.
Buckets are aligned to the epoch and returned dense (empty buckets as 0/0) from `lo` up to `hi`.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from revwatch.store import Store
from slo.adjustments import AdjustmentBook, adjusted_columns
from slo.sli import ms
from slo.spec import SloSpec


@dataclass(frozen=True)
class Bucket:
    start: dt.datetime
    good: int
    total: int

    @property
    def bad(self) -> int:
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
    counts: dict[tuple[str, str], dict[dt.datetime, tuple[int, int]]]

    def of(self, slo: str, group: str) -> list[Bucket]:
        by = self.counts.get((slo, group), {})
        return [Bucket(s, *by.get(s, (0, 0))) for s in self.starts]


def bucket_series(store: Store, specs: list[SloSpec], lo: dt.datetime, hi: dt.datetime,
                  bucket: dt.timedelta, adjustments: AdjustmentBook | None = None) -> Series:
    """Dense buckets covering [lo, hi) for every spec and group, in one round trip; with `adjustments`, budget
    adjustments apply as in every evaluation (slo/adjustments.py), so charts and numbers agree."""
    minutes = max(1, int(bucket.total_seconds() // 60))
    step = dt.timedelta(minutes=minutes)
    first = dt.datetime.fromtimestamp((int(lo.timestamp()) // (minutes * 60)) * minutes * 60, dt.timezone.utc)
    starts = []
    t = first
    while t < hi:
        starts.append(t)
        t += step
    if not specs:
        return Series(starts, {})
    params: dict = {}
    plans = adjustments.plans([s.name for s in specs], first, hi) if adjustments is not None else {}
    cols = adjusted_columns(params, plans)
    rows = store.query(f"""
SELECT Slo, GroupKey, toStartOfInterval(Minute, toIntervalMinute({{m:UInt32}})) AS B,
       if(ts = 1, countIf(t > 0 AND g / t >= target), sum(g)) AS G,
       if(ts = 1, countIf(t > 0), sum(t)) AS T
FROM (
    SELECT Slo, GroupKey, Minute, {cols},
           transform(Slo, {{names:Array(String)}}, {{timeslices:Array(UInt8)}}, toUInt8(0)) AS ts,
           transform(Slo, {{names:Array(String)}}, {{targets:Array(Float64)}}, toFloat64(1)) AS target
    FROM {store.table('slo_minutes')} FINAL
    WHERE (Slo, SpecHash) IN (SELECT arrayJoin(arrayZip({{names:Array(String)}}, {{hashes:Array(String)}})))
      AND Minute >= fromUnixTimestamp64Milli({{lo:Int64}}, 'UTC')
      AND Minute < fromUnixTimestamp64Milli({{hi:Int64}}, 'UTC')
)
GROUP BY Slo, GroupKey, B, ts ORDER BY B""",
        {**params, "m": minutes, "lo": ms(first), "hi": ms(hi), "names": [s.name for s in specs],
         "hashes": [s.spec_hash for s in specs],
         "timeslices": [int(s.config.budgeting == "timeslices") for s in specs],
         "targets": [float(s.config.timeslice_target or s.config.objective) for s in specs]}).rows
    sparse: dict[tuple[str, str], dict[dt.datetime, tuple[int, int]]] = {}
    for slo, group, b, good, total in rows:
        sparse.setdefault((slo, group), {})[b.replace(tzinfo=dt.timezone.utc)] = (int(good), int(total))
    return Series(starts, sparse)


def burn_down(buckets: list[Bucket], objective: float) -> list[float]:
    """Error budget remaining (ratio of the allowed bad events of the whole window) after each bucket."""
    total = sum(b.total for b in buckets)
    allowed = (1 - objective) * total
    out, bad = [], 0
    for b in buckets:
        bad += b.bad
        out.append(1 - bad / allowed if allowed > 0 else (1.0 if bad == 0 else -1.0))
    return out

"""The rollup's minutes held in memory between evaluation passes: every window of every SLO from one minute series.

Why: a pass used to re-read `slo_minutes FINAL` over 30 days for every SLO (and once more per coverage-hold as-of
evaluation), so its cost grew with history × passes. A past minute only changes when the rollup rewrites it (late
data, or time deciding it — slo/rollup.py), and every rewrite carries a higher `Version`. So each pass reads only the
rows written since the previous one (`Version > watermark`: a scan of one column, no raw rows), lays them into
per-(SLO, group) integer arrays indexed by minute, and sums windows with cumulative sums in numpy. The cost of a
pass grows with minutes × groups; rows that changed are read once.

Invariants:
* the arrays hold, for every minute read, the latest Version's Good/Total (what `FINAL` returns), zero rows included
  (`present` marks minutes with a row, so the set of groups is the one the SQL read saw);
* one writer of `slo_minutes` (the evaluator, slo/rollup.py) writes increasing versions (`time.time_ns()`), each
  insert whole; a reader that has seen version V has seen every row written before it. A spec whose hash changed is
  a new key (its old arrays are dropped with it);
* pending rollup rows (the overlay a read lays over the stored minutes) are never put in the arrays: they are
  applied to a copy of the series they touch for one pass (`view`).
"""
from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass, field

import numpy as np

from revwatch.store import Store
from revwatch.units import epoch_millis as ms

_DAY = 1440                                # minutes
MINUTE = dt.timedelta(minutes=1)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def minute_index(t: dt.datetime) -> int:
    """Whole minutes since the epoch of a minute start (naive datetimes are UTC, as the store returns them)."""
    return int(((t.replace(tzinfo=dt.timezone.utc) if t.tzinfo is None else t) - _EPOCH) // MINUTE)


@dataclass
class Series:
    """One SLO group's minutes [origin, origin + len): good, total and whether a rollup row exists."""
    origin: int
    good: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    total: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    present: np.ndarray = field(default_factory=lambda: np.zeros(0, np.bool_))

    def cover(self, lo: int, hi: int) -> None:
        """Grow the arrays (a day at a time) so that minutes [lo, hi) have a slot."""
        if not len(self.good):
            self.origin = lo - lo % _DAY
        start = min(self.origin, lo - lo % _DAY)
        end = max(self.origin + len(self.good), hi + _DAY - hi % _DAY)
        if start == self.origin and end == self.origin + len(self.good):
            return
        pad_lo, pad_hi = self.origin - start, end - self.origin - len(self.good)
        self.good = np.pad(self.good, (pad_lo, pad_hi))
        self.total = np.pad(self.total, (pad_lo, pad_hi))
        self.present = np.pad(self.present, (pad_lo, pad_hi))
        self.origin = start

    def trim(self, keep_from: int) -> None:
        """Forget minutes before `keep_from` (whole days), so that memory stays bounded by the kept history."""
        cut = (keep_from - self.origin) // _DAY * _DAY
        if cut > 0:
            self.good, self.total, self.present = self.good[cut:], self.total[cut:], self.present[cut:]
            self.origin += cut

    def put(self, idx: np.ndarray, good: np.ndarray, total: np.ndarray) -> None:
        self.cover(int(idx.min()), int(idx.max()) + 1)
        i = idx - self.origin
        self.good[i], self.total[i], self.present[i] = good, total, True

    def copy(self) -> Series:
        return Series(self.origin, self.good.copy(), self.total.copy(), self.present.copy())


class MinuteCache:
    """Per (SLO, spec hash): {group: Series}, brought up to date with the rows written since the last `sync`."""

    def __init__(self, store: Store):
        self.store = store
        self.lock = threading.Lock()
        self.series: dict[tuple[str, str], dict[str, Series]] = {}
        self.watermark: dict[tuple[str, str], int] = {}
        self.rows_read = 0                 # new rows laid in by the latest sync (bench/slo_eval.py prints it)
        self.rows_fetched = 0              # rows the latest sync's query returned (new or not)

    def sync(self, keys: list[tuple[str, str]], keep_from: dt.datetime) -> dict[str, np.ndarray]:
        """Read the rows written since the last sync for these (SLO, spec hash) keys (all rows for a key seen the
        first time), minutes ≥ `keep_from`; returns the minute indexes that changed per SLO. Call under `lock`."""
        names, wanted = {n for n, _ in keys}, set(keys)
        for k in list(self.series):
            if k[0] in names and k not in wanted:                     # the SLO's definition changed
                del self.series[k], self.watermark[k]
        floor = min((self.watermark.get(k, 0) for k in keys), default=0)
        rows = self.store.query(
            f"SELECT Slo, SpecHash, GroupKey, toInt64(intDiv(toUnixTimestamp(Minute), 60)) AS m, "
            f"argMax(Good, Version), argMax(Total, Version), max(Version) "
            f"FROM {self.store.table('slo_minutes')} PREWHERE Version > {{floor:UInt64}} "
            f"WHERE (Slo, SpecHash) IN (SELECT arrayJoin(arrayZip({{names:Array(String)}}, {{hashes:Array(String)}})))"
            f" AND Minute >= fromUnixTimestamp64Milli({{keep:Int64}}, 'UTC') "
            f"GROUP BY Slo, SpecHash, GroupKey, m",
            {"floor": floor, "names": [n for n, _ in keys], "hashes": [h for _, h in keys], "keep": ms(keep_from)}
        ).rows
        changed: dict[str, list[np.ndarray]] = {}
        by_series: dict[tuple[str, str, str], list[tuple[int, int, int, int]]] = {}
        for slo, h, g, m, good, total, version in rows:
            if int(version) > self.watermark.get((slo, h), 0):
                by_series.setdefault((slo, h, g), []).append((int(m), int(good), int(total), int(version)))
        self.rows_read = sum(map(len, by_series.values()))
        self.rows_fetched = len(rows)
        for (slo, h, g), items in by_series.items():
            arr = np.array(items, dtype=np.int64)
            s = self.series.setdefault((slo, h), {}).setdefault(g, Series(0))
            s.put(arr[:, 0], arr[:, 1], arr[:, 2])
            changed.setdefault(slo, []).append(arr[:, 0])
        for slo, h, _g, _m, _good, _total, version in rows:
            self.watermark[(slo, h)] = max(self.watermark.get((slo, h), 0), int(version))
        # a key with no row newer than the floor has seen every version up to the newest read (one writer,
        # increasing versions): without this, an SLO with no rollup rows at all (no traffic, a money SLO whose
        # journey carries no amounts yet) held the floor at 0 and every sync re-read every SLO's rows
        newest = max((int(r[6]) for r in rows), default=floor)
        for k in keys:
            self.watermark[k] = max(self.watermark.get(k, 0), newest if k in wanted else 0)
            for s in self.series.get(k, {}).values():
                s.trim(minute_index(keep_from))
        return {slo: np.concatenate(parts) for slo, parts in changed.items()}

    def groups(self, key: tuple[str, str]) -> dict[str, Series]:
        return self.series.get(key, {})


def view(series: Series | None, lo: int, hi: int, overlay: list[tuple[int, int, int]],
         exclude: list[tuple[int, int]], good_iv: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(good, total, present) of minutes [lo, hi) of one series, with the pending `overlay` rows (minute index,
    good, total) laid over and the budget adjustments applied (excluded minutes count nothing, `good` minutes count
    their events as good: slo/adjustments.py, as `adjusted_columns` does in SQL). Fresh arrays."""
    n = max(hi - lo, 0)
    g, t, p = np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, np.bool_)
    if series is not None and len(series.good):
        a, b = max(lo, series.origin), min(hi, series.origin + len(series.good))
        if a < b:
            g[a - lo:b - lo] = series.good[a - series.origin:b - series.origin]
            t[a - lo:b - lo] = series.total[a - series.origin:b - series.origin]
            p[a - lo:b - lo] = series.present[a - series.origin:b - series.origin]
    for m, og, ot in overlay:
        if lo <= m < hi:
            g[m - lo], t[m - lo], p[m - lo] = og, ot, True
    for a, b in good_iv:
        a, b = max(a, lo) - lo, min(b, hi) - lo
        if a < b:
            g[a:b] = t[a:b]
    for a, b in exclude:
        a, b = max(a, lo) - lo, min(b, hi) - lo
        if a < b:
            g[a:b] = 0
            t[a:b] = 0
    return g, t, p


def window_sums(g: np.ndarray, t: np.ndarray, lo: int, starts: dict[str, int], end: int, kind: int,
                target: float) -> tuple[dict[str, tuple[float, int, int]], int | None]:
    """Per window [start, end) (minute indexes; the arrays hold minutes [lo, …)): (good, total, minutes with data),
    and the latest minute with data in the window named 'slo'. `kind`: 0 counts (events, money units), 1 one-minute
    time slices (good when good/total ≥ target), 2 one-minute ratio slices (the sum of the minutes' ratios) — what
    `SloEngine._rollup_sums` computes in SQL."""
    has = t > 0
    if kind == 0:
        score, unit = g, t
    else:
        ratio = np.divide(g, t, out=np.zeros(len(g), np.float64), where=has)
        score = (has & (ratio >= target)).astype(np.int64) if kind == 1 else ratio
        unit = has.astype(np.int64)
    out: dict[str, tuple[float, int, int]] = {}
    for w, start in starts.items():
        a, b = max(start - lo, 0), max(end - lo, 0)
        sg = score[a:b].sum()
        out[w] = (float(sg) if kind == 2 else int(sg), int(unit[a:b].sum()), int(has[a:b].sum()))
    last = None
    a, b = max(starts["slo"] - lo, 0), max(end - lo, 0)
    nz = np.flatnonzero(has[a:b])
    if len(nz):
        last = lo + a + int(nz[-1])
    return out, last

"""The rollup minutes time decides, counted from the journey instance cache instead of raw rows.

Why: every evaluator pass recomputes the minutes that time alone decided since the previous pass (an instance
without its end becomes bad when its threshold passes). In SQL that read grouped the raw milestones (and, for money
SLOs, the start events) of every instance that could be decided in those minutes — the longest threshold back —
once per journey: ~80 % of the money set's pass at 2 M events (cProfile: 3.2 of 3.9 s under load), growing with
the rows in a threshold's worth of history. The journey instance cache (revwatch/journeys/cache.py) already holds
every instance of the kept days, kept current from what was ingested since its last sync; counting the decisions
of a few minutes from it is numpy over the instances started since the longest threshold before them.

The counts equal `RollupMaintainer.counts_between`'s (slo/sli.py `journey_minutes_sql`), rule for rule, per batch
of specs sharing start and end (their read bounds depend on the batch's longest threshold t_max):
* an instance is a correlation ID with a start among its milestones in [lo − t_max, hi_end + t_max); s and e are
  the first start and end in that range (the cache's first copy at or after the lower bound, none if it lies past
  the upper one);
* good = has an end and e ≤ s + t; the decision lies at max(e, s) when good, else at s + t; counted when in
  [lo, hi_end) and ≤ cutoff, and the start in [lo − t, hi_end);
* weight 1, or for `budgeting: amount` the start event's |amount| in 1/AMOUNT_SCALE units, truncated
  (`toUInt64(abs(amt) * 10000)`), only instances whose start carries an amount; the group key is the SLI's own
  (`journey_group_key`), the currency last for money SLOs;
* the start event's amount, currency, source and attributes are the cache's (any copy at or after its floor, as
  attribution, funnels and forecasts read them; copies of one start event carry the same ones).
A batch the cache cannot answer exactly (its journey unknown to the cache, amounts beyond its int64 billionths, a
lower bound before the kept history) is left to SQL.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import numpy as np

from revwatch.config import JourneyConfig
from revwatch.journeys.cache import InstanceCache, group_codes, masked_times, money_sum, started_since, to_datetime
from revwatch.journeys.money import AMOUNT_SCALE
from revwatch.journeys.sql import steps_of
from slo.sli import batch_key, journey_group_key
from slo.spec import SloSpec

_PER_UNIT = 10 ** 9 // AMOUNT_SCALE        # billionths per 1/AMOUNT_SCALE unit
_MINUTE_MS = 60_000


Request = tuple[list[SloSpec], int, int, int]          # (specs, lo_ms, hi_end_ms, cutoff_ms)
Row = tuple[int, str, str, dt.datetime, int, int]       # (request index, Slo, GroupKey, Minute, Good, Total)


def decided_counts(cache: InstanceCache, journeys: Mapping[str, JourneyConfig], requests: list[Request],
                   per_ms: bool = False) -> tuple[list[Row], list[tuple[int, Request]]]:
    """What `RollupMaintainer.counts_between(requests, per_ms)` returns for the batches the cache answers, and the
    (request index, request) pairs left to SQL (the specs of a request the cache cannot answer). `per_ms`: rows per
    decision millisecond (Minute holds it: the exact windows' edge minutes, slo/edges.py). Syncs the cache first
    (once for all, even inside an enclosing `one_sync` scope: the counts must see every row the caller's ingest-log
    read saw)."""
    rows: list[Row] = []
    rest: list[tuple[int, Request]] = []
    with cache.one_sync(fresh=True):
        for r, (specs, lo_ms, hi_end_ms, cutoff_ms) in enumerate(requests):
            batches: dict[tuple, list[SloSpec]] = {}
            for spec in specs:
                batches.setdefault(batch_key(spec), []).append(spec)
            left: list[SloSpec] = []
            for batch in batches.values():
                found = _batch(cache, journeys, batch, lo_ms, hi_end_ms, cutoff_ms, per_ms)
                if found is None:
                    left += batch
                else:
                    rows += [(r, *row) for row in found]
            if left:
                rest.append((r, (left, lo_ms, hi_end_ms, cutoff_ms)))
    return rows, rest


def _journey_of(journeys: Mapping[str, JourneyConfig], spec: SloSpec) -> JourneyConfig | None:
    j = journeys.get(spec.config.journey or "")
    if j is None or j.start != spec.start_type or j.end != spec.end_type:
        return None
    return j


def _batch(cache: InstanceCache, journeys: Mapping[str, JourneyConfig], batch: list[SloSpec], lo_ms: int,
           hi_end_ms: int, cutoff_ms: int, per_ms: bool) -> list[tuple[str, str, dt.datetime, int, int]] | None:
    first = batch[0]
    if not first.is_journey:
        return None
    j = _journey_of(journeys, first)
    if j is None or not cache.knows(j):
        return None
    t_max = max(int(s.threshold.total_seconds() * 1000) for s in batch)
    low, high = lo_ms - t_max, hi_end_ms + t_max
    since = to_datetime(low)
    wall = dt.datetime.now(dt.timezone.utc)
    if not cache.covers(since, wall) or (cache.floor is not None and since < cache.floor):
        return None
    t = cache.table_of(j, since, wall)
    if not t.exact or t.steps != steps_of(j):
        return None
    rows = started_since(t, low)
    ts = masked_times(t, low, rows)
    ts[ts >= high] = 0                       # the first copy at or after `low` lies past the range: none in it
    inside = ts[:, 0] > 0
    rows, ts = rows[inside], ts[inside]
    s, e = ts[:, 0], ts[:, -1]
    known = t.own_has[rows, 0]
    units = np.abs(t.own_amt[rows, 0]) // _PER_UNIT
    out: list[tuple[str, str, dt.datetime, int, int]] = []
    for spec in batch:
        t_ms = int(spec.threshold.total_seconds() * 1000)
        amount = spec.config.budgeting == "amount"
        good = (e > 0) & (e <= s + t_ms)
        decision = np.where(good, np.maximum(e, s), s + t_ms)
        sel = (s >= lo_ms - t_ms) & (s < hi_end_ms) & (decision >= lo_ms) & (decision < hi_end_ms) \
            & (decision <= cutoff_ms)
        if amount:
            sel &= known
        idx = np.flatnonzero(sel)
        if not len(idx):
            continue
        keys, gcode = group_codes(cache, t, rows[idx], journey_group_key(spec), tuple(spec.config.group_by))
        minute = decision[idx] // (1 if per_ms else _MINUTE_MS)
        first_minute = int(minute.min())
        span = int(minute.max()) - first_minute + 1
        combo = gcode * span + (minute - first_minute)
        uniq, inv = np.unique(combo, return_inverse=True)
        w = units[idx] if amount else np.ones(len(idx), np.int64)
        totals = money_sum(w, inv, len(uniq))
        goods = money_sum(np.where(good[idx], w, 0), inv, len(uniq))
        for u, tot, gd in zip(uniq.tolist(), totals, goods):
            g, m = divmod(u, span)
            out.append((spec.name, keys[g], to_datetime((first_minute + m) * (1 if per_ms else _MINUTE_MS)), gd, tot))
    return out

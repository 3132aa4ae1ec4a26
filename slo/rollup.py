"""Incremental per-minute rollups of SLIs (`slo_minutes`), kept exact under late, out-of-order and duplicated data.

Each pass reads `ingest_log` (which minutes of which event types / services / samples received data since the
last pass) and recomputes, from the deduplicating SLI queries, only the minutes those rows can affect:
[m, m + 2 × threshold] for journeys (a start or an end at minute m can move a decision anywhere up to
m + threshold, and a copy re-delivered earlier moves the previous copy's decision, up to m + 2 × threshold:
slo/sli.py `dirty_span`), [m, m] for spans and gauges, plus the minutes that time alone decided since the
previous pass.
A spec seen for the first time (or whose definition changed: new spec hash) is built over its whole window.
Rewritten minutes get a higher Version; readers take argMax, so a pass is atomic per minute. The ingest log is
re-read a minute back (inserts in flight become visible late); insert times already handled are remembered, so
a pass with nothing new recomputes only the minutes time itself decided.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from revwatch.store import Store
from revwatch.units import epoch_millis as ms
from slo.sli import batch_key, dirty_span, minutes_sql, touches
from slo.spec import SloSpec

log = logging.getLogger("revwatch.slo.rollup")
MINUTE = dt.timedelta(minutes=1)
_SAFETY = dt.timedelta(seconds=60)       # re-read ingest_log this far back: inserts in flight become visible late
_CURSOR_KEY = "slo:rollup:cursor"
_MAX_SQL = 200_000                       # characters of SQL per round trip (the server refuses > 256 KiB)


def floor_minute(t: dt.datetime) -> dt.datetime:
    """The start of the minute containing t."""
    return t.replace(second=0, microsecond=0)


def merge_ranges(ranges: list[tuple[dt.datetime, dt.datetime]], gap: dt.timedelta = dt.timedelta(hours=1),
                 max_ranges: int = 40) -> list[tuple[dt.datetime, dt.datetime]]:
    """Merge inclusive minute ranges that overlap or lie within `gap` of each other; at most `max_ranges`."""
    out: list[list[dt.datetime]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + gap:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    if len(out) > max_ranges:
        return [(out[0][0], max(r[1] for r in out))]
    return [(a, b) for a, b in out]


class RollupMaintainer:
    """Keeps `slo_minutes` current for a set of specs."""

    def __init__(self, store: Store, specs: list[SloSpec], cursor_key: str = _CURSOR_KEY):
        """`cursor_key`: where the ingest-log cursor lives (kv_state). One evaluator per store uses the default; a
        second maintainer over other specs on the same store (bench/slo_eval.py's two SLO sets) needs its own, or
        each consumes the other's late-data minutes and time-decided range."""
        self.store = store
        self.specs = specs
        self.cursor_key = cursor_key
        self._lock = threading.Lock()
        self.refreshed_at: dt.datetime | None = None
        # per SLO, the minute ranges that new data (not time) can have changed, as of the latest plan: what a read
        # with the pending overlay invalidates in the exact-window edge cache (slo/edges.py)
        self.touched: dict[str, list[tuple[dt.datetime, dt.datetime]]] = {}
        # counts from memory (slo/decided.py, set by SloEngine): (requests as `counts_between` takes them, per_ms)
        # → (rows as `counts_between` returns them, the (request index, request) pairs left to SQL)
        self.decided: Callable[[list[tuple[list[SloSpec], int, int, int]], bool],
                               tuple[list[tuple[int, str, str, dt.datetime, int, int]],
                                     list[tuple[int, tuple[list[SloSpec], int, int, int]]]]] | None = None

    def _history(self, spec: SloSpec, now: dt.datetime) -> dt.timedelta:
        return max(spec.period(now), dt.timedelta(days=3)) + dt.timedelta(days=1)

    def refresh(self, now: dt.datetime) -> dict:
        """Bring the rollups up to `now` (the evaluator's job: the only writer of `slo_minutes`); returns
        {'recomputed': {slo: minutes}, 'seconds': s}."""
        t0 = time.perf_counter()
        with self._lock:
            pending_rows, cursor, done = self._plan(now)
            self.store.insert("slo_minutes", pending_rows,
                              ["Slo", "SpecHash", "GroupKey", "Minute", "Good", "Total", "Version"])
            self.refreshed_at = now
            self.store.put_state(self.cursor_key, json.dumps(cursor))
        return {"recomputed": done, "seconds": time.perf_counter() - t0}

    def pending(self, now: dt.datetime) -> list[tuple]:
        """The rows a refresh at `now` would write, computed but not written: what readers overlay on the stored
        minutes so that a read is as exact as a refresh without ever writing (two servers on one ClickHouse
        must not both write rollups)."""
        with self._lock:
            return self._plan(now)[0]

    def _plan(self, now: dt.datetime) -> tuple[list[tuple], dict, dict]:
        """(rows to write, the cursor after writing them, minutes recomputed per SLO); reads only."""
        raw = self.store.get_state(self.cursor_key)
        cursor: dict[str, Any] = json.loads(raw) if raw else {"ingest_ms": 0, "now_ms": 0, "built": {}, "seen": []}
        since = max(cursor["ingest_ms"] - int(_SAFETY.total_seconds() * 1000), 0)
        r = self.store.query(
            f"SELECT Kind, Key, Minute, toUnixTimestamp64Milli(IngestedAt) AS at FROM {self.store.table('ingest_log')} "
            f"WHERE IngestedAt > fromUnixTimestamp64Milli({{since:Int64}}, 'UTC') GROUP BY Kind, Key, Minute, at",
            {"since": since})
        # rows of the safety window that an earlier pass already handled are skipped by their insert time
        seen = set(cursor.get("seen", []))
        dirty = [(k, key, m.replace(tzinfo=dt.timezone.utc)) for k, key, m, at in r.rows if at not in seen]
        newest = max((at for *_, at in r.rows), default=cursor["ingest_ms"])
        horizon = max(newest, cursor["ingest_ms"]) - int(_SAFETY.total_seconds() * 1000)
        cursor["seen"] = sorted({at for *_, at in r.rows if at > horizon} | {x for x in seen if x > horizon})
        prev_now = dt.datetime.fromtimestamp(cursor["now_ms"] / 1000, dt.timezone.utc) if cursor["now_ms"] else None
        now_min = floor_minute(now)
        version = time.time_ns()
        done, pending_rows, time_only = {}, [], []
        touched: dict[str, list[tuple[dt.datetime, dt.datetime]]] = {}
        rewrites: list[tuple[SloSpec, dt.datetime, dt.datetime]] = []
        for spec in self.specs:
            span = dirty_span(spec)
            touched[spec.name] = merge_ranges([(m, min(m + span, now_min)) for kind, key, m in dirty
                                               if touches(spec, kind, key) and m <= now_min])
            built_key = f"{spec.name}:{spec.spec_hash}"
            if built_key not in cursor["built"] or prev_now is None:
                data_ranges, time_range = [(now_min - self._history(spec, now), now_min)], None
            else:
                data_ranges = touched[spec.name]
                time_range = (floor_minute(prev_now) - MINUTE, now_min)
            rewrites += [(spec, lo, hi) for lo, hi in data_ranges]
            if time_range and not any(lo <= time_range[0] and time_range[1] <= hi for lo, hi in data_ranges):
                time_only.append(spec)                       # only time passed: counts can only grow
            cursor["built"][built_key] = 1
            done[spec.name] = 0
        for spec, rows in self.rewrite_rows(rewrites, now, version):   # data changed: minutes may also lose counts
            pending_rows += rows
            done[spec.name] += len(rows)
        if time_only and prev_now is not None:               # one round trip for all of them
            lo, hi = floor_minute(prev_now) - MINUTE, now_min
            for name, g, m, good, total in self.minute_counts_many(time_only, lo, hi, now, from_memory=True):
                spec = next(x for x in time_only if x.name == name)
                pending_rows.append((name, spec.spec_hash, g, m, good, total, version))
                done[name] += 1
        cursor.update(ingest_ms=max(newest, cursor["ingest_ms"]), now_ms=ms(now))
        self.touched = touched
        return pending_rows, cursor, done

    def rewrite_rows(self, rewrites: list[tuple[SloSpec, dt.datetime, dt.datetime]], cutoff: dt.datetime,
                     version: int) -> list[tuple[SloSpec, list[tuple]]]:
        """Per (spec, lo, hi), the rollup rows that rewrite minutes [lo, hi] of that spec, counting decisions ≤
        cutoff: the fresh counts, and a zero row for each minute that had counts and lost them all (a late
        re-delivery that moves an instance's start or end moves its decision out of a minute).

        All of them in one `counts_between` call with `from_memory`: a range the journey instance cache holds
        (late data of the kept days, slo/decided.py) is counted there — a late batch used to cost one raw-row
        query per SLO and range (1.8 s for 1,000 late events at 20 M events, bench/slo_eval.py) — and the rest (a
        first build's whole history, older late data, other SLIs) in SQL, in one UNION ALL round trip. The minutes
        that had counts come from one `slo_minutes` read per chunk of ranges, not one per range."""
        if not rewrites:
            return []
        counted = self.counts_between([([spec], ms(lo), ms(hi + MINUTE), ms(cutoff)) for spec, lo, hi in rewrites],
                                      from_memory=True)
        fresh: list[list[tuple]] = [[] for _ in rewrites]
        for r, name, g, m, good, total in counted:
            fresh[r].append((name, rewrites[r][0].spec_hash, g, m, good, total, version))
        had = self._counted_minutes(rewrites)
        out = []
        for r, (spec, _, _) in enumerate(rewrites):
            now_counted = {(row[2], row[3]) for row in fresh[r]}
            out.append((spec, fresh[r] + [(spec.name, spec.spec_hash, g, m, 0, 0, version) for g, m in had[r]
                                          if (g, m) not in now_counted]))
        return out

    def _counted_minutes(self, rewrites: list[tuple[SloSpec, dt.datetime, dt.datetime]]) \
            -> list[list[tuple[str, dt.datetime]]]:
        """Per (spec, lo, hi), the (GroupKey, Minute) of [lo, hi] whose latest stored row has counts."""
        out: list[list[tuple[str, dt.datetime]]] = [[] for _ in rewrites]
        step = 200                                       # ranges per round trip: well under max_query_size
        for first in range(0, len(rewrites), step):
            part = rewrites[first:first + step]
            branches, params = [], {}
            for k, (spec, lo, hi) in enumerate(part):
                branches.append(f"(Slo = {{s{k}:String}} AND SpecHash = {{h{k}:String}} "
                                f"AND Minute >= fromUnixTimestamp64Milli({{lo{k}:Int64}}, 'UTC') "
                                f"AND Minute <= fromUnixTimestamp64Milli({{hi{k}:Int64}}, 'UTC'))")
                params.update({f"s{k}": spec.name, f"h{k}": spec.spec_hash, f"lo{k}": ms(lo), f"hi{k}": ms(hi)})
            # multiIf names the range a row falls in: the ranges of one spec never overlap (merge_ranges), and those
            # of two specs differ in Slo or SpecHash; the OR of the same conditions lets the primary key skip the rest
            name = ", ".join(f"{b}, {k}" for k, b in enumerate(branches))
            rows = self.store.query(
                f"SELECT multiIf({name}, -1) AS r, GroupKey, Minute FROM {self.store.table('slo_minutes')} "
                f"WHERE {' OR '.join(branches)} GROUP BY r, GroupKey, Minute HAVING argMax(Total, Version) > 0",
                params).rows
            for r, g, m in rows:
                out[first + int(r)].append((g, m.replace(tzinfo=dt.timezone.utc)))
        return out

    def minute_counts_many(self, specs: list[SloSpec], lo: dt.datetime, hi: dt.datetime,
                           cutoff: dt.datetime, from_memory: bool = False) \
            -> list[tuple[str, str, dt.datetime, int, int]]:
        """(Slo, GroupKey, Minute, Good, Total) of several specs over the same minutes: journey specs sharing start,
        end and grouping in one query each, all of it in one UNION ALL round trip — or, with `from_memory` (the
        minutes time decided, every pass), for the specs `decided` answers, from the journey instance cache."""
        rows = self.counts_between([(specs, ms(lo), ms(hi + MINUTE), ms(cutoff))], from_memory=from_memory)
        return [(name, g, m, good, total) for _, name, g, m, good, total in rows]

    def counts_between(self, requests: list[tuple[list[SloSpec], int, int, int]], per_ms: bool = False,
                       from_memory: bool = False) -> list[tuple[int, str, str, dt.datetime, int, int]]:
        """Counts of decisions in [lo_ms, hi_end_ms) and ≤ cutoff_ms, per minute, for each request
        (specs, lo_ms, hi_end_ms, cutoff_ms), in one UNION ALL round trip: rows (request index, Slo, GroupKey,
        Minute, Good, Total). The bounds need not be whole minutes: a minute cut by a bound counts only its part
        inside (how slo/edges.py counts the sub-minute edges of exact windows from raw rows). `per_ms`: rows per
        decision millisecond (Minute holds it). `from_memory`: the specs `decided` answers (journey SLIs, from the
        journey instance cache: the minutes time decides each pass, the exact windows' edge minutes) are counted
        there, the rest in SQL."""
        out: list[tuple[int, str, str, dt.datetime, int, int]] = []
        todo = list(enumerate(requests))
        if from_memory and self.decided is not None:
            out, todo = self.decided(requests, per_ms)
        return out + self._counts_sql(todo, per_ms)

    def _counts_sql(self, requests: list[tuple[int, tuple[list[SloSpec], int, int, int]]], per_ms: bool) \
            -> list[tuple[int, str, str, dt.datetime, int, int]]:
        """`counts_between` in SQL, for (request index, request) pairs."""
        parts, params = [], {}
        n = 0
        for r, (specs, lo_ms, hi_end_ms, cutoff_ms) in requests:
            batches: dict[tuple, list[SloSpec]] = {}
            for spec in specs:
                batches.setdefault(batch_key(spec), []).append(spec)
            for batch in batches.values():
                sql, p = minutes_sql(batch, self.store.database, narrow_ms=hi_end_ms - lo_ms, per_ms=per_ms)
                p = {**p, "lo": lo_ms, "hi_end": hi_end_ms, "cutoff": cutoff_ms}
                for k, v in p.items():                   # give each part's own parameters a unique name
                    sql = sql.replace("{" + k + ":", "{b%d_%s:" % (n, k))
                    params[f"b{n}_{k}"] = v
                parts.append(f"SELECT {r} AS req, * FROM ({sql})")
                n += 1
        rows: list = []
        chunk: list[str] = []
        for part in parts + [""]:          # round trips under ClickHouse's max_query_size (256 KiB)
            if chunk and (not part or sum(map(len, chunk)) + len(part) > _MAX_SQL):
                used = {k: v for k, v in params.items() if "{" + k + ":" in "".join(chunk)}
                rows += self.store.query("\nUNION ALL\n".join(chunk), used).rows
                chunk = []
            if part:
                chunk.append(part)
        return [(int(req), name, g, m.replace(tzinfo=dt.timezone.utc), int(good), int(total))
                for req, name, g, m, good, total in rows]

    def minute_counts(self, spec: SloSpec, lo: dt.datetime, hi: dt.datetime,
                      cutoff: dt.datetime) -> list[tuple[str, dt.datetime, int, int]]:
        """(GroupKey, Minute, Good, Total) of one spec for minutes [lo, hi], counting decisions ≤ cutoff."""
        return [row[1:] for row in self.minute_counts_many([spec], lo, hi, cutoff)]

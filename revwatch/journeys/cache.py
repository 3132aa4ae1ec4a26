"""Journey instances held in memory between calls, brought up to date incrementally: what burn attribution, funnels
and in-flight forecasts read instead of re-scanning raw milestones and events per call (docs/journeys.md
"Instance cache").

Why: each of those answers used to group every milestone and start event of its lookback into instances per call
(attribution 1.8 s per SLO, a funnel 1.3 s, a forecast 0.15 s at 2 M events), although an instance only changes
when one of its own events arrives. The cache keeps, per journey, one row per instance (the columns of
`instances_sql` with `steps`, and the money of each step's own event) in numpy arrays, and each `sync` reads only
what was ingested since the previous one: `ingest_log` names the (event type, minute) that got data, the events of
those days with a newer `IngestedAt` name the correlation IDs touched, and only those instances are re-read, whole,
through the (Type, CorrelationId) and (CorrelationId, EventId) keys. A call then costs numpy passes over the
instances of its window (a few ms for 200 k), and a sync with nothing new one query of `ingest_log`.

Invariants:
* a row holds, per step, the first time (ms; 0: not reached) over milestones at or after `floor`, and the times of
  later copies (re-deliveries with another time); a reader from `since` takes, per step, the first copy at or after
  `since` (none: not reached; no start: not an instance) — what `instances_sql` with lo = since returns;
* money per step is its own events' (`anyIf` of the non-null amounts, any currency), as `instances_money_sql` and
  the funnel read it, as integer billionths (Decimal(38, 9) exactly); an amount beyond int64 billionths marks the
  journey `exact = False` and callers use the SQL path;
* the ingest log is re-read `SAFETY` back (inserts in flight become visible late): re-reading an instance is
  idempotent. Nothing here writes.
"""
from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TypeVar, cast

import numpy as np

from revwatch.config import JourneyConfig
from revwatch.journeys.sql import instance_params, instances_sql, steps_of
from revwatch.store import Store
from revwatch.units import epoch_millis as _ms

_T = TypeVar("_T")
SAFETY = dt.timedelta(seconds=60)
HORIZON = dt.timedelta(days=8)             # kept history by default: attribution's 7-day lookback and a day
NANO = 10 ** 9
_MAX_NANOS = 2 ** 62
_BATCH = 5_000                             # correlation IDs per narrow re-read




class Interner:
    """Values ↔ small integer codes (source names, currencies, attribute sets)."""

    def __init__(self) -> None:
        self.values: list = []
        self.codes: dict = {}

    def code(self, v) -> int:
        c = self.codes.get(v)
        if c is None:
            c = self.codes[v] = len(self.values)
            self.values.append(v)
        return c


@dataclass
class JourneyTable:
    """One journey's instances, a row each (rows with ts[:, 0] == 0 are free: removed instances)."""
    steps: list[str]
    n: int = 0
    index: dict[str, int] = field(default_factory=dict)
    cids: list[str] = field(default_factory=list)
    ts: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.int64))
    src: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    attrs: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))     # code of the start's attribute set
    own_has: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.bool_))   # a non-null amount
    own_row: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.bool_))   # an event of the step
    own_amt: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.int64))   # billionths
    own_cur: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.int32))   # currency code (of amounts)
    exact: bool = True
    version: int = 0                       # bumped whenever rows change (`InstanceCache.derived` keys on it)
    # later copies of a milestone (row → [(step, ms)]): a re-delivery with another time. A read from `since`
    # takes the first copy at or after it, as the SQL over `At >= since` does (copies of different days are
    # never merged by `milestones`)
    later: dict[int, list[tuple[int, int]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        k = len(self.steps)
        self.ts = np.zeros((0, k), np.int64)
        self.own_has = np.zeros((0, k), np.bool_)
        self.own_row = np.zeros((0, k), np.bool_)
        self.own_amt = np.zeros((0, k), np.int64)
        self.own_cur = np.zeros((0, k), np.int32)

    def _grow(self, need: int) -> None:
        cap = len(self.src)
        if need <= cap:
            return
        new = max(need, cap * 2, 1024)

        def pad(a: np.ndarray) -> np.ndarray:
            return np.concatenate([a, np.zeros((new - cap, *a.shape[1:]), a.dtype)])
        self.ts, self.src, self.attrs = pad(self.ts), pad(self.src), pad(self.attrs)
        self.own_has, self.own_row, self.own_amt, self.own_cur = (pad(self.own_has), pad(self.own_row),
                                                                  pad(self.own_amt), pad(self.own_cur))

    def row(self, cid: str) -> int:
        i = self.index.get(cid)
        if i is None:
            i = self.index[cid] = self.n
            self.cids.append(cid)
            self.n += 1
            self._grow(self.n)
        return i

    def forget_before(self, floor_ms: int) -> None:
        """Drop the instances started before `floor_ms` (rows compacted, the index rebuilt)."""
        live = np.flatnonzero(self.ts[:self.n, 0] >= floor_ms)
        self.cids = [self.cids[i] for i in live]
        self.index = {c: k for k, c in enumerate(self.cids)}
        self.n = len(live)
        self.ts, self.src, self.attrs = self.ts[live], self.src[live], self.attrs[live]
        self.own_has, self.own_row = self.own_has[live], self.own_row[live]
        self.own_amt, self.own_cur = self.own_amt[live], self.own_cur[live]
        moved = {int(old): new for new, old in enumerate(live)}
        self.later = {moved[r]: v for r, v in self.later.items() if r in moved}
        self.version += 1

    def clear(self, i: int) -> None:
        self.ts[i] = 0
        self.later.pop(i, None)
        self.own_has[i] = self.own_row[i] = False
        self.own_amt[i] = 0


class InstanceCache:
    """Per journey, every instance with a milestone at or after `floor`, kept current by `sync`."""

    def __init__(self, store: Store, journeys: Mapping[str, JourneyConfig], horizon: dt.timedelta = HORIZON):
        self.store = store
        self.journeys = dict(journeys)
        self.horizon = horizon
        self.lock = threading.Lock()
        self.tables: dict[str, JourneyTable] = {}
        self.floor: dt.datetime | None = None
        self.ingest_ms = 0                 # the newest IngestedAt of the ingest log read so far
        self.seen: set[int] = set()        # insert times (ms) of the last SAFETY already taken in
        self.sources, self.currencies, self.attr_sets = Interner(), Interner(), Interner()
        self.attr_sets.code(())            # code 0 of each: what a row without that part holds
        self.currencies.code("")
        self.sources.code("")
        self.reread = 0                    # instances re-read by the latest sync (bench/slo_eval.py prints it)
        self.syncs = 0                     # syncs so far (tests check a pass shares one)
        self._memo: dict[tuple, list] = {}                # `_per_code`: per memo, a value per attribute-set code
        self._memo_arr: dict[tuple, np.ndarray] = {}
        self._derived: dict[tuple, tuple[JourneyTable, int, object]] = {}
        self._scope = threading.local()    # this thread's `one_sync` scope: depth, and whether it synced

    @contextmanager
    def one_sync(self, fresh: bool = False) -> Iterator[None]:
        """Within this scope (this thread only), the first `table` call syncs and the following ones read the
        tables as that sync left them: one ingest-log query per evaluator pass instead of one per SLO, funnel and
        forecast (each cost a round trip, ~45 % of the attribution and forecast reads at 2 M events), and every
        answer of the pass reads the same instances. Calls outside a scope (an API request) sync as before.
        `fresh`: the first call in this scope syncs even if an enclosing scope did (what rollup counts need: they
        must see everything the rollup's own ingest-log read saw, or the minutes it marks done stay wrong)."""
        sc = self._scope
        sc.depth = getattr(sc, "depth", 0) + 1
        if fresh:
            sc.synced = False
        try:
            yield
        finally:
            sc.depth -= 1
            if not sc.depth:
                sc.synced = False

    # -- reading ---------------------------------------------------------------------------------------------------
    def covers(self, since: dt.datetime, now: dt.datetime) -> bool:
        """Whether a read from `since` stays within the kept history (longer lookbacks read SQL: memory stays
        bounded by `horizon`)."""
        return since >= now - self.horizon

    def table(self, journey: str, since: dt.datetime, now: dt.datetime) -> JourneyTable:
        """The journey's instances, current as of this call, covering starts from `since` on."""
        sc = self._scope
        with self.lock:
            scoped = getattr(sc, "depth", 0) > 0
            if not (scoped and getattr(sc, "synced", False) and self.floor is not None and since >= self.floor):
                self._sync(since, now)
                self.syncs += 1
                sc.synced = scoped
            return self.tables[journey]

    def knows(self, journey: JourneyConfig) -> bool:
        return any(j == journey for j in self.journeys.values())

    def table_of(self, journey: JourneyConfig, since: dt.datetime, now: dt.datetime) -> JourneyTable:
        """`table` of a journey given by its configuration (callers holding the config, not its name)."""
        return self.table(next(n for n, j in self.journeys.items() if j == journey), since, now)

    def explained(self, codes: np.ndarray, skip: tuple[str, ...] = (), keep: tuple[str, ...] | None = None) \
            -> np.ndarray:
        """Per attribute-set code, the code of the same set without the `skip` keys (only the `keep` ones, when
        given) and empty values: what attribution counts or groups by (identifiers such as customer_id make every
        set distinct, not their explanation). Under the cache lock: it interns the explained sets, and the sync (or
        another reader's explanation) may intern on another thread — `Interner.code` is a read-then-append, two at
        once could give two sets one code."""
        return self._per_code(("explained", skip, keep), np.int32, lambda c: self.attr_sets.code(tuple(
            (k, v) for k, v in self.attr_sets.values[c]
            if v != "" and k not in skip and (keep is None or k in keep))))[codes]          # ~2 ms at 40 k sets

    def attr_values(self, codes: np.ndarray, key: str) -> np.ndarray:
        """Per attribute-set code, that set's value of `key` ('' when absent), as an object array: a per-code memo,
        not a dict built per code per call (attribution's affected customers: one distinct set per customer)."""
        return self._per_code(("value", key), object, lambda c: dict(self.attr_sets.values[c]).get(key, ""))[codes]

    def _per_code(self, memo_key: tuple, dtype: type, derive: Callable[[int], object]) -> np.ndarray:
        """An array of `derive(code)` per attribute-set code, extended to the codes interned since the last call
        (a list → array once per extension, not per call). Under the cache lock: `derive` may intern (`explained`),
        and the sync (or another reader) may intern on another thread — `Interner.code` is a read-then-append, two
        at once could give two sets one code."""
        with self.lock:
            memo = self._memo.setdefault(memo_key, [])
            if len(memo) < len(self.attr_sets.values) or memo_key not in self._memo_arr:
                memo += [derive(c) for c in range(len(memo), len(self.attr_sets.values))]
                self._memo_arr[memo_key] = np.array(memo, dtype=dtype)
            return self._memo_arr[memo_key]

    def derived(self, key: tuple, t: JourneyTable, compute: Callable[[], _T]) -> _T:
        """`compute()` for `key` over table `t`, kept while `t` is unchanged (its `version`): what several SLOs of
        one journey derive alike in one pass (attribution's masked step times of one lookback), computed once.
        The result is shared: callers must not modify it. The latest 32 are kept."""
        with self.lock:
            hit = self._derived.get(key)
            if hit is not None and hit[0] is t and hit[1] == t.version:
                return cast(_T, hit[2])
            version = t.version
        value = compute()
        with self.lock:
            self._derived[key] = (t, version, value)
            while len(self._derived) > 32:
                del self._derived[next(iter(self._derived))]
        return value

    def attrs_of(self, code: int) -> dict[str, str]:
        return dict(self.attr_sets.values[code])

    def amount(self, nanos: int) -> Decimal:
        return Decimal(int(nanos)) / NANO

    # -- maintenance -----------------------------------------------------------------------------------------------
    def _sync(self, since: dt.datetime, now: dt.datetime) -> None:
        if self.floor is None or since < self.floor:
            floor = min(since, now - self.horizon)
            self._build(floor - dt.timedelta(hours=1))
            return
        self._apply_new()
        if now - self.horizon - self.floor > dt.timedelta(days=1):     # forget what left the kept history
            self.floor = now - self.horizon - dt.timedelta(hours=1)
            for t in self.tables.values():
                t.forget_before(_ms(self.floor))

    def _types(self) -> list[str]:
        return sorted({t for j in self.journeys.values() for t in steps_of(j)})

    def _build(self, floor: dt.datetime) -> None:
        """Read every instance from `floor` on (the first call, or a call reaching further back)."""
        newest = self.store.query(f"SELECT toUnixTimestamp64Milli(max(IngestedAt)) "
                                  f"FROM {self.store.table('ingest_log')}").scalar()
        self.floor = floor
        self.reread = 0
        self.tables = {name: JourneyTable(steps_of(j)) for name, j in self.journeys.items()}
        for name in self.journeys:
            self._load(name, None)
        self.ingest_ms = int(newest or 0)
        self.seen = set()

    def _apply_new(self) -> None:
        """Re-read the instances whose events were ingested since the previous sync."""
        since = max(self.ingest_ms - int(SAFETY.total_seconds() * 1000), 0)
        log = self.store.query(
            f"SELECT DISTINCT toDate(Minute), toUnixTimestamp64Milli(IngestedAt) FROM {self.store.table('ingest_log')} "
            f"WHERE IngestedAt > fromUnixTimestamp64Milli({{since:Int64}}, 'UTC') AND Kind = 'event' "
            f"AND Key IN {{types:Array(String)}}", {"since": since, "types": self._types()}).rows
        self.reread = 0
        ats = {int(at) for _, at in log} - self.seen       # inserts an earlier sync handled are skipped
        if not ats:
            return
        days = sorted({d for d, at in log if int(at) in ats})
        newest = max(ats)
        touched = self.store.query(
            f"SELECT DISTINCT toString(Type), CorrelationId FROM {self.store.table('events')} "
            f"WHERE toDate(OccurredAt) IN {{days:Array(Date)}} AND Type IN {{types:Array(String)}} "
            f"AND IngestedAt > fromUnixTimestamp64Milli({{since:Int64}}, 'UTC') "
            f"AND toUnixTimestamp64Milli(IngestedAt) IN {{ats:Array(Int64)}}",
            {"days": days, "types": self._types(), "since": since, "ats": sorted(ats)}).rows
        by_journey: dict[str, set[str]] = {}
        for typ, cid in touched:
            for name, j in self.journeys.items():
                if typ in steps_of(j):
                    by_journey.setdefault(name, set()).add(cid)
        for name, cids in by_journey.items():
            ordered = sorted(cids)
            for i in range(0, len(ordered), _BATCH):
                self._load(name, ordered[i:i + _BATCH])
        self.ingest_ms = max(self.ingest_ms, newest)
        horizon = self.ingest_ms - int(SAFETY.total_seconds() * 1000)
        self.seen = {at for at in self.seen | ats if at > horizon}

    def _load(self, name: str, cids: list[str] | None) -> None:
        """(Re)read instances of one journey, whole: all of them (`cids` None) or these correlation IDs."""
        j, t = self.journeys[name], self.tables[name]
        assert self.floor is not None
        params: dict[str, object] = {**instance_params(j), "floor": self.floor}
        only = ""
        if cids is not None:
            params["cids"] = cids
            only = "CorrelationId IN {cids:Array(String)}"
        lo = "{floor:DateTime64(3, 'UTC')}"
        inner = instances_sql(self.store.table("milestones"), lo, steps=True, only=only)
        # each step's own event pivoted in SQL (its position among the instance's event types, 0: none), so that the
        # rows land in the arrays column by column: a Python loop setting numpy elements one at a time took two
        # thirds of the first load (3.5 s of 134 k instances per journey at 20 M events)
        rows = self.store.query(f"""
            SELECT i.CorrelationId, i.src, i.attrs,
                   arrayMap(st -> arrayMin(arrayMap(p -> toUnixTimestamp64Milli(p.2),
                                                    arrayFilter(p -> p.1 = st, i.reached))),
                            {{j_steps:Array(String)}}) AS ts,
                   arrayDistinct(arrayFilter(p -> p.2 != ts[indexOf({{j_steps:Array(String)}}, p.1)],
                                             arrayMap(p -> (p.1, toUnixTimestamp64Milli(p.2)), i.reached))) AS later,
                   arrayMap(st -> indexOf(e.types, st), {{j_steps:Array(String)}}) AS at,
                   arrayMap(x -> x > 0, at) AS own_row,
                   arrayMap(x -> x > 0 AND e.knowns[x], at) AS own_has,
                   arrayMap(x -> if(x > 0 AND abs(e.amts[x]) < {_MAX_NANOS}, toInt64(e.amts[x]), 0), at) AS own_amt,
                   arrayExists(x -> x > 0 AND abs(e.amts[x]) >= {_MAX_NANOS}, at) AS too_big,
                   arrayMap(x -> if(x > 0, e.curs[x], ''), at) AS own_cur
            FROM ({inner}) AS i
            LEFT JOIN (
                SELECT CorrelationId, groupArray(t) AS types, groupArray(a) AS amts, groupArray(k) AS knowns,
                       groupArray(c) AS curs
                FROM (SELECT CorrelationId, toString(Type) AS t,
                             toInt128(anyIf(assumeNotNull(Amount), Amount IS NOT NULL) * 1000000000) AS a,
                             countIf(Amount IS NOT NULL) > 0 AS k, anyIf(toString(Currency), Amount IS NOT NULL) AS c
                      FROM {self.store.table('events')}
                      WHERE Type IN {{j_steps:Array(String)}} AND OccurredAt >= {lo}{f" AND {only}" if only else ""}
                      GROUP BY CorrelationId, Type)
                GROUP BY CorrelationId
            ) AS e ON e.CorrelationId = i.CorrelationId""", params).rows
        seen = {r[0] for r in rows}
        if rows:
            self._place(t, rows)
        if cids is not None:
            for cid in set(cids) - seen:           # no start at or after the floor any more: not an instance
                gone = t.index.get(cid)
                if gone is not None:
                    t.clear(gone)
        self.reread += len(rows)
        t.version += 1

    def _place(self, t: JourneyTable, rows: list[tuple]) -> None:
        """Write the rows `_load` read into their table rows (new or re-read instances), column by column."""
        col = {s: k for k, s in enumerate(t.steps)}
        at = np.array([t.row(r[0]) for r in rows], dtype=np.int64)
        for i in at.tolist():
            t.later.pop(i, None)
        t.ts[at] = np.array([r[3] for r in rows], dtype=np.int64)
        t.own_row[at] = np.array([r[6] for r in rows], dtype=np.bool_)
        t.own_has[at] = np.array([r[7] for r in rows], dtype=np.bool_)
        t.own_amt[at] = np.array([r[8] for r in rows], dtype=np.int64)
        if any(r[9] for r in rows):                # an amount beyond int64 billionths: callers use the SQL path
            t.exact = False
        cur, known = self.currencies.code, self.currencies.codes       # a dict hit before a call: 4 per instance
        t.own_cur[at] = np.array([[known[c] if c in known else cur(c) for c in r[10]] for r in rows], dtype=np.int32)
        src, sets = self.sources.code, self.attr_sets.code
        t.src[at] = np.array([src(r[1]) for r in rows], dtype=np.int32)
        t.attrs[at] = np.array([sets(tuple(sorted((r[2] or {}).items()))) for r in rows], dtype=np.int32)
        for i, r in zip(at.tolist(), rows):
            if r[4]:
                t.later[i] = [(col[typ], int(x)) for typ, x in r[4] if typ in col]


def started_since(t: JourneyTable, since_ms: int) -> np.ndarray:
    """The rows that can have a start at or after `since_ms` (their first start, or a later copy of it)."""
    later = [r for r, copies in t.later.items() if any(step == 0 and x >= since_ms for step, x in copies)]
    rows = np.flatnonzero(t.ts[:t.n, 0] >= since_ms)
    return np.union1d(rows, np.array(later, dtype=np.int64)) if later else rows


def masked_times(t: JourneyTable, since_ms: int, rows: np.ndarray | None = None) -> np.ndarray:
    """The first time per step (ms) counting only milestones at or after `since_ms` (0: not reached), of every
    row (or of `rows`, ascending, in their order)."""
    ts = t.ts[:t.n] if rows is None else t.ts[rows]
    out = np.where(ts >= since_ms, ts, 0)
    for row, copies in t.later.items():                 # a copy at or after `since` when the first lies before
        at = row
        if rows is not None:                            # rows ascending (started_since)
            at = int(np.searchsorted(rows, row))
            if at >= len(rows) or rows[at] != row:
                continue
        if at >= len(out):
            continue
        for step, x in copies:
            if x >= since_ms and (out[at, step] == 0 or x < out[at, step]):
                out[at, step] = x
    return out


def money_sum(nanos: np.ndarray, codes: np.ndarray, n_codes: int) -> list[int]:
    """Exact integer sums of billionths per code (int64 halves summed apart: no overflow for < 2^31 rows)."""
    if not len(nanos):
        return [0] * n_codes
    hi, lo = nanos >> 32, nanos & 0xFFFFFFFF
    out_hi = np.zeros(n_codes, np.int64)
    out_lo = np.zeros(n_codes, np.int64)
    np.add.at(out_hi, codes, hi)
    np.add.at(out_lo, codes, lo)
    return [int(h) * (1 << 32) + int(lo_) for h, lo_ in zip(out_hi, out_lo)]


def to_datetime(ms_: int) -> dt.datetime:
    """An epoch-ms time as the aware datetime the store returns for DateTime64(3)."""
    return _EPOCH + dt.timedelta(milliseconds=int(ms_))


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def currency_names(cache: InstanceCache) -> list[str]:
    """Per currency code, the currency as the journey SQL names it ('?' when none: `if(cur = '', '?', cur)`)."""
    return [c or "?" for c in cache.currencies.values]


def dense_unique(combo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(one position of each distinct value, the index of each element's value among them) — np.unique's
    return_index/return_inverse without its sort when the values are small codes (any representative will do:
    the callers' elements of one value are alike)."""
    top = int(combo.max()) + 1 if len(combo) else 0
    if top > 4 * len(combo) + 1_000_000:
        _u, first, inv = np.unique(combo, return_index=True, return_inverse=True)
        return first, inv
    rep = np.full(top, -1, np.int64)
    rep[combo] = np.arange(len(combo))
    present = np.flatnonzero(rep >= 0)
    lookup = np.zeros(top, np.int64)
    lookup[present] = np.arange(len(present))
    return rep[present], lookup[combo]


def group_codes(cache: InstanceCache, t: JourneyTable, idx: np.ndarray,
                key: Callable[[Mapping[str, str], str, str], str], reads: tuple[str, ...] | None = None) \
        -> tuple[list[str], np.ndarray]:
    """The distinct group keys of the instances `idx` (key(attrs, src, currency) → str, computed once per distinct
    attribute set — only the attributes `reads`, when given —, source and currency) and each instance's index
    among them."""
    if not len(idx):
        return [], np.zeros(0, np.int64)
    if reads is None:
        sets = t.attrs[idx]
    elif not reads:                          # no attribute read: every set explains as the empty one, code 0
        sets = np.zeros(len(idx), np.int32)
    else:
        sets = cache.explained(t.attrs[idx], keep=reads)
    first, inv = combinations(cache, t, idx, sets)
    names = currency_names(cache)
    per_combo = [key(cache.attrs_of(int(sets[f])), cache.sources.values[int(t.src[idx[f]])],
                     names[int(t.own_cur[idx[f], 0])]) for f in first]
    keys = sorted(set(per_combo))
    code = {k: n for n, k in enumerate(keys)}
    return keys, np.array([code[k] for k in per_combo], dtype=np.int64)[inv]


def combinations(cache: InstanceCache, t: JourneyTable, idx: np.ndarray, sets: np.ndarray) \
        -> tuple[np.ndarray, np.ndarray]:
    """(one position in `idx` of each distinct (attribute-set code `sets`, source, start currency), each instance's
    index among them — ascending in that order): the unit group keys and attribute distributions are computed
    per, instead of per instance."""
    combo = (sets.astype(np.int64) * (len(cache.sources.values) + 1) + t.src[idx]) \
        * (len(cache.currencies.values) + 1) + t.own_cur[idx, 0]
    return dense_unique(combo)


def group_keys(cache: InstanceCache, t: JourneyTable, idx: np.ndarray,
               key: Callable[[Mapping[str, str], str, str], str], reads: tuple[str, ...] | None = None) -> np.ndarray:
    """The group key of each instance in `idx` (`group_codes`, spelled out)."""
    keys, inv = group_codes(cache, t, idx, key, reads)
    return np.array(keys, dtype=object)[inv] if len(idx) else np.zeros(0, dtype=object)


def group_mask(cache: InstanceCache, t: JourneyTable, idx: np.ndarray,
               key: Callable[[Mapping[str, str], str, str], str], group: str, reads: tuple[str, ...]) -> np.ndarray:
    """Which instances of `idx` are in `group`: the key (which reads the attributes `reads` only) computed once per
    distinct (those attributes, source, currency) — `group_codes`."""
    keys, inv = group_codes(cache, t, idx, key, reads)
    return inv == keys.index(group) if group in keys else np.zeros(len(idx), np.bool_)


def first_by_time(t: JourneyTable, idx: np.ndarray, times: np.ndarray, limit: int | None = None) -> list[int]:
    """The rows `idx` ordered by (time, correlation ID) — `ORDER BY s_at, cid` — the first `limit` of them: the
    `limit` earliest found by a partition, sorted by time in numpy, and only rows of equal times ordered by their
    correlation IDs (a Python sort of 10,000 (time, string) keys cost ~20 ms per attribution)."""
    if not len(idx):
        return []
    if limit is not None and len(idx) > limit:
        kth = np.partition(times, limit - 1)[limit - 1]
        keep = times <= kth
        idx, times = idx[keep], times[keep]
    order = np.argsort(times, kind="stable")
    idx, times = idx[order], times[order]
    tied = np.zeros(len(times), np.bool_)                  # equal to a neighbour: only these need the cid order
    tied[1:] |= times[1:] == times[:-1]
    tied[:-1] |= times[1:] == times[:-1]
    if tied.any():
        at = np.flatnonzero(tied)
        rank = np.zeros(len(times), np.int64)
        rank[at[np.argsort(np.array([t.cids[i] for i in idx[at].tolist()]), kind="stable")]] = np.arange(len(at))
        order = np.lexsort((rank, times))
        idx = idx[order]
    out = idx.tolist()
    return out[:limit] if limit is not None else out


def quantiles_exact(values: np.ndarray, levels: tuple[float, ...], per: int = 1) -> list[float]:
    """ClickHouse's quantilesExact of `values / per`: per level the element at index ⌊level × n⌋ of the sorted
    values (the last for level 1), no interpolation — found by one partition on those indexes, not a full sort (the
    sorts were most of a funnel's time at 20 M events). `per` divides only the chosen elements (the funnel's integer
    milliseconds → seconds): the same floats as dividing every value first, as division keeps the order."""
    n = len(values)
    at = [int(level * n) if level < 1 else n - 1 for level in levels]
    v = np.partition(values, sorted(set(at)))
    return [float(v[k]) / per if per != 1 else float(v[k]) for k in at]

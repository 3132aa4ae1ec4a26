"""Budget adjustments: minutes that do not count against an SLO (docs/slo-policy.md).

An adjustment (`revwatch.config.AdjustmentConfig`) is declared in the config, imported from OpenSLO v2alpha
`BudgetAdjustment` documents (slo/openslo_v2.py), or created through `POST /api/v1/adjustments` (kept in the store's
`kv_state`, key `slo:adjustment:<name>`). Expansion:

* A recurring adjustment's RRULE (RFC 5545, python-dateutil) runs on wall-clock times in its `time_zone`; each
  occurrence's wall-clock start becomes an instant with zoneinfo (a time skipped by a DST change is read with the
  offset before the change, an ambiguous one as its first occurrence — RFC 5545 §3.3.5) and lasts `duration` of real
  time. So "every day 02:30 for 1 h" in Europe/Paris covers 01:30-02:30 UTC in winter and 00:30-01:30 UTC in summer.
* Starts are whole minutes and durations whole minutes, so every occurrence is a set of whole rollup minutes and the
  engine removes exactly those minutes from every window (`slo_minutes` stays raw: adjustments apply when reading,
  so a retroactive adjustment changes history at once and as-of evaluations see it).
* `exclude` wins over `good` where both cover a minute.
* An adjustment created through the API reaches back at most 30 days before its creation (`RETROACTIVE`); config
  and imported ones are as declared.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from dateutil.rrule import rrulestr

from revwatch.config import AdjustmentConfig
from revwatch.store import Store
from revwatch.units import format_duration

log = logging.getLogger("revwatch.slo.adjustments")
MINUTE = dt.timedelta(minutes=1)
RETROACTIVE = dt.timedelta(days=30)
MAX_OCCURRENCES = 20_000                  # per adjustment and expansion (hourly for 2 years)
STATE_PREFIX = "slo:adjustment:"
Interval = tuple[dt.datetime, dt.datetime]


class AdjustmentError(ValueError):
    """An adjustment that cannot be accepted; `field` names the offending key."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Adjustment:
    config: AdjustmentConfig
    source: str = "config"                 # config | api | the OpenSLO file it came from
    created_at: dt.datetime | None = None  # API adjustments: reach back RETROACTIVE from here
    created_by: str | None = None

    @property
    def name(self) -> str:
        return self.config.name

    def applies_to(self, slo: str) -> bool:
        return self.config.slos is None or slo in self.config.slos

    @property
    def floor(self) -> dt.datetime | None:
        """The earliest instant the adjustment may cover (API adjustments only)."""
        return self.created_at - RETROACTIVE if self.created_at else None

    def occurrences(self, lo: dt.datetime, hi: dt.datetime) -> list[Interval]:
        """The occurrences [start, end) (UTC) that overlap [lo, hi), clipped to it and to the retroactive floor."""
        c = self.config
        zone = ZoneInfo(c.time_zone)
        if self.floor is not None:
            lo = max(lo, self.floor)
        if lo >= hi:
            return []
        if c.rrule is None:
            starts = [c.start]
        else:
            # wall-clock bounds wide enough for any UTC offset and the occurrence's own length
            llo = (lo - c.duration).astimezone(zone).replace(tzinfo=None) - dt.timedelta(days=1)
            lhi = hi.astimezone(zone).replace(tzinfo=None) + dt.timedelta(days=1)
            rule = rrulestr(c.rrule, dtstart=c.start)
            starts = []
            for s in rule.xafter(max(llo, c.start), count=MAX_OCCURRENCES + 1, inc=True):
                if s > lhi:
                    break
                starts.append(s)
            if len(starts) > MAX_OCCURRENCES:
                log.warning("adjustment %s: more than %d occurrences in one window; the rest are ignored",
                            c.name, MAX_OCCURRENCES)
        out = []
        for s in starts:
            start = s.replace(tzinfo=zone, fold=0).astimezone(dt.timezone.utc)
            end = start + c.duration
            if start < hi and end > lo:
                out.append((max(start, lo), min(end, hi)))
        return out

    def as_dict(self) -> dict:
        c = self.config
        return {"name": c.name, "start": c.start.isoformat(), "duration": format_duration(c.duration),
                "rrule": c.rrule, "time_zone": c.time_zone, "slos": c.slos, "effect": c.effect,
                "description": c.description, "source": self.source,
                "created_at": self.created_at.isoformat() if self.created_at else None, "created_by": self.created_by,
                "applies_from": self.floor.isoformat() if self.floor else None}


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, overlapping or touching intervals joined."""
    out: list[list[dt.datetime]] = []
    for a, b in sorted(intervals):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def subtract(intervals: list[Interval], minus: list[Interval]) -> list[Interval]:
    """`intervals` without the parts covered by `minus` (both merged)."""
    out = []
    for a, b in intervals:
        cur = a
        for c, d in minus:
            if d <= cur or c >= b:
                continue
            if c > cur:
                out.append((cur, c))
            cur = max(cur, d)
        if cur < b:
            out.append((cur, b))
    return out


def minutes_in(intervals: list[Interval], lo: dt.datetime, hi: dt.datetime) -> int:
    """Whole minutes of merged whole-minute `intervals` inside [lo, hi)."""
    total = dt.timedelta(0)
    for a, b in intervals:
        a, b = max(a, lo), min(b, hi)
        if b > a:
            total += b - a
    return int(total / MINUTE)


@dataclass(frozen=True)
class Plan:
    """What the adjustments do to one SLO over [lo, hi): merged excluded intervals, merged good intervals (minus
    excluded ones), and which adjustments contributed."""
    exclude: list[Interval]
    good: list[Interval]
    applied: list[tuple[Adjustment, list[Interval]]]

    def covers(self, minute: dt.datetime) -> str | None:
        """'exclude', 'good' or None for the minute starting at `minute`."""
        if any(a <= minute < b for a, b in self.exclude):
            return "exclude"
        if any(a <= minute < b for a, b in self.good):
            return "good"
        return None

    def summary(self, lo: dt.datetime, hi: dt.datetime, limit: int = 20) -> list[dict]:
        """Per adjustment, what it removed from [lo, hi) (the SLO window): minutes and the first occurrences."""
        out = []
        for adj, occ in self.applied:
            inside = [(max(a, lo), min(b, hi)) for a, b in occ if b > lo and a < hi]
            if not inside:
                continue
            out.append({"name": adj.name, "effect": adj.config.effect, "source": adj.source,
                        "minutes": minutes_in(merge(inside), lo, hi),
                        "occurrences": [[a.isoformat(), b.isoformat()] for a, b in inside[:limit]],
                        "more_occurrences": max(len(inside) - limit, 0)})
        return out


EMPTY = Plan([], [], [])


def adjusted_columns(params: dict, plans: dict[str, Plan], good: str = "g", total: str = "t") -> str:
    """SQL select items `good` and `total` of a `slo_minutes` row (columns Slo, Minute, Good, Total) with the
    adjustments applied: an excluded minute counts nothing, a `good` minute counts its events as good. The intervals
    go in as array parameters (added to `params`). Used by every reader of the rollup (engine, chart history)."""
    rows = [(name, kind, int(a.timestamp()), int(b.timestamp())) for name, p in plans.items()
            for kind, iv in (("x", p.exclude), ("g", p.good)) for a, b in iv]
    if not rows:
        return f"Good AS {good}, Total AS {total}"
    hit = {}
    for kind in ("x", "g"):
        mine = [r for r in rows if r[1] == kind]
        params.update({f"adj_{kind}_slo": [r[0] for r in mine], f"adj_{kind}_lo": [r[2] for r in mine],
                       f"adj_{kind}_hi": [r[3] for r in mine]})
        hit[kind] = (f"arrayExists((n, lo, hi) -> n = Slo AND toInt64(toUnixTimestamp(Minute)) >= lo AND "
                     f"toInt64(toUnixTimestamp(Minute)) < hi, {{adj_{kind}_slo:Array(String)}}, "
                     f"{{adj_{kind}_lo:Array(Int64)}}, {{adj_{kind}_hi:Array(Int64)}})")
    return f"multiIf({hit['x']}, 0, {hit['g']}, Total, Good) AS {good}, if({hit['x']}, 0, Total) AS {total}"


class AdjustmentBook:
    """Every adjustment (config, imported, stored), and what they do to an SLO over a range."""

    def __init__(self, store: Store, declared: list[Adjustment]):
        self.store = store
        self.declared = declared

    def stored(self) -> list[Adjustment]:
        rows = self.store.query(
            f"SELECT Key, argMax(Value, Version) FROM {self.store.table('kv_state')} "
            f"WHERE startsWith(Key, {{p:String}}) GROUP BY Key ORDER BY Key", {"p": STATE_PREFIX}).rows
        out = []
        for _key, value in rows:
            if not value:                      # deleted
                continue
            doc = json.loads(value)
            out.append(Adjustment(AdjustmentConfig.model_validate(doc["config"]), "api",
                                  dt.datetime.fromisoformat(doc["created_at"]), doc.get("created_by")))
        return out

    def all(self) -> list[Adjustment]:
        return self.declared + self.stored()

    def add(self, config: AdjustmentConfig, created_by: str | None, now: dt.datetime,
            slo_names: set[str]) -> Adjustment:
        """Store a new adjustment (names are unique across config and store)."""
        if any(a.name == config.name for a in self.all()):
            raise AdjustmentError(f"an adjustment named {config.name!r} exists", "name")
        check_slos(config, slo_names, "slos")
        adj = Adjustment(config, "api", now, created_by)
        if config.rrule is None:
            end = config.start.replace(tzinfo=ZoneInfo(config.time_zone)) + config.duration
            if end <= now - RETROACTIVE:
                raise AdjustmentError("an adjustment may reach back at most 30 days", "start")
        doc = {"config": {**config.model_dump(mode="json"), "duration": format_duration(config.duration)},
               "created_at": now.isoformat(), "created_by": created_by}
        self.store.put_state(STATE_PREFIX + config.name, json.dumps(doc))
        return adj

    def delete(self, name: str) -> bool:
        """Remove a stored adjustment (config ones are removed from the config)."""
        if not any(a.name == name for a in self.stored()):
            return False
        self.store.put_state(STATE_PREFIX + name, "")
        return True

    def plans(self, slos: list[str], lo: dt.datetime, hi: dt.datetime,
              adjustments: list[Adjustment] | None = None) -> dict[str, Plan]:
        """Per SLO, its plan over [lo, hi) (one read of the stored adjustments for all of them)."""
        every = self.all() if adjustments is None else adjustments
        if not every:
            return {s: EMPTY for s in slos}
        occ = {a.name: a.occurrences(lo, hi) for a in every}
        out = {}
        for s in slos:
            mine = [(a, occ[a.name]) for a in every if a.applies_to(s) and occ[a.name]]
            exclude = merge(i for a, o in mine if a.config.effect == "exclude" for i in o)
            good = subtract(merge(i for a, o in mine if a.config.effect == "good" for i in o), exclude)
            out[s] = Plan(exclude, good, mine) if mine else EMPTY
        return out


def check_slos(config: AdjustmentConfig, slo_names: set[str], where: str) -> None:
    unknown = sorted(set(config.slos or []) - slo_names)
    if unknown:
        raise AdjustmentError(f"unknown SLO {unknown[0]!r}", where)


def declared(cfg, slo_names: list[str]) -> list[Adjustment]:
    """The config's adjustments and those of its `openslo_v2alpha_files`, checked against the SLO names; raises
    slo.spec.SpecError (one line) on a bad one."""
    from slo.openslo_v2 import OpenSloV2Error, load_adjustments
    from slo.spec import SpecError, _config_path
    out = [Adjustment(a) for a in cfg.adjustments]
    try:
        for f in cfg.openslo_v2alpha_files:
            out += load_adjustments(_config_path(cfg, f), slo_names)
    except OpenSloV2Error as e:
        raise SpecError(str(e)) from None
    names = set(slo_names)
    seen: set[str] = set()
    for a in out:
        try:
            check_slos(a.config, names, "slos")
        except AdjustmentError as e:
            raise SpecError(f"adjustments: {a.name}: slos: {e}") from None
        if a.name in seen:
            raise SpecError(f"adjustments: duplicate adjustment name {a.name!r}")
        seen.add(a.name)
    return out

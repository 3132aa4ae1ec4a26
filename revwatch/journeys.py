"""The journey model: what "an instance of journey J" is, written once, and everything derived from it.

A journey is a pair of business event types (start → end) from the config. One *instance* is one correlation ID
that reached the start event; it ends when the same correlation ID reaches the end event. Both times come from
`milestones` (the first time each event type was reached per correlation ID: a `min`, so duplicated and late
events cannot move it wrongly). Every reader of journeys — the SLIs (decision minutes), the lag/pending statistics,
the stuck list of the journey view, the money at risk of an alert, the web UI — selects from `instances_sql`, so
the definition of an instance lives in exactly one place.

Invariants:
* an instance without a start event does not exist (an end alone is not an instance);
* `s_at`/`e_at` are the first start/end times; `has_end` says whether `e_at` is meaningful;
* the start event's attributes and source describe the instance (group_by, attribution, money);
* the overdue threshold of a journey is a pure function of the config: the journey's own `threshold`, else the
  tightest threshold of the journey SLOs on it (`thresholds`).
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from revwatch.config import JourneyConfig
from revwatch.store import Store
from revwatch.units import as_utc, utcnow

DEFAULT_THRESHOLD = dt.timedelta(hours=1)     # overdue threshold of a journey that names none and has no SLO


def instances_sql(table: str, lo: str, hi: str | None = None, *, key: str = "j", steps: bool = False) -> str:
    """The one subquery of journey instances whose milestones lie in [lo, hi) (SQL expressions; no upper bound
    when `hi` is None).

    Binds `{<key>_start:String}` and `{<key>_end:String}` (`instance_params`; a distinct `key` per journey lets
    one statement hold several). Columns: CorrelationId, s_at (first start), e_at (first end), has_end, attrs (the
    start event's attributes), src (the start event's source); with `steps`, also every milestone of the journey
    (`{<key>_steps:Array(String)}`) and `reached`, the (type, first time) pairs the instance reached."""
    st, en = f"{{{key}_start:String}}", f"{{{key}_end:String}}"
    types = f"{{{key}_steps:Array(String)}}" if steps else f"({st}, {en})"
    reached = ",\n               groupArray((toString(Type), At)) AS reached" if steps else ""
    return f"""
        SELECT CorrelationId,
               minIf(At, Type = {st}) AS s_at,
               minIf(At, Type = {en}) AS e_at,
               countIf(Type = {en}) > 0 AS has_end,
               anyIf(Attributes, Type = {st}) AS attrs,
               anyIf(Source, Type = {st}) AS src{reached}
        FROM {table}
        WHERE Type IN {types} AND At >= {lo}{f" AND At < {hi}" if hi else ""}
        GROUP BY CorrelationId
        HAVING countIf(Type = {st}) > 0"""


def instance_params(journey: JourneyConfig, key: str = "j") -> dict[str, object]:
    """The parameters `instances_sql` binds, for one journey (steps: start, milestones in order, end)."""
    return {f"{key}_start": journey.start, f"{key}_end": journey.end,
            f"{key}_steps": [journey.start, *journey.milestones, journey.end]}


def thresholds(journeys: Mapping[str, JourneyConfig],
               slo_thresholds: Iterable[tuple[str, dt.timedelta]]) -> dict[str, dt.timedelta]:
    """Per journey, the overdue threshold: the journey's own, else the tightest SLO threshold on it.

    `slo_thresholds` is (journey, threshold) of every journey SLO (slo.spec resolves them from the config)."""
    out: dict[str, dt.timedelta] = {}
    for journey, t in slo_thresholds:
        out[journey] = min(t, out.get(journey, t))
    out.update({name: j.threshold for name, j in journeys.items() if j.threshold})
    return out


def _iso(t: dt.datetime) -> str:
    return as_utc(t).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class StuckInstance:
    """A started, unfinished instance past its journey's threshold."""
    correlation_id: str
    journey: str
    started: dt.datetime
    waiting_for: str
    overdue_seconds: float
    source: str
    attributes: dict[str, str]

    def as_dict(self) -> dict:
        return {"correlation_id": self.correlation_id, "journey": self.journey, "started": _iso(self.started),
                "waiting_for": self.waiting_for, "overdue_seconds": self.overdue_seconds}


class JourneyReader:
    """Read-only statistics over journey instances: stuck instances, lag/pending, money at risk."""

    def __init__(self, store: Store, journeys: Mapping[str, JourneyConfig], overdue: Mapping[str, dt.timedelta]):
        self.store, self.journeys, self.overdue = store, journeys, overdue

    def threshold(self, journey: str) -> dt.timedelta:
        return self.overdue.get(journey) or DEFAULT_THRESHOLD

    def _ms(self, t: dt.datetime) -> str:
        return f"fromUnixTimestamp64Milli({int(t.timestamp() * 1000)}, 'UTC')"

    def stuck(self, journey: str, now: dt.datetime | None = None, lookback: dt.timedelta = dt.timedelta(days=7),
              limit: int = 100) -> list[StuckInstance]:
        """Instances that started within `lookback`, have not finished and are past the threshold; oldest first."""
        j = self.journeys[journey]
        now = now or utcnow()
        threshold = self.threshold(journey)
        rows = self.store.query(
            "SELECT CorrelationId, s_at, src, attrs "
            f"FROM ({instances_sql(self.store.table('milestones'), self._ms(now - lookback))}) "
            f"WHERE NOT has_end AND s_at < {{cut:DateTime64(3, 'UTC')}} ORDER BY s_at, CorrelationId "
            f"LIMIT {{limit:UInt32}}",
            {**instance_params(j), "cut": now - threshold, "limit": limit}).rows
        return [StuckInstance(cid, journey, as_utc(s), j.end, (now - as_utc(s) - threshold).total_seconds(), src,
                              dict(attrs or {}))
                for cid, s, src, attrs in rows]

    def stats(self, now: dt.datetime, lag_window: dt.timedelta = dt.timedelta(hours=1),
              pending_lookback: dt.timedelta = dt.timedelta(days=7)) -> dict[str, dict]:
        """Per journey: start→end lag quantiles of instances completed within `lag_window`, and how many instances
        started within `pending_lookback` still wait for their end."""
        out = {}
        lag_from = self._ms(now - lag_window)
        for name, j in self.journeys.items():
            inner = instances_sql(self.store.table("milestones"), self._ms(now - pending_lookback))
            q, completed, pending = self.store.query(f"""
                SELECT quantilesExactIf(0.5, 0.9, 0.99)(dateDiff('millisecond', s_at, e_at) / 1000,
                                                        has_end AND e_at >= {lag_from}) AS q,
                       countIf(has_end AND e_at >= {lag_from}) AS completed,
                       countIf(NOT has_end) AS pending
                FROM ({inner})""", instance_params(j)).rows[0]
            out[name] = {"lag_seconds": dict(zip(("0.5", "0.9", "0.99"), q)) if completed else {},
                         "completed_last_hour": int(completed), "pending": int(pending)}
        return out

    def money(self, journey: str, correlation_ids: list[str]) -> dict[str, Decimal]:
        """Amount carried by the start events of these instances, per currency ('?' when none is named)."""
        if not correlation_ids:
            return {}
        j = self.journeys[journey]
        rows = self.store.query(
            f"SELECT cur, sum(amt) FROM (SELECT CorrelationId, any(Currency) AS cur, any(Amount) AS amt "
            f"FROM {self.store.table('events')} WHERE CorrelationId IN {{ids:Array(String)}} "
            f"AND Type = {{t:String}} AND Amount IS NOT NULL GROUP BY CorrelationId) GROUP BY cur",
            {"ids": correlation_ids, "t": j.start}).rows
        return {cur or "?": Decimal(str(amt)) for cur, amt in rows}

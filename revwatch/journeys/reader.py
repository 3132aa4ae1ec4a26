"""Read-only answers over journey instances: the stuck list (with money and aging), per-journey summaries,
lag/pending statistics and money per instance — typed results, one SQL definition (revwatch.journeys.sql), one
status rule (revwatch.journeys.policy), exact money (revwatch.journeys.money).

Invariants: the stuck list is exactly the instances `Policy.status` calls `overdue` (same threshold, same
lookback, same comparison); a summary's counts and money are over *all* such instances, never a capped list;
amounts are the start event's `Amount` as Decimal.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from revwatch.config import JourneyConfig
from revwatch.journeys import money as m
from revwatch.journeys.policy import AGING, AGING_LABELS, Policy, aging_bucket
from revwatch.journeys.sql import amounts_sql, instance_params, instances_sql, steps_of
from revwatch.store import Store
from revwatch.units import as_utc, utcnow


def iso(t: dt.datetime | None) -> str | None:
    """RFC 3339 UTC with a Z, or None."""
    return as_utc(t).isoformat().replace("+00:00", "Z") if t else None


def _ms(t: dt.datetime) -> str:
    return f"fromUnixTimestamp64Milli({int(t.timestamp() * 1000)}, 'UTC')"


@dataclass(frozen=True)
class InstanceMoney:
    """What the start event of one instance carries: amount (exact), currency, customer, source, reference."""
    amount: Decimal | None
    currency: str
    customer: str = ""
    source: str = ""
    ref: str = ""


@dataclass(frozen=True)
class StuckInstance:
    """A started, unfinished instance past its journey's threshold (status `overdue`)."""
    correlation_id: str
    journey: str
    started: dt.datetime
    waiting_for: str                  # the first step of the journey not reached yet
    age_seconds: float
    overdue_seconds: float
    source: str
    attributes: dict[str, str]
    amount: Decimal | None = None
    currency: str = ""
    customer: str = ""
    ref: str = ""
    status: str = "overdue"

    @property
    def bucket(self) -> str:
        return aging_bucket(dt.timedelta(seconds=self.age_seconds))

    def as_dict(self) -> dict:
        """The JSON shape of the API, the CLI's --json and the UI's rows (amount as a decimal string)."""
        return {"correlation_id": self.correlation_id, "journey": self.journey, "status": self.status,
                "started": iso(self.started), "waiting_for": self.waiting_for,
                "age_seconds": self.age_seconds, "overdue_seconds": self.overdue_seconds, "bucket": self.bucket,
                "amount": m.fmt(self.amount), "currency": self.currency, "customer": self.customer,
                "ref": self.ref, "system": self.source}


@dataclass
class JourneySummary:
    """One journey's stuck instances in aggregate: count, money per currency, count per aging bucket."""
    name: str
    start: str
    end: str
    threshold_seconds: float
    stuck: int = 0
    money: m.Money = field(default_factory=dict)
    buckets: dict[str, int] = field(default_factory=lambda: {label: 0 for label in AGING_LABELS})

    def as_dict(self) -> dict:
        return {"name": self.name, "start": self.start, "end": self.end, "threshold_seconds": self.threshold_seconds,
                "stuck": self.stuck, "money": m.as_json(self.money), "buckets": dict(self.buckets)}


class JourneyReader:
    """Stuck instances, summaries, statistics and money of the configured journeys."""

    def __init__(self, store: Store, journeys: Mapping[str, JourneyConfig],
                 overdue: Mapping[str, dt.timedelta] | Policy):
        self.store, self.journeys = store, journeys
        self.policy = overdue if isinstance(overdue, Policy) else Policy(dict(overdue))

    @property
    def overdue(self) -> Mapping[str, dt.timedelta]:
        return self.policy.overdue

    def threshold(self, journey: str) -> dt.timedelta:
        return self.policy.threshold(journey)

    # -- money -------------------------------------------------------------------------------------------
    def amounts(self, types: list[str], correlation_ids: list[str],
                since: dt.datetime | None = None) -> dict[str, InstanceMoney]:
        """Per correlation ID, what its event of one of `types` (a journey's start) carries; `since` bounds the
        read to the daily partitions from then on (the instances' earliest start)."""
        if not correlation_ids:
            return {}
        params: dict[str, object] = {"ids": correlation_ids, "types": types}
        if since is not None:
            params["since"] = since - dt.timedelta(seconds=1)
        rows = self.store.query(amounts_sql(self.store.table("events"), since_param="since" if since else None),
                                params).rows
        return {cid: InstanceMoney(m.parse_amount(amt), cur or "", cust or "", src or "", ref or "")
                for cid, _t, amt, cur, cust, src, ref in rows}

    def money(self, journey: str, correlation_ids: list[str]) -> m.Money:
        """Amount carried by the start events of these instances, per currency ('?' when none is named)."""
        got = self.amounts([self.journeys[journey].start], correlation_ids)
        return m.total((x.currency, x.amount) for x in got.values())

    # -- stuck -------------------------------------------------------------------------------------------
    def stuck(self, journey: str, now: dt.datetime | None = None, lookback: dt.timedelta | None = None,
              limit: int = 100) -> list[StuckInstance]:
        """Overdue instances (the policy's rule), oldest first, at most `limit`, with their money."""
        j = self.journeys[journey]
        now = now or utcnow()
        lookback = lookback or self.policy.lookback
        threshold = self.threshold(journey)
        steps = steps_of(j)
        rows = self.store.query(
            "SELECT CorrelationId, s_at, src, attrs, arrayMap(x -> x.1, reached) "
            f"FROM ({instances_sql(self.store.table('milestones'), _ms(now - lookback), steps=True)}) "
            f"WHERE NOT has_end AND s_at < {{cut:DateTime64(3, 'UTC')}} ORDER BY s_at, CorrelationId "
            f"LIMIT {{limit:UInt32}}",
            {**instance_params(j), "cut": now - threshold, "limit": limit}).rows
        started = [as_utc(s) for _, s, *_ in rows]
        info = self.amounts([j.start], [r[0] for r in rows], min(started, default=None))
        out = []
        for (cid, _s, src, attrs, reached), s_at in zip(rows, started):
            mi = info.get(cid) or InstanceMoney(None, "")
            age = (now - s_at).total_seconds()
            out.append(StuckInstance(
                cid, journey, s_at, next((x for x in steps if x not in reached), j.end), age,
                age - threshold.total_seconds(), src, dict(attrs or {}), mi.amount, mi.currency,
                mi.customer or (attrs or {}).get("customer_id", ""), mi.ref))
        return out

    def summaries(self, now: dt.datetime | None = None) -> list[JourneySummary]:
        """Per configured journey: stuck count, aging bucket counts and money per currency over *all* overdue
        instances, in one round trip (each journey's stuck set from `milestones`, then one read of the start
        events of the lookback days for their amounts, summed as Decimal in ClickHouse)."""
        now = now or utcnow()
        names = list(self.journeys)
        out = {n: JourneySummary(n, self.journeys[n].start, self.journeys[n].end,
                                 self.threshold(n).total_seconds()) for n in names}
        if not names:
            return []
        t = self.store.table
        parts: list[str] = []
        params: dict[str, object] = {"lo": now - self.policy.lookback, "now": now}
        for i, name in enumerate(names):
            j = self.journeys[name]
            params.update({f"j{i}": name, f"cut{i}": now - self.threshold(name), **instance_params(j, key=f"j{i}")})
            instances = instances_sql(t("milestones"), "{lo:DateTime64(3, 'UTC')}", key=f"j{i}")
            parts.append(f"SELECT {{j{i}:String}} AS j, {{j{i}_start:String}} AS st, CorrelationId, s_at AS started "
                         f"FROM ({instances}) WHERE NOT has_end AND s_at < {{cut{i}:DateTime64(3, 'UTC')}}")
        limits = [int(limit.total_seconds()) for limit, _ in AGING if limit is not None]
        rows = self.store.query(f"""
WITH stuck AS ({' UNION ALL '.join(parts)})
SELECT j, cur, count() AS n, toString(sumIf(amt, known)) AS total, countIf(known) AS with_amount,
       {', '.join(f"countIf(age < {sec})" for sec in limits)}, count()
FROM (
    SELECT s.j AS j, e.cur AS cur, e.amt AS amt, e.known AS known,
           dateDiff('second', s.started, {{now:DateTime64(3, 'UTC')}}) AS age
    FROM stuck AS s
    LEFT JOIN (
        SELECT CorrelationId, Type, anyIf(toString(Currency), Amount IS NOT NULL) AS cur,
               anyIf(assumeNotNull(Amount), Amount IS NOT NULL) AS amt, countIf(Amount IS NOT NULL) > 0 AS known
        FROM {t('events')}
        WHERE OccurredAt >= {{lo:DateTime64(3, 'UTC')}} - INTERVAL 1 SECOND AND Type IN {{starts:Array(String)}}
          AND CorrelationId IN (SELECT CorrelationId FROM stuck)
        GROUP BY CorrelationId, Type
    ) AS e ON e.CorrelationId = s.CorrelationId AND e.Type = s.st
)
GROUP BY j, cur""", {**params, "starts": sorted({self.journeys[n].start for n in names})}).rows
        for j, cur, n, tot, with_amount, *below in rows:
            doc = out[j]
            doc.stuck += int(n)
            if with_amount:
                m.add(doc.money, cur, m.parse_amount(tot))
            prev = 0
            for label, upto in zip(AGING_LABELS, (int(x) for x in below)):   # cumulative: younger than each limit
                doc.buckets[label] += upto - prev
                prev = upto
        for doc in out.values():
            doc.money = dict(sorted(doc.money.items()))
        return list(out.values())

    # -- statistics --------------------------------------------------------------------------------------
    def stats(self, now: dt.datetime, lag_window: dt.timedelta = dt.timedelta(hours=1),
              pending_lookback: dt.timedelta | None = None) -> dict[str, dict]:
        """Per journey: start→end lag quantiles of instances completed within `lag_window`, and how many instances
        started within the lookback still wait for their end."""
        out = {}
        lag_from = _ms(now - lag_window)
        lookback = pending_lookback or self.policy.lookback
        for name, j in self.journeys.items():
            inner = instances_sql(self.store.table("milestones"), _ms(now - lookback))
            q, completed, pending = self.store.query(f"""
                SELECT quantilesExactIf(0.5, 0.9, 0.99)(dateDiff('millisecond', s_at, e_at) / 1000,
                                                        has_end AND e_at >= {lag_from}) AS q,
                       countIf(has_end AND e_at >= {lag_from}) AS completed,
                       countIf(NOT has_end) AS pending
                FROM ({inner})""", instance_params(j)).rows[0]
            out[name] = {"lag_seconds": dict(zip(("0.5", "0.9", "0.99"), q)) if completed else {},
                         "completed_last_hour": int(completed), "pending": int(pending)}
        return out

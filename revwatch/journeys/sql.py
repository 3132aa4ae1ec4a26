"""What "an instance of journey J" is, in SQL, written once (docs/journeys.md).

A journey is a pair of business event types (start → end) from the config, with optional milestones between.
One *instance* is one correlation ID that reached the start event; it ends when the same correlation ID reaches
the end event. Both times come from `milestones` (the first time each event type was reached per correlation ID:
a `min`, so duplicated and late events cannot move it wrongly). Every reader of journeys — the SLIs (decision
minutes), lag/pending statistics, the stuck list, attribution, funnels, forecasts, the web UI — selects from
`instances_sql`; no other module writes journey SQL.

Invariants:
* an instance without a start event does not exist (an end alone is not an instance);
* `s_at`/`e_at` are the first start/end times; `has_end` says whether `e_at` is meaningful;
* the start event's attributes and source describe the instance (group_by, attribution, money).
"""
from __future__ import annotations

from revwatch.config import JourneyConfig


def instances_sql(table: str, lo: str, hi: str | None = None, *, key: str = "j", steps: bool = False,
                  only: str = "") -> str:
    """The one subquery of journey instances whose milestones lie in [lo, hi) (SQL expressions; no upper bound
    when `hi` is None). `only`: an SQL condition on CorrelationId that keeps some instances (whole: all their
    milestones in [lo, hi) are read) — the narrow reads of slo/sli.py, through the (Type, CorrelationId) key.

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
        WHERE Type IN {types} AND At >= {lo}{f" AND At < {hi}" if hi else ""}{f" AND {only}" if only else ""}
        GROUP BY CorrelationId
        HAVING countIf(Type = {st}) > 0"""


def instances_money_sql(milestones: str, events: str, lo: str, hi: str | None = None, *, key: str = "j",
                        steps: bool = False, all_instances: bool = False, only: str = "") -> str:
    """`instances_sql` joined with the money of each instance's start event: `amt` (Decimal(38, 9), as stored),
    `cur` (the currency; '?' when none) and `known` (whether it carries an amount). By default only the instances
    that carry an amount; with `all_instances`, every instance (`known` false, `amt` 0 for the others). Only start
    events whose time lies in [lo, hi) are read (the events table's daily partitions of that range)."""
    st = f"{{{key}_start:String}}"
    only_and = f" AND {only}" if only else ""
    join, having = ("LEFT JOIN", "") if all_instances else ("INNER JOIN", " HAVING countIf(Amount IS NOT NULL) > 0")
    return f"""
        SELECT i.*, a.amt AS amt, if(a.cur = '', '?', a.cur) AS cur, a.known AS known
        FROM ({instances_sql(milestones, lo, hi, key=key, steps=steps, only=only)}) AS i
        {join} (
            SELECT CorrelationId, anyIf(assumeNotNull(Amount), Amount IS NOT NULL) AS amt,
                   anyIf(toString(Currency), Amount IS NOT NULL) AS cur, countIf(Amount IS NOT NULL) > 0 AS known
            FROM {events}
            WHERE Type = {st} AND OccurredAt >= {lo}{f" AND OccurredAt < {hi}" if hi else ""}{only_and}
            GROUP BY CorrelationId{having}
        ) AS a ON a.CorrelationId = i.CorrelationId"""


def instance_params(journey: JourneyConfig, key: str = "j") -> dict[str, object]:
    """The parameters `instances_sql` binds, for one journey (steps: start, milestones in order, end)."""
    return {f"{key}_start": journey.start, f"{key}_end": journey.end,
            f"{key}_steps": steps_of(journey)}


def steps_of(journey: JourneyConfig) -> list[str]:
    """The journey's event types in order: start, milestones, end."""
    return [journey.start, *journey.milestones, journey.end]


def amounts_sql(table: str, ids_param: str = "ids", types_param: str = "types", since_param: str | None = None) -> str:
    """Per correlation ID, the amount and currency of its start event, exactly: `Amount` is Decimal(38, 9) and
    comes back as text (never a float), with the customer, source and business reference of that event.

    Rows: (CorrelationId, Type, amount text or '', currency, customer_id, source, ref). Duplicated deliveries of
    the start event carry the same amount; `any` picks one."""
    since = f" AND OccurredAt >= {{{since_param}:DateTime64(3, 'UTC')}}" if since_param else ""
    return f"""
        SELECT CorrelationId, toString(Type), anyIf(toString(Amount), Amount IS NOT NULL),
               anyIf(toString(Currency), Amount IS NOT NULL),
               any(Attributes['customer_id']), any(Source),
               any(if(Attributes['payment_ref'] != '', Attributes['payment_ref'], Attributes['invoice_ref']))
        FROM {table}
        WHERE CorrelationId IN {{{ids_param}:Array(String)}} AND Type IN {{{types_param}:Array(String)}}{since}
        GROUP BY CorrelationId, Type"""

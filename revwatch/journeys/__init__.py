"""The journey read model: the one owner of journey SQL, instance status, the overdue policy, the stuck list,
money per currency (Decimal) and lookup/search (docs/journeys.md).

Layering: this package sits between the feature packages (collector, slo, alerts, webui …) and the core
(config, store, schema, units); it imports only the core, and every feature reads journeys through it — no other
module writes journey SQL or decides an instance's status.

* `sql`    — `instances_sql` (what an instance is), `instance_params`, `steps_of`, `amounts_sql`;
* `policy` — `Policy` (threshold per journey + lookback → status), `thresholds`, aging buckets;
* `money`  — `Money` (currency → Decimal), parsing, per-currency totals, decimal-string JSON;
* `reader` — `JourneyReader`: stuck list, summaries, statistics, money per instance (typed results);
* `lookup` — `JourneyService`: one correlation ID's document and search (plus the reader's stuck list).
"""
from __future__ import annotations

from revwatch.journeys.lookup import JourneyService, NotFound
from revwatch.journeys.money import Money
from revwatch.journeys.policy import (AGING, AGING_LABELS, DEFAULT_THRESHOLD, STATUSES, STUCK_LOOKBACK, Policy,
                                      aging_bucket, thresholds)
from revwatch.journeys.reader import InstanceMoney, JourneyReader, JourneySummary, StuckInstance
from revwatch.journeys.sql import amounts_sql, instance_params, instances_money_sql, instances_sql, steps_of

__all__ = ["AGING", "AGING_LABELS", "DEFAULT_THRESHOLD", "STATUSES", "STUCK_LOOKBACK", "InstanceMoney",
           "JourneyReader", "JourneyService", "JourneySummary", "Money", "NotFound", "Policy", "StuckInstance",
           "aging_bucket", "amounts_sql", "instance_params", "instances_money_sql", "instances_sql", "steps_of",
           "thresholds"]

"""The ClickHouse schema of revwatch: every table, view and index, as ordered, versioned migrations.

Design choices (each tested in tests/test_store.py and tests/test_collector_*.py):

* `spans` keeps the OpenTelemetry Collector ClickHouse exporter's column names so Grafana's ClickHouse data
  source shows them as traces, but it is sorted by `(CorrelationId, TraceId, SpanId)`: the question revwatch
  answers most is "everything about this correlation ID", and that sort key turns it into a primary-key range
  read in every daily partition. Trace-id lookups go through `trace_id_ts` (the exporter's own pattern) and a
  bloom filter on TraceId.
* Raw tables are ReplacingMergeTree on their identity (`TraceId, SpanId` / `EventId`); merges collapse
  re-deliveries eventually and every reader deduplicates exactly at query time (`LIMIT 1 BY`), so the answer
  never depends on merge timing.
* `milestones` (AggregatingMergeTree, min of OccurredAt per correlation ID and event type) is what journey SLIs
  and the journey view read. A minimum is idempotent, so duplicated and late events cannot change it wrongly.
  Daily partitions let the evaluator's short-range recomputes read one or two days, not the whole history.
* `ingest_log` records, per insert, which (kind, key, minute) got data; the SLO evaluator recomputes only those
  minutes of its per-minute rollup `slo_minutes`, so evaluation cost grows with minutes × SLOs.
* `{engine}` / `{on_cluster}` placeholders let the same statements create Replicated tables ON CLUSTER.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


_SPANS = """
CREATE TABLE IF NOT EXISTS {db}.spans{local} {on_cluster} (
    Timestamp DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    ParentSpanId String CODEC(ZSTD(1)),
    TraceState String CODEC(ZSTD(1)),
    SpanName LowCardinality(String) CODEC(ZSTD(1)),
    SpanKind LowCardinality(String) CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion String CODEC(ZSTD(1)),
    SpanAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    Duration UInt64 CODEC(ZSTD(1)),
    StatusCode LowCardinality(String) CODEC(ZSTD(1)),
    StatusMessage String CODEC(ZSTD(1)),
    `Events.Timestamp` Array(DateTime64(9, 'UTC')) CODEC(ZSTD(1)),
    `Events.Name` Array(LowCardinality(String)) CODEC(ZSTD(1)),
    `Events.Attributes` Array(Map(LowCardinality(String), String)) CODEC(ZSTD(1)),
    `Links.TraceId` Array(String) CODEC(ZSTD(1)),
    `Links.SpanId` Array(String) CODEC(ZSTD(1)),
    `Links.TraceState` Array(String) CODEC(ZSTD(1)),
    `Links.Attributes` Array(Map(LowCardinality(String), String)) CODEC(ZSTD(1)),
    CorrelationId String CODEC(ZSTD(1)),
    Journey LowCardinality(String) CODEC(ZSTD(1)),
    IngestedAt DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD(1)),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_duration Duration TYPE minmax GRANULARITY 1
) ENGINE = {engine_replacing}
PARTITION BY toDate(Timestamp)
ORDER BY (CorrelationId, TraceId, SpanId)
SETTINGS index_granularity = 2048, non_replicated_deduplication_window = 10000
"""

_TRACE_ID_TS = """
CREATE TABLE IF NOT EXISTS {db}.trace_id_ts{local} {on_cluster} (
    TraceId String CODEC(ZSTD(1)),
    Start DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
    End DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
    CorrelationId String CODEC(ZSTD(1))
) ENGINE = {engine}
PARTITION BY toDate(Start)
ORDER BY (TraceId, Start)
SETTINGS non_replicated_deduplication_window = 10000
"""

_TRACE_ID_TS_MV = """
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.trace_id_ts_mv {on_cluster} TO {db}.trace_id_ts{local} AS
SELECT TraceId, min(Timestamp) AS Start, max(Timestamp) AS End, any(CorrelationId) AS CorrelationId
FROM {db}.spans{local} WHERE TraceId != '' GROUP BY TraceId
"""

_EVENTS = """
CREATE TABLE IF NOT EXISTS {db}.events{local} {on_cluster} (
    EventId String CODEC(ZSTD(1)),
    Type LowCardinality(String) CODEC(ZSTD(1)),
    CorrelationId String CODEC(ZSTD(1)),
    OccurredAt DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    Source LowCardinality(String) CODEC(ZSTD(1)),
    Journey LowCardinality(String) CODEC(ZSTD(1)),
    Amount Nullable(Decimal(38, 9)),
    Currency LowCardinality(String),
    Attributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    IngestedAt DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD(1)),
    INDEX idx_event_id EventId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_attr_values mapValues(Attributes) TYPE bloom_filter(0.01) GRANULARITY 1
) ENGINE = {engine_replacing}
PARTITION BY toDate(OccurredAt)
ORDER BY (CorrelationId, EventId)
SETTINGS index_granularity = 2048, non_replicated_deduplication_window = 10000
"""

# One row per (event type, correlation ID) after merges: the first time the milestone was reached.
_MILESTONES = """
CREATE TABLE IF NOT EXISTS {db}.milestones{local} {on_cluster} (
    Type LowCardinality(String),
    CorrelationId String,
    At SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
    Source SimpleAggregateFunction(any, String),
    Attributes SimpleAggregateFunction(any, Map(String, String))
) ENGINE = {engine_aggregating}
PARTITION BY toDate(At)
ORDER BY (Type, CorrelationId)
SETTINGS non_replicated_deduplication_window = 10000
"""

_MILESTONES_MV = """
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.milestones_mv {on_cluster} TO {db}.milestones{local} AS
SELECT Type, CorrelationId, min(OccurredAt) AS At, any(Source) AS Source, any(Attributes) AS Attributes
FROM {db}.events{local} GROUP BY Type, CorrelationId
"""

# Which minutes received data, per kind ('event' keyed by type, 'span' keyed by service): the evaluator's
# list of rollup minutes to recompute. Small: one row per insert × distinct (key, minute).
_INGEST_LOG = """
CREATE TABLE IF NOT EXISTS {db}.ingest_log{local} {on_cluster} (
    Kind LowCardinality(String),
    Key LowCardinality(String),
    Minute DateTime('UTC'),
    IngestedAt DateTime64(3, 'UTC')
) ENGINE = {engine}
PARTITION BY toYYYYMM(IngestedAt)
ORDER BY (IngestedAt, Kind, Key, Minute)
TTL toDateTime(IngestedAt) + INTERVAL 35 DAY
SETTINGS non_replicated_deduplication_window = 10000
"""

_INGEST_LOG_EVENTS_MV = """
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.ingest_log_events_mv {on_cluster} TO {db}.ingest_log{local} AS
SELECT 'event' AS Kind, Type AS Key, toStartOfMinute(OccurredAt) AS Minute, max(IngestedAt) AS IngestedAt
FROM {db}.events{local} GROUP BY Type, Minute
"""

_INGEST_LOG_SPANS_MV = """
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.ingest_log_spans_mv {on_cluster} TO {db}.ingest_log{local} AS
SELECT 'span' AS Kind, ServiceName AS Key, toStartOfMinute(Timestamp) AS Minute, max(IngestedAt) AS IngestedAt
FROM {db}.spans{local} GROUP BY ServiceName, Minute
"""

_INGEST_LOG_SAMPLES_MV = """
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.ingest_log_samples_mv {on_cluster} TO {db}.ingest_log{local} AS
SELECT 'sample' AS Kind, Name AS Key, toStartOfMinute(Timestamp) AS Minute, now64(3, 'UTC') AS IngestedAt
FROM {db}.samples{local} GROUP BY Name, Minute
"""

_SAMPLES = """
CREATE TABLE IF NOT EXISTS {db}.samples{local} {on_cluster} (
    Name LowCardinality(String),
    Labels Map(LowCardinality(String), String),
    Value Float64,
    Timestamp DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    Probe LowCardinality(String)
) ENGINE = {engine}
PARTITION BY toYYYYMM(Timestamp)
ORDER BY (Name, Labels, Timestamp)
"""

# Per SLO (and group), per decision minute: good and total counts. Rewritten by the evaluator for dirty
# minutes; the highest Version wins (argMax at read time, so reads never depend on merges).
_SLO_MINUTES = """
CREATE TABLE IF NOT EXISTS {db}.slo_minutes{local} {on_cluster} (
    Slo LowCardinality(String),
    SpecHash String,
    GroupKey String,
    Minute DateTime('UTC'),
    Good UInt64,
    Total UInt64,
    Version UInt64
) ENGINE = {engine_replacing_version}
PARTITION BY toYYYYMM(Minute)
ORDER BY (Slo, SpecHash, GroupKey, Minute)
"""

_KV_STATE = """
CREATE TABLE IF NOT EXISTS {db}.kv_state{local} {on_cluster} (
    Key String,
    Value String,
    Version UInt64
) ENGINE = {engine_replacing_version}
ORDER BY Key
"""

_API_KEYS = """
CREATE TABLE IF NOT EXISTS {db}.api_keys{local} {on_cluster} (
    KeyId String,
    Hash String,
    Scope LowCardinality(String),
    Name String,
    CreatedAt DateTime64(3, 'UTC'),
    Revoked UInt8,
    Version UInt64
) ENGINE = {engine_replacing_version}
ORDER BY KeyId
"""

_ANOMALIES = """
CREATE TABLE IF NOT EXISTS {db}.anomalies{local} {on_cluster} (
    Id String,
    Kind LowCardinality(String),
    DetectedAt DateTime64(3, 'UTC'),
    CorrelationId String,
    Ref String,
    Score Float64,
    Reasons Array(String),
    Details Map(LowCardinality(String), String),
    Status LowCardinality(String)
) ENGINE = {engine_replacing}
PARTITION BY toYYYYMM(DetectedAt)
ORDER BY (Kind, Id)
"""

_ALERTS = """
CREATE TABLE IF NOT EXISTS {db}.alerts{local} {on_cluster} (
    ReceivedAt DateTime64(3, 'UTC'),
    Fingerprint String,
    AlertName LowCardinality(String),
    Status LowCardinality(String),
    Severity LowCardinality(String),
    Slo LowCardinality(String),
    Labels Map(LowCardinality(String), String),
    Annotations Map(LowCardinality(String), String),
    StartsAt DateTime64(3, 'UTC'),
    EndsAt Nullable(DateTime64(3, 'UTC'))
) ENGINE = {engine}
PARTITION BY toYYYYMM(ReceivedAt)
ORDER BY (AlertName, Fingerprint, ReceivedAt)
"""

# Where each correlation ID lives in time, and its traces: one granule read that turns a lookup into a
# partition-pruned read (the exporter's trace_id_ts pattern, keyed by correlation ID). Fed by spans and events.
_CORRELATION_TS = """
CREATE TABLE IF NOT EXISTS {db}.correlation_ts{local} {on_cluster} (
    CorrelationId String,
    First SimpleAggregateFunction(min, DateTime64(9, 'UTC')),
    Last SimpleAggregateFunction(max, DateTime64(9, 'UTC')),
    Traces SimpleAggregateFunction(groupUniqArrayArray, Array(String))
) ENGINE = {engine_aggregating}
ORDER BY CorrelationId
SETTINGS index_granularity = 1024, non_replicated_deduplication_window = 10000
"""

_CORRELATION_TS_SPANS_MV = """
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.correlation_ts_spans_mv {on_cluster} TO {db}.correlation_ts{local} AS
SELECT CorrelationId, min(Timestamp) AS First, max(Timestamp) AS Last, groupUniqArray(64)(TraceId) AS Traces
FROM {db}.spans{local} GROUP BY CorrelationId
"""

_CORRELATION_TS_EVENTS_MV = """
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.correlation_ts_events_mv {on_cluster} TO {db}.correlation_ts{local} AS
SELECT CorrelationId, toDateTime64(min(OccurredAt), 9, 'UTC') AS First, toDateTime64(max(OccurredAt), 9, 'UTC') AS Last,
       CAST([], 'Array(String)') AS Traces
FROM {db}.events{local} GROUP BY CorrelationId
"""

# Link attributes (invoice_ref, payment_ref, …) → the correlation IDs that carry them: the responder's hop from a
# payment to its invoice, and `?attr=` search, as point reads.
LINK_ATTRIBUTES = ("invoice_ref", "payment_ref", "subscription_id", "order_ref", "customer_id")
_ATTRIBUTE_LINKS = """
CREATE TABLE IF NOT EXISTS {db}.attribute_links{local} {on_cluster} (
    Key LowCardinality(String),
    Value String,
    CorrelationId String,
    At SimpleAggregateFunction(min, DateTime64(3, 'UTC'))
) ENGINE = {engine_aggregating}
ORDER BY (Key, Value, CorrelationId)
SETTINGS index_granularity = 1024, non_replicated_deduplication_window = 10000
"""

_ATTRIBUTE_LINKS_MV = """
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.attribute_links_mv {on_cluster} TO {db}.attribute_links{local} AS
SELECT kv.1 AS Key, kv.2 AS Value, CorrelationId, min(OccurredAt) AS At
FROM {db}.events{local}
ARRAY JOIN arrayFilter(x -> x.2 != '' AND has(['invoice_ref', 'payment_ref', 'subscription_id', 'order_ref',
                                               'customer_id'], x.1),
                       arrayZip(mapKeys(Attributes), mapValues(Attributes))) AS kv
GROUP BY Key, Value, CorrelationId
"""

# Event ID → content fingerprint of every accepted event, written by the collector's writer next to the event:
# the start-up source of the intake's bounded dedup memory (recent IDs by SeenAt) and of conflict detection.
_EVENT_KEYS = """
CREATE TABLE IF NOT EXISTS {db}.event_keys{local} {on_cluster} (
    EventId String CODEC(ZSTD(1)),
    Fingerprint UInt64,
    SeenAt DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD(1))
) ENGINE = {engine_replacing}
PARTITION BY toYYYYMM(SeenAt)
ORDER BY EventId
SETTINGS non_replicated_deduplication_window = 10000
"""

# Rows the store refused although it was up (found by bisecting a refused insert): kept with the store's error
# so nothing acknowledged is dropped silently and the writer is never blocked by one row.
_INGEST_QUARANTINE = """
CREATE TABLE IF NOT EXISTS {db}.ingest_quarantine{local} {on_cluster} (
    QuarantinedAt DateTime64(3, 'UTC'),
    Kind LowCardinality(String),
    SpoolToken String,
    Error String,
    Row String
) ENGINE = {engine}
PARTITION BY toYYYYMM(QuarantinedAt)
ORDER BY (Kind, QuarantinedAt)
SETTINGS non_replicated_deduplication_window = 10000
"""

# The amount exactly as the sender wrote it ("129.00"; the Decimal column reads back as "129"). On one node the
# second statement is a no-op; on a cluster it adds the column to the Distributed table too.
_EVENTS_AMOUNT_TEXT_LOCAL = """
ALTER TABLE {db}.events{local} {on_cluster} ADD COLUMN IF NOT EXISTS AmountText String DEFAULT '' CODEC(ZSTD(1))
"""
_EVENTS_AMOUNT_TEXT = """
ALTER TABLE {db}.events {on_cluster} ADD COLUMN IF NOT EXISTS AmountText String DEFAULT '' CODEC(ZSTD(1))
"""

# Alert notification pipeline (alerts/): the inbox of received alerts (Alertmanager's and revwatch's own), the
# routing groups' state, the notification outbox and silences. Inbox rows are written before the receiver
# answers; everything after is replayable from them, so a restart loses nothing. Group, outbox and silence rows
# are versioned (latest Version wins, read with argMax / FINAL-free LIMIT 1 BY).
_ALERT_INBOX = """
CREATE TABLE IF NOT EXISTS {db}.alert_inbox{local} {on_cluster} (
    Seq UInt64,
    ReceivedAt DateTime64(3, 'UTC'),
    Origin LowCardinality(String),
    Fingerprint String,
    Status LowCardinality(String),
    Labels Map(String, String),
    Annotations Map(String, String),
    StartsAt DateTime64(3, 'UTC'),
    EndsAt Nullable(DateTime64(3, 'UTC'))
) ENGINE = {engine}
PARTITION BY toYYYYMM(ReceivedAt)
ORDER BY Seq
TTL toDateTime(ReceivedAt) + INTERVAL 90 DAY
"""

_ALERT_GROUPS = """
CREATE TABLE IF NOT EXISTS {db}.alert_groups{local} {on_cluster} (
    GroupId String,
    State String,
    Deleted UInt8,
    Version UInt64
) ENGINE = {engine_replacing_version}
ORDER BY GroupId
"""

_NOTIFICATIONS = """
CREATE TABLE IF NOT EXISTS {db}.notifications{local} {on_cluster} (
    Id String,
    Notifier LowCardinality(String),
    OrderKey String,
    GroupId String,
    CreatedAt DateTime64(3, 'UTC'),
    Body String,
    Status LowCardinality(String),
    Attempts UInt32,
    NextAttemptAt DateTime64(3, 'UTC'),
    LastError String,
    Version UInt64
) ENGINE = {engine_replacing_version}
PARTITION BY toYYYYMM(CreatedAt)
ORDER BY Id
TTL toDateTime(CreatedAt) + INTERVAL 90 DAY
"""

_SILENCES = """
CREATE TABLE IF NOT EXISTS {db}.silences{local} {on_cluster} (
    Id String,
    Matchers String,
    StartsAt DateTime64(3, 'UTC'),
    EndsAt DateTime64(3, 'UTC'),
    CreatedBy String,
    Comment String,
    Version UInt64
) ENGINE = {engine_replacing_version}
ORDER BY Id
"""

# Annotations on SLO charts (deploys, upgrades, incidents; slo/annotations.py): a point in time with a text, for some
# SLOs (empty: all) and tags.
_ANNOTATIONS = """
CREATE TABLE IF NOT EXISTS {db}.annotations{local} {on_cluster} (
    Id String,
    Time DateTime64(3, 'UTC'),
    Text String,
    Slos Array(String),
    Tags Array(String),
    CreatedAt DateTime64(3, 'UTC'),
    CreatedBy String
) ENGINE = {engine}
PARTITION BY toYYYYMM(Time)
ORDER BY (Time, Id)
"""

# Dead letters (collector.deadletters): every rejected item or request, one row per flush of its occurrences
# (Count, FirstSeen/LastSeen aggregated at read time by Id = hash of door, source, reason and body); replays
# recorded per letter. Bounded by size and age by the collector's maintenance (deadletters: in the config).
_DEAD_LETTERS = """
CREATE TABLE IF NOT EXISTS {db}.dead_letters{local} {on_cluster} (
    Id String,
    Door LowCardinality(String),
    Source LowCardinality(String),
    Reason LowCardinality(String),
    Detail String,
    Body String,
    BodyBytes UInt64,
    FirstSeen DateTime64(3, 'UTC'),
    LastSeen DateTime64(3, 'UTC'),
    Count UInt64
) ENGINE = {engine}
PARTITION BY toYYYYMM(FirstSeen)
ORDER BY (Id, LastSeen)
"""

_DEAD_LETTER_REPLAYS = """
CREATE TABLE IF NOT EXISTS {db}.dead_letter_replays{local} {on_cluster} (
    Id String,
    At DateTime64(3, 'UTC'),
    Outcome LowCardinality(String),
    Accepted UInt32,
    Duplicates UInt32,
    Detail String
) ENGINE = {engine}
ORDER BY (Id, At)
"""

# Per-SLO alert history from revwatch's own evaluations (alerts/history.py): one row per transition of a direct-path
# alert (alerts/direct.py) — "firing" with the tiers (windows, burn rates, threshold, held) that made it fire,
# "resolved" with the instant it ended. An incident is (Fingerprint, StartsAt).
_SLO_ALERT_HISTORY = """
CREATE TABLE IF NOT EXISTS {db}.slo_alert_history{local} {on_cluster} (
    At DateTime64(3, 'UTC'),
    Slo LowCardinality(String),
    SloGroup String,
    Severity LowCardinality(String),
    AlertName LowCardinality(String),
    Fingerprint String,
    Status LowCardinality(String),
    StartsAt DateTime64(3, 'UTC'),
    EndsAt Nullable(DateTime64(3, 'UTC')),
    Tiers String
) ENGINE = {engine}
PARTITION BY toYYYYMM(StartsAt)
ORDER BY (Slo, StartsAt, Fingerprint)
"""

# Retention of the SLO alert history (alerts/history.py): each row carries its expiry (its instant + the configured
# `alerts.direct.history_retention`, default 400 days), and the TTL drops rows past it — a configured retention
# applies to the rows written under it, with no ALTER at start-up. Rows written before this migration get the default.
_SLO_ALERT_HISTORY_EXPIRES_LOCAL = """
ALTER TABLE {db}.slo_alert_history{local} {on_cluster}
    ADD COLUMN IF NOT EXISTS ExpiresAt DateTime('UTC') DEFAULT toDateTime(At) + INTERVAL 400 DAY
"""
_SLO_ALERT_HISTORY_EXPIRES = """
ALTER TABLE {db}.slo_alert_history {on_cluster}
    ADD COLUMN IF NOT EXISTS ExpiresAt DateTime('UTC') DEFAULT toDateTime(At) + INTERVAL 400 DAY
"""
_SLO_ALERT_HISTORY_TTL = """
ALTER TABLE {db}.slo_alert_history{local} {on_cluster} MODIFY TTL ExpiresAt
"""

# Probe cursors (Odoo write_date keyset) and other small restart-safe state live in kv_state.

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "raw telemetry: spans, trace lookup, business events",
              (_SPANS, _TRACE_ID_TS, _TRACE_ID_TS_MV, _EVENTS)),
    Migration(2, "journey milestones and the ingest log that drives incremental SLO rollups",
              (_MILESTONES, _MILESTONES_MV, _INGEST_LOG, _INGEST_LOG_EVENTS_MV, _INGEST_LOG_SPANS_MV)),
    Migration(3, "probe samples, SLO minute rollups, small state",
              (_SAMPLES, _INGEST_LOG_SAMPLES_MV, _SLO_MINUTES, _KV_STATE)),
    Migration(4, "API keys (hashed), anomalies, alert log", (_API_KEYS, _ANOMALIES, _ALERTS)),
    Migration(5, "correlation-ID time ranges and attribute links for fast journey lookups",
              (_CORRELATION_TS, _CORRELATION_TS_SPANS_MV, _CORRELATION_TS_EVENTS_MV, _ATTRIBUTE_LINKS,
               _ATTRIBUTE_LINKS_MV)),
    # Numbered 10 to leave room for migrations other branches add meanwhile (order of application is by tuple).
    Migration(10, "collector durability: event ID fingerprints for ingest dedup, quarantine of refused rows, "
                  "amounts as sent",
              (_EVENT_KEYS, _INGEST_QUARANTINE, _EVENTS_AMOUNT_TEXT_LOCAL, _EVENTS_AMOUNT_TEXT)),
    Migration(14, "alert notification pipeline: inbox, routing groups, notification outbox, silences",
              (_ALERT_INBOX, _ALERT_GROUPS, _NOTIFICATIONS, _SILENCES)),
    Migration(23, "dead letters of rejected items and their replays", (_DEAD_LETTERS, _DEAD_LETTER_REPLAYS)),
    Migration(28, "annotations on SLO charts", (_ANNOTATIONS,)),
    Migration(29, "per-SLO alert history from revwatch's own evaluations", (_SLO_ALERT_HISTORY,)),
    Migration(30, "retention of the SLO alert history: per-row ExpiresAt and a TTL on it",
              (_SLO_ALERT_HISTORY_EXPIRES_LOCAL, _SLO_ALERT_HISTORY_EXPIRES, _SLO_ALERT_HISTORY_TTL)),
)

# Tables that get a Distributed twin on a cluster, with their sharding key: one journey lives on one shard.
DISTRIBUTED = {"spans": "cityHash64(CorrelationId)", "events": "cityHash64(CorrelationId)",
               "milestones": "cityHash64(CorrelationId)", "trace_id_ts": "cityHash64(CorrelationId)",
               "samples": "cityHash64(Name)", "ingest_log": "rand()", "slo_minutes": "cityHash64(Slo)",
               "kv_state": "cityHash64(Key)", "correlation_ts": "cityHash64(CorrelationId)",
               "attribute_links": "cityHash64(Value)", "api_keys": "cityHash64(KeyId)", "anomalies": "cityHash64(Id)",
               "alerts": "cityHash64(Fingerprint)", "event_keys": "cityHash64(EventId)",
               "ingest_quarantine": "rand()", "alert_inbox": "rand()", "alert_groups": "cityHash64(GroupId)",
               "notifications": "cityHash64(Id)", "silences": "cityHash64(Id)", "dead_letters": "cityHash64(Id)",
               "dead_letter_replays": "cityHash64(Id)",
               "annotations": "cityHash64(Id)", "slo_alert_history": "cityHash64(Slo)"}


def render(statement: str, database: str, cluster: str | None = None) -> str:
    """Fill a schema statement for one node (plain MergeTree engines) or a cluster (Replicated, ON CLUSTER)."""
    if cluster:
        path = "'/clickhouse/tables/{shard}/" + database + "/{table}'"
        engines = {"engine": f"ReplicatedMergeTree({path}, '{{replica}}')",
                   "engine_replacing": f"ReplicatedReplacingMergeTree({path}, '{{replica}}')",
                   "engine_replacing_version": f"ReplicatedReplacingMergeTree({path}, '{{replica}}', Version)",
                   "engine_aggregating": f"ReplicatedAggregatingMergeTree({path}, '{{replica}}')"}
        local, on_cluster = "_local", f"ON CLUSTER {cluster}"
    else:
        engines = {"engine": "MergeTree", "engine_replacing": "ReplacingMergeTree",
                   "engine_replacing_version": "ReplacingMergeTree(Version)",
                   "engine_aggregating": "AggregatingMergeTree"}
        local, on_cluster = "", ""
    # str.format does not re-read substituted values, so the engines' {shard}/{replica} macros survive.
    return statement.format(db=database, local=local, on_cluster=on_cluster, **engines)


def distributed_statement(table: str, database: str, cluster: str) -> str:
    """The Distributed table that fronts a cluster's `<table>_local` replicas under the plain table name."""
    return (f"CREATE TABLE IF NOT EXISTS {database}.{table} ON CLUSTER {cluster} AS {database}.{table}_local "
            f"ENGINE = Distributed({cluster}, {database}, {table}_local, {DISTRIBUTED[table]})")

"""The one YAML config of revwatch, validated by pydantic.

Errors name the file, the key path and what is wrong, in one line (`ConfigError`), so the CLI can print it
and exit 2. Environment variables override what must not live in a file (`REVWATCH_STORE_DSN`) and what
deployments change per host (`REVWATCH_HOST`, `REVWATCH_PORT`, `REVWATCH_DATA_DIR`).
"""
from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path
from collections.abc import Mapping
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from alerts.config import AlertsConfig   # the `alerts:` section (typed; imports only revwatch.units)
from revwatch.units import iana_time_zone, parse_duration, parse_size

NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,63}$")
# labels every generated SLO alert carries, which SLO labels must not replace
RESERVED_ALERT_LABELS = frozenset({"slo", "severity", "journey", "group", "window", "alertname", "sloth_id",
                                   "sloth_service", "sloth_slo", "sloth_severity", "sloth_window"})


class ConfigError(Exception):
    """A config problem, already phrased as one line for a person."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _duration(v: Any) -> dt.timedelta:
    return v if isinstance(v, dt.timedelta) else parse_duration(v)


def _name(v: str) -> str:
    if not NAME_RE.fullmatch(v):
        raise ValueError("name must be 1-63 letters, digits, '_', '.', '-'")
    return v


def _whole_minutes(v: Any) -> dt.timedelta | None:
    """An optional duration of whole minutes, at least one (SLO evaluation works in whole minutes)."""
    if v is None:
        return None
    d = _duration(v)
    if d < dt.timedelta(minutes=1) or d.total_seconds() % 60:
        raise ValueError("must be a whole number of minutes, at least 1m")
    return d


class StoreConfig(_Model):
    dsn: str | None = None                 # default: chdb://<data_dir>/data
    database: str = "revwatch"
    cluster: str | None = None             # ON CLUSTER name for a real ClickHouse cluster

    @field_validator("database")
    @classmethod
    def _db_name(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", v):
            raise ValueError("database must be letters, digits and underscores")
        return v

    @field_validator("dsn")
    @classmethod
    def _dsn(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^(chdb|https?)://", v):
            raise ValueError("dsn must start with chdb://, http:// or https://")
        return v


class ServerConfig(_Model):
    host: str = "127.0.0.1"
    port: int = Field(8317, ge=1, le=65535)
    metrics_public: bool = False           # /metrics without a key (for a Prometheus with no auth)
    external_url: str = "http://127.0.0.1:8317"   # how people reach this server (links in alerts)
    max_body_bytes: int = 64 * 1024 * 1024  # after decompression, OTLP/HTTP recommendation
    # what this server runs besides the read API: `collector` (ingest + spool writer), `evaluator` (the one
    # writer of SLO rollups, anomaly scans, probes), `all` (both). Several collectors + one evaluator share a store.
    # (`intake` is what the intake processes below run as; not set by hand)
    role: Literal["all", "collector", "evaluator", "intake"] = "all"
    # processes that accept ingest beside this one, each with its own spool, together on `intake_port` (default:
    # port + 1) while this process keeps the store and serves reads (revwatch/intakes.py, docs/http.md); 0 = none
    intake_processes: int = Field(0, ge=0, le=32)
    intake_port: int | None = Field(None, ge=1, le=65535)
    # under ingest load, reads start at most this many per second on average (a token bucket, at most two
    # running: revwatch.priority); 0 = off
    reads_per_second_under_ingest: float = Field(10.0, ge=0)
    # reads answered from memory (SLO states from the evaluator's pass, journey lookups from the tier below) under
    # ingest load: at most this many per second on average — each costs a fraction of a millisecond, but ten
    # readers in a loop would otherwise take the cores ingest needs (revwatch.priority); 0 = not rationed
    memory_reads_per_second_under_ingest: float = Field(150.0, ge=0)
    # every journey's events held in memory for lookups (revwatch/journeys/tier.py), at most this many MiB; over it
    # (or 0) lookups read the store. Only for the embedded store with role `all`: this process then sees every
    # event the store receives (another process writing the same server store would not be seen)
    journey_memory_mb: int = Field(512, ge=0)
    # reverse proxies (IP addresses or CIDR networks) whose X-Forwarded-Proto / X-Forwarded-For are believed: the
    # client address and the `Secure` cookie decision come from those headers only when the peer is one of these
    # (docs/http.md "Behind a proxy"); empty: never, whoever sends them
    trusted_proxies: list[str] = []

    def local_url(self) -> str:
        """The base URL a client on this machine reaches this server at: a wildcard bind address on loopback, an
        IPv6 address in brackets (the CLI's server target, and intake processes reaching their owner)."""
        host = self.host if self.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, v: list[str]) -> list[str]:
        import ipaddress
        for item in v:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"trusted_proxies: {item!r} is not an IP address or CIDR network") from None
        return v

    @field_validator("max_body_bytes", mode="before")
    @classmethod
    def _size(cls, v: Any) -> int:
        return parse_size(v)


class SpoolConfig(_Model):
    dir: str | None = None                 # default: <data_dir>/spool
    max_bytes: int = 1024**3
    segment_bytes: int = 64 * 1024**2
    batch_rows: int = 50_000
    flush_interval: dt.timedelta = dt.timedelta(milliseconds=500)
    dedup_horizon: dt.timedelta = dt.timedelta(hours=24)   # span re-sends recognised at ingest for this long
    dedup_max_keys: int = 5_000_000

    _sizes = field_validator("max_bytes", "segment_bytes", mode="before")(classmethod(lambda cls, v: parse_size(v)))
    _durs = field_validator("flush_interval", "dedup_horizon", mode="before")(classmethod(lambda cls, v: _duration(v)))


_TIER_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,32}$")


def _owner_text(v: Any) -> Any:
    """owner / team / service: one line of text, at most 100 characters (shown in notifications, routed on)."""
    if v is None:
        return None
    if not isinstance(v, str) or not v.strip():
        raise ValueError("must be a non-empty string")
    v = v.strip()
    if len(v) > 100 or any(ord(ch) < 32 or ord(ch) == 127 for ch in v):
        raise ValueError("must be one line of at most 100 characters")
    return v


def _tier(v: Any) -> Any:
    """tier: a short label (`1`, `tier-1`, `critical`); a YAML number is read as its text."""
    if v is None:
        return None
    if isinstance(v, int) and not isinstance(v, bool):
        v = str(v)
    if not isinstance(v, str) or not _TIER_RE.fullmatch(v):
        raise ValueError("tier must be 1-32 letters, digits, '_', '.', '-' (e.g. 1, tier-1, critical)")
    return v


def _runbook(v: Any) -> Any:
    """runbook: an absolute http(s) URL (a link in every notification and on the SLO page)."""
    if v is None:
        return None
    from urllib.parse import urlsplit
    parts = urlsplit(v) if isinstance(v, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() for c in v):
        raise ValueError("runbook must be an absolute http:// or https:// URL")
    return v


class OwnershipFields(_Model):
    """Who answers for an SLO or journey (docs/slo-policy.md): shown in the UI, CLI and every notification,
    searchable and groupable by team, matchable by alert routes. An SLO's unset keys fall back to its journey's
    (slo/ownership.py resolves them once)."""
    owner: str | None = None               # a person or rota (name, e-mail or handle)
    team: str | None = None
    service: str | None = None             # the service the SLO belongs to (also Sloth's `service`)
    tier: str | None = None                # criticality tier of the service (e.g. 1, tier-1, critical)
    runbook: str | None = None             # http(s) URL of the runbook

    _v_text = field_validator("owner", "team", "service", mode="before")(classmethod(lambda cls, v: _owner_text(v)))
    _v_tier = field_validator("tier", mode="before")(classmethod(lambda cls, v: _tier(v)))
    _v_runbook = field_validator("runbook", mode="before")(classmethod(lambda cls, v: _runbook(v)))


class JourneyConfig(OwnershipFields):
    start: str
    end: str
    milestones: list[str] = []             # intermediate event types, in expected order
    threshold: dt.timedelta | None = None  # default overdue threshold for the journey view
    # a journey that should always flow: alert when none of its event types occurred for this long (slo/coverage.py)
    no_data_alert: dt.timedelta | None = None
    no_data_severity: Literal["page", "ticket"] = "ticket"

    _t = field_validator("threshold", mode="before")(classmethod(lambda cls, v: None if v is None else _duration(v)))
    _nda = field_validator("no_data_alert", mode="before")(classmethod(lambda cls, v: _whole_minutes(v)))


# The per-minute sample of the oldest open (replayable) dead letter's age, per source, that the `deadletter_age`
# SLI reads (written by collector.deadletters).
DEADLETTER_AGE_SAMPLE = "deadletter_oldest_open_age_seconds"


class SliConfig(_Model):
    kind: Literal["journey_latency", "journey_completion", "span_ratio", "span_latency", "gauge_threshold",
                  "deadletter_age", "prometheus", "composite"]
    threshold: dt.timedelta | None = None  # journey_latency, span_latency; deadletter_age: the replay deadline
    max_age: dt.timedelta | None = None    # journey_completion
    service: str | None = None             # span SLIs
    span_name: str | None = None
    attributes: dict[str, str] = {}        # span attribute filters
    bad_when: dict[str, str] = {}          # span_ratio: column/attribute → value that makes a span bad
    sample: str | None = None              # gauge_threshold
    labels: dict[str, str] = {}
    max: float | None = None
    min: float | None = None
    # prometheus (an SLI Prometheus computes, as Sloth's): error/total event queries or one error-ratio query,
    # with `{{.window}}` where the range goes
    error_query: str | None = None
    total_query: str | None = None
    error_ratio_query: str | None = None

    _d = field_validator("threshold", "max_age", mode="before")(
        classmethod(lambda cls, v: None if v is None else _duration(v)))

    @model_validator(mode="after")
    def _kind_fields(self) -> "SliConfig":
        if self.kind == "composite":          # set by SloConfig for a `composite:` SLO (slo/composite.py)
            return self
        if self.kind == "prometheus":
            if bool(self.error_ratio_query) == bool(self.error_query or self.total_query) or \
                    bool(self.error_query) != bool(self.total_query):
                raise ValueError("sli kind prometheus needs either error_query and total_query, or error_ratio_query")
            return self
        need = {"journey_latency": ["threshold"], "journey_completion": ["max_age"], "span_ratio": ["bad_when"],
                "span_latency": ["threshold"], "gauge_threshold": ["sample"],
                "deadletter_age": ["threshold"]}[self.kind]
        for f in need:
            if not getattr(self, f):
                raise ValueError(f"sli kind {self.kind} needs '{f}'")
        if self.kind == "deadletter_age":
            # a minute is good when no open letter (of a replayable reason; `labels: {source: …}` narrows) is older
            # than `threshold`: "failed events are replayed within 4 h" — a gauge over the collector's age sample
            if self.sample not in (None, DEADLETTER_AGE_SAMPLE) or self.min is not None or self.max is not None:
                raise ValueError("sli kind deadletter_age takes 'threshold' (and 'labels: {source: …}'), not "
                                 "sample/min/max")
            assert self.threshold is not None
            self.sample, self.max = DEADLETTER_AGE_SAMPLE, self.threshold.total_seconds()
        if self.kind == "gauge_threshold" and self.max is None and self.min is None:
            raise ValueError("sli kind gauge_threshold needs 'max' or 'min'")
        return self

    @property
    def journey_threshold(self) -> dt.timedelta:
        """The time allowed from start to end for journey SLIs."""
        t = self.threshold if self.kind == "journey_latency" else self.max_age
        assert t is not None, "validated above: journey SLIs have their threshold or max_age"
        return t


class BurnWindowPair(_Model):
    """One multi-window tier: a fixed `burn_rate`, or `budget_percent` of the period's budget consumed within
    `long` (the factor then follows from the SLO period: slo/windows.py)."""
    long: dt.timedelta
    short: dt.timedelta
    burn_rate: float | None = Field(None, gt=0)
    budget_percent: float | None = Field(None, gt=0, le=100)
    alert_after: dt.timedelta = dt.timedelta(0)   # the condition must hold this long (rule `for:`)

    _d = field_validator("long", "short", "alert_after", mode="before")(classmethod(lambda cls, v: _duration(v)))

    @model_validator(mode="after")
    def _one_factor(self) -> "BurnWindowPair":
        if (self.burn_rate is None) == (self.budget_percent is None):
            raise ValueError("give exactly one of burn_rate or budget_percent")
        if not dt.timedelta(0) < self.short < self.long:
            raise ValueError("short must be positive and shorter than long")
        return self


class AlertMetaConfig(_Model):
    """Per-severity extras of a generated alert (Sloth's page_alert / ticket_alert)."""
    disable: bool = False
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}


class ExhaustionTier(_Model):
    """An exhaustion-time alert (slo/exhaustion.py): fires when the SLO window's budget left will be gone within
    `within` at the burn rate of `burn_window` (already exhausted counts), beside the multi-window tiers."""
    within: dt.timedelta
    severity: Literal["page", "ticket"] = "page"
    burn_window: Literal["5m", "30m", "1h", "2h", "6h", "1d", "3d"] = "1h"

    _d = field_validator("within", mode="before")(classmethod(lambda cls, v: _whole_minutes(v)))


class AlertingConfig(_Model):
    """Tiers per severity. Unset `page`/`ticket` come from the alert-window catalogue of the SLO's period
    (`catalogue` names one explicitly); an empty list disables that severity."""
    page: list[BurnWindowPair] | None = None
    ticket: list[BurnWindowPair] | None = None
    catalogue: str | None = None
    min_events: int = Field(0, ge=0)       # a window with fewer decided events never alerts (low traffic)
    exhaustion: list[ExhaustionTier] = []  # page/ticket when the budget runs out within N hours at the current burn
    name: str | None = None                # alert name in generated rules (default per generator)
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    page_alert: AlertMetaConfig = Field(default_factory=AlertMetaConfig)
    ticket_alert: AlertMetaConfig = Field(default_factory=AlertMetaConfig)


class CalendarConfig(_Model):
    """A calendar-aligned SLO window (OpenSLO `calendar`): periods of `duration` (count + unit d, w, M, Q, Y)
    starting at `start`, a wall-clock time in `time_zone`, and repeating from there."""
    duration: str
    start: dt.datetime
    time_zone: str = "UTC"

    @field_validator("duration")
    @classmethod
    def _duration(cls, v: str) -> str:
        if not re.fullmatch(r"[1-9][0-9]*[dwMQY]", v or ""):
            raise ValueError("calendar duration must be a count and a unit d, w, M, Q or Y (e.g. 1M, 1w)")
        return v

    @field_validator("start")
    @classmethod
    def _naive(cls, v: dt.datetime) -> dt.datetime:
        if v.tzinfo is not None:
            raise ValueError("calendar start is a wall-clock time in time_zone: give it without an offset")
        return v

    _zone = field_validator("time_zone")(classmethod(lambda cls, v: iana_time_zone(v)))


class CompositeConfig(_Model):
    """A composite SLO (slo/composite.py): a roll-up of 2-25 member SLOs, their SLIs weighted (`weighted`, weights
    default 1) or the least healthy member's burn (`least_healthy`)."""
    members: list[str] = Field(min_length=2, max_length=25)
    rollup: Literal["weighted", "least_healthy"] = "weighted"
    weights: dict[str, float] = {}

    @model_validator(mode="after")
    def _members(self) -> "CompositeConfig":
        if len(set(self.members)) != len(self.members):
            raise ValueError("members must be distinct")
        extra = sorted(set(self.weights) - set(self.members))
        if extra:
            raise ValueError(f"weights: {extra[0]!r} is not a member")
        if any(w <= 0 for w in self.weights.values()):
            raise ValueError("weights must be positive")
        return self


class SloConfig(OwnershipFields):
    name: str
    journey: str | None = None
    objective: float = Field(gt=0, lt=1)
    window: str = "28d"                    # rolling duration, or 'calendar_month' / 'calendar_week'
    sli: SliConfig
    group_by: list[str] = []               # evaluate per value of these attributes (gateway, region …)
    description: str = ""
    # occurrences: good/total events; timeslices: good minutes / minutes (a minute is good if its ratio ≥
    # timeslice_target); ratio_timeslices: the average of the minutes' ratios (OpenSLO RatioTimeslices);
    # amount: good/total in money, per currency (journey SLIs only; docs/journeys.md "Money-weighted SLOs")
    budgeting: Literal["occurrences", "timeslices", "ratio_timeslices", "amount"] = "occurrences"
    timeslice_target: float | None = None  # timeslices: a minute is good if its ratio ≥ this
    timeslice_window: dt.timedelta = dt.timedelta(minutes=1)   # the slice length (whole minutes)
    calendar: CalendarConfig | None = None  # window: calendar
    alerting: AlertingConfig = Field(default_factory=AlertingConfig)
    labels: dict[str, str] = {}
    import_spec: str | None = None         # the spec format an imported SLO was written in (e.g. prometheus/v1)
    display_name: str | None = None
    annotations: dict[str, str] = {}       # free-form notes on the SLO (OpenSLO metadata.annotations)
    # no minute with data for this long makes the SLO's state no_data (default: the fastest page tier's long
    # window, else 1h; slo/coverage.py)
    no_data_after: dt.timedelta | None = None
    composite: CompositeConfig | None = None   # a roll-up of member SLOs instead of an SLI (slo/composite.py)

    @model_validator(mode="before")
    @classmethod
    def _composite_sli(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("composite") is not None:
            if data.get("sli") is not None:
                raise ValueError("a composite SLO has no sli (its members have theirs)")
            return {**data, "sli": {"kind": "composite"}}
        return data

    _nda = field_validator("no_data_after", mode="before")(classmethod(lambda cls, v: _whole_minutes(v)))

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: dict[str, str]) -> dict[str, str]:
        reserved = sorted(set(v) & RESERVED_ALERT_LABELS)
        if reserved:
            raise ValueError(f"label {reserved[0]!r} is set by revwatch on every alert and cannot be overridden")
        return v

    _n = field_validator("name")(classmethod(lambda cls, v: _name(v)))

    @field_validator("window")
    @classmethod
    def _window(cls, v: str) -> str:
        if v not in ("calendar_month", "calendar_week", "calendar"):
            parse_duration(v)
        return v

    _ts = field_validator("timeslice_window", mode="before")(classmethod(lambda cls, v: _duration(v)))

    @field_validator("timeslice_window")
    @classmethod
    def _slice(cls, v: dt.timedelta) -> dt.timedelta:
        if v < dt.timedelta(minutes=1) or v.total_seconds() % 60:
            raise ValueError("timeslice_window must be a whole number of minutes")
        return v

    @model_validator(mode="after")
    def _calendar(self) -> "SloConfig":
        if (self.window == "calendar") != (self.calendar is not None):
            raise ValueError("window: calendar goes with a calendar: {duration, start, time_zone} section")
        if self.budgeting == "amount" and not self.sli.kind.startswith("journey_"):
            raise ValueError("budgeting: amount weighs journey instances by their start event's amount; "
                             f"sli kind {self.sli.kind} has no amounts")
        if self.sli.kind == "composite" and self.composite is None:
            raise ValueError("sli kind composite is set by a composite: {members, rollup, weights} section")
        if self.composite is not None and (self.window.startswith("calendar") or self.group_by or self.journey):
            raise ValueError("a composite SLO has a rolling window and no group_by or journey")
        return self

    @property
    def rolling_window(self) -> dt.timedelta | None:
        """The rolling window length, or None for calendar windows."""
        return None if self.window.startswith("calendar_") else parse_duration(self.window)


class AdjustmentConfig(_Model):
    """A budget adjustment (docs/slo-policy.md; expanded by slo/adjustments.py): minutes that do not count
    (`exclude`) or whose events count as good (`good`), once from `start` for `duration`, or at every occurrence of
    the RFC 5545 `rrule` (e.g. `FREQ=MONTHLY;BYMONTHDAY=-1;BYHOUR=18`). `start` is a wall-clock time in
    `time_zone` (an offset, if given, is converted to it); each occurrence starts at its wall-clock time and lasts
    `duration` of real time. `slos`: the SLOs it applies to (absent: every SLO)."""
    name: str
    start: dt.datetime
    duration: dt.timedelta
    rrule: str | None = None
    time_zone: str = "UTC"
    slos: list[str] | None = None
    effect: Literal["exclude", "good"] = "exclude"
    description: str = ""

    _n = field_validator("name")(classmethod(lambda cls, v: _name(v)))
    _d = field_validator("duration", mode="before")(classmethod(lambda cls, v: _whole_minutes(v)))
    _zone = field_validator("time_zone")(classmethod(lambda cls, v: iana_time_zone(v)))

    @field_validator("rrule")
    @classmethod
    def _rrule(cls, v: str | None) -> str | None:
        if v is None:
            return v
        v = v.strip().removeprefix("RRULE:")
        from dateutil.rrule import rrulestr
        upper = v.upper()
        if "\n" in v or "DTSTART" in upper:
            raise ValueError("rrule is one RRULE line without DTSTART (the start is `start`)")
        if "FREQ=SECONDLY" in upper or "FREQ=MINUTELY" in upper or "BYSECOND" in upper:
            raise ValueError("rrule must repeat at most hourly and without BYSECOND (adjustments are whole minutes)")
        try:
            rrulestr(v, dtstart=dt.datetime(2000, 1, 1))
        except (ValueError, TypeError) as e:
            raise ValueError(f"not an RFC 5545 RRULE ({e})") from None
        return v

    @model_validator(mode="after")
    def _whole_minute_start(self) -> "AdjustmentConfig":
        if self.start.second or self.start.microsecond:
            raise ValueError("start must be a whole minute")
        if self.start.tzinfo is not None:             # an instant: as wall-clock time in time_zone
            from zoneinfo import ZoneInfo
            self.start = self.start.astimezone(ZoneInfo(self.time_zone)).replace(tzinfo=None)
        return self


class ProbeConfig(BaseModel):
    """One probe: its type and schedule; the probe's own fields are validated by the probe class."""
    model_config = ConfigDict(extra="allow")
    name: str
    type: str
    interval: dt.timedelta = dt.timedelta(seconds=60)
    cron: str | None = None                # crontab expression (UTC); replaces interval when set
    timeout: dt.timedelta = dt.timedelta(seconds=20)
    jitter: dt.timedelta = dt.timedelta(seconds=0)

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str | None) -> str | None:
        if v is not None:
            from apscheduler.triggers.cron import CronTrigger
            CronTrigger.from_crontab(v, timezone="UTC")     # raises ValueError with the reason
        return v

    _d = field_validator("interval", "timeout", "jitter", mode="before")(classmethod(lambda cls, v: _duration(v)))


class CorrelationConfig(_Model):
    span_attributes: list[str] = ["correlation.id", "odoo.correlation_id", "x-correlation-id"]
    baggage_keys: list[str] = ["correlation.id"]
    journey_attribute: str = "journey"


class EvaluatorConfig(_Model):
    """The SLO evaluator loop (revwatch/evaluator.py). Its interval bounds how late a page can be (the direct alert
    path pages from each pass): 2 s keeps crossing → page under 5 s; a pass costs ~0.6 s at 50 SLOs / 20 M events."""
    interval: dt.timedelta = dt.timedelta(seconds=2)
    enabled: bool = True
    # Journey summaries (stuck counts and money, lag quantiles), in-flight forecasts and annotations are recomputed
    # at most this often, the SLO results, coverage and alert conditions every pass. Why: they scan the lookback's
    # instances (the largest queries of a pass: ~0.2-0.4 s each at 1 M events) and the embedded store runs one query
    # at a time, so a person's journey lookup waited behind them every 2 s (revwatch/read_slots.py); they move on
    # the scale of journey thresholds (minutes), and each says when it was computed (`summaries_at`).
    summary_interval: dt.timedelta = dt.timedelta(seconds=30)

    _d = field_validator("interval", "summary_interval", mode="before")(classmethod(lambda cls, v: _duration(v)))


class MetricSeriesConfig(_Model):
    """One sample series watched by the online metric anomaly detector (each matching label set separately)."""
    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]{1,63}$")
    sample: str                            # samples.Name, e.g. rabbitmq_queue_messages
    labels: dict[str, str] = {}            # label filters (exact match)
    alarm: float = Field(0.8, gt=0, le=1)  # score from which a point becomes a finding


class AnomalyConfig(_Model):
    """anomaly: scan interval of the business detectors, and the series the metric detector watches."""
    scan_interval: dt.timedelta = dt.timedelta(minutes=5)
    metric_interval: dt.timedelta = dt.timedelta(seconds=60)
    metric_series: list[MetricSeriesConfig] = []
    # failure probability from which an open payment is a reconciliation-risk finding (below: listed as `scored`)
    risk_threshold: float = Field(0.5, gt=0, le=1)

    _d = field_validator("scan_interval", "metric_interval", mode="before")(
        classmethod(lambda cls, v: _duration(v)))
class DeadLetterConfig(_Model):
    """deadletters: how much of rejected input is kept (collector.deadletters)."""
    max_body_bytes: int = 64 * 1024        # the start of each rejected body kept (the rest is cut, its size noted)
    max_bytes: int = 256 * 1024**2         # all letters together; the oldest go first beyond this
    max_age: dt.timedelta = dt.timedelta(days=30)

    _sizes = field_validator("max_body_bytes", "max_bytes", mode="before")(classmethod(lambda cls, v: parse_size(v)))
    _d = field_validator("max_age", mode="before")(classmethod(lambda cls, v: _duration(v)))


class SourceMappingConfig(_Model):
    """How one webhook payload becomes canonical events (collector.sources): JMESPath expressions over the JSON
    payload, a type table and the amount's unit. Unset keys take the preset's defaults (Stripe)."""
    events: str | None = None              # JMESPath to a list of items; default: the payload is one item
    type: str | None = None                # JMESPath to the provider's event type
    types: dict[str, str] = {}             # provider type → canonical type (others are stored under their own name)
    event_id: str | None = None
    correlation_id: str | None = None
    occurred_at: str | None = None
    occurred_at_unit: Literal["rfc3339", "s", "ms"] | None = None
    amount: str | None = None
    amount_unit: Literal["major", "minor"] | None = None   # minor: cents etc., scaled by the ISO 4217 exponent
    currency: str | None = None
    journey: str | None = None
    attributes: dict[str, str] = {}        # attribute name → JMESPath


class SourceConfig(_Model):
    """One named webhook source: `POST /api/v1/sources/<name>`, authenticated by its own signature or token."""
    preset: Literal["stripe", "odoo", "hmac"]
    # stripe: signing secrets (whsec_…; several during rotation); hmac: shared secrets; odoo: SHA-256 hashes of
    # the URL tokens (`sha256:<hex>`, made by `revwatch sources token`), never the tokens themselves
    secrets: list[str] = Field(min_length=1)
    mapping: SourceMappingConfig = Field(default_factory=SourceMappingConfig)
    tolerance: dt.timedelta = dt.timedelta(seconds=300)    # stripe: max age of the signed timestamp
    header: str = "X-Signature"            # hmac: the header carrying the signature
    prefix: str = ""                       # hmac: text before the signature, e.g. "sha256="
    encoding: Literal["hex", "base64"] = "hex"
    probe: str | None = None               # odoo: map with this Odoo probe's rules (same event ids as polling)

    _d = field_validator("tolerance", mode="before")(classmethod(lambda cls, v: _duration(v)))

    @model_validator(mode="after")
    def _preset_fields(self) -> "SourceConfig":
        if self.preset == "odoo":
            for s in self.secrets:
                if not re.fullmatch(r"sha256:[0-9a-f]{64}", s):
                    raise ValueError("odoo sources keep only token hashes in secrets ('sha256:<64 hex>', printed "
                                     "by `revwatch sources token`)")
            if not self.probe and not (self.mapping.type and self.mapping.event_id):
                raise ValueError("an odoo source needs 'probe' (an Odoo probe's mapping) or a mapping with at "
                                 "least type and event_id")
        return self


class UiConfig(_Model):
    """The browser UI (webui/): sign-in sessions and kiosk mode."""
    public: bool = False                   # read-only pages without signing in (kiosk); acting still needs a session
    session_ttl: dt.timedelta = dt.timedelta(hours=12)
    secret: str | None = None              # cookie signing secret; default: $REVWATCH_UI_SECRET or <data_dir>/ui-secret
    secure_cookie: Literal["auto", "always", "never"] = "auto"   # auto: Secure when the request came over HTTPS
    refresh: dt.timedelta = dt.timedelta(seconds=30)              # overview auto-refresh period

    _d = field_validator("session_ttl", "refresh", mode="before")(classmethod(lambda cls, v: _duration(v)))


class Config(_Model):
    data_dir: str = ".revwatch"
    store: StoreConfig = Field(default_factory=StoreConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    spool: SpoolConfig = Field(default_factory=SpoolConfig)
    correlation: CorrelationConfig = Field(default_factory=CorrelationConfig)
    journeys: dict[str, JourneyConfig] = {}
    slos: list[SloConfig] = []
    openslo_files: list[str] = []
    sloth_files: list[str] = []            # Sloth specs (prometheus/v1, PrometheusServiceLevel) to import
    sloth_period: str = "30d"              # their SLO period (Sloth's --default-slo-period)
    slo_alert_windows: list[str] = []      # Sloth AlertWindows files: custom alert-window catalogues
    adjustments: list[AdjustmentConfig] = []   # budget adjustments (docs/slo-policy.md)
    openslo_v2alpha_files: list[str] = []  # OpenSLO v2alpha BudgetAdjustment (and composite SLO) documents
    prometheus_url: str | None = None      # where the values of Prometheus-backed SLOs are read (HTTP API)
    evaluator: EvaluatorConfig = Field(default_factory=EvaluatorConfig)
    probes: list[ProbeConfig] = []
    anomaly: AnomalyConfig = Field(default_factory=AnomalyConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    ui: UiConfig = Field(default_factory=UiConfig)
    sources: dict[str, SourceConfig] = {}  # named webhook sources (collector.sources)
    deadletters: DeadLetterConfig = Field(default_factory=DeadLetterConfig)
    source_path: str | None = Field(None, exclude=True)

    @model_validator(mode="after")
    def _cross_checks(self) -> "Config":
        names = set()
        for i, slo in enumerate(self.slos):
            if slo.name in names:
                raise ValueError(f"slos.{i}.name: duplicate SLO name {slo.name!r}")
            names.add(slo.name)
            if slo.sli.kind.startswith("journey_"):
                if not slo.journey:
                    raise ValueError(f"slos.{i}.journey: required for sli kind {slo.sli.kind}")
                if slo.journey not in self.journeys:
                    raise ValueError(f"slos.{i}.journey: unknown journey {slo.journey!r} "
                                     f"(define it under journeys:)")
        seen: set[str] = set()
        for i, adj in enumerate(self.adjustments):
            if adj.name in seen:
                raise ValueError(f"adjustments.{i}.name: duplicate adjustment name {adj.name!r}")
            seen.add(adj.name)
        for name in self.journeys:
            if not NAME_RE.fullmatch(name):
                raise ValueError(f"journeys.{name}: name must be letters, digits, '_', '.', '-'")
        for name, src in self.sources.items():
            if not NAME_RE.fullmatch(name):
                raise ValueError(f"sources.{name}: name must be letters, digits, '_', '.', '-'")
            if src.probe and src.probe not in {p.name for p in self.probes}:
                raise ValueError(f"sources.{name}.probe: no probe named {src.probe!r} (define it under probes:)")
        return self

    @property
    def store_dsn(self) -> str:
        """The DSN to open: config, or the embedded default inside the data dir."""
        return self.store.dsn or f"chdb://{Path(self.data_dir).resolve() / 'data'}"

    @property
    def spool_dir(self) -> Path:
        return Path(self.spool.dir) if self.spool.dir else Path(self.data_dir) / "spool"


def _apply_env(raw: dict[str, Any]) -> dict[str, Any]:
    env = os.environ
    if env.get("REVWATCH_DATA_DIR"):
        raw["data_dir"] = env["REVWATCH_DATA_DIR"]
    if env.get("REVWATCH_STORE_DSN"):
        raw.setdefault("store", {})["dsn"] = env["REVWATCH_STORE_DSN"]
    if env.get("REVWATCH_HOST"):
        raw.setdefault("server", {})["host"] = env["REVWATCH_HOST"]
    if env.get("REVWATCH_PORT"):
        raw.setdefault("server", {})["port"] = env["REVWATCH_PORT"]
    return raw


def _readable_path(loc: tuple, raw: dict[str, Any]) -> str:
    """A key path for people: list items that have a name are shown by name (`slos['payment-posting'].objective`,
    not `slos.1.objective`); pydantic's validator tags are dropped."""
    parts: list[str] = []
    node: Any = raw
    for p in loc:
        if isinstance(p, str) and p.startswith("function-"):
            continue
        if isinstance(p, int) and isinstance(node, list):
            item = node[p] if p < len(node) else None
            name = item.get("name") if isinstance(item, dict) else None
            parts[-1:] = [f"{parts[-1] if parts else ''}[{name!r}]" if isinstance(name, str) else
                          f"{parts[-1] if parts else ''}[{p}]"]
            node = item
            continue
        parts.append(str(p))
        node = node.get(p) if isinstance(node, dict) else None
    return ".".join(parts)


def _value_at(loc: tuple, raw: dict[str, Any]) -> Any:
    node: Any = raw
    for p in loc:
        if isinstance(node, dict):
            node = node.get(p)
        elif isinstance(node, list) and isinstance(p, int) and p < len(node):
            node = node[p]
        else:
            return None
    return node


def _problem(first: Mapping[str, Any], loc: tuple, raw: dict[str, Any]) -> str:
    """The problem in clear words; ratios get the hint people need most (99.5 is a percentage)."""
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        return "unknown key"
    value = _value_at(loc, raw)
    if loc and loc[-1] in ("objective", "timeslice_target") and isinstance(value, (int, float)) \
            and not isinstance(value, bool) and not 0 < value < 1:
        if 50 <= value < 100:
            return (f"{value:g} looks like a percentage; use a ratio such as {value / 100:g} "
                    "(between 0 and 1, exclusive)")
        if value in (1, 100):
            return f"{value:g} leaves no error budget; use a ratio below 1 such as 0.999"
        return f"{value:g} is not a ratio; use a ratio such as 0.995 (between 0 and 1, exclusive)"
    return msg


def _describe(err: ValidationError, source: str, raw: dict[str, Any] | None = None) -> str:
    raw = raw or {}
    first = err.errors()[0]
    loc = tuple(p for p in first["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    path = _readable_path(loc, raw)
    msg = _problem(first, loc, raw)
    where = f"{source}: {path}: " if path else f"{source}: "
    more = f" (and {len(err.errors()) - 1} more problem(s))" if len(err.errors()) > 1 else ""
    return f"{where}{msg}{more}"


def _named_slo_paths(message: str, raw: dict[str, Any]) -> str:
    """Cross-check messages say `slos.N.key`; name the SLO instead when it has a name."""
    listed = raw.get("slos")
    slos = listed if isinstance(listed, list) else []

    def repl(m: re.Match) -> str:
        i = int(m.group(1))
        item = slos[i] if i < len(slos) else None
        name = item.get("name") if isinstance(item, dict) else None
        return f"slos[{name!r}]." if isinstance(name, str) else m.group(0)
    return re.sub(r"\bslos\.(\d+)\.", repl, message)


DEFAULT_CONFIG_FILE = "revwatch.yaml"


def config_path(path: str | os.PathLike | None = None) -> Path | None:
    """The config file a command uses: `--config`, else `$REVWATCH_CONFIG`, else `./revwatch.yaml` when it
    exists (so `revwatch init` then any command, in the same directory, share one store), else none."""
    if path:
        return Path(path)
    if os.environ.get("REVWATCH_CONFIG"):
        return Path(os.environ["REVWATCH_CONFIG"])
    local = Path(DEFAULT_CONFIG_FILE)
    return local if local.is_file() else None


def load_config(path: str | os.PathLike | None = None) -> Config:
    """Load and validate the config from `path`, `$REVWATCH_CONFIG` or `./revwatch.yaml` (`config_path`), or
    the defaults when there is none."""
    path = config_path(path)
    raw: dict[str, Any] = {}
    source = str(path) if path else "<defaults>"
    if path:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"{source}: config file not found")
        try:
            loaded = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark else ""
            raise ConfigError(f"{source}:{where}: not valid YAML ({getattr(e, 'problem', e)})") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{source}: top level must be a mapping of sections")
        raw = loaded
    raw = _apply_env(raw)
    try:
        cfg = Config.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(_named_slo_paths(_describe(e, source, raw), raw)) from None
    except ValueError as e:
        raise ConfigError(_named_slo_paths(f"{source}: {e}", raw)) from None
    cfg.source_path = str(Path(path).resolve()) if path else None
    if cfg.source_path and not Path(cfg.data_dir).is_absolute() and "REVWATCH_DATA_DIR" not in os.environ:
        cfg.data_dir = str(Path(cfg.source_path).parent / cfg.data_dir)
    return cfg

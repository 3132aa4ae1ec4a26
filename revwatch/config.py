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
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from revwatch.units import parse_duration, parse_size

NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,63}$")


class ConfigError(Exception):
    """A config problem, already phrased as one line for a person."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _duration(v: Any) -> dt.timedelta:
    return v if isinstance(v, dt.timedelta) else parse_duration(v)


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
    max_body_bytes: int = 64 * 1024 * 1024  # after decompression, OTLP/HTTP recommendation

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


class JourneyConfig(_Model):
    start: str
    end: str
    milestones: list[str] = []             # intermediate event types, in expected order
    threshold: dt.timedelta | None = None  # default overdue threshold for the journey view

    _t = field_validator("threshold", mode="before")(classmethod(lambda cls, v: None if v is None else _duration(v)))


class SliConfig(_Model):
    kind: Literal["journey_latency", "journey_completion", "span_ratio", "span_latency", "gauge_threshold"]
    threshold: dt.timedelta | None = None  # journey_latency, span_latency
    max_age: dt.timedelta | None = None    # journey_completion
    service: str | None = None             # span SLIs
    span_name: str | None = None
    attributes: dict[str, str] = {}        # span attribute filters
    bad_when: dict[str, str] = {}          # span_ratio: column/attribute → value that makes a span bad
    sample: str | None = None              # gauge_threshold
    labels: dict[str, str] = {}
    max: float | None = None
    min: float | None = None

    _d = field_validator("threshold", "max_age", mode="before")(
        classmethod(lambda cls, v: None if v is None else _duration(v)))

    @model_validator(mode="after")
    def _kind_fields(self) -> "SliConfig":
        need = {"journey_latency": ["threshold"], "journey_completion": ["max_age"], "span_ratio": ["bad_when"],
                "span_latency": ["threshold"], "gauge_threshold": ["sample"]}[self.kind]
        for f in need:
            if not getattr(self, f):
                raise ValueError(f"sli kind {self.kind} needs '{f}'")
        if self.kind == "gauge_threshold" and self.max is None and self.min is None:
            raise ValueError("sli kind gauge_threshold needs 'max' or 'min'")
        return self

    @property
    def journey_threshold(self) -> dt.timedelta:
        """The time allowed from start to end for journey SLIs."""
        return self.threshold if self.kind == "journey_latency" else self.max_age


class BurnWindowPair(_Model):
    long: dt.timedelta
    short: dt.timedelta
    burn_rate: float = Field(gt=0)

    _d = field_validator("long", "short", mode="before")(classmethod(lambda cls, v: _duration(v)))


def _workbook_pairs(severity: str) -> list[BurnWindowPair]:
    table = {"page": [("1h", "5m", 14.4), ("6h", "30m", 6.0)], "ticket": [("1d", "2h", 3.0), ("3d", "6h", 1.0)]}
    return [BurnWindowPair(long=lg, short=sh, burn_rate=b) for lg, sh, b in table[severity]]


class AlertingConfig(_Model):
    page: list[BurnWindowPair] = Field(default_factory=lambda: _workbook_pairs("page"))
    ticket: list[BurnWindowPair] = Field(default_factory=lambda: _workbook_pairs("ticket"))
    min_events: int = Field(0, ge=0)       # a window with fewer decided events never alerts (low traffic)


class SloConfig(_Model):
    name: str
    journey: str | None = None
    objective: float = Field(gt=0, lt=1)
    window: str = "28d"                    # rolling duration, or 'calendar_month' / 'calendar_week'
    sli: SliConfig
    group_by: list[str] = []               # evaluate per value of these attributes (gateway, region …)
    description: str = ""
    budgeting: Literal["occurrences", "timeslices"] = "occurrences"
    timeslice_target: float | None = None  # timeslices: a minute is good if its ratio ≥ this
    alerting: AlertingConfig = Field(default_factory=AlertingConfig)
    labels: dict[str, str] = {}

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME_RE.fullmatch(v):
            raise ValueError("name must be 1-63 letters, digits, '_', '.', '-'")
        return v

    @field_validator("window")
    @classmethod
    def _window(cls, v: str) -> str:
        if v not in ("calendar_month", "calendar_week"):
            parse_duration(v)
        return v

    @property
    def rolling_window(self) -> dt.timedelta | None:
        """The rolling window length, or None for calendar windows."""
        return None if self.window.startswith("calendar_") else parse_duration(self.window)


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
    interval: dt.timedelta = dt.timedelta(seconds=15)
    enabled: bool = True

    _d = field_validator("interval", mode="before")(classmethod(lambda cls, v: _duration(v)))


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
    evaluator: EvaluatorConfig = Field(default_factory=EvaluatorConfig)
    probes: list[ProbeConfig] = []
    alerts: dict[str, Any] = {}
    ui: UiConfig = Field(default_factory=UiConfig)
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
        for name in self.journeys:
            if not NAME_RE.fullmatch(name):
                raise ValueError(f"journeys.{name}: name must be letters, digits, '_', '.', '-'")
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


def _describe(err: ValidationError, source: str) -> str:
    first = err.errors()[0]
    path = ".".join(str(p) for p in first["loc"] if p not in ("function-after[_kind_fields(), SliConfig]",))
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    where = f"{source}: {path}: " if path else f"{source}: "
    more = f" (and {len(err.errors()) - 1} more problem(s))" if len(err.errors()) > 1 else ""
    return f"{where}{msg}{more}"


def load_config(path: str | os.PathLike | None = None) -> Config:
    """Load and validate the config from `path`, `$REVWATCH_CONFIG`, or defaults when neither is set."""
    path = path or os.environ.get("REVWATCH_CONFIG")
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
        raise ConfigError(_describe(e, source)) from None
    except ValueError as e:
        raise ConfigError(f"{source}: {e}") from None
    cfg.source_path = str(Path(path).resolve()) if path else None
    if cfg.source_path and not Path(cfg.data_dir).is_absolute() and "REVWATCH_DATA_DIR" not in os.environ:
        cfg.data_dir = str(Path(cfg.source_path).parent / cfg.data_dir)
    return cfg

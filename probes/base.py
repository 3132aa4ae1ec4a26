"""Probe framework: each probe type is a class with a config schema; a runner executes probes with a timeout,
never two runs of one probe at once, and exponential backoff after failures. Every run records
`probe_up{probe=…}` (1/0) and `probe_duration_seconds`; a failing probe never stops the others and recovers by
itself. Errors are stored with credentials redacted.
"""
from __future__ import annotations

import concurrent.futures as cf
import datetime as dt
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from revwatch.units import utcnow

log = logging.getLogger("revwatch.probes")
_SECRET_KEYS = ("password", "api_key", "apikey", "token", "secret", "authorization")


@dataclass
class Sample:
    name: str
    value: float
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class ProbeResult:
    samples: list[Sample] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)      # business events in the §4 shape
    notes: list[str] = field(default_factory=list)        # e.g. "queue.job not readable: needs group …"
    # run once the events are safely stored (e.g. a cursor's new position): a run whose events are lost
    # (crash, spool full) must be read again, so incremental state moves only after hand-over
    on_stored: list[Callable[[], None]] = field(default_factory=list)

    def commit(self) -> None:
        """The events are stored: let the probe persist what depends on it."""
        for fn in self.on_stored:
            fn()
        self.on_stored.clear()


class ProbeConfigError(ValueError):
    """A probe's config is invalid; the message names the probe and the field."""


SettingsT = TypeVar("SettingsT", bound=BaseModel)


class Probe(Generic[SettingsT]):
    """Base class: subclasses declare `type` and `Settings` and implement `run()`. Generic over the settings
    model, so `self.settings` has the subclass's own `Settings` type:
    `class HttpProbe(Probe["HttpProbe.Settings"])`."""
    type: ClassVar[str] = ""

    class Settings(BaseModel):
        model_config = ConfigDict(extra="forbid")

    def __init__(self, name: str, settings: SettingsT, state=None):
        self.name, self.settings, self.state = name, settings, state

    def secrets(self) -> list[str]:
        """Values that must never appear in logs or errors."""
        out = []
        for k, v in self.settings.model_dump().items():
            if any(s in k.lower() for s in _SECRET_KEYS) and isinstance(v, str) and v:
                out.append(v)
        return out

    def run(self) -> ProbeResult:
        raise NotImplementedError


def redact(text: str, secrets: list[str]) -> str:
    """Remove secrets (and URL passwords) from a message."""
    for s in secrets:
        if s:
            text = text.replace(s, "***")
    return re.sub(r"(://[^:/@\s]+):[^@/\s]+@", r"\1:***@", text)


def probe_settings(cfg, registry: dict[str, type[Probe]]) -> tuple[type[Probe], Any]:
    """(probe class, validated settings) of a `revwatch.config.ProbeConfig` — no connection is made, so the config
    boundary can call it for every command; unknown type or bad field → ProbeConfigError naming the probe."""
    cls = registry.get(cfg.type)
    if cls is None:
        raise ProbeConfigError(f"probe {cfg.name}: unknown type {cfg.type!r} (one of {', '.join(sorted(registry))})")
    extra = {k: v for k, v in (cfg.model_extra or {}).items()}
    try:
        return cls, cls.Settings.model_validate(extra)
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(x) for x in first["loc"])
        msg = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
        raise ProbeConfigError(f"probe {cfg.name}: {loc}: {msg}") from None


def build_probe(cfg, registry: dict[str, type[Probe]], state=None) -> Probe:
    """Instantiate a probe from a `revwatch.config.ProbeConfig`; unknown type or bad field → ProbeConfigError."""
    cls, settings = probe_settings(cfg, registry)
    return cls(cfg.name, settings, state)


class ProbeRunner:
    """Runs one probe with timeout, no overlap and backoff; hands results to `sink(probe, result, up, seconds)`."""

    def __init__(self, probe: Probe, timeout: float, sink, max_backoff: float = 600.0):
        self.probe, self.timeout, self.sink, self.max_backoff = probe, timeout, sink, max_backoff
        self._running = threading.Lock()
        self._pool = cf.ThreadPoolExecutor(1, thread_name_prefix=f"probe-{probe.name}")
        self.failures = 0
        self.skip_until = 0.0
        self.last_error: str | None = None
        self.runs = self.skipped = 0

    def __call__(self) -> ProbeResult | None:
        """One scheduled tick: skipped while a previous run is still going or while backing off."""
        now = time.monotonic()
        if now < self.skip_until or not self._running.acquire(blocking=False):
            self.skipped += 1
            return None
        try:
            return self._run_once()
        finally:
            self._running.release()

    def _run_once(self) -> ProbeResult | None:
        self.runs += 1
        t0 = time.monotonic()
        future = self._pool.submit(self.probe.run)
        try:
            result = future.result(timeout=self.timeout)
            up, self.last_error = True, None
            self.failures, self.skip_until = 0, 0.0
        except Exception as e:                              # timeout or probe error: record, back off, go on
            if isinstance(e, cf.TimeoutError):
                msg = f"timed out after {self.timeout:g}s"
                self._pool.shutdown(wait=False, cancel_futures=True)      # the stuck call keeps its thread;
                self._pool = cf.ThreadPoolExecutor(1, thread_name_prefix=f"probe-{self.probe.name}")
            else:
                msg = f"{type(e).__name__}: {e}"
            self.last_error = redact(msg, self.probe.secrets())
            self.failures += 1
            backoff = min(self.max_backoff, 2 ** (self.failures - 1))
            self.skip_until = time.monotonic() + backoff
            log.warning("probe %s failed (%s); backing off %.0fs", self.probe.name, self.last_error, backoff)
            result, up = ProbeResult(notes=[self.last_error]), False
        seconds = time.monotonic() - t0
        self.sink(self.probe, result, up, seconds)
        return result


def sample_rows(probe: Probe, result: ProbeResult, up: bool, seconds: float,
                at: dt.datetime | None = None) -> list[tuple[Any, ...]]:
    """Rows for the `samples` table: the probe's samples plus probe_up and probe_duration_seconds."""
    at = at or utcnow()
    rows = [(s.name, {"probe": probe.name, **s.labels}, float(s.value), at, probe.name) for s in result.samples]
    rows.append(("probe_up", {"probe": probe.name, "type": probe.type}, 1.0 if up else 0.0, at, probe.name))
    rows.append(("probe_duration_seconds", {"probe": probe.name}, seconds, at, probe.name))
    return rows

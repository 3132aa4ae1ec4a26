"""SLO specs: the config's `slos:` plus imported OpenSLO v1 (slo/openslo.py) and Sloth (slo/sloth.py) files and
OpenSLO v2alpha composites (slo/openslo_v2.py), resolved into one model.

An `SloSpec` is a validated `SloConfig` with what evaluation needs resolved: the journey's start and end
event types, the window, the alert tiers with burn factors scaled to the SLO period (slo/windows.py), and a hash of
everything that changes which minutes are good (the rollup key, so a changed definition never mixes with minutes
computed under the old one).
"""
from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from revwatch import journeys
from revwatch.config import RESERVED_ALERT_LABELS, Config, SloConfig
from revwatch.units import parse_duration
from slo.calendar import nominal_length, period_bounds
from slo.ownership import Ownership, resolve as resolve_ownership
from slo.windows import Catalogue, Tier, WindowsError, load_alert_windows, resolve_tiers

BURN_WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
# the budget period a calendar window stands for in burn factors (rules are static, so one nominal length)
NOMINAL_CALENDAR = {"calendar_week": dt.timedelta(days=7), "calendar_month": dt.timedelta(days=30)}
log = logging.getLogger("revwatch.slo")


class SpecError(ValueError):
    """An SLO document is invalid; the message names the document and the field."""


@dataclass(frozen=True)
class SloSpec:
    config: SloConfig
    start_type: str | None = None
    end_type: str | None = None
    tiers: tuple[Tier, ...] = ()           # alert tiers, burn factors scaled to the period (slo/windows.py)
    warnings: tuple[str, ...] = ()         # tiers left out, and why
    ownership: Ownership = Ownership()     # owner/team/service/tier/runbook, the journey's filling unset keys

    @property
    def is_prometheus(self) -> bool:
        """An SLI Prometheus computes (imported Sloth / OpenSLO PromQL): rules only, values read from Prometheus."""
        return self.kind == "prometheus"

    @property
    def nominal_period(self) -> dt.timedelta:
        """The budget period burn factors are scaled to: the rolling window, or 7 d / 30 d for calendar windows."""
        if self.config.calendar is not None:
            return nominal_length(self.config.calendar.duration)
        return NOMINAL_CALENDAR.get(self.config.window) or parse_duration(self.config.window)

    def tiers_of(self, severity: str) -> list[Tier]:
        return [t for t in self.tiers if t.severity == severity]

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def kind(self) -> str:
        return self.config.sli.kind

    @property
    def is_composite(self) -> bool:
        """A roll-up of member SLOs (slo/composite.py): no SLI of its own, no rollup minutes."""
        return self.config.composite is not None

    @property
    def is_gauge(self) -> bool:
        """Minute-counting SLIs over a sample: gauge_threshold, and deadletter_age (a gauge over the dead-letter
        age sample)."""
        return self.kind in ("gauge_threshold", "deadletter_age")

    @property
    def is_journey(self) -> bool:
        return self.kind in ("journey_latency", "journey_completion")

    @property
    def threshold(self) -> dt.timedelta:
        """Journey SLIs: the time allowed from start to end."""
        return self.config.sli.journey_threshold

    @functools.cached_property
    def spec_hash(self) -> str:
        """Hash of the fields that decide good/bad per minute (not objective, window or alerting); computed once
        per spec (a pass asked for it ~800 times: 0.09 s of JSON and SHA-256)."""
        sli = self.config.sli.model_dump(mode="json")
        doc = {"sli": sli, "group_by": self.config.group_by, "start": self.start_type, "end": self.end_type}
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]

    def window_bounds(self, at: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
        """The SLO window [start, end) ending with the minute that contains `at` (calendar or rolling)."""
        end = at.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
        w = self.config.window
        if self.config.calendar is not None:
            return period_bounds(self.config.calendar, at)[0], end
        if w == "calendar_month":
            return at.replace(day=1, hour=0, minute=0, second=0, microsecond=0), end
        if w == "calendar_week":
            d = at - dt.timedelta(days=at.weekday())
            return d.replace(hour=0, minute=0, second=0, microsecond=0), end
        return end - parse_duration(w), end

    def period(self, at: dt.datetime) -> dt.timedelta:
        """The full budget period (rolling window length, or the whole calendar month/week)."""
        w = self.config.window
        if self.config.calendar is not None:
            start, stop = period_bounds(self.config.calendar, at)
            return stop - start
        if w == "calendar_week":
            return dt.timedelta(days=7)
        if w == "calendar_month":
            first = at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
            nxt = (first + dt.timedelta(days=32)).replace(day=1)
            return nxt - first
        return parse_duration(w)


def _config_path(cfg: Config, f: str) -> Path:
    return Path(f) if Path(f).is_absolute() or not cfg.source_path else Path(cfg.source_path).parent / f


def resolve(cfg: Config) -> list[SloSpec]:
    """Every SLO of the config and of its OpenSLO and Sloth files, resolved; raises SpecError on a bad document."""
    from slo.sloth import load_sloth          # the importers build on this module's types
    try:
        catalogues = [c for f in cfg.slo_alert_windows for c in load_alert_windows(_config_path(cfg, f))]
    except WindowsError as e:
        raise SpecError(str(e)) from None
    sources = [(s, f"slos: {s.name}") for s in cfg.slos]
    openslo = [_config_path(cfg, f) for f in cfg.openslo_files]
    for f, path in zip(cfg.openslo_files, openslo):
        sources += [(s, f"{f}: {s.name}") for s in load_openslo(path, [p for p in openslo if p != path])]
    for f in cfg.sloth_files:
        sources += [(s, f"{f}: {s.name}") for s in load_sloth(_config_path(cfg, f), cfg.sloth_period)]
    from slo.openslo_v2 import OpenSloV2Error, load_composites
    members = [s.name for s, _ in sources]              # v2alpha composites roll up the SLOs declared elsewhere
    for f in cfg.openslo_v2alpha_files:
        try:
            composites = load_composites(_config_path(cfg, f), members)
        except OpenSloV2Error as e:
            raise SpecError(str(e)) from None
        sources += [(s, f"{f}: {s.name}") for s in composites]
        members += [s.name for s in composites]         # a later file's composites may roll these up
    specs = [_resolve_one(s, cfg, catalogues, where) for s, where in sources]
    names = [s.name for s in specs]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise SpecError(f"duplicate SLO name(s): {', '.join(sorted(dup))}")
    from slo.composite import check
    check(specs)
    for s in specs:
        for w in s.warnings:
            log.warning("%s", w)
    return specs


def _resolve_one(s: SloConfig, cfg: Config, catalogues: list[Catalogue], where: str) -> SloSpec:
    start = end = None
    j = cfg.journeys.get(s.journey or "")
    if s.sli.kind.startswith("journey_"):
        if j is None:
            raise SpecError(f"{where}: journey: unknown journey {s.journey!r}")
        start, end = j.start, j.end
    if s.sli.kind != "prometheus":                # revwatch's own alerts carry these labels
        for field, labels in (("alerting.labels", s.alerting.labels),
                              ("alerting.page_alert.labels", s.alerting.page_alert.labels),
                              ("alerting.ticket_alert.labels", s.alerting.ticket_alert.labels)):
            reserved = sorted(set(labels) & RESERVED_ALERT_LABELS)
            if reserved:
                raise SpecError(f"{where}: {field}: label {reserved[0]!r} is set by revwatch on every alert and "
                                f"cannot be overridden")
    spec = SloSpec(s, start, end)
    try:
        tiers, warnings = resolve_tiers(s.alerting, spec.nominal_period, s.objective, catalogues, where)
    except WindowsError as e:
        raise SpecError(str(e)) from None
    return SloSpec(s, start, end, tiers, warnings, resolve_ownership(s, j))


def load_openslo(path: Path, more: list[Path] | None = None) -> list[SloConfig]:
    """The SLOs of an OpenSLO v1 file (slo/openslo.py); refs may resolve into `more` files."""
    from slo.openslo import load_openslo as _load
    return _load(path, more)


def journey_thresholds(cfg: Config, specs: list[SloSpec] | None = None) -> dict[str, dt.timedelta]:
    """Per journey, the overdue threshold: the journey's own, else the tightest threshold of its SLOs (a pure
    function of the config; `specs` saves resolving them again)."""
    specs = resolve(cfg) if specs is None else specs
    return journeys.thresholds(cfg.journeys, ((s.config.journey, s.threshold) for s in specs
                                              if s.is_journey and s.config.journey))

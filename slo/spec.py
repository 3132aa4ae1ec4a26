"""SLO specs: the config's `slos:` plus OpenSLO v1 `SLO` documents, resolved into one model.

An `SloSpec` is a validated `SloConfig` with what evaluation needs resolved: the journey's start and end
event types, the window, and a hash of everything that changes which minutes are good (the rollup key, so a
changed definition never mixes with minutes computed under the old one).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import logging

import yaml
from pydantic import ValidationError

from revwatch.config import RESERVED_ALERT_LABELS, Config, SloConfig
from revwatch.units import parse_duration
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

    @property
    def is_prometheus(self) -> bool:
        """An SLI Prometheus computes (imported Sloth / OpenSLO PromQL): rules only, values read from Prometheus."""
        return self.kind == "prometheus"

    @property
    def nominal_period(self) -> dt.timedelta:
        """The budget period burn factors are scaled to: the rolling window, or 7 d / 30 d for calendar windows."""
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
    def is_journey(self) -> bool:
        return self.kind in ("journey_latency", "journey_completion")

    @property
    def threshold(self) -> dt.timedelta:
        """Journey SLIs: the time allowed from start to end."""
        return self.config.sli.journey_threshold

    @property
    def spec_hash(self) -> str:
        """Hash of the fields that decide good/bad per minute (not objective, window or alerting)."""
        sli = self.config.sli.model_dump(mode="json")
        doc = {"sli": sli, "group_by": self.config.group_by, "start": self.start_type, "end": self.end_type}
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]

    def window_bounds(self, at: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
        """The SLO window [start, end) ending with the minute that contains `at` (calendar or rolling)."""
        end = at.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
        w = self.config.window
        if w == "calendar_month":
            return at.replace(day=1, hour=0, minute=0, second=0, microsecond=0), end
        if w == "calendar_week":
            d = at - dt.timedelta(days=at.weekday())
            return d.replace(hour=0, minute=0, second=0, microsecond=0), end
        return end - parse_duration(w), end

    def period(self, at: dt.datetime) -> dt.timedelta:
        """The full budget period (rolling window length, or the whole calendar month/week)."""
        w = self.config.window
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
    for f in cfg.openslo_files:
        sources += [(s, f"{f}: {s.name}") for s in load_openslo(_config_path(cfg, f))]
    for f in cfg.sloth_files:
        sources += [(s, f"{f}: {s.name}") for s in load_sloth(_config_path(cfg, f), cfg.sloth_period)]
    specs = [_resolve_one(s, cfg, catalogues, where) for s, where in sources]
    names = [s.name for s in specs]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise SpecError(f"duplicate SLO name(s): {', '.join(sorted(dup))}")
    for s in specs:
        for w in s.warnings:
            log.warning("%s", w)
    return specs


def _resolve_one(s: SloConfig, cfg: Config, catalogues: list[Catalogue], where: str) -> SloSpec:
    start = end = None
    if s.sli.kind.startswith("journey_"):
        j = cfg.journeys.get(s.journey or "")
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
    return SloSpec(s, start, end, tiers, warnings)


# --- OpenSLO v1 ------------------------------------------------------------------------------------------------
def _openslo_duration(text: str, where: str) -> str:
    """OpenSLO durations: m h d w M (months) Q Y; case-sensitive, so '1M' is a month, '1m' a minute."""
    if not isinstance(text, str) or not text:
        raise SpecError(f"{where}: duration is required")
    unit, num = text[-1], text[:-1]
    if not num.isdigit():
        raise SpecError(f"{where}: invalid duration {text!r}")
    if unit in "mhdw" or unit == "s":
        return text
    if unit == "M" and num == "1":
        return "calendar_month"
    days = {"M": 30, "Q": 91, "Y": 365}.get(unit)
    if days is None:
        raise SpecError(f"{where}: invalid duration unit in {text!r}")
    return f"{int(num) * days}d"


def load_openslo(path: Path) -> list[SloConfig]:
    """Import the `kind: SLO` documents of an OpenSLO v1 file (inline `SLI` indicators, ratio or threshold).

    A metric source is mapped onto revwatch's own data by its `spec`: `{sli: {...}}` holds a revwatch SLI
    (e.g. `kind: journey_latency`), or `{journey: NAME}` with a thresholdMetric objective (`op: lte`,
    `value` in seconds) becomes a journey latency SLI, or `{service: NAME}` with a ratioMetric becomes a
    span_ratio SLI (bad = StatusCode Error).
    """
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    except FileNotFoundError:
        raise SpecError(f"{path}: OpenSLO file not found") from None
    except yaml.YAMLError as e:
        raise SpecError(f"{path}: not valid YAML ({e})") from None
    sli_docs = {d.get("metadata", {}).get("name"): d.get("spec", {}) for d in docs
                if isinstance(d, dict) and d.get("kind") == "SLI"}
    out = []
    for i, d in enumerate(docs):
        if not isinstance(d, dict) or d.get("kind") != "SLO":
            continue
        where = f"{path}: document {i + 1} (SLO {d.get('metadata', {}).get('name', '?')})"
        if d.get("apiVersion") != "openslo/v1":
            raise SpecError(f"{where}: apiVersion: only openslo/v1 is supported, got {d.get('apiVersion')!r}")
        out.extend(_openslo_slo(d, sli_docs, where))
    return out


def _openslo_slo(d: dict, sli_docs: dict, where: str) -> list[SloConfig]:
    meta, spec = d.get("metadata") or {}, d.get("spec") or {}
    name = meta.get("name")
    if not name:
        raise SpecError(f"{where}: metadata.name is required")
    indicator = spec.get("indicator", {}).get("spec") if spec.get("indicator") else sli_docs.get(
        spec.get("indicatorRef"))
    if indicator is None:
        raise SpecError(f"{where}: spec.indicator or a resolvable spec.indicatorRef is required")
    windows = spec.get("timeWindow") or []
    if len(windows) != 1:
        raise SpecError(f"{where}: spec.timeWindow must hold exactly one window")
    tw = windows[0]
    window = _openslo_duration(tw.get("duration"), f"{where}: spec.timeWindow[0].duration")
    if tw.get("isRolling") is False and tw.get("calendar"):
        calendars = {"1w": "calendar_week", "1M": "calendar_month"}
        if tw.get("duration") not in calendars:
            raise SpecError(f"{where}: spec.timeWindow[0].duration: calendar window {tw.get('duration')!r} is not "
                            f"supported ('m' is minutes in OpenSLO; write 1M for a calendar month, 1w for a week)")
        window = calendars[tw["duration"]]
    method = spec.get("budgetingMethod")
    if method not in ("Occurrences", "Timeslices", "RatioTimeslices"):
        raise SpecError(f"{where}: spec.budgetingMethod must be Occurrences, Timeslices or RatioTimeslices")
    objectives = spec.get("objectives") or []
    if not objectives:
        raise SpecError(f"{where}: spec.objectives is required")
    result = []
    for k, obj in enumerate(objectives):
        owhere = f"{where}: spec.objectives[{k}]"
        target = obj.get("target")
        if target is None and obj.get("targetPercent") is not None:
            target = float(obj["targetPercent"]) / 100
        if target is None:
            raise SpecError(f"{owhere}: target or targetPercent is required")
        sli = _openslo_indicator(indicator, obj, owhere)
        raw = {"name": name if len(objectives) == 1 else f"{name}-{k}", "objective": target, "window": window,
               "sli": sli["sli"], "description": spec.get("description", ""),
               "budgeting": "occurrences" if method == "Occurrences" else "timeslices"}
        if sli.get("journey"):
            raw["journey"] = sli["journey"]
        if method != "Occurrences":
            raw["timeslice_target"] = obj.get("timeSliceTarget", target)
        try:
            result.append(SloConfig.model_validate(raw))
        except ValidationError as e:
            first = e.errors()[0]
            loc = ".".join(str(x) for x in first["loc"])
            raise SpecError(f"{owhere}: {loc}: {first['msg'].removeprefix('Value error, ')}") from None
    return result


def _openslo_indicator(indicator: dict, objective: dict, where: str) -> dict:
    if "thresholdMetric" in indicator:
        src = (indicator["thresholdMetric"].get("metricSource") or {}).get("spec") or {}
        if "sli" in src:
            return {"sli": src["sli"], "journey": src.get("journey")}
        if objective.get("op") not in ("lte", "lt") or objective.get("value") is None:
            raise SpecError(f"{where}: thresholdMetric objectives need op lte/lt and a value (seconds)")
        if src.get("journey"):
            return {"sli": {"kind": "journey_latency", "threshold": f"{int(float(objective['value']))}s"},
                    "journey": src["journey"]}
        if src.get("service"):
            return {"sli": {"kind": "span_latency", "service": src["service"],
                            "threshold": f"{int(float(objective['value']) * 1000)}ms"}}
        raise SpecError(f"{where}: thresholdMetric.metricSource.spec needs 'journey', 'service' or 'sli'")
    if "ratioMetric" in indicator:
        rm = indicator["ratioMetric"]
        src = {}
        for part in ("good", "bad", "total"):
            src.update(((rm.get(part) or {}).get("metricSource") or {}).get("spec") or {})
        if "sli" in src:
            return {"sli": src["sli"], "journey": src.get("journey")}
        if src.get("journey"):
            return {"sli": {"kind": "journey_completion", "max_age": src.get("max_age", "1d")},
                    "journey": src["journey"]}
        if src.get("service"):
            return {"sli": {"kind": "span_ratio", "service": src["service"],
                            "bad_when": src.get("bad_when", {"StatusCode": "Error"})}}
        raise SpecError(f"{where}: ratioMetric metricSource.spec needs 'journey', 'service' or 'sli'")
    raise SpecError(f"{where}: indicator needs ratioMetric or thresholdMetric")

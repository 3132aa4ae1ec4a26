"""Alert-window catalogues and burn-rate factors from the budget-consumption rule.

A multi-window multi-burn-rate tier says "page when X % of the period's error budget is consumed within the long
window" (SRE workbook ch. 5, table 5-8). The burn-rate factor follows from the period:

    factor = budget_percent × period_hours / 100 / long_window_hours

so the same tier is 14.4 at 30 d, 13.44 at 28 d (Sloth's `internal/alert/window.go getBurnRateFactor`, computed in
the same float order so the numbers are bit-identical to Sloth's). A *catalogue* is the four tiers for one period
(page quick/slow, ticket quick/slow), in Sloth's `AlertWindows` format; the built-in ones are Sloth's
`google-30d`, `google-28d` and its `examples/windows/7d.yaml` (whose shares are larger: at 7 d the Google shares would
put the 3-day ticket at 43 % of the budget). Custom catalogues are loaded from files (`slo_alert_windows:`).

Invariants: a catalogue's period is positive and each tier's short window is shorter than its long window; a
period without a catalogue uses the Google shares scaled to that period (the rule above), never 30-day factors.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from revwatch.units import format_duration, parse_duration

SEVERITIES = ("page", "ticket")
SPEEDS = ("quick", "slow")


class WindowsError(ValueError):
    """An alert-window catalogue is invalid; the message names the file and the field."""


@dataclass(frozen=True)
class CatalogueTier:
    """One row of a catalogue: which share of the budget, consumed within `long` (confirmed by `short`), alerts."""
    severity: str                  # page | ticket
    speed: str                     # quick | slow
    budget_percent: float
    short: dt.timedelta
    long: dt.timedelta


@dataclass(frozen=True)
class Catalogue:
    name: str
    period: dt.timedelta
    tiers: tuple[CatalogueTier, ...]


def burn_factor(period: dt.timedelta, budget_percent: float, long: dt.timedelta) -> float:
    """The burn rate at which `budget_percent` % of the period's budget is consumed within `long`."""
    hours_required = budget_percent * (period.total_seconds() / 3600) / 100
    return hours_required / (long.total_seconds() / 3600)


def _tiers(rows: Sequence[tuple[str, str, float, str, str]]) -> tuple[CatalogueTier, ...]:
    return tuple(CatalogueTier(sev, speed, pct, parse_duration(sh), parse_duration(lg))
                 for sev, speed, pct, sh, lg in rows)


_GOOGLE = [("page", "quick", 2, "5m", "1h"), ("page", "slow", 5, "30m", "6h"),
           ("ticket", "quick", 10, "2h", "1d"), ("ticket", "slow", 10, "6h", "3d")]
# Sloth: internal/alert/windows/google-30d.yaml, google-28d.yaml, examples/windows/7d.yaml (Apache-2.0); a test
# checks these rows against the upstream files in tests/fixtures/sloth/windows/.
BUILTIN: tuple[Catalogue, ...] = (
    Catalogue("google-30d", dt.timedelta(days=30), _tiers(_GOOGLE)),
    Catalogue("google-28d", dt.timedelta(days=28), _tiers(_GOOGLE)),
    Catalogue("sloth-7d", dt.timedelta(days=7), _tiers([
        ("page", "quick", 8, "5m", "1h"), ("page", "slow", 12.5, "30m", "6h"),
        ("ticket", "quick", 20, "2h", "1d"), ("ticket", "slow", 42, "6h", "3d")])),
)


def scaled_google(period: dt.timedelta) -> Catalogue:
    """For a period without a catalogue: the Google shares, whose factors then scale with the period."""
    return Catalogue(f"google-scaled-{format_duration(period)}", period, _tiers(_GOOGLE))


def load_alert_windows(path: str | Path) -> list[Catalogue]:
    """Read Sloth `AlertWindows` documents (apiVersion sloth.slok.dev/v1) from a file (several documents allowed)."""
    p = Path(path)
    try:
        docs = [d for d in yaml.safe_load_all(p.read_text()) if d is not None]
    except FileNotFoundError:
        raise WindowsError(f"{p}: alert windows file not found") from None
    except yaml.YAMLError as e:
        raise WindowsError(f"{p}: not valid YAML ({e})") from None
    out = []
    for i, d in enumerate(docs):
        where = f"{p}: document {i + 1}"
        if not isinstance(d, dict) or d.get("kind") != "AlertWindows" or d.get("apiVersion") != "sloth.slok.dev/v1":
            raise WindowsError(f"{where}: kind/apiVersion: expected AlertWindows, sloth.slok.dev/v1")
        spec = d.get("spec") or {}
        if not isinstance(spec, dict):
            raise WindowsError(f"{where}: spec: must be a mapping")
        unknown = sorted(str(k) for k in set(spec) - {"sloPeriod", "page", "ticket"})
        if unknown:
            raise WindowsError(f"{where}: spec.{unknown[0]}: unknown field")
        try:
            period = parse_duration(spec.get("sloPeriod"))  # type: ignore[arg-type]  # None: refused with a ValueError
        except ValueError as e:
            raise WindowsError(f"{where}: spec.sloPeriod: {e}") from None
        if period <= dt.timedelta(0):
            raise WindowsError(f"{where}: spec.sloPeriod: must be positive")
        tiers = []
        for sev in SEVERITIES:
            for speed in SPEEDS:
                field = f"spec.{sev}.{speed}"
                group = spec.get(sev)
                row = group.get(speed) if isinstance(group, dict) else None
                if not isinstance(row, dict):
                    raise WindowsError(f"{where}: {field}: required")
                try:
                    pct = float(row["errorBudgetPercent"])
                    short, long = parse_duration(row["shortWindow"]), parse_duration(row["longWindow"])
                except (KeyError, TypeError, ValueError) as e:
                    raise WindowsError(f"{where}: {field}: needs errorBudgetPercent, shortWindow, longWindow ({e})") \
                        from None
                if not 0 < pct <= 100:
                    raise WindowsError(f"{where}: {field}.errorBudgetPercent: must be in (0, 100]")
                if not dt.timedelta(0) < short < long:
                    raise WindowsError(f"{where}: {field}: shortWindow must be positive and shorter than longWindow")
                tiers.append(CatalogueTier(sev, speed, pct, short, long))
        out.append(Catalogue(f"{p.stem}#{i + 1}" if len(docs) > 1 else p.stem, period, tuple(tiers)))
    return out


def catalogue_for(period: dt.timedelta, custom: list[Catalogue], name: str | None = None) -> Catalogue:
    """The catalogue named `name`, else the custom one for this period, else the built-in one, else Google scaled.

    Custom catalogues replace built-in ones of the same period (as Sloth's `--slo-period-windows-path` does)."""
    every = list(custom) + list(BUILTIN)
    if name is not None:
        for c in every:
            if c.name == name:
                return c
        raise WindowsError(f"unknown alert window catalogue {name!r} (known: {', '.join(c.name for c in every)})")
    for c in every:
        if c.period == period:
            return c
    return scaled_google(period)


@dataclass(frozen=True)
class Tier:
    """A resolved alert tier of one SLO: fires when both windows burn at ≥ `burn_rate`."""
    severity: str
    long: dt.timedelta
    short: dt.timedelta
    burn_rate: float
    budget_percent: float | None           # the share of the period's budget it stands for (None: fixed factor)
    speed: str = ""                        # quick | slow for catalogue tiers
    alert_after: dt.timedelta = dt.timedelta(0)   # hold time before the rule fires (Prometheus `for:`)

    @property
    def label(self) -> str:
        return f"{self.severity} {format_duration(self.long)}/{format_duration(self.short)}"


def resolve_tiers(alerting, period: dt.timedelta, objective: float, custom: list[Catalogue],
                  where: str) -> tuple[tuple[Tier, ...], tuple[str, ...]]:
    """The tiers of one SLO and the warnings about them.

    Explicit pairs (`alerting.page` / `.ticket`) are the user's statement: one that can never fire (its threshold
    needs an error ratio above 100 %: burn_rate × (1 − objective) > 1) is an error. Catalogue tiers are defaults:
    one that can never fire, or whose long window is longer than the SLO period, is left out with a warning (logged
    and shown in the API) rather than refusing an SLO the user did not write tiers for.
    """
    tiers: list[Tier] = []
    warnings: list[str] = []
    budget = 1 - objective
    for sev in SEVERITIES:
        pairs = getattr(alerting, sev)
        if pairs is not None:
            for k, p in enumerate(pairs):
                factor = p.burn_rate if p.burn_rate is not None else burn_factor(period, p.budget_percent, p.long)
                if factor * budget > 1:
                    raise WindowsError(
                        f"{where}: alerting.{sev}[{k}]: burn rate {factor:g} over {format_duration(p.long)} can never "
                        f"fire at objective {objective:g} (it needs an error ratio of {factor * budget:.2f} > 1); "
                        f"lower the burn rate / budget_percent or remove the tier")
                tiers.append(Tier(sev, p.long, p.short, factor, p.budget_percent, alert_after=p.alert_after))
            if len({p.alert_after for p in pairs}) > 1:
                raise WindowsError(f"{where}: alerting.{sev}: the tiers of one severity are one alert and share one "
                                   f"alert_after")
            continue
        cat = catalogue_for(period, custom, alerting.catalogue)
        for t in cat.tiers:
            if t.severity != sev:
                continue
            factor = burn_factor(period, t.budget_percent, t.long)
            tier = Tier(sev, t.long, t.short, factor, t.budget_percent, t.speed)
            if t.long > period:
                warnings.append(f"{where}: {tier.label} tier of catalogue {cat.name} left out: its long window is "
                                f"longer than the SLO period {format_duration(period)}")
            elif factor * budget > 1:
                warnings.append(f"{where}: {tier.label} tier (burn rate {factor:g}, {t.budget_percent:g} % of the "
                                f"budget) of catalogue {cat.name} left out: it can never fire at objective "
                                f"{objective:g}; set alerting.{sev} to choose tiers that can")
            else:
                tiers.append(tier)
    return tuple(tiers), tuple(warnings)

"""SLO evaluation: SLI and burn rate per window, error budget, exhaustion forecast, multi-window alert state.

A window of length W at instant `at` covers exactly (at − W, at] (slo/edges.py): the whole minutes inside it come
from the `slo_minutes` rollup, the minute of `at` itself counts decisions ≤ `at`, and the sub-minute leading edge
is counted from raw rows (gauge and timeslice SLIs count whole slices instead). So a constant error stream gives a
constant burn at every second, an evaluation "as of" a past instant sees exactly what a live evaluation saw then
(given the same data), and later data (decided after `at`) changes nothing.

Burn rate = error ratio / (1 − objective). Alert state per the SRE workbook's multi-window multi-burn-rate
table (page: 1h & 5m ≥ 14.4 or 6h & 30m ≥ 6; ticket: 1d & 2h ≥ 3 or 3d & 6h ≥ 1; configurable per SLO; at the
threshold counts, so a steady burn of exactly 1 for 3 days — 10 % of a 30-day budget — opens a ticket); a
window with fewer than `min_events` decided events never alerts (low traffic).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Callable
from typing import Any
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np

from revwatch.config import Config
from revwatch.store import Store
from revwatch.units import format_duration, parse_duration, utcnow
from slo.adjustments import (EMPTY, AdjustmentBook, Plan, adjusted_columns, declared as declared_adjustments,
                              minutes_in)
from slo.annotations import EXPOSED, EXPOSED_SPAN, Annotation, AnnotationLog
from slo.composite import (closure as composite_closure, in_order as composites_in_order, prometheus_windows, roll,
                           window_names as composite_windows)
from slo.exhaustion import exhaustion_alerts, forecast_windows
from slo.decided import Request, Row, decided_counts
from slo.coverage import (Coverage, JourneySilence, WindowCoverage, held_tiers, hold_alerts, journey_silence,
                          no_data_after, tier_key, window_minutes)
from slo.edges import EdgeCache, has_exact_windows, leading_edges, rolling_length
from slo.rollup import MINUTE, RollupMaintainer, floor_minute
from slo.series import MinuteCache, minute_index, view, window_sums
from revwatch.units import epoch_millis as ms
from slo.snapshot import Evaluation, LatestEvaluation
from revwatch.journeys import JourneyReader
from revwatch.journeys.cache import InstanceCache
from revwatch.journeys import money as jmoney
from slo.prometheus_values import PrometheusReader
from slo.state import budget_of, state_of
from slo.spec import BURN_WINDOWS, SloSpec, journey_thresholds, resolve

log = logging.getLogger("revwatch.slo")
EXPOSED_FUNNEL = dt.timedelta(days=1)      # the window of the funnels on /metrics (instances started in it)


def _at_least(burn: float, threshold: float) -> bool:
    """burn ≥ threshold, tolerant of float noise (0.01 / (1 - 0.99) is 0.9999999999999991)."""
    return burn > 0 and burn >= threshold * (1 - 1e-9)


@dataclass
class WindowResult:
    good: float                            # events or minutes; ratio_timeslices: the sum of the minutes' ratios
    # events or minutes (integers); budgeting amount: good and total in 1/scale currency units (integers, exact);
    # composite SLOs: weight units (slo/composite.py)
    total: float
    objective: float
    scale: int = 1                         # AMOUNT_SCALE for `budgeting: amount`, else 1

    @property
    def volume(self) -> float:
        """What `min_events` compares with: decided events (or minutes), or for amounts, currency units."""
        return self.total / self.scale

    @property
    def sli(self) -> float | None:
        return self.good / self.total if self.total else None

    @property
    def error_ratio(self) -> float:
        return (self.total - self.good) / self.total if self.total else 0.0

    @property
    def burn_rate(self) -> float:
        return self.error_ratio / (1 - self.objective)

    def as_dict(self) -> dict:
        d: dict[str, object] = {"good": self.good / self.scale, "total": self.volume,
                                "bad": (self.total - self.good) / self.scale, "sli": self.sli,
                                "error_ratio": self.error_ratio, "burn_rate": self.burn_rate}
        if self.scale != 1:                    # money: exact decimal strings beside the numbers
            d["money"] = {k: jmoney.fmt(jmoney.from_units(v)) for k, v in
                          (("good", self.good), ("total", self.total), ("bad", self.total - self.good))}
        return d


@dataclass
class SloResult:
    spec: SloSpec
    group: str
    at: dt.datetime
    windows: dict[str, WindowResult]
    alerts: list[dict] = field(default_factory=list)
    state: str = "ok"
    coverage: Coverage | None = None       # minutes with data per window (slo/coverage.py)
    adjustments: list[dict] = field(default_factory=list)   # what budget adjustments removed from the SLO window
    annotations: list[dict] = field(default_factory=list)   # annotations of the 24 h up to `at` (slo/annotations.py)
    # composites: per window, the parts that took part (weighted) or decided (least_healthy), slo/composite.py
    parts: dict[str, list[str]] | None = None

    @property
    def budget(self) -> dict:
        """Error budget of the SLO window (slo.state.budget_of: signed, overspend negative) and days until
        exhausted at the 1 h / 6 h burn rates."""
        b = budget_of(self)
        remaining_ratio = b.remaining_ratio
        period_days = self.spec.period(self.at).total_seconds() / 86400
        forecast: dict[str, float | None] = {}
        for name in forecast_windows(self.spec):     # 1h, 6h and the exhaustion tiers' (slo/exhaustion.py)
            burn = self.windows[name].burn_rate
            if remaining_ratio <= 0:
                forecast[name] = 0.0
            elif burn <= 0:
                forecast[name] = None                 # not burning: never exhausted at this rate
            else:
                forecast[name] = remaining_ratio * period_days / burn
        doc: dict[str, object] = {
            "remaining_ratio": remaining_ratio, "allowed_bad": b.allowed, "bad": b.spent, "remaining": b.remaining,
            "overspent": b.overspent, "unit": b.unit, "days_until_exhausted": forecast}
        if self.spec.config.budgeting == "amount":     # the budget in money, exact: allowed = (1 - objective) × total
            w = self.windows["slo"]
            allowed_d = (1 - Decimal(str(self.spec.config.objective))) * jmoney.from_units(w.total)
            bad_d = jmoney.from_units(w.total - w.good)
            doc["money"] = {"currency": self.currency, "total": jmoney.fmt(jmoney.from_units(w.total)),
                            "allowed_bad": jmoney.fmt(allowed_d), "bad": jmoney.fmt(bad_d),
                            "remaining": jmoney.fmt(allowed_d - bad_d)}
        return doc

    @property
    def currency(self) -> str | None:
        """The currency of a money-weighted SLO's group (the last part of its group key), else None."""
        return self.group.rsplit("|", 1)[-1] if self.spec.config.budgeting == "amount" else None

    def as_dict(self) -> dict:
        c = self.spec.config
        d = {"name": c.name, "group": self.group or None, "journey": c.journey, "kind": self.spec.kind,
             "objective": c.objective, "window": c.window, "at": self.at.isoformat(),
             "state": self.state, "sli": self.windows["slo"].sli, "budgeting": c.budgeting,
             "currency": self.currency,
             "windows": {k: v.as_dict() for k, v in self.windows.items()},
             "budget": self.budget, "alerts": self.alerts, "description": c.description,
             "labels": c.labels, "warnings": list(self.spec.warnings), **self.spec.ownership.as_dict(),
             "coverage": self.coverage.as_dict() if self.coverage else None, "adjustments": self.adjustments,
             "annotations": self.annotations}
        if self.parts is not None:
            d["composite"] = {"rollup": c.composite.rollup if c.composite else None, "parts": self.parts}
        return d


def _scale(spec: SloSpec) -> int:
    """Units per counted thing in `slo_minutes`: AMOUNT_SCALE per currency unit for money-weighted SLOs, else 1."""
    return jmoney.AMOUNT_SCALE if spec.config.budgeting == "amount" else 1


def _close_current_slice(spec: SloSpec, sums: tuple, live: list[tuple[int, int]]) -> WindowResult:
    """A sliced window's result: the closed slices' score plus the slice containing `at`, live minute included."""
    good, total, cur_good, cur_total = sums[:4]
    cur_good = int(cur_good) + sum(g for g, _ in live)
    cur_total = int(cur_total) + sum(t for _, t in live)
    c = spec.config
    good = float(good) if c.budgeting == "ratio_timeslices" else int(round(good))
    if cur_total > 0:
        total = int(total) + 1
        if c.budgeting == "ratio_timeslices":
            good += cur_good / cur_total
        else:
            good += int(cur_good / cur_total >= (c.timeslice_target or c.objective))
    return WindowResult(good, int(total), c.objective)


def _adjust_live(plan: Plan, minute: dt.datetime, rows: list[tuple]) -> list[tuple]:
    """The live minute's (group, minute, good, total) rows with the adjustments applied, as the SQL does."""
    if plan is EMPTY:
        return rows
    effect = plan.covers(minute)
    if effect == "exclude":
        return [(g, m, 0, 0) for g, m, _, _ in rows]
    if effect == "good":
        return [(g, m, t, t) for g, m, _, t in rows]
    return rows


def tier_alerts(res: SloResult) -> list[dict]:
    """One alert entry per tier of the result's SLO, firing on this evaluation's windows alone (no hold): the burn-rate
    pairs of each severity, then the exhaustion tiers (slo/exhaustion.py), which stand alone: a severity may have
    exhaustion tiers and no pairs."""
    al = res.spec.config.alerting
    out = []
    for severity in ("ticket", "page"):
        for p in res.spec.tiers_of(severity):
            lw, sw = res.windows[format_duration(p.long)], res.windows[format_duration(p.short)]
            enough = lw.volume >= al.min_events and sw.volume >= al.min_events     # amounts: currency units
            firing = enough and _at_least(lw.burn_rate, p.burn_rate) and _at_least(sw.burn_rate, p.burn_rate)
            out.append({"severity": severity, "long": format_duration(p.long),
                        "short": format_duration(p.short), "threshold": p.burn_rate,
                        "budget_percent": p.budget_percent,
                        "alert_after": format_duration(p.alert_after) if p.alert_after else None,
                        "long_burn_rate": lw.burn_rate, "short_burn_rate": sw.burn_rate,
                        "low_traffic": not enough, "firing": firing})
    return out + exhaustion_alerts(res)


def alert_state(res: SloResult, previous: list[dict] | None = None) -> None:
    """Fill `res.alerts` (one entry per tier) and `res.state` (slo.state.state_of: the one decision, with the
    coverage's no-data verdict). Each tier without data holds the state it had in `previous` (the tier entries as
    evaluated at its hold minute, slo/coverage.py)."""
    res.alerts[:] = tier_alerts(res)
    if res.coverage is not None:
        res.coverage.held[:] = hold_alerts(res.alerts, res.windows, previous, res.coverage.last_data,
                                           res.coverage.at_minute)
    res.state = state_of(res)          # the one decision (slo/state.py): page, exhausted, ticket, no_data, ok


def _groups_by_slo(sums: dict, edges: dict) -> dict[str, set[str]]:
    """Per SLO, its groups among the window sums' keys (slo, group) and the edges' (slo, group, window): indexed
    once per evaluation (a scan of every key per SLO was quadratic: ~0.1 s of a 130-group pass)."""
    out: dict[str, set[str]] = {}
    for name, g in sums:
        out.setdefault(name, set()).add(g)
    for name, g, _w in edges:
        out.setdefault(name, set()).add(g)
    return out


def _multi_minute_slices(spec: SloSpec) -> bool:
    """Time-slice budgets whose slices are longer than a minute (summed per slice, `SloEngine._sliced_sums`)."""
    return spec.config.budgeting in ("timeslices", "ratio_timeslices") and spec.config.timeslice_window > MINUTE


class SloEngine:
    """Evaluates every configured SLO; keeps the latest results for /metrics and the API."""

    def __init__(self, store: Store, cfg: Config, reuse_minutes: bool = True, rollup_cursor: str | None = None):
        """`reuse_minutes=False`: the previous pass design (every window re-read from `slo_minutes FINAL` per pass,
        exact-window edges re-read from raw rows, one as-of evaluation per coverage-hold minute); kept so that
        bench/slo_eval.py prints both in one run and tests check both give the same results. `rollup_cursor`: the
        rollup's own cursor key, for a second SLO set on the same store (slo/rollup.py)."""
        self.store, self.cfg = store, cfg
        self.reuse_minutes = reuse_minutes
        self.minutes = MinuteCache(store)      # the rollup's minutes between passes (slo/series.py)
        self.edge_cache = EdgeCache()          # the decisions of exact windows' edge minutes (slo/edges.py)
        every = resolve(cfg)
        self.specs = [s for s in every if not s.is_prometheus]        # evaluated here, from the store
        self.prometheus_specs = [s for s in every if s.is_prometheus]  # computed by Prometheus from our rules
        self.prometheus: PrometheusReader | None = (
            PrometheusReader(cfg.prometheus_url) if cfg.prometheus_url and self.prometheus_specs else None)
        self.rollups = RollupMaintainer(store, [s for s in self.specs if not s.is_composite],
                                        *([rollup_cursor] if rollup_cursor else []))
        # budget adjustments (slo/adjustments.py): config ones here, API ones read from the store per evaluation
        self.adjustments = AdjustmentBook(store, declared_adjustments(cfg, [s.name for s in every]))
        self.annotations = AnnotationLog(store)     # returned with every evaluation (slo/annotations.py)
        self.journey_reader = JourneyReader(store, cfg.journeys, self.journey_thresholds())
        # journey instances between calls: what attribution, funnels and forecasts read (revwatch/journeys/cache.py)
        self.instances = InstanceCache(store, cfg.journeys)
        if reuse_minutes:                      # the minutes time decides each pass, counted from it (slo/decided.py)
            self.rollups.decided = self._decided
        self.snapshot = LatestEvaluation()     # the latest pass, what reads show (slo/snapshot.py)

    def _decided(self, requests: list[Request], per_ms: bool) -> tuple[list[Row], list[tuple[int, Request]]]:
        return decided_counts(self.instances, self.cfg.journeys, requests, per_ms)

    # -- the latest pass (views of self.snapshot, one whole pass each) --------------------------------------
    @property
    def latest(self) -> list[SloResult] | None:
        """The latest pass's results, None before the first."""
        ev = self.snapshot.current
        return list(ev.results) if ev is not None else None

    @latest.setter
    def latest(self, results: list[SloResult]) -> None:
        """Hold `results` as if the evaluator had produced them now (tools and tests that fix an instant)."""
        self.snapshot.publish(Evaluation(utcnow(), tuple(results)))

    @property
    def latest_at(self) -> dt.datetime | None:
        ev = self.snapshot.current
        return ev.at if ev is not None else None

    @latest_at.setter
    def latest_at(self, at: dt.datetime) -> None:
        ev = self.snapshot.current
        self.snapshot.publish(dataclasses.replace(ev, at=at, rendered={}) if ev is not None else
                              Evaluation(at, ()))

    @property
    def latest_journeys(self) -> dict[str, dict]:
        ev = self.snapshot.current
        return ev.journeys if ev is not None else {}

    @property
    def latest_stuck(self) -> list:
        """Per journey, its overdue instances and their money (`JourneyReader.summaries`), latest pass."""
        ev = self.snapshot.current
        return ev.stuck if ev is not None else []

    @property
    def latest_funnels(self) -> list:
        """The funnel of every journey over the last `EXPOSED_FUNNEL` (revwatch/journeys/funnel.py), latest pass."""
        ev = self.snapshot.current
        return ev.funnels if ev is not None else []

    @property
    def latest_attributions(self) -> list[dict]:
        """Burn attribution of every journey SLO result with bad events (slo/attribution.py), latest pass."""
        ev = self.snapshot.current
        return ev.attributions if ev is not None else []

    @property
    def latest_forecasts(self) -> list[dict]:
        """In-flight forecasts of every journey SLO (slo/forecast.py), latest pass."""
        ev = self.snapshot.current
        return ev.forecasts if ev is not None else []

    @property
    def latest_silence(self) -> dict[str, JourneySilence]:
        """Journeys with no_data_alert and how long they have been silent (slo/coverage.py), latest pass."""
        ev = self.snapshot.current
        return ev.silence if ev is not None else {}

    @property
    def last_seconds(self) -> float | None:
        ev = self.snapshot.current
        return ev.seconds if ev is not None else None

    @property
    def latest_annotations(self) -> list[Annotation]:
        """Annotations of the last 7 days (slo/annotations.py), latest pass: exposed for Grafana."""
        ev = self.snapshot.current
        return ev.annotations if ev is not None else []

    def spec(self, name: str) -> SloSpec | None:
        """The spec named `name` (evaluated here or by Prometheus)."""
        return next((s for s in self.specs + self.prometheus_specs if s.name == name), None)

    def prometheus_results(self, at: dt.datetime | None = None, names: list[str] | None = None) -> list[dict]:
        """Prometheus-backed SLOs as Prometheus computes them now (or as of `at`); without `prometheus_url`
        each says so in `error` (state unknown)."""
        specs = [s for s in self.prometheus_specs if names is None or s.name in names]
        if self.prometheus is None:
            return [PrometheusReader._doc(s, at, error="prometheus_url is not configured") for s in specs]
        return self.prometheus.read(specs, at)

    def journey_thresholds(self) -> dict[str, dt.timedelta]:
        """Per journey, the overdue threshold (`revwatch.journeys.thresholds` over this engine's specs)."""
        return journey_thresholds(self.cfg, self.specs)

    # -- evaluation ---------------------------------------------------------------------------------------
    def window_lengths(self, spec: SloSpec) -> dict[str, dt.timedelta]:
        """The burn-rate windows of an SLO: the standard ones plus every window its alert pairs name."""
        names = list(BURN_WINDOWS)
        for comp in self.specs:                # a composite's members also carry its windows, and those of every
            if comp.config.composite is not None and spec.name in comp.config.composite.members:   # composite above
                names += [n for n in [*composite_windows(comp), *self.window_lengths(comp)] if n not in names]
        for tier in spec.tiers:
            for w in (tier.long, tier.short):
                if format_duration(w) not in names:
                    names.append(format_duration(w))
        return {n: parse_duration(n) for n in names}

    def exact_lengths(self, spec: SloSpec) -> dict[str, dt.timedelta]:
        """The windows of an SLO that are exact (slo/edges.py): every burn window, and the SLO window if rolling."""
        out = self.window_lengths(spec)
        rolling = rolling_length(spec)
        if rolling is not None:
            out["slo"] = rolling
        return out

    def evaluate(self, at: dt.datetime | None = None, names: list[str] | None = None,
                 refresh: bool = False, _hold: bool = True, _pending: list[tuple] | None = None) -> list[SloResult]:
        """Evaluate SLOs as of `at` (default now).

        Reads never write: without `refresh` the minutes a rollup pass would rewrite now (late data, minutes time
        has decided since the evaluator's last pass, SLOs it has not built yet) are computed in memory and read
        in place of the stored ones, so a read is exactly as fresh as a refresh. Only the evaluator
        (`evaluate_and_cache`) passes `refresh=True` and writes `slo_minutes`."""
        now = utcnow()
        at = min(at or now, now)
        wanted_names = None if names is None else composite_closure(self.specs, set(names))  # members too
        composites = composites_in_order([s for s in self.specs if s.is_composite
                                          and (wanted_names is None or s.name in wanted_names)])
        specs = [s for s in self.specs if not s.is_composite and (wanted_names is None or s.name in wanted_names)]
        used = {m for c in composites for m in c.config.composite.members}   # type: ignore[union-attr]
        prom = [s for s in self.prometheus_specs if s.name in used]     # members read from Prometheus
        if not specs and not composites:
            return []
        at_min = floor_minute(at)
        results: list[SloResult] = []
        overlay: list[tuple] = []
        if specs:
            results, overlay = self._evaluate_native(specs, at, now, refresh, _hold, _pending)
        members = results + self._prometheus_members(prom, at, now, at_min)
        for c in composites:                   # in order: a composite member is rolled up before its composite
            results.append(self._composite(c, members, at, at_min))
            members.append(results[-1])
        if names is not None:                  # members evaluated only for their composites
            results = [r for r in results if r.spec.name in names]
        self._alert_states(results, _hold, overlay)
        return results

    def _evaluate_native(self, specs: list[SloSpec], at: dt.datetime, now: dt.datetime, refresh: bool, _hold: bool,
                         _pending: list[tuple] | None) -> tuple[list[SloResult], list[tuple]]:
        """The results of the SLOs revwatch counts from the store (every group), without alert state, and the overlay
        of pending rollups they read (`evaluate`)."""
        if refresh:
            self.rollups.refresh(now)
            overlay: list[tuple] = []
        else:
            wanted = {s.name for s in specs}
            # the hold's as-of evaluations reuse the overlay of the evaluation they serve (it is what a pass would
            # rewrite now; computing it again per held SLO cost most of a pass)
            overlay = [r for r in (self.rollups.pending(now) if _pending is None else _pending) if r[0] in wanted]
        at_min = floor_minute(at)
        bounds: dict[str, dict[str, dt.datetime]] = {}
        for s in specs:
            b = {n: at_min - length + MINUTE for n, length in self.window_lengths(s).items()}
            b["slo"] = s.window_bounds(at)[0]
            bounds[s.name] = b
        # the minute of `at` itself: stored (or pending) when `at` is now — the rollup pass above used cutoff now —
        # else computed live with decisions ≤ `at`
        current = at == now
        end = at_min + MINUTE if current else at_min
        sliced = [s for s in specs if _multi_minute_slices(s)]
        by_minute = [s for s in specs if s not in sliced]
        plans = self.adjustments.plans([s.name for s in specs], min(min(b.values()) for b in bounds.values()),
                                       at_min + MINUTE)
        sums: dict = {}
        last_data: dict[tuple[str, str], dt.datetime] = {}      # latest minute with data in the SLO window
        if self.reuse_minutes:
            self._sync(specs, overlay)
        if by_minute and self.reuse_minutes:
            sums = self._series_sums(by_minute, bounds, end, overlay, last_data, plans, at_min)
        elif by_minute:
            sums = self._rollup_sums(by_minute, bounds, end, at_min, overlay, last_data, plans)
        if sliced:
            sums.update(self._sliced_sums(sliced, bounds, end, at_min, overlay, last_data, plans))
        live = {s.name: ([] if current else _adjust_live(plans[s.name], at_min,
                                                          self.rollups.minute_counts(s, at_min, at_min, at)))
                for s in specs}
        exact = [(s, w, length) for s in specs if has_exact_windows(s) for w, length in self.exact_lengths(s).items()]
        edges = self.edge_cache.edges(self.rollups, exact, at) if self.reuse_minutes else \
            leading_edges(self.rollups, exact, at)
        notes = self.annotations.for_results([s.name for s in specs], at) if _hold else {}
        known = _groups_by_slo(sums, edges)
        results = [r for s in specs for r in self._results_of(s, s in sliced, sums, live[s.name], edges, bounds[s.name],
                                                            plans[s.name], last_data, at, at_min, notes,
                                                            known.get(s.name, set()))]
        return results, overlay

    def _results_of(self, s: SloSpec, sliced: bool, sums: dict, live: list[tuple], edges: dict,
                    bounds: dict[str, dt.datetime], plan: Plan, last_data: dict, at: dt.datetime,
                    at_min: dt.datetime, notes: dict, known: set[str]) -> list[SloResult]:
        """One SLO's results (one per group) from its window sums, the live minute, the exact-window edges
        (`known`: the SLO's groups in `sums` and `edges`, `_groups_by_slo`)."""
        out: list[SloResult] = []
        groups = known | {g for g, *_ in live}
        if not groups:
            groups = {""}
        for g in sorted(groups):
            per_window = sums.get((s.name, g), {})
            live_g = [(good, total) for gg, _, good, total in live if gg == g]
            windows = {}
            live_covered = sum(lt > 0 for _, lt in live_g)
            covered = {w: int(per_window.get(w, (0, 0, 0))[-1 if sliced else 2]) + live_covered
                       for w in bounds}
            for wname in bounds:
                if sliced:
                    windows[wname] = _close_current_slice(s, per_window.get(wname, (0, 0, 0, 0, 0)), live_g)
                    continue
                good, total = per_window.get(wname, (0, 0, 0))[:2]
                edge_good, edge_total = edges.get((s.name, g, wname), (0, 0))     # exact windows (slo/edges.py)
                if edge_total:                 # the edge lies in minute at_min − length: adjusted like it
                    [(_, _, edge_good, edge_total)] = _adjust_live(
                        plan, at_min - self.exact_lengths(s)[wname], [("", at_min, edge_good, edge_total)])
                good, total = good + edge_good, total + edge_total
                for lg, lt in live_g:
                    if s.config.budgeting == "timeslices":
                        good += int(lt > 0 and lg / lt >= (s.config.timeslice_target or s.config.objective))
                        total += int(lt > 0)
                    elif s.config.budgeting == "ratio_timeslices":
                        good += lg / lt if lt > 0 else 0
                        total += int(lt > 0)
                    else:
                        good, total = good + lg, total + lt
                windows[wname] = WindowResult(good, total, s.config.objective, _scale(s))
            last = last_data.get((s.name, g))
            if any(lt > 0 for _, lt in live_g):
                last = at_min
            minutes = window_minutes(bounds, at_min + MINUTE)
            stop = at_min + MINUTE
            cov = Coverage({w: WindowCoverage(minutes[w], covered[w], minutes_in(plan.exclude, lo, stop),
                                              minutes_in(plan.good, lo, stop))
                            for w, lo in bounds.items()}, last, at_min,
                           no_data_after(s))
            res = SloResult(s, g, at, windows, coverage=cov,
                            adjustments=plan.summary(bounds["slo"], stop),
                            annotations=[a.as_dict() for a in notes.get(s.name, [])])
            out.append(res)
        return out

    def _prometheus_members(self, specs: list[SloSpec], at: dt.datetime, now: dt.datetime,
                            at_min: dt.datetime) -> list[SloResult]:
        """Prometheus-backed composite members as results a roll-up reads (slo/composite.py): per window their
        recording rules record, the SLI as good / 1; a window without a ratio has no data. Without Prometheus (no
        `prometheus_url`, or it fails) every window is without data, so the member is left out of the roll-up."""
        if not specs:
            return []
        docs = {d["name"]: d for d in self.prometheus_results(None if at == now else at, [s.name for s in specs])}
        out = []
        for s in specs:
            got = docs.get(s.name, {}).get("windows", {})
            windows: dict[str, WindowResult] = {}
            covs: dict[str, WindowCoverage] = {}
            recorded = prometheus_windows(s)
            asked = {n for c in self.specs if c.config.composite is not None and s.name in c.config.composite.members
                     for n in [*self.window_lengths(c), *composite_windows(c)]}
            for name in sorted(asked | set(recorded)):
                w = got.get(recorded[name]) if name in recorded else None
                windows[name] = WindowResult(w["sli"], 1, s.config.objective) if w else WindowResult(0, 0,
                                                                                                     s.config.objective)
                minutes = int(parse_duration(name) / MINUTE)
                covs[name] = WindowCoverage(minutes, minutes if w else 0)   # a ratio: the window counts as covered
            last = at_min if any(c.covered for c in covs.values()) else None
            out.append(SloResult(s, "", at, windows, coverage=Coverage(covs, last, at_min, no_data_after(s))))
        return out

    def _composite(self, spec: SloSpec, results: list[SloResult], at: dt.datetime,
                   at_min: dt.datetime) -> SloResult:
        """A composite SLO's result from its members' (slo/composite.py)."""
        comp = spec.config.composite
        assert comp is not None, "only composites come here"
        # every part of every member: one per group of a grouped (or money-weighted, per currency) member
        mine = [r for r in results if r.spec.name in comp.members]
        parts: dict[str, list[tuple[str, dict[str, WindowResult]]]] = {}
        for r in mine:
            parts.setdefault(r.spec.name, []).append((r.group, r.windows))
        own = format_duration(spec.config.rolling_window or spec.nominal_period)
        windows: dict[str, WindowResult] = {}
        covs: dict[str, WindowCoverage] = {}
        deciders: dict[str, list[str]] = {}
        for w in [*self.window_lengths(spec), "slo"]:
            mw = own if w == "slo" else w
            rolled = roll(spec, parts, w, mw)
            windows[w] = WindowResult(rolled.good, rolled.total, spec.config.objective)
            deciders[w] = list(rolled.members)
            covered = max((r.coverage.windows[mw].covered for r in mine if r.coverage), default=0)
            length = spec.config.rolling_window if w == "slo" else parse_duration(w)
            covs[w] = WindowCoverage(int(length / MINUTE), covered)   # type: ignore[operator]
        lasts = [r.coverage.last_data for r in mine if r.coverage and r.coverage.last_data]
        cov = Coverage(covs, max(lasts) if lasts else None, at_min, no_data_after(spec))
        adjustments: dict[str, list[dict]] = {}     # a member's groups list the same adjustments: once per member
        for r in mine:
            adjustments.setdefault(r.spec.name, r.adjustments)
        return SloResult(spec, "", at, windows, coverage=cov,
                         adjustments=[a for adj in adjustments.values() for a in adj], parts=deciders)

    def _alert_states(self, results: list[SloResult], hold: bool, pending: list[tuple]) -> None:
        """Alert tiers and state of each result; each tier without data holds the state it had at the end of its
        hold minute (slo/coverage.py `hold_minute`), from an evaluation as of that minute. One evaluation per
        distinct minute, for all the SLOs that hold a tier at it.

        With the minute cache (slo/series.py) that as-of evaluation is derived from the same minute series, no
        query: as of the end of minute m the windows are the whole minutes up to m (no sub-minute edge, the minute
        itself complete). Composite and multi-minute-slice SLOs evaluate as of that instant (the previous design)."""
        wanted: dict[tuple[str, dt.datetime], list[SloResult]] = {}
        holds: dict[int, dict[tuple, dt.datetime]] = {}
        for r in results:
            cov = r.coverage
            if hold and cov is not None:
                holds[id(r)] = held_tiers(tier_alerts(r), r.windows, cov.last_data, cov.at_minute)
                for minute in set(holds[id(r)].values()):
                    wanted.setdefault((r.spec.name, minute), []).append(r)
        by_minute: dict[dt.datetime, set[str]] = {}        # one evaluation per distinct minute, all its SLOs at once
        derived: dict[dt.datetime, list[SloSpec]] = {}
        for name, minute in wanted:
            spec = self.spec(name)
            if self.reuse_minutes and spec in self.specs and spec is not None and not spec.is_composite \
                    and not _multi_minute_slices(spec):
                derived.setdefault(minute, []).append(spec)
            else:
                by_minute.setdefault(minute, set()).add(name)
        previous = [(minute, p) for minute, names in by_minute.items()
                    for p in self.evaluate(minute + MINUTE - dt.timedelta(microseconds=1), names=sorted(names),
                                           _hold=False, _pending=pending)]
        if derived:
            previous += self._as_of_minutes(derived, pending)
        before: dict[tuple[str, str, dt.datetime], SloResult] = {}
        for minute, p in previous:
            rs = wanted.get((p.spec.name, minute), [])
            if any(p.group == r.group for r in rs):
                before[(p.spec.name, p.group, minute)] = p
        for r in results:
            prev = [a for key, minute in holds.get(id(r), {}).items()
                    for p in [before.get((r.spec.name, r.group, minute))] if p is not None
                    for a in p.alerts if tier_key(a) == key]
            alert_state(r, prev)

    def _as_of_minutes(self, wanted: dict[dt.datetime, list[SloSpec]],
                       pending: list[tuple]) -> list[tuple[dt.datetime, SloResult]]:
        """Per minute m, the given SLOs evaluated as of the end of m from the minute cache (synced by this pass),
        with their alert tiers (not held: every window of such an evaluation has data)."""
        every = self.adjustments.all()
        out: list[tuple[dt.datetime, SloResult]] = []
        for minute, specs in wanted.items():
            at = minute + MINUTE - dt.timedelta(microseconds=1)
            bounds = {s.name: {**{n: minute - length + MINUTE for n, length in self.window_lengths(s).items()},
                               "slo": s.window_bounds(at)[0]} for s in specs}
            plans = self.adjustments.plans([s.name for s in specs], min(min(b.values()) for b in bounds.values()),
                                           minute + MINUTE, every)
            last_data: dict[tuple[str, str], dt.datetime] = {}
            sums = self._series_sums(specs, bounds, minute + MINUTE, pending, last_data, plans, minute)
            known = _groups_by_slo(sums, {})
            for s in specs:
                for r in self._results_of(s, False, sums, [], {}, bounds[s.name], plans[s.name], last_data, at,
                                          minute, {}, known.get(s.name, set())):
                    alert_state(r, [])          # as an as-of evaluation without holds does
                    out.append((minute, r))
        return out

    def _keep_from(self, now: dt.datetime) -> dt.datetime:
        """How far back the minute cache keeps minutes: two of the longest SLO windows and a day (a coverage hold
        evaluates as of a minute up to one SLO window back, whose own windows reach one more back)."""
        longest = max((s.period(now) for s in self.specs), default=dt.timedelta(days=30))
        return floor_minute(now) - 2 * max(longest, dt.timedelta(days=3)) - dt.timedelta(days=1)

    def _sync(self, specs: list[SloSpec], overlay: list[tuple]) -> None:
        """Bring the minute cache up to date (the rows written since the previous pass) and drop the exact-window
        edge minutes that the rollup rewrote since, or that new data touched since the last rollup pass (a read
        with the pending overlay: late data)."""
        keys = [(s.name, s.spec_hash) for s in specs if not s.is_composite]
        with self.minutes.lock:
            changed = self.minutes.sync(keys, self._keep_from(utcnow()))
        pending: dict[str, list[int]] = {}
        if overlay:                            # minutes new data touched (time-decided minutes keep their past)
            for slo, ranges in self.rollups.touched.items():
                for lo, hi in ranges:
                    pending.setdefault(slo, []).extend(range(minute_index(lo), minute_index(hi) + 1))
        for slo, minutes in pending.items():
            changed[slo] = np.concatenate([changed[slo], minutes]) if slo in changed else np.array(minutes)
        self.edge_cache.invalidate(changed)

    def _series_sums(self, specs: list[SloSpec], bounds: dict, end: dt.datetime, overlay: list[tuple],
                     last_data: dict, plans: dict[str, Plan], at_min: dt.datetime) -> dict:
        """What `_rollup_sums` returns, from the minute cache (slo/series.py, brought up to date by `_sync`): the
        pending `overlay` laid over a copy, the adjustments applied, the windows summed
        in numpy. Ranges older than the cache keeps (an as-of read far back) are read by `_rollup_sums`."""
        oldest = min(b for s in specs for b in bounds[s.name].values())
        keep = self._keep_from(utcnow())
        if oldest < keep:
            return self._rollup_sums(specs, bounds, end, at_min, overlay, last_data, plans)
        hashes = {s.name: s.spec_hash for s in specs}
        ov: dict[tuple[str, str], list[tuple[int, int, int]]] = {}
        for slo, h, g, m, good, total, *_ in overlay:
            if hashes.get(slo) == h:
                ov.setdefault((slo, g), []).append((minute_index(m), int(good), int(total)))
        lo_i, end_i = minute_index(oldest), minute_index(end)
        kinds = {"occurrences": 0, "amount": 0, "timeslices": 1, "ratio_timeslices": 2}
        out: dict = {}
        for s in specs:
            series = self.minutes.groups((s.name, s.spec_hash))
            plan = plans[s.name]
            exclude = [(minute_index(a), minute_index(b)) for a, b in plan.exclude]
            good_iv = [(minute_index(a), minute_index(b)) for a, b in plan.good]
            starts = {w: minute_index(b) for w, b in bounds[s.name].items()}
            target = float(s.config.timeslice_target or s.config.objective)
            for g in set(series) | {g for (n, g) in ov if n == s.name}:
                gs, ts, present = view(series.get(g), lo_i, end_i, ov.get((s.name, g), []), exclude, good_iv)
                if not present.any():          # no rollup row in the range read: not a group of this evaluation
                    continue
                out[(s.name, g)], last = window_sums(gs, ts, lo_i, starts, end_i, kinds[s.config.budgeting], target)
                if last is not None:
                    last_data[(s.name, g)] = dt.datetime.fromtimestamp(last * 60, dt.timezone.utc)
        return out

    def _minutes(self, params: dict, overlay: list[tuple]) -> str:
        """What the sums read: `slo_minutes` (latest Version of each minute), with the rows a pending rollup pass
        would write (`overlay`, bound as array parameters into `params`) in place of the stored ones."""
        stored = f"{self.store.table('slo_minutes')} FINAL"
        rows = overlay
        if not rows:
            return stored
        params.update(ov_slo=[r[0] for r in rows], ov_hash=[r[1] for r in rows], ov_group=[r[2] for r in rows],
                      ov_min=[int(r[3].timestamp()) for r in rows], ov_good=[int(r[4]) for r in rows],
                      ov_total=[int(r[5]) for r in rows])
        return f"""(
        SELECT Slo, SpecHash, GroupKey, Minute, Good, Total FROM {stored}
        WHERE (Slo, GroupKey, toInt64(toUnixTimestamp(Minute))) NOT IN
              (SELECT arrayJoin(arrayZip({{ov_slo:Array(String)}}, {{ov_group:Array(String)}},
                                         {{ov_min:Array(Int64)}})))
        UNION ALL
        SELECT r.1 AS Slo, r.2 AS SpecHash, r.3 AS GroupKey, toDateTime(r.4, 'UTC') AS Minute, r.5 AS Good,
               r.6 AS Total
        FROM (SELECT arrayJoin(arrayZip({{ov_slo:Array(String)}}, {{ov_hash:Array(String)}}, {{ov_group:Array(String)}},
                                        {{ov_min:Array(Int64)}}, {{ov_good:Array(UInt64)}},
                                        {{ov_total:Array(UInt64)}})) AS r)
    )"""

    def _rollup_sums(self, specs: list[SloSpec], bounds: dict, end: dt.datetime, last: dt.datetime,
                     overlay: list[tuple], last_data: dict, plans: dict[str, Plan]) -> dict:
        """{(slo, group): {window: (good, total, minutes with data)}} over rollup minutes before `end`, one query for
        all SLOs; fills `last_data` {(slo, group): latest minute with data in the SLO window}.

        Window membership is an integer comparison of each minute's age; only the SLO's own window (rolling or
        calendar, different per SLO) needs a per-row lookup."""
        oldest = min(b for s in specs for b in bounds[s.name].values())
        rolling = sorted({w for s in specs for w in bounds[s.name] if w != "slo"})
        names = [s.name for s in specs]
        params = {"names": names, "hashes": [s.spec_hash for s in specs], "oldest": ms(oldest), "end": ms(end),
                  "age_ref": ms(last + MINUTE),
                  "ts_targets": [float(s.config.timeslice_target or s.config.objective) for s in specs],
                  "timeslices": [{"occurrences": 0, "amount": 0, "timeslices": 1,
                                  "ratio_timeslices": 2}[s.config.budgeting] for s in specs],
                  "slo_start": [ms(bounds[s.name]["slo"]) for s in specs]}
        cols = []
        for i, w in enumerate(rolling + ["slo"]):
            cond = "in_slo" if w == "slo" else f"age < {int(parse_duration(w).total_seconds() // 60)}"
            cols.append(f"multiIf(ts = 1, toFloat64(countIf(t > 0 AND g / t >= target AND {cond})), "
                        f"ts = 2, sumIf(g / t, t > 0 AND {cond}), toFloat64(sumIf(g, {cond}))) AS g{i}, "
                        f"if(ts = 0, sumIf(t, {cond}), countIf(t > 0 AND {cond})) AS t{i}, "
                        f"countIf(t > 0 AND {cond}) AS n{i}")
        sql = f"""
SELECT Slo, GroupKey, any(ts) AS ts_, toInt64(maxIf(toUnixTimestamp(Minute), t > 0 AND in_slo)) AS last_,
       {', '.join(cols)}
FROM (
    SELECT Slo, GroupKey, Minute, {adjusted_columns(params, plans)},
           dateDiff('minute', Minute, fromUnixTimestamp64Milli({{age_ref:Int64}}, 'UTC')) - 1 AS age,
           Minute >= fromUnixTimestamp64Milli(transform(Slo, {{names:Array(String)}}, {{slo_start:Array(Int64)}},
                                                        toInt64(0)), 'UTC') AS in_slo,
           transform(Slo, {{names:Array(String)}}, {{timeslices:Array(UInt8)}}, toUInt8(0)) AS ts,
           transform(Slo, {{names:Array(String)}}, {{ts_targets:Array(Float64)}}, toFloat64(1)) AS target
    -- latest Version of each minute (ReplacingMergeTree), pending laid over
    FROM {self._minutes(params, overlay)}
    WHERE (Slo, SpecHash) IN (SELECT arrayJoin(arrayZip({{names:Array(String)}}, {{hashes:Array(String)}})))
      AND Minute >= fromUnixTimestamp64Milli({{oldest:Int64}}, 'UTC')
      AND Minute < fromUnixTimestamp64Milli({{end:Int64}}, 'UTC')
)
GROUP BY Slo, GroupKey, ts
"""
        out: dict = {}
        wnames = rolling + ["slo"]
        for row in self.store.query(sql, params).rows:
            vals = row[4:]
            exact = (lambda v: v) if row[2] == 2 else (lambda v: int(round(v)))   # counts stay integers
            out[(row[0], row[1])] = {w: (exact(vals[3 * i]), int(vals[3 * i + 1]), int(vals[3 * i + 2]))
                                     for i, w in enumerate(wnames)}
            if row[3] > 0:
                last_data[(row[0], row[1])] = dt.datetime.fromtimestamp(row[3], dt.timezone.utc)
        return out

    def _sliced_sums(self, specs: list[SloSpec], bounds: dict, end: dt.datetime, at_min: dt.datetime,
                     overlay: list[tuple], last_data: dict, plans: dict[str, Plan]) -> dict:
        """Time slices longer than a minute: {(slo, group): {window: (good, total, cur_good, cur_total, minutes with
        data)}}; fills `last_data` as `_rollup_sums` does.

        Slices are aligned to multiples of their length since the epoch (UTC) and clipped to each window (a slice
        that straddles a window's start counts with its minutes inside the window). Closed slices are scored in
        SQL — timeslices: good when good/total ≥ timeslice_target; ratio_timeslices: the slice's ratio — and the
        slice containing `at` comes back as raw counts, to be closed with the live minute."""
        oldest = min(b for s in specs for b in bounds[s.name].values())
        rolling = sorted({w for s in specs for w in bounds[s.name] if w != "slo"})
        names = [s.name for s in specs]
        lengths = [int(s.config.timeslice_window.total_seconds()) for s in specs]
        params = {"names": names, "hashes": [s.spec_hash for s in specs], "oldest": ms(oldest), "end": ms(end),
                  "ts_targets": [float(s.config.timeslice_target or s.config.objective) for s in specs],
                  "timeslices": [int(s.config.budgeting == "ratio_timeslices") + 1 for s in specs],
                  "slo_start": [ms(bounds[s.name]["slo"]) for s in specs], "lengths": lengths,
                  "age_ref": ms(at_min + MINUTE),
                  "current": [int(at_min.timestamp()) // n for n in lengths]}
        wnames = rolling + ["slo"]
        inner, outer = [], []
        for i, w in enumerate(wnames):
            cond = "in_slo" if w == "slo" else f"age < {int(parse_duration(w).total_seconds() // 60)}"
            inner.append(f"sumIf(g, {cond}) AS g{i}, sumIf(t, {cond}) AS t{i}, countIf(t > 0 AND {cond}) AS n{i}")
            closed = f"t{i} > 0 AND slice != cur"
            outer.append(f"if(ts = 1, toFloat64(countIf({closed} AND g{i} / t{i} >= target)), "
                         f"sumIf(g{i} / t{i}, {closed})) AS sg{i}, countIf({closed}) AS st{i}, "
                         f"sumIf(g{i}, slice = cur) AS cg{i}, sumIf(t{i}, slice = cur) AS ct{i}, sum(n{i}) AS sn{i}")
        sql = f"""
SELECT Slo, GroupKey, max(last_) AS last_, {', '.join(outer)}
FROM (
    SELECT Slo, GroupKey, slice, any(ts) AS ts, any(target) AS target, any(cur) AS cur,
           toInt64(maxIf(toUnixTimestamp(Minute), t > 0 AND in_slo)) AS last_, {', '.join(inner)}
    FROM (
        SELECT Slo, GroupKey, Minute, {adjusted_columns(params, plans)},
               dateDiff('minute', Minute, fromUnixTimestamp64Milli({{age_ref:Int64}}, 'UTC')) - 1 AS age,
               Minute >= fromUnixTimestamp64Milli(transform(Slo, {{names:Array(String)}}, {{slo_start:Array(Int64)}},
                                                            toInt64(0)), 'UTC') AS in_slo,
               transform(Slo, {{names:Array(String)}}, {{timeslices:Array(UInt8)}}, toUInt8(1)) AS ts,
               transform(Slo, {{names:Array(String)}}, {{ts_targets:Array(Float64)}}, toFloat64(1)) AS target,
               intDiv(toInt64(toUnixTimestamp(Minute)),
                      transform(Slo, {{names:Array(String)}}, {{lengths:Array(Int64)}}, toInt64(60))) AS slice,
               transform(Slo, {{names:Array(String)}}, {{current:Array(Int64)}}, toInt64(-1)) AS cur
        FROM {self._minutes(params, overlay)}
        WHERE (Slo, SpecHash) IN (SELECT arrayJoin(arrayZip({{names:Array(String)}}, {{hashes:Array(String)}})))
          AND Minute >= fromUnixTimestamp64Milli({{oldest:Int64}}, 'UTC')
          AND Minute < fromUnixTimestamp64Milli({{end:Int64}}, 'UTC')
    )
    GROUP BY Slo, GroupKey, slice
)
GROUP BY Slo, GroupKey, ts
"""
        out: dict = {}
        for row in self.store.query(sql, params).rows:
            vals = row[3:]
            out[(row[0], row[1])] = {w: tuple(vals[5 * i:5 * i + 5]) for i, w in enumerate(wnames)}
            if row[2] > 0:
                last_data[(row[0], row[1])] = dt.datetime.fromtimestamp(row[2], dt.timezone.utc)
        return out

    # -- scheduler entry points ---------------------------------------------------------------------------
    def evaluate_and_cache(self, summaries: bool = True) -> list[SloResult]:
        """Refresh rollups, evaluate now and keep the result for reads and /metrics (the evaluator's pass).

        `summaries=False` (the evaluator loop between `evaluator.summary_interval`s) carries the previous pass's
        journey summaries (stuck counts and money, lag quantiles) and in-flight forecasts instead of recomputing
        them: they scan the lookback's instances, the largest queries of a pass (see EvaluatorConfig). The SLO
        results, coverage, silence and annotations are always this pass's."""
        t0 = time.perf_counter()
        with self.instances.one_sync():        # the pass and its forecasts read one sync of the instance cache
            return self._evaluate_and_cache(t0, summaries)

    def _evaluate_and_cache(self, t0: float, summaries: bool) -> list[SloResult]:
        try:
            results = self.evaluate(refresh=True)
        except Exception:
            log.exception("SLO evaluation failed")
            raise
        now = utcnow()
        silence = journey_silence(self.store, self.cfg.journeys, now)
        notes = self.annotations.between(now - EXPOSED_SPAN, now, limit=EXPOSED)
        prev = self.snapshot.current
        if not summaries and prev is not None and prev.from_evaluator and prev.summaries_at is not None:
            stats, forecasts, stuck, summaries_at = prev.journeys, prev.forecasts, prev.stuck, prev.summaries_at
            funnels, attributions = prev.funnels, prev.attributions
        else:
            stats = self.journey_reader.stats(now)
            forecasts = self._forecasts(results)
            stuck = self.journey_reader.summaries(now)
            funnels = self._funnels(now)
            attributions = self._attributions(results, now)
            summaries_at = now
        self.snapshot.publish(Evaluation(utcnow(), tuple(results), stats, silence, time.perf_counter() - t0,
                                         forecasts=forecasts, stuck=stuck, annotations=notes,
                                         summaries_at=summaries_at, funnels=funnels, attributions=attributions))
        return results

    def _funnels(self, now: dt.datetime) -> list:
        """The funnel of every journey over the instances started in the last `EXPOSED_FUNNEL` (for /metrics and
        the Grafana funnel panels: a gauge needs one fixed window; the API and UI take any)."""
        from revwatch.journeys.funnel import funnel
        return self._each("funnel", [(n, n) for n in self.cfg.journeys], lambda name: funnel(
            self.store, self.cfg.journeys, name, now - EXPOSED_FUNNEL, now, now=now, cache=self.instances))

    def _attributions(self, results: list[SloResult], now: dt.datetime) -> list[dict]:
        """Burn attribution (slo/attribution.py) of every journey SLO result that has bad events in its window, over
        the attribution's default lookback: per step the stuck and late instances and their money (for /metrics)."""
        from slo.attribution import attribute_result
        bad = [r for r in results if r.spec.is_journey and any(w.total > w.good for w in r.windows.values())]
        return self._each("attribution", [(r.spec.name, r) for r in bad], lambda r: [attribute_result(self, r, now)])

    def _forecasts(self, results: list[SloResult]) -> list[dict]:
        """In-flight forecasts of every journey SLO (for /metrics)."""
        from slo.forecast import forecast
        return self._each("forecast", [(s.name, s) for s in self.specs if s.is_journey],
                          lambda spec: forecast(self, spec, results=[r for r in results if r.spec is spec]))

    def _each(self, what: str, items: list[tuple[str, Any]], compute: Callable[[Any], list]) -> list:
        """The summary pass's answers for (name, item) pairs (`compute(item)`, a list each), concatenated, under one
        sync of the instance cache. One that fails is logged by name and left out, so a funnel, attribution or
        forecast problem never stops the evaluation."""
        out: list = []
        with self.instances.one_sync():
            for name, item in items:
                try:
                    out += compute(item)
                except Exception:
                    log.exception("%s of %s failed", what, name)
        return out

    def latest_or_evaluate(self) -> list[SloResult]:
        """The evaluator's latest results, else a read-only evaluation now (kept in memory, never written)."""
        latest = self.latest
        if latest is not None:
            return latest
        results = self.evaluate()
        self.snapshot.publish(Evaluation(utcnow(), tuple(results), from_evaluator=False))
        return results

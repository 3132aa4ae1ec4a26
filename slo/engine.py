"""SLO evaluation: SLI and burn rate per window, error budget, exhaustion forecast, multi-window alert state.

Windows are whole minutes: a window of length W at instant `at` is the W/1m minutes ending with the minute
that contains `at`; minutes before that one come from the `slo_minutes` rollup, the minute of `at` itself is
computed live with decisions ≤ `at`. So an evaluation "as of" a past instant sees exactly what a live
evaluation saw then (given the same data), and later data (decided after `at`) changes nothing.

Burn rate = error ratio / (1 − objective). Alert state per the SRE workbook's multi-window multi-burn-rate
table (page: 1h & 5m ≥ 14.4 or 6h & 30m ≥ 6; ticket: 1d & 2h ≥ 3 or 3d & 6h ≥ 1; configurable per SLO; at the
threshold counts, so a steady burn of exactly 1 for 3 days — 10 % of a 30-day budget — opens a ticket); a
window with fewer than `min_events` decided events never alerts (low traffic).
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass, field

from revwatch.config import Config
from revwatch.store import Store
from revwatch.units import format_duration, parse_duration, utcnow
from slo.rollup import MINUTE, RollupMaintainer, floor_minute
from slo.sli import ms
from slo.prometheus_values import PrometheusReader
from slo.spec import BURN_WINDOWS, SloSpec, resolve

log = logging.getLogger("revwatch.slo")


def _at_least(burn: float, threshold: float) -> bool:
    """burn ≥ threshold, tolerant of float noise (0.01 / (1 - 0.99) is 0.9999999999999991)."""
    return burn > 0 and burn >= threshold * (1 - 1e-9)


@dataclass
class WindowResult:
    good: float                            # events or minutes; ratio_timeslices: the sum of the minutes' ratios
    total: int
    objective: float

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
        return {"good": self.good, "total": self.total, "bad": self.total - self.good, "sli": self.sli,
                "error_ratio": self.error_ratio, "burn_rate": self.burn_rate}


@dataclass
class SloResult:
    spec: SloSpec
    group: str
    at: dt.datetime
    windows: dict[str, WindowResult]
    alerts: list[dict] = field(default_factory=list)
    state: str = "ok"

    @property
    def budget(self) -> dict:
        """Error budget of the SLO window: remaining ratio and events, and days until exhausted."""
        w = self.windows["slo"]
        obj = self.spec.config.objective
        allowed = (1 - obj) * w.total
        bad = w.total - w.good
        remaining_ratio = 1 - bad / allowed if allowed > 0 else (1.0 if bad == 0 else float("-inf"))
        period_days = self.spec.period(self.at).total_seconds() / 86400
        forecast = {}
        for name in ("1h", "6h"):
            burn = self.windows[name].burn_rate
            if remaining_ratio <= 0:
                forecast[name] = 0.0
            elif burn <= 0:
                forecast[name] = None                 # not burning: never exhausted at this rate
            else:
                forecast[name] = remaining_ratio * period_days / burn
        unit = "minutes" if self.spec.config.budgeting != "occurrences" or self.spec.kind == "gauge_threshold" \
            else "events"
        return {"remaining_ratio": remaining_ratio if remaining_ratio != float("-inf") else -1.0,
                "allowed_bad": allowed, "bad": bad, "remaining": allowed - bad, "unit": unit,
                "days_until_exhausted": forecast}

    def as_dict(self) -> dict:
        c = self.spec.config
        d = {"name": c.name, "group": self.group or None, "journey": c.journey, "kind": self.spec.kind,
             "objective": c.objective, "window": c.window, "at": self.at.isoformat(),
             "state": self.state, "sli": self.windows["slo"].sli,
             "windows": {k: v.as_dict() for k, v in self.windows.items()},
             "budget": self.budget, "alerts": self.alerts, "description": c.description,
             "labels": c.labels, "warnings": list(self.spec.warnings)}
        return d


def _close_current_slice(spec: SloSpec, sums: tuple, live: list[tuple[int, int]]) -> WindowResult:
    """A sliced window's result: the closed slices' score plus the slice containing `at`, live minute included."""
    good, total, cur_good, cur_total = sums
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


def alert_state(res: SloResult) -> None:
    """Fill `res.alerts` (one entry per tier) and `res.state` (the most severe firing severity)."""
    al = res.spec.config.alerting
    state = "ok"
    for severity in ("ticket", "page"):
        for p in res.spec.tiers_of(severity):
            lw, sw = res.windows[format_duration(p.long)], res.windows[format_duration(p.short)]
            enough = lw.total >= al.min_events and sw.total >= al.min_events
            firing = enough and _at_least(lw.burn_rate, p.burn_rate) and _at_least(sw.burn_rate, p.burn_rate)
            res.alerts.append({"severity": severity, "long": format_duration(p.long),
                               "short": format_duration(p.short), "threshold": p.burn_rate,
                               "budget_percent": p.budget_percent,
                               "alert_after": format_duration(p.alert_after) if p.alert_after else None,
                               "long_burn_rate": lw.burn_rate, "short_burn_rate": sw.burn_rate,
                               "low_traffic": not enough, "firing": firing})
            if firing:
                state = severity
    res.state = state


class SloEngine:
    """Evaluates every configured SLO; keeps the latest results for /metrics and the API."""

    def __init__(self, store: Store, cfg: Config):
        self.store, self.cfg = store, cfg
        every = resolve(cfg)
        self.specs = [s for s in every if not s.is_prometheus]        # evaluated here, from the store
        self.prometheus_specs = [s for s in every if s.is_prometheus]  # computed by Prometheus from our rules
        self.prometheus: PrometheusReader | None = (
            PrometheusReader(cfg.prometheus_url) if cfg.prometheus_url and self.prometheus_specs else None)
        self.rollups = RollupMaintainer(store, self.specs)
        self.latest: list[SloResult] | None = None
        self.latest_journeys: dict[str, dict] = {}
        self.latest_at: dt.datetime | None = None
        self.last_seconds: float | None = None
        self._lock = threading.Lock()

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
        """Per journey, the overdue threshold: the journey's own, else the tightest SLO threshold on it."""
        out: dict[str, dt.timedelta] = {}
        for s in self.specs:
            if s.is_journey:
                out[s.config.journey] = min(s.threshold, out.get(s.config.journey, s.threshold))
        out.update({name: j.threshold for name, j in self.cfg.journeys.items() if j.threshold})
        return out

    # -- evaluation ---------------------------------------------------------------------------------------
    def window_lengths(self, spec: SloSpec) -> dict[str, dt.timedelta]:
        """The burn-rate windows of an SLO: the standard ones plus every window its alert pairs name."""
        names = list(BURN_WINDOWS)
        for tier in spec.tiers:
            for w in (tier.long, tier.short):
                if format_duration(w) not in names:
                    names.append(format_duration(w))
        return {n: parse_duration(n) for n in names}

    def evaluate(self, at: dt.datetime | None = None, names: list[str] | None = None,
                 refresh: bool = True) -> list[SloResult]:
        """Evaluate SLOs as of `at` (default now); refreshes rollups first."""
        now = utcnow()
        at = min(at or now, now)
        if refresh:
            self.rollups.refresh(now)
        specs = [s for s in self.specs if names is None or s.name in names]
        if not specs:
            return []
        at_min = floor_minute(at)
        bounds: dict[str, dict[str, dt.datetime]] = {}
        for s in specs:
            b = {n: at_min - length + MINUTE for n, length in self.window_lengths(s).items()}
            b["slo"] = s.window_bounds(at)[0]
            bounds[s.name] = b
        # the minute of `at` itself: computed live, unless the refresh just computed it with this very cutoff
        current = refresh and self.rollups.refreshed_at == now and at == now
        end = at_min + MINUTE if current else at_min
        sliced = [s for s in specs if s.config.budgeting != "occurrences" and s.config.timeslice_window > MINUTE]
        by_minute = [s for s in specs if s not in sliced]
        sums = self._rollup_sums(by_minute, bounds, end) if by_minute else {}
        if sliced:
            sums.update(self._sliced_sums(sliced, bounds, end, at_min))
        live = {s.name: ([] if current else self.rollups.minute_counts(s, at_min, at_min, at)) for s in specs}
        results = []
        for s in specs:
            groups = {g for (name, g) in sums if name == s.name} | {g for g, *_ in live[s.name]}
            if not groups:
                groups = {""}
            for g in sorted(groups):
                per_window = sums.get((s.name, g), {})
                live_g = [(good, total) for gg, _, good, total in live[s.name] if gg == g]
                windows = {}
                for wname in bounds[s.name]:
                    if s in sliced:
                        windows[wname] = _close_current_slice(s, per_window.get(wname, (0, 0, 0, 0)), live_g)
                        continue
                    good, total = per_window.get(wname, (0, 0))
                    for lg, lt in live_g:
                        if s.config.budgeting == "timeslices":
                            good += int(lt > 0 and lg / lt >= (s.config.timeslice_target or s.config.objective))
                            total += int(lt > 0)
                        elif s.config.budgeting == "ratio_timeslices":
                            good += lg / lt if lt > 0 else 0
                            total += int(lt > 0)
                        else:
                            good, total = good + lg, total + lt
                    windows[wname] = WindowResult(good, total, s.config.objective)
                res = SloResult(s, g, at, windows)
                alert_state(res)
                results.append(res)
        return results

    def _rollup_sums(self, specs: list[SloSpec], bounds: dict, end: dt.datetime) -> dict:
        """{(slo, group): {window: (good, total)}} over rollup minutes before `end`, one query for all SLOs.

        Window membership is an integer comparison of each minute's age; only the SLO's own window (rolling or
        calendar, different per SLO) needs a per-row lookup."""
        oldest = min(b for s in specs for b in bounds[s.name].values())
        rolling = sorted({w for s in specs for w in bounds[s.name] if w != "slo"})
        names = [s.name for s in specs]
        params = {"names": names, "hashes": [s.spec_hash for s in specs], "oldest": ms(oldest), "end": ms(end),
                  "ts_targets": [float(s.config.timeslice_target or s.config.objective) for s in specs],
                  "timeslices": [{"occurrences": 0, "timeslices": 1, "ratio_timeslices": 2}[s.config.budgeting]
                                 for s in specs],
                  "slo_start": [ms(bounds[s.name]["slo"]) for s in specs]}
        cols = []
        for i, w in enumerate(rolling + ["slo"]):
            cond = "in_slo" if w == "slo" else f"age < {int(parse_duration(w).total_seconds() // 60)}"
            cols.append(f"multiIf(ts = 1, toFloat64(countIf(t > 0 AND g / t >= target AND {cond})), "
                        f"ts = 2, sumIf(g / t, t > 0 AND {cond}), toFloat64(sumIf(g, {cond}))) AS g{i}, "
                        f"if(ts = 0, sumIf(t, {cond}), countIf(t > 0 AND {cond})) AS t{i}")
        sql = f"""
SELECT Slo, GroupKey, any(ts) AS ts_, {', '.join(cols)}
FROM (
    SELECT Slo, GroupKey, Minute, Good AS g, Total AS t,
           dateDiff('minute', Minute, fromUnixTimestamp64Milli({{end:Int64}}, 'UTC')) - 1 AS age,
           Minute >= fromUnixTimestamp64Milli(transform(Slo, {{names:Array(String)}}, {{slo_start:Array(Int64)}},
                                                        toInt64(0)), 'UTC') AS in_slo,
           transform(Slo, {{names:Array(String)}}, {{timeslices:Array(UInt8)}}, toUInt8(0)) AS ts,
           transform(Slo, {{names:Array(String)}}, {{ts_targets:Array(Float64)}}, toFloat64(1)) AS target
    FROM {self.store.table('slo_minutes')} FINAL        -- latest Version of each minute (ReplacingMergeTree)
    WHERE (Slo, SpecHash) IN (SELECT arrayJoin(arrayZip({{names:Array(String)}}, {{hashes:Array(String)}})))
      AND Minute >= fromUnixTimestamp64Milli({{oldest:Int64}}, 'UTC')
      AND Minute < fromUnixTimestamp64Milli({{end:Int64}}, 'UTC')
)
GROUP BY Slo, GroupKey, ts
"""
        out: dict = {}
        wnames = rolling + ["slo"]
        for row in self.store.query(sql, params).rows:
            vals = row[3:]
            exact = (lambda v: v) if row[2] == 2 else (lambda v: int(round(v)))   # counts stay integers
            out[(row[0], row[1])] = {w: (exact(vals[2 * i]), int(vals[2 * i + 1])) for i, w in enumerate(wnames)}
        return out

    def _sliced_sums(self, specs: list[SloSpec], bounds: dict, end: dt.datetime, at_min: dt.datetime) -> dict:
        """Time slices longer than a minute: {(slo, group): {window: (good, total, cur_good, cur_total)}}.

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
                  "current": [int(at_min.timestamp()) // n for n in lengths]}
        wnames = rolling + ["slo"]
        inner, outer = [], []
        for i, w in enumerate(wnames):
            cond = "in_slo" if w == "slo" else f"age < {int(parse_duration(w).total_seconds() // 60)}"
            inner.append(f"sumIf(g, {cond}) AS g{i}, sumIf(t, {cond}) AS t{i}")
            closed = f"t{i} > 0 AND slice != cur"
            outer.append(f"if(ts = 1, toFloat64(countIf({closed} AND g{i} / t{i} >= target)), "
                         f"sumIf(g{i} / t{i}, {closed})) AS sg{i}, countIf({closed}) AS st{i}, "
                         f"sumIf(g{i}, slice = cur) AS cg{i}, sumIf(t{i}, slice = cur) AS ct{i}")
        sql = f"""
SELECT Slo, GroupKey, {', '.join(outer)}
FROM (
    SELECT Slo, GroupKey, slice, any(ts) AS ts, any(target) AS target, any(cur) AS cur, {', '.join(inner)}
    FROM (
        SELECT Slo, GroupKey, Good AS g, Total AS t,
               dateDiff('minute', Minute, fromUnixTimestamp64Milli({{end:Int64}}, 'UTC')) - 1 AS age,
               Minute >= fromUnixTimestamp64Milli(transform(Slo, {{names:Array(String)}}, {{slo_start:Array(Int64)}},
                                                            toInt64(0)), 'UTC') AS in_slo,
               transform(Slo, {{names:Array(String)}}, {{timeslices:Array(UInt8)}}, toUInt8(1)) AS ts,
               transform(Slo, {{names:Array(String)}}, {{ts_targets:Array(Float64)}}, toFloat64(1)) AS target,
               intDiv(toInt64(toUnixTimestamp(Minute)),
                      transform(Slo, {{names:Array(String)}}, {{lengths:Array(Int64)}}, toInt64(60))) AS slice,
               transform(Slo, {{names:Array(String)}}, {{current:Array(Int64)}}, toInt64(-1)) AS cur
        FROM {self.store.table('slo_minutes')} FINAL
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
            vals = row[2:]
            out[(row[0], row[1])] = {w: tuple(vals[4 * i:4 * i + 4]) for i, w in enumerate(wnames)}
        return out

    # -- journey statistics (revwatch_journey_lag_seconds, revwatch_journey_pending) --------------------------
    def journey_stats(self, now: dt.datetime, lag_window: dt.timedelta = dt.timedelta(hours=1),
                      pending_lookback: dt.timedelta = dt.timedelta(days=7)) -> dict[str, dict]:
        """Per journey: start→end lag quantiles of instances completed in the last hour, and how many instances
        started in the last week are still waiting for their end."""
        out = {}
        for name, j in self.cfg.journeys.items():
            row = self.store.query(f"""
                SELECT quantilesExactIf(0.5, 0.9, 0.99)(dateDiff('millisecond', s, e) / 1000, has_end AND e >= lag_from)
                           AS q,
                       countIf(has_end AND e >= lag_from) AS completed,
                       countIf(NOT has_end) AS pending
                FROM (SELECT CorrelationId, minIf(At, Type = {{s:String}}) AS s, minIf(At, Type = {{e:String}}) AS e,
                             countIf(Type = {{e:String}}) > 0 AS has_end,
                             fromUnixTimestamp64Milli({{lag_from:Int64}}, 'UTC') AS lag_from
                      FROM {self.store.table('milestones')}
                      WHERE Type IN ({{s:String}}, {{e:String}})
                        AND At >= fromUnixTimestamp64Milli({{since:Int64}}, 'UTC')
                      GROUP BY CorrelationId HAVING countIf(Type = {{s:String}}) > 0)""",
                {"s": j.start, "e": j.end, "lag_from": ms(now - lag_window), "since": ms(now - pending_lookback)}).rows[0]
            q, completed, pending = row
            out[name] = {"lag_seconds": dict(zip(("0.5", "0.9", "0.99"), q)) if completed else {},
                         "completed_last_hour": int(completed), "pending": int(pending)}
        return out

    # -- scheduler entry points ---------------------------------------------------------------------------
    def evaluate_and_cache(self) -> list[SloResult]:
        """Refresh rollups, evaluate now and keep the result for /metrics (the scheduler job)."""
        t0 = time.perf_counter()
        try:
            results = self.evaluate()
        except Exception:
            log.exception("SLO evaluation failed")
            raise
        stats = self.journey_stats(utcnow())
        with self._lock:
            self.latest, self.latest_at, self.latest_journeys = results, utcnow(), stats
            self.last_seconds = time.perf_counter() - t0
        return results

    def latest_or_evaluate(self) -> list[SloResult]:
        """The cached results, evaluating once if there are none yet."""
        with self._lock:
            latest = self.latest
        return latest if latest is not None else self.evaluate_and_cache()

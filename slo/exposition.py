"""Prometheus exposition of SLO results (docs/prometheus.md), read from the engine's latest evaluation; the state
is slo.state's one decision, exposed as `revwatch_slo_state{state=...}` (1 for the current state, 0 for the others)."""
from __future__ import annotations

from prometheus_client.core import GaugeMetricFamily

from slo.engine import SloEngine
from slo.state import STATES


class SloCollector:
    """A prometheus_client collector: one sample per SLO (and group) per window, from cached results."""

    def __init__(self, engine: SloEngine):
        self.engine = engine

    def describe(self):
        return []

    def collect(self):
        results = self.engine.latest or []
        sli = GaugeMetricFamily("revwatch_slo_sli_ratio", "SLI (good/total) per window",
                                labels=["slo", "group", "window"])
        burn = GaugeMetricFamily("revwatch_slo_burn_rate", "Error-budget burn rate per window",
                                 labels=["slo", "group", "window"])
        events = GaugeMetricFamily("revwatch_slo_window_events",
                                   "Decided events (or minutes; budgeting amount: currency units) per window",
                                   labels=["slo", "group", "window"])
        money = GaugeMetricFamily("revwatch_slo_error_budget_amount",
                                  "Money-weighted SLOs: the SLO window's budget in currency units, by part "
                                  "(total decided, allowed_bad, bad, remaining)",
                                  labels=["slo", "group", "currency", "part"])
        budget = GaugeMetricFamily("revwatch_slo_error_budget_remaining_ratio",
                                   "Error budget remaining in the SLO window",
                                   labels=["slo", "group"])
        days = GaugeMetricFamily("revwatch_slo_error_budget_exhausted_in_seconds",
                                 "Time until the error budget is exhausted at the burn rate of burn_window "
                                 "(base unit: seconds)",
                                 labels=["slo", "group", "burn_window"])
        objective = GaugeMetricFamily("revwatch_slo_objective_ratio", "SLO objective", labels=["slo"])
        alert = GaugeMetricFamily("revwatch_slo_alert", "1 when the multi-window burn-rate alert fires",
                                  labels=["slo", "group", "severity"])
        state = GaugeMetricFamily("revwatch_slo_state", "1 for the SLO's current state (page, exhausted, ticket, ok, "
                                  "no_data; the same decision the CLI, API and UI show), 0 for the others",
                                  labels=["slo", "group", "state"])
        coverage = GaugeMetricFamily("revwatch_slo_coverage_ratio",
                                     "Minutes with data / counted minutes of the window (slo/coverage.py)",
                                     labels=["slo", "group", "window"])
        no_data = GaugeMetricFamily("revwatch_slo_no_data", "1 when the SLO has had no data for no_data_after",
                                    labels=["slo", "group"])
        silent = GaugeMetricFamily("revwatch_slo_no_data_seconds", "Time since the last minute with data",
                                   labels=["slo", "group"])
        seen = set()
        for r in results:
            for st in STATES:
                state.add_metric([r.spec.name, r.group, st], float(r.state == st))
            name, g = r.spec.name, r.group
            for w, wr in r.windows.items():
                if wr.sli is not None:
                    sli.add_metric([name, g, w], wr.sli)
                burn.add_metric([name, g, w], round(wr.burn_rate, 9))   # float noise would flip ">= 1" rules
                events.add_metric([name, g, w], wr.volume)
            if r.coverage is not None:
                for w, c in r.coverage.windows.items():
                    if c.ratio is not None:
                        coverage.add_metric([name, g, w], c.ratio)
                no_data.add_metric([name, g], float(r.coverage.no_data))
                if r.coverage.silent_for is not None:
                    silent.add_metric([name, g], r.coverage.silent_for.total_seconds())
            b = r.budget
            for part, v in (b.get("money") or {}).items():
                if part != "currency":
                    money.add_metric([name, g, b["money"]["currency"], part], float(v))
            budget.add_metric([name, g], b["remaining_ratio"])
            for bw, d in b["days_until_exhausted"].items():
                if d is not None:
                    days.add_metric([name, g, bw], d * 86400.0)
            for sev in ("page", "ticket"):
                alert.add_metric([name, g, sev], float(any(a["firing"] for a in r.alerts if a["severity"] == sev)))
            if name not in seen:
                objective.add_metric([name], r.spec.config.objective)
                seen.add(name)
        # Not a summary (the quantiles are computed in ClickHouse over the last hour, with no _sum/_count), so
        # neither the `quantile` label nor a summary's name: promtool's lint rejects a gauge carrying them.
        lag = GaugeMetricFamily("revwatch_journey_lag_quantile_seconds",
                                "Start→end lag of journeys completed in the last hour, by quantile q",
                                labels=["journey", "q"])
        pending = GaugeMetricFamily("revwatch_journey_pending", "Journey instances started (last 7 days), not finished",
                                    labels=["journey"])
        for journey, st in (self.engine.latest_journeys or {}).items():
            for q, v in st["lag_seconds"].items():
                lag.add_metric([journey, q], v)
            pending.add_metric([journey], st["pending"])
        journey_silent = GaugeMetricFamily("revwatch_journey_no_data_seconds",
                                           "Journeys with no_data_alert: time since one of their events last occurred",
                                           labels=["journey"])
        journey_alert = GaugeMetricFamily("revwatch_journey_no_data_alert",
                                          "1 while a journey that should always flow has had no event for "
                                          "no_data_alert",
                                          labels=["journey"])
        for journey, sil in (self.engine.latest_silence or {}).items():
            if sil.silent_for is not None:
                journey_silent.add_metric([journey], sil.silent_for.total_seconds())
            journey_alert.add_metric([journey], float(sil.alerting))
        breaches = GaugeMetricFamily("revwatch_slo_forecast_breaches",
                                     "In-flight journey instances forecast to breach the SLO threshold at the current "
                                     "step pace", labels=["slo", "group"])
        exhausted = GaugeMetricFamily("revwatch_slo_forecast_exhausted_in_seconds",
                                      "Time until the error budget is forecast to run out from in-flight breaches "
                                      "(absent: not forecast to run out)", labels=["slo", "group"])
        for f in self.engine.latest_forecasts:
            breaches.add_metric([f["slo"], f["group"] or ""], f["predicted_breaches"])
            if f["exhausted_in_seconds"] is not None:
                exhausted.add_metric([f["slo"], f["group"] or ""], f["exhausted_in_seconds"])
        notes = GaugeMetricFamily("revwatch_annotation_time_seconds",
                                  "Annotations of the last 7 days (Grafana annotation query: value is the time)",
                                  labels=["id", "text", "tags", "slos"])
        for a in self.engine.latest_annotations:
            notes.add_metric([a.id, a.text[:200], ",".join(a.tags), ",".join(a.slos)], a.time.timestamp())
        stuck = GaugeMetricFamily("revwatch_journey_stuck", "Overdue journey instances (the stuck list: started in "
                                  "the last 7 days, unfinished, past the journey's threshold)", labels=["journey"])
        stuck_amount = GaugeMetricFamily("revwatch_journey_stuck_amount",
                                         "Money carried by the overdue instances, per currency",
                                         labels=["journey", "currency"])
        for js in self.engine.latest_stuck:
            stuck.add_metric([js.name], js.stuck)
            for cur, amount in js.money.items():
                stuck_amount.add_metric([js.name, cur], float(amount))
        funnel_families = self._funnel_families()
        attribution_families = self._attribution_families()
        evaluation = GaugeMetricFamily("revwatch_slo_evaluation_seconds", "Duration of the last SLO evaluation pass")
        if self.engine.last_seconds is not None:
            evaluation.add_metric([], self.engine.last_seconds)
        yield from (sli, burn, events, money, budget, days, objective, alert, state, coverage, no_data, silent, lag,
                    pending, journey_silent, journey_alert, breaches, exhausted, stuck, stuck_amount,
                    *funnel_families, *attribution_families, notes, evaluation)

    def _funnel_families(self) -> tuple[GaugeMetricFamily, ...]:
        """Each journey's funnel over the instances started in the last day (`EXPOSED_FUNNEL`, computed by the
        evaluator's summary pass, revwatch/journeys/funnel.py): the numbers the API's funnel of that window gives,
        never recomputed here."""
        reached = GaugeMetricFamily("revwatch_journey_funnel_reached",
                                    "Journey instances started in the last day that reached the step",
                                    labels=["journey", "step"])
        conversion = GaugeMetricFamily("revwatch_journey_funnel_conversion_ratio",
                                       "Share of the previous step's instances (started in the last day) that reached "
                                       "the step", labels=["journey", "step"])
        stopped = GaugeMetricFamily("revwatch_journey_funnel_stopped",
                                    "Unfinished instances started in the last day waiting for the step (the previous "
                                    "one is their furthest)", labels=["journey", "step"])
        amount = GaugeMetricFamily("revwatch_journey_funnel_amount",
                                   "Money of the instances started in the last day that reached the step "
                                   "(kind=reached) or wait for it (kind=stopped), per currency",
                                   labels=["journey", "step", "kind", "currency"])
        latency = GaugeMetricFamily("revwatch_journey_funnel_step_latency_seconds",
                                    "Time from the previous step to the step, instances started in the last day, by "
                                    "quantile q", labels=["journey", "step", "q"])
        for f in self.engine.latest_funnels:
            for s in f.steps:
                reached.add_metric([f.journey, s.step], s.reached)
                if s.conversion is not None:
                    conversion.add_metric([f.journey, s.step], s.conversion)
                stopped.add_metric([f.journey, s.step], s.stopped)
                for kind, money in (("reached", s.money), ("stopped", s.stopped_money)):
                    for cur, value in money.items():
                        amount.add_metric([f.journey, s.step, kind, cur], float(value))
                for q, v in s.latency_seconds.items():            # p50 → q="0.5", as the journey lag's q
                    latency.add_metric([f.journey, s.step, str(int(q[1:]) / 100)], v)
        return reached, conversion, stopped, amount, latency

    def _attribution_families(self) -> tuple[GaugeMetricFamily, ...]:
        """Burn attribution of every journey SLO result with bad events (slo/attribution.py, its default 7-day
        lookback): per step, the bad instances stuck at it or late in it, and their money (every bad instance: the
        steps add up to the attribution's bad instances and bad money)."""
        bad = GaugeMetricFamily("revwatch_slo_attribution_bad",
                                "Bad instances (started in the last 7 days) of the SLO by the step they are stuck at "
                                "(kind=stuck) or were late in (kind=late)", labels=["slo", "group", "step", "kind"])
        money = GaugeMetricFamily("revwatch_slo_attribution_bad_amount",
                                  "Money of the SLO's bad instances (started in the last 7 days) by step, per currency",
                                  labels=["slo", "group", "step", "currency"])
        for doc in self.engine.latest_attributions:
            for st in doc.get("steps", []):
                for kind in ("stuck", "late"):
                    bad.add_metric([doc["slo"], doc["group"] or "", st["step"], kind], st[kind])
                for cur, value in st["money"].items():
                    money.add_metric([doc["slo"], doc["group"] or "", st["step"], cur], float(value))
        return bad, money

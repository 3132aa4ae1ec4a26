"""The evaluator's latest pass, held in memory: what most reads show (SLO states, budgets, burn rates, stuck
summaries) without a store query per request.

Why: under a webhook storm a read that queries the store competes with ingest for the same cores and waits its turn
(revwatch.priority); a read served from memory costs microseconds and never waits. The evaluator refreshes the
snapshot every pass (`evaluator.interval`), so what a page shows is at most one interval old, and says when it was
computed (`at`).

Invariants: one pass is published as one immutable `Evaluation` by a single reference swap, so a reader sees one
whole pass — never the SLO results of one pass with the stuck counts of another; readers take no lock and never
wait for a pass in progress. The state of each SLO in it is the one the engine's state function decided during the
pass (this module stores, it never decides).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from slo.engine import SloResult


@dataclass(frozen=True)
class Evaluation:
    """One evaluation pass: its results, when it finished, and what it measured besides SLOs."""
    at: dt.datetime                                              # when the pass's results were taken
    results: tuple[SloResult, ...]
    journeys: dict[str, dict] = field(default_factory=dict)     # per journey: lag quantiles, completed, pending
    silence: dict[str, Any] = field(default_factory=dict)       # journeys with no_data_alert (slo/coverage.py)
    seconds: float | None = None                                 # how long the pass took; None: a read-only one
    from_evaluator: bool = True                                  # False: computed by a read before any pass
    forecasts: list[dict] = field(default_factory=list)         # in-flight forecasts of journey SLOs
    stuck: list = field(default_factory=list)                    # revwatch.journeys.JourneySummary per journey
    annotations: list[Any] = field(default_factory=list)        # the last 7 days' (slo/annotations.py), for Grafana
    # when journeys, stuck, forecasts and annotations were computed: a pass recomputes them only every
    # `evaluator.summary_interval` and otherwise carries the previous pass's (None: computed with this pass)
    summaries_at: dt.datetime | None = None
    funnels: list[Any] = field(default_factory=list)            # per journey, the last day's (journeys/funnel.py)
    attributions: list[dict] = field(default_factory=list)     # journey SLO results with bad events (attribution.py)

    rendered: dict[str, bytes] = field(default_factory=dict, compare=False, repr=False)   # see `render`

    def results_for(self, name: str) -> list[SloResult]:
        """The results (one per group) of the SLO `name`; empty when the pass has none for it."""
        return [r for r in self.results if r.spec.name == name]

    def render(self, key: str, build: Callable[[], bytes]) -> bytes:
        """A reply body derived from this pass only, built once and kept (the pass never changes, so neither
        does the body): a read served from memory costs a dictionary lookup, not a JSON encoding per request.
        A race renders twice and keeps either — the two are equal."""
        body = self.rendered.get(key)
        if body is None:
            body = self.rendered[key] = build()
        return body


class LatestEvaluation:
    """The most recent `Evaluation`; `publish` replaces it whole, `current` reads it without a lock."""

    def __init__(self) -> None:
        self._current: Evaluation | None = None

    @property
    def current(self) -> Evaluation | None:
        """The latest pass, or None before the first one."""
        return self._current

    def publish(self, evaluation: Evaluation) -> None:
        """Make `evaluation` the one readers see. A read-only evaluation never replaces an evaluator pass."""
        cur = self._current
        if cur is not None and cur.from_evaluator and not evaluation.from_evaluator:
            return
        self._current = evaluation      # one reference assignment: atomic for readers

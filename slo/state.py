"""The one decision of an SLO's state and error budget: every reader (CLI table and `--json`, the API, the web UI,
`/metrics`, notifications) shows what this module decides, never a rule of its own.

States (exactly these strings, an interface between lanes — docs/slo-policy.md):

* `page`      — a page-severity burn-rate alert fires (or is held through a gap in the data, slo/coverage.py);
* `exhausted` — no page fires, and the SLO window's error budget is spent (remaining ≤ 0, which needs bad events):
                the objective is already missed for this window, whatever the burn rate or the feed does now;
* `ticket`    — a ticket-severity alert fires (or is held) and budget is left;
* `no_data`   — nothing fires, budget is left, and the coverage says there is no data: the SLO window has no
                minute with data, or the last one is `no_data_after` old (slo/coverage.py, issue #28). An SLO that
                measures nothing is never reported as met;
* `ok`        — data, budget left, nothing fires.

Precedence is that order (page > exhausted > ticket > no_data > ok), and `SEVERITY` sorts the same way.

The budget is signed: `remaining_ratio` = 1 − spent / allowed goes below zero when the window spent more than its
budget (−8.01 reads "overspent by 801 %", revwatch/human.py), and `remaining` (allowed − spent, in the SLO's unit:
events or minutes) goes negative likewise. Nothing here clips.

Coverage (what counts as "no data") belongs to slo/coverage.py; `no_data_of` is the one place this module reads it
(without a coverage verdict — Prometheus-backed SLOs — an empty SLO window is no data).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

from revwatch.human import budget_phrase, units_phrase

if TYPE_CHECKING:
    from slo.engine import SloResult

__all__ = ["STATES", "SEVERITY", "LABELS", "Budget", "budget_of", "budget_phrase", "decide", "no_data_of",
           "state_of", "units_phrase"]

STATES = ("page", "exhausted", "ticket", "no_data", "ok")        # most to least urgent
SEVERITY = {s: i for i, s in enumerate(STATES)}                   # sort key: lower is more urgent
LABELS = {"page": "PAGE", "exhausted": "BUDGET EXHAUSTED", "ticket": "TICKET", "no_data": "NO DATA", "ok": "OK"}


def no_data_of(result: SloResult) -> bool:
    """Whether an evaluated SLO has no data: the coverage's verdict (slo/coverage.py), else an empty SLO window."""
    if result.coverage is not None:
        return result.coverage.no_data
    return result.windows["slo"].total <= 0


def decide(firing: Iterable[str], remaining_ratio: float | None, no_data: bool) -> str:
    """The state of an SLO (or one group of it) from its firing (or held) alert severities, its signed budget left
    (None: unknown) and whether the coverage says it has no data."""
    firing = set(firing)
    if "page" in firing:
        return "page"
    if remaining_ratio is not None and remaining_ratio <= 0:
        return "exhausted"
    if "ticket" in firing:
        return "ticket"
    return "no_data" if no_data else "ok"


@dataclass(frozen=True)
class Budget:
    """The SLO window's error budget, signed. `allowed` and `spent` are in `unit` (events, minutes, or for
    `budgeting: amount` the group's currency)."""
    allowed: float
    spent: float
    unit: str

    @property
    def remaining(self) -> float:
        return self.allowed - self.spent

    @property
    def remaining_ratio(self) -> float:
        """1 − spent/allowed (negative when overspent); 1.0 for an empty window (nothing allowed, nothing spent)."""
        return 1 - self.spent / self.allowed if self.allowed > 0 else 1.0

    @property
    def overspent(self) -> bool:
        return self.spent > self.allowed


def budget_of(result: SloResult) -> Budget:
    """The budget of an evaluated SLO (its SLO window)."""
    w = result.windows["slo"]
    budgeting = result.spec.config.budgeting
    if budgeting == "amount":                  # money-weighted: currency units of the group's currency
        unit = result.currency or "?"
    else:
        unit = "minutes" if budgeting != "occurrences" or result.spec.is_gauge else "events"
    return Budget((1 - result.spec.config.objective) * w.total / w.scale, (w.total - w.good) / w.scale, unit)


def state_of(result: SloResult) -> str:
    """The state of an evaluated SLO (its alerts must be filled: `slo.engine.alert_state`)."""
    return decide((a["severity"] for a in result.alerts if a["firing"]), budget_of(result).remaining_ratio,
                  no_data_of(result))

"""The one decision of an SLO's state and error budget: every reader (CLI table and `--json`, the API, the web UI,
`/metrics`, notifications) shows what this module decides, never a rule of its own.

States (exactly these strings, an interface between lanes — HELPERS.md / docs/slo-policy.md):

* `page`      — a page-severity burn-rate alert fires (act now);
* `exhausted` — no page fires, but the SLO window's error budget is spent (remaining ≤ 0): the objective is
                already missed for this window, whatever the burn rate is now;
* `ticket`    — a ticket-severity alert fires and budget is left;
* `ok`        — data, budget left, nothing fires;
* `no_data`   — nothing fires and the SLO window holds no decided events (`has_data`): an SLO that measured nothing
                is never reported as met.

Precedence is that order (page > exhausted > ticket > ok > no_data). A firing alert always shows, even when the
SLO window itself is empty (a calendar window that has just started while the 1 h window still burns).

The budget is signed: `remaining_ratio` = 1 − spent / allowed goes below zero when the window spent more than its
budget (−8.01 reads "overspent by 801 %"), and `remaining` (allowed − spent, in the SLO's unit: events or minutes)
goes negative likewise. Nothing here clips.

Coverage (what counts as "no data") belongs to issue #28: `has_data` is the one place it is decided; today it is
"at least one decided event (or minute) in the SLO window".
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

from revwatch.human import budget_phrase, units_phrase

if TYPE_CHECKING:
    from slo.engine import SloResult

__all__ = ["STATES", "SEVERITY", "LABELS", "Budget", "budget_of", "budget_phrase", "decide", "has_data",
           "state_of", "units_phrase"]

STATES = ("page", "exhausted", "ticket", "ok", "no_data")        # most to least urgent
SEVERITY = {s: i for i, s in enumerate(STATES)}                   # sort key: lower is more urgent
LABELS = {"page": "PAGE", "exhausted": "BUDGET EXHAUSTED", "ticket": "TICKET", "ok": "OK", "no_data": "NO DATA"}


def has_data(decided_in_window: float) -> bool:
    """Whether the SLO window measured anything (coverage; issue #28 refines what counts)."""
    return decided_in_window > 0


def decide(firing: Iterable[str], remaining_ratio: float | None, decided_in_window: float) -> str:
    """The state of an SLO (or one group of it) from its firing alert severities, its signed budget left (None:
    unknown) and the decided events (or minutes) of its SLO window."""
    firing = set(firing)
    if "page" in firing:
        return "page"
    if not has_data(decided_in_window):
        return "ticket" if "ticket" in firing else "no_data"
    if remaining_ratio is not None and remaining_ratio <= 0:
        return "exhausted"
    if "ticket" in firing:
        return "ticket"
    return "ok"


@dataclass(frozen=True)
class Budget:
    """The SLO window's error budget, signed. `allowed` and `spent` are in `unit` (events or minutes)."""
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
    unit = "minutes" if result.spec.config.budgeting != "occurrences" or result.spec.kind == "gauge_threshold" \
        else "events"
    return Budget((1 - result.spec.config.objective) * w.total, w.total - w.good, unit)


def state_of(result: SloResult) -> str:
    """The state of an evaluated SLO (its alerts must be filled: `slo.engine.alert_state`)."""
    return decide((a["severity"] for a in result.alerts if a["firing"]), budget_of(result).remaining_ratio,
                  result.windows["slo"].total)

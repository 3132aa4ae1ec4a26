"""Composite SLOs: one objective, budget and burn-rate alerts over 2-25 member SLOs (docs/slo-policy.md).

`composite: {members: [...], rollup: weighted|least_healthy, weights: {member: w}}` on an SLO with a rolling window.
Each member is evaluated as usual (with the composite's burn windows and rolling window added to its own), then per
window W of the composite:

* weighted: SLI_c(W) = Σ w_i · SLI_i(W) / Σ w_i over the members with data in W (weights default 1; a member
  without data in W is left out and the weights renormalised). The window's good/total are Σ w_i · SLI_i and Σ w_i,
  so the error budget is counted in weight units: remaining = 1 − (1 − SLI_c) / (1 − objective_c).
* least_healthy: the member burning fastest decides: burn_c(W) = max_i burn_i(W) (each against its own objective),
  and SLI_c(W) = 1 − burn_c(W) · (1 − objective_c), with good/total = SLI_c / 1. The composite's budget left is the
  least healthy member's.

So both give the composite's burn rate, budget and multi-window alert state through the same engine code as any
SLO (the alert tiers come from the composite's own `alerting`). Members are SLOs revwatch evaluates, not composite
and without `group_by` (a limitation: a grouped member has no one SLI). Coverage: a window's covered minutes are the
most any member had, the last data the latest of any member.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from revwatch.units import format_duration


class _Window(Protocol):
    good: float
    total: float

    @property
    def sli(self) -> float | None: ...

    @property
    def burn_rate(self) -> float: ...


@dataclass(frozen=True)
class Rolled:
    """One window of a composite: its good and total (weight units, or 1 for least_healthy), and which member
    decided it (least_healthy) or took part (weighted)."""
    good: float
    total: float
    members: tuple[str, ...]


def check(specs: list) -> None:
    """Composite members exist and can be rolled up; raises slo.spec.SpecError naming the composite."""
    from slo.spec import SpecError
    by_name = {s.name: s for s in specs}
    for s in specs:
        comp = s.config.composite
        if comp is None:
            continue
        for m in comp.members:
            member = by_name.get(m)
            if member is None:
                raise SpecError(f"slos: {s.name}: composite.members: unknown SLO {m!r}")
            if member.config.composite is not None or member.is_prometheus or member.config.group_by:
                raise SpecError(f"slos: {s.name}: composite.members: {m!r} must be an SLO revwatch evaluates, not "
                                f"composite, without group_by")


def window_names(spec) -> dict[str, dt.timedelta]:
    """The rolling windows a composite needs from its members: its tiers' windows and its own SLO window."""
    out = {format_duration(w): w for t in spec.tiers for w in (t.long, t.short)}
    rolling = spec.config.rolling_window
    assert rolling is not None, "validated: composite SLOs have rolling windows"
    out[format_duration(rolling)] = rolling
    return out


def roll(spec, members: Mapping[str, Mapping[str, _Window]], window: str, member_window: str) -> Rolled:
    """The composite's window `window` from each member's `member_window` results."""
    comp = spec.config.composite
    objective = spec.config.objective
    present = [(m, members[m][member_window]) for m in comp.members
               if m in members and members[m][member_window].total > 0]
    if not present:
        return Rolled(0.0, 0, ())
    if comp.rollup == "weighted":
        weights = [comp.weights.get(m, 1.0) for m, _ in present]
        good = sum(w * (r.sli or 0.0) for w, (_, r) in zip(weights, present))
        return Rolled(good, sum(weights), tuple(m for m, _ in present))
    worst, r = max(present, key=lambda mr: mr[1].burn_rate)
    return Rolled(1 - r.burn_rate * (1 - objective), 1, (worst,))

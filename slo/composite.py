"""Composite SLOs: one objective, budget and burn-rate alerts over 2-25 member SLOs (docs/slo-policy.md).

`composite: {members: [...], rollup: weighted|least_healthy, weights: {member: w}}` on an SLO with a rolling window.
Each member is evaluated as usual (with the windows of every composite above it added to its own), then per window
W of the composite. A member is a *part* per group it reports: an ungrouped SLO or a composite is one part, a
`group_by` SLO one part per group, a money-weighted SLO (`budgeting: amount`, grouped per currency) one part per
currency. Parts are never summed into each other (a currency's money is never added to another's):

* weighted: SLI_c(W) = Σ_m w_m · SLI_m(W) / Σ_m w_m over the members with data in W, where a grouped member's
  SLI_m(W) is the plain mean of its parts' SLIs over the parts with data in W: its weight w_m is split equally
  between them (weights default 1; a member or part without data in W is left out and the weights renormalised).
  Equal split, because revwatch holds no exchange rates, so no volume share between EUR and USD exists that is not
  itself a number made up; it keeps a member's total say equal to its weight however many currencies (or gateways)
  it has, and a small currency that fails is seen instead of drowned. The window's good/total are Σ w·SLI and Σ w,
  so the error budget is counted in weight units: remaining = 1 − (1 − SLI_c) / (1 − objective_c).
* least_healthy: the part burning fastest decides: burn_c(W) = max over every part of every member (each against
  its own objective), and SLI_c(W) = 1 − burn_c(W) · (1 − objective_c), with good/total = SLI_c / 1. The
  composite's budget left is the least healthy part's (one currency overspent is the composite overspent).

So both give the composite's burn rate, budget and multi-window alert state through the same engine code as any
SLO (the alert tiers come from the composite's own `alerting`). A member may itself be a composite (one part, its
own roll-up); a cycle is refused when the config loads, naming it. A Prometheus-backed member is read from Prometheus
(slo/prometheus_values.py, as of the evaluated instant): its SLI per window is what its recording rules record, so
the composite's window and alert windows must be among them (`check` refuses otherwise, naming the missing ones);
Prometheus gives ratios without counts, so such a member has data in a window when the ratio exists and then counts
as covering the whole window. Coverage: a window's covered minutes are the most any part had, the last data the
latest of any part.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
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
    """Composite members exist, can be rolled up, and no composite contains itself; raises slo.spec.SpecError
    naming the composite (and for a cycle, the cycle)."""
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
            if member.is_prometheus:
                missing = sorted(set(window_names(s)) - set(prometheus_windows(member)),
                                 key=lambda w: window_names(s)[w])
                if missing:
                    raise SpecError(
                        f"slos: {s.name}: composite.members: {m!r} is Prometheus-backed and its recording rules "
                        f"cover {', '.join(prometheus_windows(member))} only; the composite needs "
                        f"{', '.join(missing)} (its window and alert windows; docs/slo-policy.md)")
    cycle = find_cycle({s.name: list(s.config.composite.members) for s in specs if s.config.composite is not None})
    if cycle:
        raise SpecError(f"slos: {cycle[0]}: composite.members: composite SLOs contain each other: "
                        f"{' -> '.join(cycle)}")


def find_cycle(members: Mapping[str, list[str]]) -> list[str] | None:
    """A cycle in the composites' membership graph as [a, b, ..., a], else None (depth-first, three colours)."""
    state: dict[str, int] = {}             # 1: on the current path, 2: done
    path: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        path.append(n)
        for m in members.get(n, []):
            if state.get(m) == 1:
                return path[path.index(m):] + [m]
            if m not in state and (found := visit(m)):
                return found
        path.pop()
        state[n] = 2
        return None

    for n in sorted(members):
        if n not in state and (found := visit(n)):
            return found
    return None


def closure(specs: list, names: set[str]) -> set[str]:
    """`names` and every SLO they roll up, directly or through composite members."""
    by_name = {s.name: s for s in specs}
    out, todo = set(), list(names)
    while todo:
        n = todo.pop()
        if n in out or n not in by_name:
            continue
        out.add(n)
        comp = by_name[n].config.composite
        todo += list(comp.members) if comp is not None else []
    return out


def in_order(composites: list) -> list:
    """Composites ordered so that each comes after the composites among its members (acyclic: `check`)."""
    names = {c.name for c in composites}
    done: set[str] = set()
    out: list = []
    while len(out) < len(composites):
        for c in composites:
            if c.name not in done and all(m in done or m not in names for m in c.config.composite.members):
                out.append(c)
                done.add(c.name)
    return out


def window_names(spec) -> dict[str, dt.timedelta]:
    """The rolling windows a composite needs from its members: its tiers' windows and its own SLO window."""
    out = {format_duration(w): w for t in spec.tiers for w in (t.long, t.short)}
    rolling = spec.config.rolling_window
    assert rolling is not None, "validated: composite SLOs have rolling windows"
    out[format_duration(rolling)] = rolling
    return out


def prometheus_windows(spec) -> dict[str, str]:
    """A Prometheus-backed SLO's windows its generated recording rules record (slo/sloth_rules.py: every alert
    window and the period): revwatch window name → Prometheus's (`sloth_window`; 28d is 4w there)."""
    from slo.sloth_rules import prom_duration
    lengths = {t.long for t in spec.tiers} | {t.short for t in spec.tiers} | {spec.nominal_period}
    return {format_duration(d): prom_duration(d.total_seconds()) for d in sorted(lengths)}


def roll(spec, members: Mapping[str, Sequence[tuple[str, Mapping[str, _Window]]]], window: str,
         member_window: str) -> Rolled:
    """The composite's window `window` from each member's parts' `member_window` results: {member: [(group,
    windows), ...]} (one part with group "" for an ungrouped member)."""
    comp = spec.config.composite
    objective = spec.config.objective
    present = {m: [(g, w[member_window]) for g, w in members.get(m, []) if w[member_window].total > 0]
               for m in comp.members}
    present = {m: parts for m, parts in present.items() if parts}
    if not present:
        return Rolled(0.0, 0, ())
    if comp.rollup == "weighted":
        weight = {m: comp.weights.get(m, 1.0) for m in present}
        good = sum(weight[m] * sum(r.sli or 0.0 for _, r in parts) / len(parts) for m, parts in present.items())
        return Rolled(good, sum(weight.values()), tuple(part_name(m, g) for m, parts in present.items()
                                                        for g, _ in parts))
    burn, worst = max(((r.burn_rate, part_name(m, g)) for m, parts in present.items() for g, r in parts),
                      key=lambda bn: bn[0])
    return Rolled(1 - burn * (1 - objective), 1, (worst,))


def part_name(member: str, group: str) -> str:
    """How a part is named where the composite says who decided: `member`, or `member[group]`."""
    return f"{member}[{group}]" if group else member

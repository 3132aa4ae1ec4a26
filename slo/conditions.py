"""Alert conditions of the SLOs revwatch evaluates: one per SLO, group and severity, named and labelled exactly as
the generated Prometheus rule names and labels its alert (slo/rules.py uses `alert_name` / `alert_labels`).

The evaluator hands these to the alert pipeline directly (alerts/direct.py): no round trip through Prometheus and
Alertmanager. A condition is *active* when any tier of its severity fires in the evaluation (after the coverage
rule: a tier without data holds its last state, slo/coverage.py); `hold_for` is the tiers' `alert_after`
(Prometheus `for:`). `identities` names the (alertname, slo) pairs of the generated rules, so the Alertmanager
receiver can leave alerts the direct path already sends out of routing (never two pages for one condition).
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote

from slo.spec import SloSpec

if TYPE_CHECKING:
    from slo.engine import SloResult

SEVERITIES = ("page", "ticket")
_TIER_KEYS = ("long", "short", "threshold", "long_burn_rate", "short_burn_rate", "firing", "held", "held_from")


def alert_name(spec: SloSpec, severity: str) -> str:
    """RevwatchSLOBurnRatePage / …Ticket, or the SLO's `alerting.name` + Page / Ticket."""
    return (spec.config.alerting.name or "RevwatchSLOBurnRate") + ("Page" if severity == "page" else "Ticket")


def _meta(spec: SloSpec, severity: str):
    a = spec.config.alerting
    return a.page_alert if severity == "page" else a.ticket_alert


def alert_labels(spec: SloSpec, severity: str) -> dict[str, str]:
    """The SLO's labels, per-severity labels and ownership keys, then slo, journey and severity (which nothing can
    override; slo/spec.py refuses them as user labels)."""
    c = spec.config
    return {**c.labels, **c.alerting.labels, **_meta(spec, severity).labels, **spec.ownership.labels(),
            "slo": c.name, "journey": c.journey or "", "severity": severity}


def exhaustion_tiers(spec: SloSpec, severity: str) -> list:
    """The SLO's exhaustion-time tiers of one severity (slo/exhaustion.py)."""
    return [t for t in spec.config.alerting.exhaustion if t.severity == severity]


def alerting_severities(spec: SloSpec) -> list[str]:
    """The severities that have tiers — burn-rate pairs or exhaustion-time tiers, either alone — and are not
    disabled (each is one alert, as in the rule file)."""
    return [s for s in SEVERITIES
            if (spec.tiers_of(s) or exhaustion_tiers(spec, s)) and not _meta(spec, s).disable]


def identities(specs: Iterable[SloSpec]) -> set[tuple[str, str]]:
    """(alertname, slo) of every alert the direct path raises for these (revwatch-evaluated) SLOs."""
    return {(alert_name(s, sev), s.name) for s in specs if not s.is_prometheus for sev in alerting_severities(s)}


@dataclass(frozen=True)
class Condition:
    """One SLO alert's condition in one evaluation."""
    labels: dict[str, str]             # alertname + alert_labels + group (when the SLO is grouped)
    annotations: dict[str, str]        # summary, description (with this evaluation's numbers), link, runbook_url
    active: bool
    hold_for: dt.timedelta             # the tiers' alert_after (Prometheus `for:`)
    at: dt.datetime                    # the evaluation instant
    tiers: tuple[dict, ...] = ()       # this severity's tiers as evaluated: windows, burn rates, threshold, firing,
                                       # held (coverage) — the alert history records them (alerts/history.py)


def _description(res: SloResult, severity: str) -> str:
    c = res.spec.config
    pairs = []
    for a in res.alerts:
        if a["severity"] != severity:
            continue
        if a.get("kind") == "exhaustion":
            left = a["exhausted_in_hours"]
            pairs.append(f"budget exhausted in {'?' if left is None else f'{left:.1f} h'} at the {a['long']} burn rate "
                         f"{a['long_burn_rate']:.1f}x (fires within {a['within']})")
            continue
        pairs.append(f"{a['long']} {a['long_burn_rate']:.1f}x and {a['short']} {a['short_burn_rate']:.1f}x "
                     f"(fires at {a['threshold']:.4g}x"
                     + (f", {a['budget_percent']:g}% of the budget" if a.get("budget_percent") else "") + ")")
    what = f"journey {c.journey}" if c.journey else c.sli.kind
    group = f" [{res.group}]" if res.group else ""
    left = res.budget.get("remaining_ratio")
    return (f"SLO {c.name}{group} ({what}, objective {c.objective:.4%} over {c.window}) is burning its error budget: "
            f"{'; '.join(pairs)}. Error budget left: {'?' if left is None else f'{left:.2%}'}.")


def conditions(results: Iterable[SloResult], external_url: str) -> list[Condition]:
    """The alert conditions of an evaluation's results (SLOs without tiers, or with a severity disabled, raise
    none for it)."""
    out = []
    for res in results:
        spec, c = res.spec, res.spec.config
        for severity in alerting_severities(spec):
            labels = {"alertname": alert_name(spec, severity), **alert_labels(spec, severity)}
            if res.group:
                labels["group"] = res.group
            link = f"{external_url.rstrip('/')}/ui/slos/{quote(c.name, safe='')}" if external_url else ""
            if link and res.group:
                link += f"?group={quote(res.group)}"
            annotations = {
                "summary": f"({severity}) SLO {c.name}{f' [{res.group}]' if res.group else ''} is burning its error "
                           f"budget too fast",
                "description": _description(res, severity),
                **c.alerting.annotations, **_meta(spec, severity).annotations,
                **({"runbook_url": spec.ownership.runbook} if spec.ownership.runbook else {}),
                **({"link": link} if link else {})}
            tiers = spec.tiers_of(severity)     # none for a severity of exhaustion tiers alone: no `for:`
            active = any(a["firing"] for a in res.alerts if a["severity"] == severity)
            detail = tuple({k: a.get(k) for k in _TIER_KEYS} for a in res.alerts if a["severity"] == severity)
            hold_for = tiers[0].alert_after if tiers else dt.timedelta(0)
            out.append(Condition(labels, annotations, active, hold_for, res.at, detail))
    return out


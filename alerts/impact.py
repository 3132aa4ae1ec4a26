"""Business impact of one alert: its class (P1–P4 by default) with the reason spelled out, the team to route it
to with the reason, and the burn attribution (`slo.attribution`) it rests on.

Classes come from `alerts.impact.classes`, tried in order (most severe first); a class applies when ANY of its
conditions holds — money at risk in a currency, customers affected, the journey's declared criticality, the
error budget left, the alert's severity. The reason lists every condition that held, with the numbers.

The recommended team is the first owner found, in this order: the failing step (event type the bad instances
wait for), the failing source system, the span service, the journey, the SLO, the alert's own `team` label,
`ownership.default`.
"""
from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal

from alerts.config import AlertsConfig
from slo.attribution import attribute

log = logging.getLogger("revwatch.alerts")


def classify(cfg: AlertsConfig, labels: dict[str, str], att: dict | None) -> tuple[str, str]:
    """(class, reason) of an alert with attribution `att` (None for alerts that name no SLO)."""
    att = att or {}
    money = {k: Decimal(v) for k, v in (att.get("money_at_risk") or {}).items()}
    customers = att.get("customers_affected")
    journey = att.get("journey") or labels.get("journey")
    criticality = cfg.impact.criticality.get(journey or "")
    budget = (att.get("budget") or {}).get("remaining_ratio")
    for c in cfg.impact.classes:
        why = []
        for cur, threshold in c.min_amount.items():
            if money.get(cur, Decimal(0)) >= Decimal(str(threshold)):
                why.append(f"money at risk {cur} {money[cur]:.2f} ≥ {threshold:g}")
        if c.min_customers is not None and customers is not None and customers >= c.min_customers:
            why.append(f"{customers} customers affected ≥ {c.min_customers}")
        if criticality and criticality in c.criticality:
            why.append(f"journey {journey} is declared {criticality}")
        if c.max_budget_left is not None and budget is not None and budget <= c.max_budget_left:
            why.append(f"error budget left {budget:.1%} ≤ {c.max_budget_left:.0%}")
        if labels.get("severity") in c.severity:
            why.append(f"severity {labels['severity']}")
        if why:
            return c.name, "; ".join(why)
    facts = [f"money at risk {', '.join(f'{k} {v:.2f}' for k, v in money.items()) or 'none'}"]
    if customers is not None:
        facts.append(f"{customers} customers affected")
    if budget is not None:
        facts.append(f"budget left {budget:.1%}")
    return cfg.impact.default_class, "no class threshold reached (" + ", ".join(facts) + ")"


def recommend(cfg: AlertsConfig, labels: dict[str, str], att: dict | None) -> tuple[str | None, str]:
    """(team, reason) from the ownership map and the incident's failing step or system."""
    att, own = att or {}, cfg.ownership
    candidates = [
        ("failing step", att.get("failing_step"), own.steps, "ownership.steps"),
        ("failing system", att.get("failing_system"), own.systems, "ownership.systems"),
        ("service", labels.get("service"), own.services, "ownership.services"),
        ("source system", labels.get("system") or labels.get("probe"), own.systems, "ownership.systems"),
        ("journey", att.get("journey") or labels.get("journey"), own.journeys, "ownership.journeys"),
        ("SLO", labels.get("slo"), own.slos, "ownership.slos"),
    ]
    for what, value, table, where in candidates:
        if value and value in table:
            return table[value], f"{what} {value} is owned by {table[value]} ({where})"
    if labels.get("team"):
        return labels["team"], "the alert's team label"
    if own.default:
        return own.default, "no owner matched; ownership.default"
    return None, "no owner matched and no ownership.default"


def assess(engine, cfg: AlertsConfig, labels: dict[str, str], now: dt.datetime | None = None) -> dict:
    """The impact document of one firing alert. Never raises: an attribution failure is reported in it."""
    att, error = None, None
    spec = engine.spec(labels.get("slo", "")) if labels.get("slo") else None
    if spec is not None:
        try:
            att = attribute(engine, spec, labels.get("group", ""), now, link_base=cfg.public_url)
        except Exception as e:            # the notification must still go out, saying what is missing
            log.warning("attribution of %s failed: %s", spec.name, e)
            error = f"attribution unavailable: {str(e)[:200]}"
    cls, reason = classify(cfg, labels, att)
    team, why = recommend(cfg, labels, att)
    doc = {"class": cls, "reason": reason, "recommended_team": team, "recommendation_reason": why,
           "attribution": att}
    if error:
        doc["error"] = error
    return doc

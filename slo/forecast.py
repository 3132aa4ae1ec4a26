"""In-flight forecast of a journey SLO: how many instances still in flight will breach at the current step pace,
when, the money they carry, the error budget that would leave, and a "budget exhausted within N h" signal that can
page before the breaches happen (docs/journeys.md "Forecast").

The per-instance prediction is the journey read model's (`revwatch.journeys.forecast`); this module weighs it like
the SLI (1 per instance, or the amount for `budgeting: amount`) and lays it over the SLO window's budget:
projected bad = bad now + predicted breaches, projected allowed = (1 − objective) × (decided now + in flight). The
budget is exhausted at the first predicted breach whose cumulative weight passes the projected allowance (now,
if it is spent already). Limitation: the window is not slid forward (bad events that leave the window before the
breaches land still count), so the forecast errs towards paging.
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import TYPE_CHECKING

from revwatch.journeys import money as jmoney
from revwatch.journeys.forecast import in_flight
from revwatch.journeys.reader import iso
from revwatch.units import utcnow
from slo.sli import journey_group_key, journey_group_sql

if TYPE_CHECKING:
    from slo.engine import SloEngine, SloResult
    from slo.spec import SloSpec

PAGE_WITHIN = dt.timedelta(hours=4)     # a forecast exhaustion this close is a page


def forecast(engine: SloEngine, spec: SloSpec, now: dt.datetime | None = None,
             results: list[SloResult] | None = None, page_within: dt.timedelta = PAGE_WITHIN,
             use_cache: bool = True) -> list[dict]:
    """One forecast document per group of a journey SLO (the groups the evaluation and the in-flight set know).
    `use_cache=False`: the in-flight instances grouped from raw rows in SQL (the previous path; the same documents)."""
    as_of = now
    now = now or utcnow()
    assert spec.config.journey, "journey SLOs only"
    j = engine.cfg.journeys[spec.config.journey]
    amount = spec.config.budgeting == "amount"
    flight = in_flight(engine.store, j, spec.threshold, now, journey_group_sql(spec),
                       cache=engine.instances if use_cache else None, group_key=journey_group_key(spec))
    if results is None and as_of is not None:           # "as of" a given instant: the budget as of then
        results = engine.evaluate(as_of, names=[spec.name])
    elif results is None:
        results = [r for r in (engine.latest or []) if r.spec.name == spec.name] or engine.evaluate(names=[spec.name])
    by_group = {r.group: r for r in results if r.spec.name == spec.name}
    preds: dict[str, list] = {}
    for p in flight.predictions:
        if not amount or p.amount is not None:
            preds.setdefault(p.group, []).append(p)
    docs = []
    for g in sorted(set(by_group) | set(preds)):
        docs.append(_group_doc(spec, g, by_group.get(g), preds.get(g, []), flight.pace, now, amount, page_within))
    return docs


def _weight(p, amount: bool) -> Decimal:
    return abs(p.amount) if amount else Decimal(1)


def _group_doc(spec: SloSpec, group: str, result: SloResult | None, preds: list, pace: dict, now: dt.datetime,
               amount: bool, page_within: dt.timedelta) -> dict:
    obj = Decimal(str(spec.config.objective))
    if result is not None:
        w = result.windows["slo"]
        total_now = jmoney.from_units(w.total) if amount else Decimal(w.total)
        bad_now = jmoney.from_units(w.total - w.good) if amount else Decimal(w.total - w.good)
    else:
        total_now = bad_now = Decimal(0)
    breaching = sorted((p for p in preds if p.breach_at is not None), key=lambda p: p.breach_at)
    in_flight_w = sum((_weight(p, amount) for p in preds), Decimal(0))
    allowed = (1 - obj) * (total_now + in_flight_w)
    exhausted_at = now if bad_now > (1 - obj) * total_now and total_now > 0 else None
    cum = bad_now
    for p in breaching:
        cum += _weight(p, amount)
        if exhausted_at is None and cum > allowed:
            exhausted_at = max(p.breach_at, now)
    bad_projected = cum
    money_at_risk = jmoney.total((p.currency, p.amount) for p in breaching)
    hours: dict[dt.datetime, list] = {}
    for p in breaching:
        hours.setdefault(p.breach_at.replace(minute=0, second=0, microsecond=0), []).append(p)
    within = (exhausted_at - now).total_seconds() / 3600 if exhausted_at else None
    unit = (group.rsplit("|", 1)[-1] if amount else "events")
    return {
        "slo": spec.name, "group": group or None, "at": iso(now), "unit": unit,
        "threshold_seconds": spec.threshold.total_seconds(),
        "pace": pace,
        "in_flight": len(preds), "predicted_breaches": len(breaching),
        "stuck": sum(p.stuck for p in preds), "no_pace": sum(p.no_pace for p in preds),
        "first_breach_at": iso(breaching[0].breach_at) if breaching else None,
        "money_at_risk": jmoney.as_json(money_at_risk),
        "breaches_by_hour": [{"hour": iso(h), "count": len(ps),
                              "money": jmoney.as_json(jmoney.total((p.currency, p.amount) for p in ps))}
                             for h, ps in sorted(hours.items())],
        "budget": {"allowed_bad": _num(allowed, amount), "bad_now": _num(bad_now, amount),
                   "bad_projected": _num(bad_projected, amount),
                   "remaining_ratio_now": _ratio(bad_now, (1 - obj) * total_now),
                   "remaining_ratio_projected": _ratio(bad_projected, allowed)},
        "exhausted_at": iso(exhausted_at), "exhausted_within_hours": None if within is None else round(within, 3),
        "exhausted_in_seconds": None if exhausted_at is None else (exhausted_at - now).total_seconds(),
        "page": within is not None and within <= page_within.total_seconds() / 3600,
        "page_within_hours": page_within.total_seconds() / 3600,
        "examples": [{"correlation_id": p.correlation_id, "waiting_for": p.waiting_for, "breach_at": iso(p.breach_at),
                      "stuck": p.stuck, "amount": jmoney.fmt(p.amount), "currency": p.currency or None}
                     for p in breaching[:5]],
    }


def _num(d: Decimal, amount: bool) -> str | float:
    """Money as an exact decimal string; counts (and fractional allowances) as numbers."""
    return (jmoney.fmt(d) or "0.00") if amount else float(d)


def _ratio(bad: Decimal, allowed: Decimal) -> float | None:
    if allowed <= 0:
        return None if bad == 0 else -1.0
    return float(1 - bad / allowed)

"""Exhaustion-time alerts (docs/slo-policy.md): page (or ticket) when the error budget left in the SLO window will be
gone within N hours at the current burn rate — Honeycomb's "budget exhaustion" alert, beside the multi-window
multi-burn-rate table.

`alerting.exhaustion: [{within: 4h, severity: page, burn_window: 1h}]`. The time left is the budget's own forecast
(`SloResult.budget["days_until_exhausted"][burn_window]`: remaining ratio × period ÷ burn rate, 0 once exhausted), so
the alert, the SLO document, /metrics (`revwatch_slo_error_budget_exhausted_in_seconds`) and the generated
Prometheus rule (`… <= within`) read one number. An entry fires when that time is known and ≤ `within`; its
`threshold` is the burn rate at which the budget left lasts exactly `within`.
"""
from __future__ import annotations

import datetime as dt

from revwatch.units import format_duration


def forecast_windows(spec) -> list[str]:
    """The burn windows the budget forecasts exhaustion for: 1h, 6h and every exhaustion tier's."""
    return sorted({"1h", "6h"} | {t.burn_window for t in spec.config.alerting.exhaustion},
                  key=lambda w: ("5m", "30m", "1h", "2h", "6h", "1d", "3d").index(w))


def exhaustion_alerts(res) -> list[dict]:
    """One alert entry per exhaustion tier of the result's SLO (shaped like the burn-rate tiers' entries)."""
    tiers = res.spec.config.alerting.exhaustion
    if not tiers:
        return []
    budget = res.budget
    period_days = res.spec.period(res.at).total_seconds() / 86400
    left = budget["remaining_ratio"]
    out = []
    for t in tiers:
        days = budget["days_until_exhausted"].get(t.burn_window)
        within_days = t.within / dt.timedelta(days=1)
        burn = res.windows[t.burn_window].burn_rate
        out.append({"severity": t.severity, "kind": "exhaustion", "within": format_duration(t.within),
                    "long": t.burn_window, "short": t.burn_window,
                    "threshold": max(left, 0.0) * period_days / within_days, "budget_percent": None,
                    "alert_after": None, "long_burn_rate": burn, "short_burn_rate": burn,
                    "exhausted_in_hours": None if days is None else days * 24, "low_traffic": False,
                    "firing": days is not None and days <= within_days})
    return out

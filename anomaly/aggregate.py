"""Billing variance in aggregate: per plan × currency × day, the invoice count and the billed total against their
own history with weekly seasonality. Catches what per-invoice checks cannot: a silent drop in renewals (no invoice
at all, so nothing to compare) or a price-table change applied consistently (expected amounts changed too).

Two causal methods (a day is judged only on earlier days), compared in bench/anomaly_eval.py:
* `weekday_median`: robust z-score against the same weekday of the previous eight weeks (median / MAD); a calendar
  day that stood out the same way in every earlier month — a month-end close, the 1st when most subscriptions
  renew — is expected to do so again (`calendar_effect`): business seasonality, not an anomaly.
* `seasonal_level`: a multiplicative weekday profile (median ratio of each weekday to its week's mean) times the
  current level (median of the last 14 de-seasonalised days); robust z of the residual against past residuals.
Counts are Poisson-like, so the spread never goes below √expected; totals never below 1 % of expected.
Only complete days are judged (today is still filling up).
"""
from __future__ import annotations

import datetime as dt
from collections import defaultdict

import numpy as np

from anomaly.findings import Finding, record
from revwatch.store import Store

KIND = "billing_aggregate"
Z_ALARM = 4.0
MIN_HISTORY_DAYS = 21
METHOD = "weekday_median"       # chosen by bench/anomaly_eval.py: higher F1 at z 4 (see README)


def _robust(x: np.ndarray) -> tuple[float, float]:
    med = float(np.median(x))
    return med, float(np.median(np.abs(x - med))) * 1.4826


def _floor(expected: float, is_count: bool) -> float:
    return max(np.sqrt(max(expected, 1.0)), 1.0) if is_count else max(abs(expected) * 0.01, 0.01)


def weekday_median(values: np.ndarray, is_count: bool, days: list[dt.date] | None = None) -> np.ndarray:
    """z per day: against the same weekday in the previous eight weeks (NaN while history is short); with `days`,
    a calendar day that has stood out the same way in every earlier month (see `calendar_effect`) is judged
    against that: a month-end or renewal-day peak that keeps coming back is the business, not an anomaly."""
    z = np.full(len(values), np.nan)
    expect = np.full(len(values), np.nan)
    spread = np.full(len(values), np.nan)
    for i in range(len(values)):
        hist = values[i - 7::-7][:8] if i >= 7 else values[:0]
        if len(hist) < 3:
            continue
        med, mad = _robust(hist)
        expect[i], spread[i] = med, max(mad, _floor(med, is_count))
        z[i] = (values[i] - med) / spread[i]
    if days is not None:
        for i in range(len(values)):
            if np.isnan(z[i]):
                continue
            effect = calendar_effect(values, expect, spread, days, i)
            if effect is not None:
                ratio, unsure = effect
                e = expect[i] * ratio
                grow = np.sqrt(max(ratio, 1.0)) if is_count else max(ratio, 1.0)    # Poisson counts; money scales
                z[i] = (values[i] - e) / max(spread[i] * grow, expect[i] * unsure, _floor(e, is_count))
    return z


def _month_end_offset(d: dt.date) -> int:
    nxt = (d.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return (nxt - d).days - 1                    # 0 on the last day of the month


def calendar_effect(values: np.ndarray, expect: np.ndarray, spread: np.ndarray, days: list[dt.date],
                    i: int) -> tuple[float, float] | None:
    """The factor by which day i's calendar position (its day of the month, or in the last week its distance to the
    month's end) multiplied the weekday expectation in *every* earlier month of the history (two or three), when it
    did so in the same direction each time (at least 2 robust z) and by Z_ALARM on average; returned with the
    robust spread of those factors (how sure the factor is). None when there is no such recurring effect."""
    d = days[i]
    keys = [lambda o: o.day == d.day]
    if _month_end_offset(d) <= 6:                # month-end effects live in the month's last week (else a short
        keys.append(lambda o: _month_end_offset(o) == _month_end_offset(d))    # month aliases the 1st with the 4th)
    for same in keys:
        past = [j for j in range(max(0, i - 100), i - 20) if same(days[j]) and not np.isnan(expect[j])][-3:]
        if len(past) < 2:                        # seen once is an incident; a pattern has come back
            continue
        dev = [(values[j] - expect[j]) / spread[j] for j in past]
        if (all(x >= 2 for x in dev) or all(x <= -2 for x in dev)) and abs(float(np.mean(dev))) >= Z_ALARM:
            ratios = [values[j] / expect[j] if expect[j] else 1.0 for j in past]
            return _robust(np.array(ratios))
    return None


def seasonal_level(values: np.ndarray, is_count: bool, weekdays: np.ndarray) -> np.ndarray:
    """z per day: against level × weekday factor learned from earlier days only (NaN while history is short)."""
    z = np.full(len(values), np.nan)
    residuals: list[float] = []
    for i in range(len(values)):
        if i < 14:
            continue
        past, wd = values[:i], weekdays[:i]
        weeks = [(past[k:k + 7], wd[k:k + 7]) for k in range(0, len(past) - 6, 7)]
        ratios: dict[int, list[float]] = defaultdict(list)
        for vals, days in weeks:
            m = vals.mean()
            if m > 0:
                for v, d in zip(vals, days):
                    ratios[int(d)].append(v / m)
        factor = {d: float(np.median(r)) for d, r in ratios.items()}
        f_past = np.array([factor.get(int(d), 1.0) or 1.0 for d in wd])
        level = float(np.median((past / np.where(f_past > 0, f_past, 1.0))[-14:]))
        expected = level * factor.get(int(weekdays[i]), 1.0)
        resid = values[i] - expected
        spread = _robust(np.array(residuals[-56:]))[1] if len(residuals) >= 7 else 0.0
        z[i] = resid / max(spread, _floor(expected, is_count))
        residuals.append(resid)
    return z


def score(values: np.ndarray, days: list[dt.date], is_count: bool, method: str = METHOD) -> np.ndarray:
    wd = np.array([d.weekday() for d in days])
    return weekday_median(values, is_count, days) if method == "weekday_median" else \
        seasonal_level(values, is_count, wd)


def daily(store: Store, until: dt.date) -> dict[tuple[str, str], tuple[list[dt.date], np.ndarray, np.ndarray]]:
    """Per (plan, currency): complete days (gaps filled with zeros), invoice counts and billed totals."""
    rows = store.query(f"""
        SELECT Attributes['plan'] AS plan, Currency, toDate(OccurredAt) AS day, count(), sum(toFloat64(Amount))
        FROM (SELECT * FROM {store.table('events')} WHERE Type = 'invoice.created' AND Amount IS NOT NULL
              LIMIT 1 BY EventId)
        WHERE day < {{until:Date}} GROUP BY plan, Currency, day ORDER BY day""", {"until": until}).rows
    by_key: dict[tuple[str, str], dict[dt.date, tuple[int, float]]] = defaultdict(dict)
    for plan, cur, day, n, total in rows:
        by_key[(plan or "-", cur or "-")][day] = (int(n), float(total))
    out = {}
    for key, m in by_key.items():
        first = min(m)
        days = [first + dt.timedelta(days=k) for k in range((until - first).days)]
        out[key] = (days, np.array([m.get(d, (0, 0.0))[0] for d in days], float),
                    np.array([m.get(d, (0, 0.0))[1] for d in days], float))
    return out


def scan_aggregate(store: Store, today: dt.date | None = None, lookback_days: int = 14) -> dict:
    """Judge the last `lookback_days` complete days of every plan × currency; findings for |z| ≥ Z_ALARM."""
    today = today or dt.datetime.now(dt.timezone.utc).date()
    found, judged = [], []
    for (plan, cur), (days, counts, totals) in daily(store, today).items():
        if len(days) < MIN_HISTORY_DAYS:
            continue
        zc, zt = score(counts, days, True), score(totals, days, False)
        for i in range(max(0, len(days) - lookback_days), len(days)):
            key = f"{plan}|{cur}|{days[i].isoformat()}"
            judged.append(key)
            # a count out of line explains its total; a total alone out of line is a price change
            candidates = [(z, name) for z, name in ((zc[i], "invoice count"), (zt[i], "billed total"))
                          if not np.isnan(z) and abs(z) >= Z_ALARM]
            if not candidates:
                continue
            z, name = candidates[0]
            direction = "drop" if z < 0 else "rise"
            reasons = [f"{name} {direction} for plan {plan} in {cur} on {days[i]:%a %Y-%m-%d}: {int(counts[i])} "
                       f"invoices, {totals[i]:.2f} {cur} billed ({z:+.1f} robust z against its weekly pattern)"]
            found.append(Finding(KIND, key, f"{plan}/{cur}/{days[i].isoformat()}",
                                 round(min(1.0, abs(z) / (2 * Z_ALARM)), 4), reasons,
                                 {"cause": f"{'count' if name == 'invoice count' else 'total'}_{direction}",
                                  "plan": plan, "currency": cur, "day": days[i].isoformat(),
                                  "invoices": str(int(counts[i])), "billed": f"{totals[i]:.2f}",
                                  "z": f"{z:.2f}", "method": METHOD}))
    recorded = record(store, KIND, found, judged, "the day's figures are back within their usual range")
    return {"series": len(judged), "flagged": len(found), **recorded}

"""Business seasonality is not an anomaly: month-end and renewal-day peaks that come back every month are expected
once they have come back (two earlier months), while a drop on such a day, or a peak on an ordinary day, still is
one."""
import datetime as dt

import numpy as np

from anomaly.aggregate import Z_ALARM, score

DAYS = [dt.date(2026, 1, 1) + dt.timedelta(days=k) for k in range(151)]      # January – May
WEEKLY = np.array([1.0, 1.1, 1.0, 1.05, 0.9, 0.35, 0.25])


def month_end(d: dt.date) -> bool:
    return (d + dt.timedelta(days=1)).day == 1


def business(seed: int, level: float = 80.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    lam = np.array([level * WEEKLY[d.weekday()] * (3.0 if month_end(d) else 1.0) * (2.5 if d.day == 1 else 1.0)
                    for d in DAYS])
    return rng.poisson(lam).astype(float)


def flagged(values: np.ndarray, is_count: bool = True) -> set[dt.date]:
    z = score(values, DAYS, is_count)
    return {d for d, x in zip(DAYS, z) if not np.isnan(x) and abs(x) >= Z_ALARM}


def test_recurring_month_end_and_renewal_day_peaks_are_expected_once_they_came_back():
    for seed in range(5):
        counts = business(seed)
        hits = flagged(counts)
        later = {d for d in hits if d >= dt.date(2026, 4, 1)}    # seen in February and March (January 1st: no week)
        assert not later, (seed, sorted(later))
        totals = counts * 99.0                         # billed totals follow the counts: their peaks are expected too
        assert not {d for d in flagged(totals, False) if d >= dt.date(2026, 4, 1) and (month_end(d) or d.day == 1)}


def test_without_the_calendar_the_same_peaks_would_be_flagged():
    counts = business(0)
    z = score(counts, DAYS, True, "seasonal_level")    # weekly pattern only
    peaks = [i for i, d in enumerate(DAYS) if d >= dt.date(2026, 4, 1) and (month_end(d) or d.day == 1)]
    assert sum(abs(z[i]) >= Z_ALARM for i in peaks) >= len(peaks) // 2


def test_a_missing_renewal_peak_and_an_ordinary_day_peak_are_still_anomalies():
    counts = business(1)
    may1 = DAYS.index(dt.date(2026, 5, 1))
    counts[may1] = round(counts[may1] / 2.5)            # the renewal run did not happen: an ordinary day's volume
    mid = DAYS.index(dt.date(2026, 4, 15))
    counts[mid] *= 3                                    # a month-end-sized peak in mid-month
    hits = flagged(counts)
    assert dt.date(2026, 5, 1) in hits and dt.date(2026, 4, 15) in hits

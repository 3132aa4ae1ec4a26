"""Calendar-aligned SLO periods (OpenSLO `timeWindow` with `isRolling: false` and `calendar`).

A period of `duration` (n days, weeks, months, quarters or years) starts at `start`, a wall-clock time in
`time_zone`, and the next one starts where it ends. Periods are stepped in local wall-clock time (a day is a calendar
day across a DST change, a month keeps the start's day of month, clamped to the month's last day) and converted to
UTC. Invariant: `period_bounds(cal, at)` returns [start, end) with start ≤ at < end.
"""
from __future__ import annotations

import calendar as _cal
import datetime as dt
from zoneinfo import ZoneInfo

from revwatch.config import CalendarConfig

_MONTHS = {"M": 1, "Q": 3, "Y": 12}


def _add_months(t: dt.datetime, months: int) -> dt.datetime:
    y, m = divmod(t.month - 1 + months, 12)
    year, month = t.year + y, m + 1
    return t.replace(year=year, month=month, day=min(t.day, _cal.monthrange(year, month)[1]))


def _nth_start(cal: CalendarConfig, k: int) -> dt.datetime:
    n, unit = int(cal.duration[:-1]), cal.duration[-1]
    if unit in _MONTHS:
        return _add_months(cal.start, k * n * _MONTHS[unit])
    return cal.start + dt.timedelta(days=k * n * (7 if unit == "w" else 1))


def _utc(cal: CalendarConfig, local: dt.datetime) -> dt.datetime:
    return local.replace(tzinfo=ZoneInfo(cal.time_zone)).astimezone(dt.timezone.utc)


def period_bounds(cal: CalendarConfig, at: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The calendar period [start, end) (UTC) that contains the instant `at`."""
    local = at.astimezone(ZoneInfo(cal.time_zone)).replace(tzinfo=None)
    n, unit = int(cal.duration[:-1]), cal.duration[-1]
    if unit in _MONTHS:
        step = n * _MONTHS[unit]
        k = ((local.year - cal.start.year) * 12 + local.month - cal.start.month) // step
    else:
        step_days = n * (7 if unit == "w" else 1)
        k = (local - cal.start) // dt.timedelta(days=step_days)
    k += 1                                  # then step back until the period's start is not after `at`
    while _utc(cal, _nth_start(cal, k)) > at:
        k -= 1
    while _utc(cal, _nth_start(cal, k + 1)) <= at:
        k += 1
    return _utc(cal, _nth_start(cal, k)), _utc(cal, _nth_start(cal, k + 1))


def nominal_length(duration: str) -> dt.timedelta:
    """The length burn factors assume for a calendar duration: months 30 d, quarters 91 d, years 365 d."""
    n, unit = int(duration[:-1]), duration[-1]
    return dt.timedelta(days=n * {"d": 1, "w": 7, "M": 30, "Q": 91, "Y": 365}[unit])

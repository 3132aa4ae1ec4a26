"""Jinja filters: how numbers, durations, money and times read on the pages (one place, consistent)."""
from __future__ import annotations

import ast
import datetime as dt
from decimal import Decimal

from revwatch.human import num as human_num
from revwatch.units import as_utc


def pct(x: float | None, digits: int = 2) -> str:
    """0.99512 -> '99.51%'; None -> '–' (no data)."""
    return "–" if x is None else f"{x * 100:.{digits}f}%"


def duration(seconds: float | None) -> str:
    """Seconds as the two largest units: '3 d 4 h', '2 h 5 m', '42 s'."""
    if seconds is None:
        return "–"
    s = int(abs(seconds))
    d, rem = divmod(s, 86400)
    h, rem = divmod(rem, 3600)
    m, sec = divmod(rem, 60)
    sign = "-" if seconds < 0 else ""
    if d:
        return f"{sign}{d} d {h} h"
    if h:
        return f"{sign}{h} h {m} m" if m else f"{sign}{h} h"
    if m:
        return f"{sign}{m} m {sec} s" if sec else f"{sign}{m} m"
    return f"{sign}{seconds:.3g} s" if abs(seconds) < 10 else f"{sign}{sec} s"


def days(x: float | None) -> str:
    """Days until the budget is exhausted: 'never' when not burning, hours below a day."""
    if x is None:
        return "never"
    if x <= 0:
        return "now"
    return f"{x * 24:.1f} h" if x < 1 else f"{x:.1f} d"


def money(amount, currency: str = "") -> str:
    """'1,234.50 EUR'; blank when there is no amount."""
    if amount in (None, ""):
        return ""
    try:
        return f"{Decimal(str(amount)):,.2f} {currency}".strip()      # exact: never through a float
    except (TypeError, ValueError, ArithmeticError):
        return f"{amount} {currency}".strip()


def when(t) -> str:
    """An instant as 'YYYY-MM-DD HH:MM:SS UTC' (ISO strings and datetimes alike)."""
    if not t:
        return ""
    if isinstance(t, str):
        t = dt.datetime.fromisoformat(t.replace("Z", "+00:00"))
    return as_utc(t).strftime("%Y-%m-%d %H:%M:%S UTC")


def num(x, digits: int = 2) -> str:
    """A float with a fixed number of decimals, '–' for None."""
    return "–" if x is None else f"{x:,.{digits}f}"


def impact(value: str, key: str = "") -> str:
    """An alert's business-impact annotation (stored as text) for people: ratios as %, days, money per currency."""
    try:
        if key == "budget_remaining_ratio":
            return pct(float(value), 1)
        if key == "days_until_exhausted":
            return days(None if value in ("None", "") else float(value))
        if key == "amount_at_risk" and value.startswith("{"):
            parsed = ast.literal_eval(value)
            return ", ".join(money(amt, cur) for cur, amt in sorted(parsed.items())) or "–"
    except (ValueError, SyntaxError, AttributeError):
        pass
    return value


FILTERS = {"human": human_num, "pct": pct, "duration": duration, "days": days, "money": money, "when": when, "num": num,
           "impact": impact}

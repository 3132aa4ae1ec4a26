"""Numbers for people: one place that turns floats into the text pages, the CLI, notifications and generated rule
files show, so `1.4000000000000001` or `>= 5.6000000000000005` never reaches a reader.

Invariants: `num` never shows binary float noise (it rounds to 12 significant digits, then drops trailing zeros,
so 14.4 / 0.9995 / 1e-05 read as written); a budget left below zero reads as an overspend ("overspent by 801%"),
never as a clipped or negative "left".
"""
from __future__ import annotations

import math


def num(x: float | int | None, sig: int = 12) -> str:
    """A number as written by a person: 1.4000000000000001 -> '1.4', 14.4 -> '14.4', 3.0 -> '3', None -> '–'."""
    if x is None:
        return "–"
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return str(x)
    if isinstance(x, int):
        return str(x)
    if math.isnan(x) or math.isinf(x):
        return str(x)
    text = f"{x:.{sig}g}"
    if "e" in text:
        mant, exp = text.split("e")
        return f"{mant.rstrip('0').rstrip('.') if '.' in mant else mant}e{int(exp)}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def budget_phrase(remaining_ratio: float | None) -> str:
    """The error budget for people: '53.1% left', 'exhausted' (spent exactly), 'overspent by 801%', '–' (unknown)."""
    if remaining_ratio is None:
        return "–"
    if remaining_ratio > 0:
        return f"{remaining_ratio * 100:.1f}% left"
    if remaining_ratio == 0:
        return "exhausted"
    over = -remaining_ratio * 100
    return f"overspent by {over:,.0f}%" if over >= 10 else f"overspent by {over:.1f}%"


def units_phrase(remaining: float, unit: str) -> str:
    """Budget left in its unit: '12 events left', '340 events over budget' (never '-340 events')."""
    n = round(abs(remaining))
    return f"{n:,} {unit} left" if remaining >= 0 else f"{n:,} {unit} over budget"

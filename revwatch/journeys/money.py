"""Money, exactly: amounts are `Decimal`, grouped per currency and never summed across currencies.

The store keeps `Amount` as Decimal(38, 9); every reader gets it as text and parses it here, so no float ever
touches an amount (a float sum of a million 0.10 EUR is off by cents). A `Money` is a mapping currency → Decimal;
'?' is the currency of an amount sent without one (shown, never merged into a real currency).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation

Money = dict[str, Decimal]
UNKNOWN_CURRENCY = "?"
CENT = Decimal("0.01")


def parse_amount(text: object) -> Decimal | None:
    """An amount from the store or a request ('129.000000000', '129', Decimal) as a Decimal; None when absent or
    unparseable (NULL reads back as '' or '\\N')."""
    if text is None:
        return None
    if isinstance(text, Decimal):
        return text
    s = str(text).strip()
    if s in ("", "\\N", "None"):
        return None
    try:
        d = Decimal(s)
    except InvalidOperation:
        return None
    return d if d.is_finite() else None


def currency_key(currency: object) -> str:
    """The group key of a currency ('?' when none was named)."""
    return str(currency or "").strip() or UNKNOWN_CURRENCY


def add(total: Money, currency: object, amount: Decimal | None) -> None:
    """Add one amount to its currency's total (amounts of None are ignored)."""
    if amount is not None:
        k = currency_key(currency)
        total[k] = total.get(k, Decimal(0)) + amount


def total(items: Iterable[tuple[object, Decimal | None]]) -> Money:
    """Per-currency totals of (currency, amount) pairs, sorted by currency."""
    out: Money = {}
    for cur, amt in items:
        add(out, cur, amt)
    return dict(sorted(out.items()))


def fmt(amount: Decimal | None) -> str | None:
    """The decimal string of an amount: at least two decimals (cents), more only when the amount has them
    ('129.00', '0.125'); None stays None."""
    if amount is None:
        return None
    q = amount.quantize(CENT) if amount == amount.quantize(CENT) else amount.normalize()
    return f"{q:f}"


def as_json(money: Mapping[str, Decimal]) -> dict[str, str]:
    """A Money as JSON: currency → decimal string (never a float)."""
    return {cur: fmt(v) or "0.00" for cur, v in sorted(money.items())}


# Money-weighted SLOs (`budgeting: amount`) keep good/total per minute as integer units of 1/10 000 of a currency
# unit in `slo_minutes` (UInt64): exact for every ISO 4217 currency (at most 4 decimals), summable in SQL without
# float error, up to 1.8e15 currency units per window and group. Finer fractions are truncated.
AMOUNT_SCALE = 10_000


def from_units(units: float | int) -> Decimal:
    """Currency amount of a count of 1/AMOUNT_SCALE units (integers exact; a float good of ratio slices is not
    produced for amounts)."""
    return (Decimal(int(units)) if float(units).is_integer() else Decimal(str(units))) / AMOUNT_SCALE

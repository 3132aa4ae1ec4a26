"""ISO 4217 minor units: an amount a provider sends in the currency's smallest unit (Stripe's `amount: 1250`) →
the decimal string revwatch stores ("12.50" EUR, "1250" JPY, "1.250" BHD).

The exponent table is ISO 4217's list of currencies whose minor unit is not 2 (the rest, and unknown codes, use 2,
which is what providers assume too). Stripe documents the same zero-decimal and three-decimal sets.
"""
from __future__ import annotations

from decimal import Decimal

_EXPONENT = {
    **dict.fromkeys("BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF".split(), 0),
    **dict.fromkeys("BHD IQD JOD KWD LYD OMR TND".split(), 3),
    **dict.fromkeys("CLF UYW".split(), 4),
}


def exponent(currency: str) -> int:
    """The number of decimal places of `currency`'s minor unit (ISO 4217; 2 when not listed)."""
    return _EXPONENT.get(currency.upper(), 2)


def minor_to_decimal(amount: int | str, currency: str) -> str:
    """An integer amount in minor units → the decimal string in major units, with exactly the currency's decimal
    places. Raises ValueError for a non-integer."""
    if isinstance(amount, bool) or not isinstance(amount, (int, str)):
        raise ValueError("an amount in minor units must be an integer")
    value = int(amount)                      # ValueError for "12.5"
    places = exponent(currency)
    return str(Decimal(value).scaleb(-places).quantize(Decimal(1).scaleb(-places)))

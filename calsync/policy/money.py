"""Money as Stripe counts it: integer minor units of a currency (pure, no I/O).

A fee or refund is worked out in ``Decimal`` (``policy/change_rules.py``) and handed to Stripe
as an integer count of the currency's smallest unit. The rounding rule, documented in the
README: amounts are rounded **half up** (0.005 → 0.01) to the currency's minor unit: two
decimals for most currencies, none for zero-decimal ones (JPY, KRW, …), three for BHD, JOD,
KWD, OMR and TND. Money is never a float.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

# ISO 4217 currencies whose minor unit is not the cent (Stripe's lists of zero- and
# three-decimal currencies); every other currency has two decimals.
_ZERO_DECIMAL = frozenset(
    [
        "BIF",
        "CLP",
        "DJF",
        "GNF",
        "JPY",
        "KMF",
        "KRW",
        "MGA",
        "PYG",
        "RWF",
        "UGX",
        "VND",
        "VUV",
        "XAF",
        "XOF",
        "XPF",
    ]
)
_THREE_DECIMAL = frozenset(["BHD", "JOD", "KWD", "OMR", "TND"])


def exponent(currency: str) -> int:
    """How many decimals the currency's minor unit has."""
    code = currency.upper()
    if code in _ZERO_DECIMAL:
        return 0
    if code in _THREE_DECIMAL:
        return 3
    return 2


def to_minor(amount: Decimal, currency: str) -> int:
    """``amount`` in the currency's minor units, rounded half up (12.345 EUR → 1235)."""
    places = exponent(currency)
    rounded = amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    return int(rounded.scaleb(places))


def from_minor(minor: int, currency: str) -> Decimal:
    """The inverse of ``to_minor``: 1235 EUR cents → Decimal('12.35')."""
    return Decimal(minor).scaleb(-exponent(currency))


def minor_text(minor: int, currency: str) -> str:
    """``1235, "eur"`` → ``"12.35 EUR"`` (the receipt line's plain form)."""
    places = exponent(currency)
    return f"{from_minor(minor, currency):.{places}f} {currency.upper()}"

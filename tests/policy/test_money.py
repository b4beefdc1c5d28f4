"""Minor units per currency and the rounding rule the README documents."""

from decimal import Decimal

import pytest

from calsync.policy.money import from_minor, minor_text, to_minor


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [
        (Decimal("12.345"), "EUR", 1235),  # half up, not banker's rounding
        (Decimal("12.344"), "eur", 1234),
        (Decimal("10") / 3, "EUR", 333),  # 3.333… a third of a 10.00 fee
        (Decimal("1000.5"), "JPY", 1001),  # zero-decimal currency
        (Decimal("1.2345"), "KWD", 1235),  # three decimals
        (Decimal("0"), "USD", 0),
    ],
)
def test_amounts_round_half_up_to_the_currency_minor_unit(
    amount: Decimal, currency: str, minor: int
) -> None:
    assert to_minor(amount, currency) == minor


def test_minor_units_read_back_as_decimal_text() -> None:
    assert from_minor(1235, "EUR") == Decimal("12.35")
    assert minor_text(1235, "eur") == "12.35 EUR"
    assert minor_text(500, "JPY") == "500 JPY"

"""Decimal money of the trading engine: 8 decimal places, as NUMERIC(20,8) stores it."""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal

EIGHT_PLACES = Decimal("0.00000001")
ZERO = Decimal(0)


def money(value: Decimal | int | str | float) -> Decimal:
    """Quantise to 8 places, half-even (floats go through ``str`` so 0.1 stays 0.1)."""
    as_decimal = value if isinstance(value, Decimal) else Decimal(str(value))
    return as_decimal.quantize(EIGHT_PLACES, rounding=ROUND_HALF_EVEN)


def floor_to_step(value: Decimal, step: Decimal) -> Decimal:
    """Round down to a multiple of ``step`` (an exchange's amount precision)."""
    if step <= 0:
        return money(value.quantize(EIGHT_PLACES, rounding=ROUND_DOWN))
    floored = (value / step).to_integral_value(rounding=ROUND_DOWN) * step
    return money(floored.quantize(EIGHT_PLACES, rounding=ROUND_DOWN))


def as_text(value: Decimal | None) -> str | None:
    """A Decimal as its JSON string (fixed point, never exponent notation)."""
    return None if value is None else format(value, "f")

"""The paper broker: market orders walk the current order book and pay the taker fee;
limit orders rest until the price crosses and pay the maker fee (docs/trading.md, paper fills)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import ROUND_DOWN, Decimal

from shared.errors import ValidationFailed
from trading_engine.ledger.arithmetic import fee_for, notional
from trading_engine.ledger.service import Fill
from trading_engine.market_client import Level, OrderBook
from trading_engine.money import EIGHT_PLACES, ZERO


class NotEnoughLiquidity(ValidationFailed):
    title = "Not Enough Liquidity"


def walk_book(
    levels: Sequence[Level],
    quantity: Decimal,
    *,
    fee_rate: Decimal,
    fee_currency: str,
    limit_price: Decimal | None = None,
    buying: bool,
    executed_at: datetime | None = None,
    partial: bool = False,
) -> list[Fill]:
    """Taker fills for ``quantity`` against the book side, best level first.

    With ``limit_price`` only levels at or better than it are taken; ``partial`` allows
    the walk to stop short (a marketable limit order rests with the remainder).
    """
    at = executed_at or datetime.now(UTC)
    fills: list[Fill] = []
    left = quantity
    for price, available in levels:
        if left <= 0:
            break
        if limit_price is not None and (price > limit_price if buying else price < limit_price):
            break
        take = min(left, available)
        if take <= 0:
            continue
        fills.append(
            Fill(
                price=price,
                quantity=take,
                fee=fee_for(take, price, fee_rate),
                fee_currency=fee_currency,
                liquidity="taker",
                executed_at=at,
            )
        )
        left -= take
    if left > 0 and not partial:
        raise NotEnoughLiquidity(
            "The order book has not enough depth to fill this market order "
            f"({format(quantity - left, 'f')} of {format(quantity, 'f')} available)."
        )
    return fills


def quantity_for_budget(
    book: OrderBook, budget: Decimal, fee_rate: Decimal, amount_step: Decimal
) -> Decimal:
    """The largest buy quantity whose walk through the asks costs at most ``budget``,
    fee included (docs/trading.md: quantity = equity x size / (price x (1 + fee)) on one level)."""
    left = budget
    quantity = ZERO
    for price, available in book.asks:
        unit = price * (1 + fee_rate)
        affordable = (left / unit).quantize(EIGHT_PLACES, rounding=ROUND_DOWN)
        take = min(available, affordable)
        quantity += take
        left -= notional(take, price) + fee_for(take, price, fee_rate)
        if take < available or left <= 0:
            break
    if amount_step > 0:
        quantity = (quantity / amount_step).to_integral_value(rounding=ROUND_DOWN) * amount_step
    quantity = quantity.quantize(EIGHT_PLACES, rounding=ROUND_DOWN)
    # Rounding of per-level fees may overshoot by a satoshi: step down until it fits.
    while quantity > 0 and _walk_cost(book.asks, quantity, fee_rate) > budget:
        quantity -= amount_step if amount_step > 0 else EIGHT_PLACES
    return max(quantity, ZERO)


def _walk_cost(levels: Sequence[Level], quantity: Decimal, fee_rate: Decimal) -> Decimal:
    cost = ZERO
    left = quantity
    for price, available in levels:
        take = min(left, available)
        cost += notional(take, price) + fee_for(take, price, fee_rate)
        left -= take
        if left <= 0:
            break
    return cost


def crosses(side: str, limit_price: Decimal, low: Decimal, high: Decimal) -> bool:
    """Did a candle trade through a resting limit order's price?"""
    return low <= limit_price if side == "buy" else high >= limit_price

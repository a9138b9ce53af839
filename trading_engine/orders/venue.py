"""What an order needs to know of its market, and the venue's arithmetic on it: amount
and price precision, minimum amount and cost, the price an order is judged at."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from shared.exchange_errors import InvalidOrder
from trading_engine.market_client import MarketRules, OrderBook
from trading_engine.money import as_text, floor_to_step, money


@dataclass(frozen=True)
class Venue:
    """What an order needs to know of its market before it is booked."""

    rules: MarketRules
    book: OrderBook | None
    taker_fee: Decimal
    maker_fee: Decimal


def normalise_quantity(quantity: Decimal, rules: MarketRules) -> Decimal:
    """The quantity at the exchange's amount precision; a clear 422 if nothing is left."""
    rounded = floor_to_step(quantity, rules.amount_step)
    if rounded <= 0:
        raise InvalidOrder(
            f"Quantity {as_text(quantity)} is below the amount precision "
            f"{as_text(rules.amount_step)} of {rules.symbol}."
        )
    return rounded


def normalise_price(price: Decimal, rules: MarketRules) -> Decimal:
    if rules.price_step <= 0:
        return money(price)
    ticks = (price / rules.price_step).to_integral_value(rounding=ROUND_HALF_EVEN)
    rounded = money(ticks * rules.price_step)
    if rounded <= 0:
        raise InvalidOrder(f"Price {as_text(price)} is below the tick size of {rules.symbol}.")
    return rounded


def check_minimums(quantity: Decimal, price: Decimal | None, rules: MarketRules) -> None:
    if rules.min_amount > 0 and quantity < rules.min_amount:
        raise InvalidOrder(
            f"Quantity {as_text(quantity)} is below the minimum amount "
            f"{as_text(rules.min_amount)} for {rules.symbol}."
        )
    if price is not None and rules.min_cost > 0 and quantity * price < rules.min_cost:
        raise InvalidOrder(
            f"Order value {as_text(money(quantity * price))} is below the minimum cost "
            f"{as_text(rules.min_cost)} for {rules.symbol}."
        )


def reference_price(side: str, book: OrderBook | None, limit: Decimal | None) -> Decimal | None:
    """The limit price, else the best price on the side the order takes."""
    if limit is not None:
        return limit
    if book is None:
        return None
    levels = book.asks if side == "buy" else book.bids
    return levels[0][0] if levels else None

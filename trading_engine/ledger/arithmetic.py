"""Position and PnL arithmetic of long spot positions, in exact 8-place Decimals.

A position carries its ``cost_basis``: the quote spent on the open quantity, entry fees
included. A reducing fill realises ``proceeds - its share of the cost basis``, where
proceeds are the notional minus the exit fee. So for a bot that ends flat,
``final quote balance == capital + sum(realised pnl)`` holds to the last satoshi.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal

from trading_engine.money import ZERO, money


@dataclass(frozen=True)
class PositionState:
    quantity: Decimal = ZERO
    cost_basis: Decimal = ZERO
    average_entry_price: Decimal = ZERO
    realized_pnl: Decimal = ZERO
    fees: Decimal = ZERO

    @property
    def is_open(self) -> bool:
        return self.quantity > 0

    def unrealized_pnl(self, mark_price: Decimal) -> Decimal:
        """Mark-to-market gain over the cost basis (exit fee not deducted)."""
        return money(self.quantity * mark_price) - self.cost_basis


def notional(quantity: Decimal, price: Decimal) -> Decimal:
    return money(quantity * price)


def fee_for(quantity: Decimal, price: Decimal, rate: Decimal) -> Decimal:
    return money(notional(quantity, price) * rate)


def apply_buy(
    state: PositionState, quantity: Decimal, price: Decimal, fee_quote: Decimal
) -> PositionState:
    """Add a buy fill; ``fee_quote`` is the fee's value in the quote asset."""
    new_quantity = state.quantity + quantity
    average = money((state.average_entry_price * state.quantity + price * quantity) / new_quantity)
    return replace(
        state,
        quantity=new_quantity,
        cost_basis=state.cost_basis + notional(quantity, price) + fee_quote,
        average_entry_price=average,
        fees=state.fees + fee_quote,
    )


def apply_sell(
    state: PositionState, quantity: Decimal, price: Decimal, fee_quote: Decimal
) -> tuple[PositionState, Decimal]:
    """Reduce by a sell fill (at most the open quantity); returns the realised PnL."""
    closed = min(quantity, state.quantity)
    if closed <= 0:
        return replace(state, fees=state.fees + fee_quote), -fee_quote
    if closed == state.quantity:
        share = state.cost_basis
    else:
        share = money(state.cost_basis * closed / state.quantity)
    proceeds = notional(closed, price) - fee_quote
    pnl = proceeds - share
    remaining = state.quantity - closed
    return (
        replace(
            state,
            quantity=remaining,
            cost_basis=state.cost_basis - share,
            average_entry_price=state.average_entry_price if remaining > 0 else ZERO,
            realized_pnl=state.realized_pnl + pnl,
            fees=state.fees + fee_quote,
        ),
        pnl,
    )

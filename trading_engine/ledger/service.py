"""Applying a fill: one ``trades`` row, the order, the balances and the position, all in
the caller's transaction, with ``trade.executed`` and a notification request staged in
the outbox (published only after that transaction commits)."""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from shared.errors import ValidationFailed
from shared.events import TRADE_EXECUTED, Event, stage
from shared.events import request_notification as notify
from trading_engine.ledger import repository
from trading_engine.ledger.arithmetic import (
    PositionState,
    apply_buy,
    apply_sell,
    fee_for,
    notional,
)
from trading_engine.models import Order, Position, Trade
from trading_engine.money import ZERO, as_text, money

SOURCE = "trading"


class InsufficientFunds(ValidationFailed):
    """Not enough free balance for the order; nothing was changed."""

    title = "Insufficient Funds"


@dataclass(frozen=True)
class Fill:
    """One execution: ``last_px`` / ``last_qty`` in nautilus terms."""

    price: Decimal
    quantity: Decimal
    fee: Decimal
    fee_currency: str
    liquidity: str  # "maker" | "taker"
    executed_at: datetime = field(default_factory=lambda: datetime.now(UTC))


def limit_reserve(order: Order, remaining: Decimal) -> Decimal:
    """What a resting paper limit order keeps locked for ``remaining`` quantity."""
    if order.side == "sell":
        return remaining
    assert order.price is not None  # noqa: S101 - limit orders have a price
    rate = order.fee_rate or ZERO
    return notional(remaining, order.price) + fee_for(remaining, order.price, rate)


async def reserve_for_limit(session: AsyncSession, order: Order, base: str, quote: str) -> None:
    """Move a resting paper limit order's funds from free to locked (no overdraft)."""
    remaining = order.quantity - order.filled_quantity
    asset = base if order.side == "sell" else quote
    balance = await repository.lock_balance(session, order.user_id, order.bot_id, asset)
    amount = limit_reserve(order, remaining)
    if balance.free < amount:
        raise InsufficientFunds(
            f"Insufficient {asset}: the order needs {as_text(amount)}, "
            f"{as_text(balance.free)} is free."
        )
    balance.free -= amount
    balance.locked += amount


async def release_reserve(session: AsyncSession, order: Order, base: str, quote: str) -> None:
    """Give back what a canceled resting order still had locked."""
    remaining = order.quantity - order.filled_quantity
    asset = base if order.side == "sell" else quote
    balance = await repository.lock_balance(session, order.user_id, order.bot_id, asset)
    amount = limit_reserve(order, remaining)
    balance.locked -= amount
    balance.free += amount


async def record_fill(
    session: AsyncSession,
    order: Order,
    fill: Fill,
    *,
    base: str,
    quote: str,
    strategy_name: str | None = None,
    from_reserve: bool = False,
) -> Trade:
    """Book one fill of ``order``; raises :class:`InsufficientFunds` on a paper overdraft."""
    if fill.quantity <= 0:
        raise ValueError("a fill has a positive quantity")
    fee_quote = _fee_in_quote(fill, base=base, quote=quote)
    # What the buyer receives: a fee charged in the base asset comes out of it.
    base_delta = fill.quantity - (fill.fee if fill.fee_currency == base else ZERO)
    if order.mode == "paper":
        await _move_paper_balances(
            session,
            order,
            fill,
            base=base,
            quote=quote,
            fee_quote=fee_quote,
            base_delta=base_delta,
            from_reserve=from_reserve,
        )
    pnl = await _update_position(session, order, fill, fee_quote=fee_quote, base_delta=base_delta)
    _add_fill_to_order(order, fill)
    trade = _trade_row(order, fill, strategy_name, pnl)
    session.add(trade)
    _stage_trade_events(session, trade, strategy_name)
    return trade


def _fee_in_quote(fill: Fill, *, base: str, quote: str) -> Decimal:
    """The fill's fee in the quote asset (a fee in another asset counts as none)."""
    if fill.fee_currency == quote:
        return fill.fee
    if fill.fee_currency == base:
        return money(fill.fee * fill.price)
    return ZERO


async def _move_paper_balances(
    session: AsyncSession,
    order: Order,
    fill: Fill,
    *,
    base: str,
    quote: str,
    fee_quote: Decimal,
    base_delta: Decimal,
    from_reserve: bool,
) -> None:
    """Quote and base move between the bot's (or wallet's) balances; a resting limit
    order pays from what it had locked."""
    fill_notional = notional(fill.quantity, fill.price)
    remaining_before = order.quantity - order.filled_quantity
    quote_row = await repository.lock_balance(session, order.user_id, order.bot_id, quote)
    base_row = await repository.lock_balance(session, order.user_id, order.bot_id, base)
    if order.side == "buy":
        cost = fill_notional + fee_quote
        if from_reserve:
            released = limit_reserve(order, remaining_before) - limit_reserve(
                order, remaining_before - fill.quantity
            )
            quote_row.locked -= released
            quote_row.free += released - cost
        else:
            if quote_row.free < cost:
                raise InsufficientFunds(
                    f"Insufficient {quote}: the order costs {as_text(cost)} "
                    f"(fee included), {as_text(quote_row.free)} is free."
                )
            quote_row.free -= cost
        base_row.free += base_delta
    else:
        if from_reserve:
            base_row.locked -= fill.quantity
        else:
            if base_row.free < fill.quantity:
                raise InsufficientFunds(
                    f"Insufficient {base}: selling {as_text(fill.quantity)}, "
                    f"{as_text(base_row.free)} is free."
                )
            base_row.free -= fill.quantity
        quote_row.free += fill_notional - fee_quote
    if quote_row.free < 0 or base_row.free < 0:
        raise InsufficientFunds(f"Insufficient funds for this {order.side}.")


async def _update_position(
    session: AsyncSession,
    order: Order,
    fill: Fill,
    *,
    fee_quote: Decimal,
    base_delta: Decimal,
) -> Decimal | None:
    """A buy opens or adds to the open position, a sell reduces or closes it; returns
    the PnL a sell realised (None for a buy)."""
    position = await repository.lock_open_position(
        session, order.user_id, order.bot_id, order.exchange, order.symbol, order.mode
    )
    pnl: Decimal | None = None
    if order.side == "buy":
        if position is None:
            position = _open_position(session, order, fill)
        state = apply_buy(_state(position), base_delta, fill.price, fee_quote)
        _store(position, state)
        position.highest_price = max(position.highest_price or fill.price, fill.price)
    elif position is not None:
        state, pnl = apply_sell(_state(position), fill.quantity, fill.price, fee_quote)
        _store(position, state)
        if state.quantity <= 0:
            position.status = "closed"
            position.closed_at = fill.executed_at
    if position is not None:
        position.updated_at = fill.executed_at
    return pnl


def _open_position(session: AsyncSession, order: Order, fill: Fill) -> Position:
    position = Position(
        # Ids and stamps made here: rows with nothing to read back are inserted
        # many to one statement when a batch of bots flushes together.
        id=uuid.uuid4(),
        opened_at=fill.executed_at,
        user_id=order.user_id,
        bot_id=order.bot_id,
        exchange=order.exchange,
        symbol=order.symbol,
        mode=order.mode,
        quantity=ZERO,
        average_entry_price=ZERO,
        realized_pnl=ZERO,
        fees=ZERO,
        cost_basis=ZERO,
        status="open",
        highest_price=fill.price,
    )
    # Flushed with the rest of the transaction (its parents already exist).
    session.add(position)
    repository.remember_position(session, position)
    return position


def _add_fill_to_order(order: Order, fill: Fill) -> None:
    filled = order.filled_quantity + fill.quantity
    order.average_price = money(
        ((order.average_price or ZERO) * order.filled_quantity + fill.price * fill.quantity)
        / filled
    )
    order.filled_quantity = filled
    order.fee += fill.fee
    order.fee_currency = fill.fee_currency
    order.status = "filled" if filled >= order.quantity else "partially_filled"
    order.updated_at = fill.executed_at


def _trade_row(order: Order, fill: Fill, strategy_name: str | None, pnl: Decimal | None) -> Trade:
    return Trade(
        id=uuid.uuid4(),
        user_id=order.user_id,
        symbol=order.symbol,
        side="BUY" if order.side == "buy" else "SELL",
        price=fill.price,
        quantity=fill.quantity,
        timestamp=fill.executed_at,
        strategy_name=strategy_name,
        pnl=pnl,
        order_id=order.id,
        bot_id=order.bot_id,
        exchange=order.exchange,
        mode=order.mode,
        fee=fill.fee,
        fee_currency=fill.fee_currency,
        liquidity=fill.liquidity,
    )


def _state(position: Position) -> PositionState:
    return PositionState(
        quantity=position.quantity,
        cost_basis=position.cost_basis,
        average_entry_price=position.average_entry_price,
        realized_pnl=position.realized_pnl,
        fees=position.fees,
    )


def _store(position: Position, state: PositionState) -> None:
    position.quantity = state.quantity
    position.cost_basis = state.cost_basis
    position.average_entry_price = state.average_entry_price
    position.realized_pnl = state.realized_pnl
    position.fees = state.fees


def _stage_trade_events(session: AsyncSession, trade: Trade, strategy_name: str | None) -> None:
    side = trade.side.lower()
    data = {
        "trade_id": str(trade.id),
        "order_id": str(trade.order_id),
        "user_id": str(trade.user_id),
        "bot_id": None if trade.bot_id is None else str(trade.bot_id),
        "exchange": trade.exchange,
        "symbol": trade.symbol,
        "side": side,
        "price": as_text(trade.price),
        "quantity": as_text(trade.quantity),
        "fee": as_text(trade.fee),
        "fee_currency": trade.fee_currency,
        "pnl": as_text(trade.pnl),
        "mode": trade.mode,
        "strategy": strategy_name,
        "executed_at": trade.timestamp.astimezone(UTC).isoformat(),
    }
    executed = Event(type=TRADE_EXECUTED, data=data, source=SOURCE)
    stage(session, executed)
    pnl_text = "" if trade.pnl is None else f", PnL {as_text(trade.pnl)}"
    request_notification(
        session,
        user_id=trade.user_id,
        kind=TRADE_EXECUTED,
        title=f"{trade.side} {trade.symbol} filled",
        body=(
            f"{trade.mode} {side} {as_text(trade.quantity)} {trade.symbol} at "
            f"{as_text(trade.price)} on {trade.exchange}{pnl_text}"
        ),
        data=data,
        source_event_id=executed.id,
    )


# What the trading engine stages (fills, bots, risk) names it as the source.
request_notification = functools.partial(notify, source=SOURCE)

"""A live bot's stop order resting on the venue (docs/trading.md, live exits): placed at
the stop level after a candle, moved (canceled and placed again) when the trailing level
rises, looked at on every closed candle (the engine's reconcile loop books a fill sooner).

Like every live order it is committed ``open`` before it is sent, sent once, and followed
by :class:`~trading_engine.orders.live_tracking.LiveOrderTracker`; its client order id
names the bot and the candle after which it was placed, so a replayed candle finds it.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from sqlalchemy import select

from shared.db import unit_of_work
from shared.errors import ValidationFailed
from trading_engine.market_client import MarketRules
from trading_engine.models import Order
from trading_engine.orders import repository
from trading_engine.orders.service import OrderService
from trading_engine.user_client import ExchangeCredentials

OPEN = ("open", "partially_filled")


async def resting_stop(orders: OrderService, bot_id: uuid.UUID) -> Order | None:
    """The bot's stop order still open on the venue, if any."""
    async with orders.sessionmaker() as session:
        row: Order | None = await session.scalar(
            select(Order)
            .where(Order.bot_id == bot_id, Order.type == "stop", Order.status.in_(OPEN))
            .order_by(Order.created_at.desc())
            .limit(1)
        )
        return row


async def last_filled_stop(orders: OrderService, bot_id: uuid.UUID) -> Order | None:
    """The bot's latest stop the venue filled (booked by the reconcile loop, say)."""
    async with orders.sessionmaker() as session:
        row: Order | None = await session.scalar(
            select(Order)
            .where(Order.bot_id == bot_id, Order.type == "stop", Order.filled_quantity > 0)
            .order_by(Order.updated_at.desc())
            .limit(1)
        )
        return row


async def refresh(
    orders: OrderService,
    order: Order,
    credentials: ExchangeCredentials,
    rules: MarketRules,
    strategy_name: str,
) -> Order:
    """Ask the venue about the stop and book what it filled since the last look."""
    venue_order = await orders.live.fetch_order(credentials, order)
    await orders.live_orders.apply_update(order.id, venue_order, rules, strategy_name)
    async with orders.sessionmaker() as session:
        fresh = await session.get(Order, order.id)
    assert fresh is not None  # noqa: S101 - committed before it was sent
    return fresh


async def cancel(orders: OrderService, order: Order, credentials: ExchangeCredentials) -> None:
    """Take the stop off the venue (before a move or a watched exit sells the base)."""
    await orders.live.cancel_order(credentials, order)
    async with unit_of_work(orders.sessionmaker) as session:
        row = await repository.order_of_user(session, order.user_id, order.id, lock=True)
        if row is not None and row.status in OPEN:
            row.status, row.reason = "canceled", "stop moved or replaced by the bot"


async def place(
    orders: OrderService,
    credentials: ExchangeCredentials,
    *,
    user_id: uuid.UUID,
    bot_id: uuid.UUID,
    exchange: str,
    symbol: str,
    quantity: Decimal,
    level: Decimal,
    reason: str,
    client_order_id: str,
) -> Order:
    """Rest a stop-market sell of ``quantity`` at ``level`` (committed, then sent once)."""
    async with unit_of_work(orders.sessionmaker) as session:
        order = await repository.insert_order(
            session,
            {
                "user_id": user_id,
                "bot_id": bot_id,
                "client_order_id": client_order_id,
                "exchange": exchange,
                "symbol": symbol,
                "side": "sell",
                "type": "stop",
                "mode": "live",
                "quantity": quantity,
                "price": level,
                "status": "open",
                "reason": reason,
            },
        )
        if order is None:  # a replayed candle: the stop of this candle exists
            order = await repository.order_by_client_id(session, user_id, client_order_id)
            assert order is not None  # noqa: S101
            return order
    try:
        venue_order = await orders.live.create_order(credentials, order)
    except ValidationFailed as refused:
        async with unit_of_work(orders.sessionmaker) as session:
            row = await repository.order_of_user(session, user_id, order.id, lock=True)
            assert row is not None  # noqa: S101 - committed above
            row.status, row.reason = "rejected", refused.detail
        raise
    async with unit_of_work(orders.sessionmaker) as session:
        row = await repository.order_of_user(session, user_id, order.id, lock=True)
        assert row is not None  # noqa: S101
        row.exchange_order_id = row.exchange_order_id or (
            None if venue_order.get("id") is None else str(venue_order["id"])
        )
    return order

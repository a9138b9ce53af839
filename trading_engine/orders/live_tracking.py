"""Following live orders at the venue until they are final: a new order is polled, and
orders a crash or a timeout left open are reconciled by asking the venue by client order
id. Each newly filled amount is booked like a paper fill."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db import unit_of_work
from shared.exchange_errors import InvalidOrder
from trading_engine.brokers.live import LiveBroker
from trading_engine.ledger import repository as ledger_repository
from trading_engine.ledger.service import Fill, record_fill
from trading_engine.market_client import MarketRules
from trading_engine.models import ORDER_FINAL_STATUSES, Order
from trading_engine.money import ZERO, money
from trading_engine.orders import repository
from trading_engine.settings import TradingSettings
from trading_engine.user_client import UserClient

log = structlog.get_logger("trading.orders")


class LiveOrderTracker:
    """Polls and reconciles live orders; every look at the venue is its own transaction."""

    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        users: UserClient,
        live: LiveBroker,
        settings: TradingSettings,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.users = users
        self.live = live
        self.settings = settings

    async def poll(
        self,
        order_id: uuid.UUID,
        credentials: Any,
        rules: MarketRules,
        strategy_name: str | None,
        *,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> Order:
        """Poll the venue until the order is final (or the poll budget runs out)."""
        deadline = asyncio.get_running_loop().time() + self.settings.live_poll_timeout_s
        while True:
            async with self.sessionmaker() as session:
                order = await session.get(Order, order_id)
            assert order is not None  # noqa: S101
            if order.status in ORDER_FINAL_STATUSES:
                return order
            if asyncio.get_running_loop().time() > deadline:
                return order
            await sleep(self.settings.live_poll_interval_s)
            venue_order = await self.live.fetch_order(credentials, order)
            await self.apply_update(order_id, venue_order, rules, strategy_name)

    async def apply_update(
        self,
        order_id: uuid.UUID,
        venue_order: dict[str, Any],
        rules: MarketRules,
        strategy_name: str | None,
    ) -> None:
        """Book what the venue filled since the last look (partial fills included)."""
        async with unit_of_work(self.sessionmaker) as session:
            order = await session.get(Order, order_id, with_for_update=True, populate_existing=True)
            assert order is not None  # noqa: S101
            if order.status in ORDER_FINAL_STATUSES:
                return
            order.exchange_order_id = order.exchange_order_id or _str(venue_order.get("id"))
            filled = money(Decimal(str(venue_order.get("filled") or 0)))
            delta = filled - order.filled_quantity
            if delta > 0:
                await record_fill(
                    session,
                    order,
                    _new_fill(order, venue_order, delta, rules),
                    base=rules.base,
                    quote=rules.quote,
                    strategy_name=strategy_name,
                )
            status = str(venue_order.get("status") or "open")
            if status in ("canceled", "expired", "rejected"):
                order.status = "rejected" if status == "rejected" else "canceled"
                order.reason = order.reason or f"venue status {status}"
            elif status == "closed" and order.filled_quantity >= order.quantity:
                order.status = "filled"

    async def reconcile(self, older_than_s: float = 30.0) -> int:
        """Finish live orders a request or a crash left open: ask the venue by client
        order id, book new fills, and mark ones it never received as rejected."""
        cutoff = datetime.now(UTC) - timedelta(seconds=older_than_s)
        async with self.sessionmaker() as session:
            stale = [o for o in await repository.open_live_orders(session) if o.updated_at < cutoff]
        done = 0
        for order in stale:
            try:
                credentials = await self.users.credentials(order.user_id, order.exchange)
                rules = await self.live.rules(credentials, order.symbol)
                try:
                    venue_order = await self.live.fetch_order(credentials, order)
                except InvalidOrder:
                    async with unit_of_work(self.sessionmaker) as session:
                        row = await session.get(Order, order.id, with_for_update=True)
                        if row is not None and row.status == "open" and row.filled_quantity == 0:
                            row.status, row.reason = "rejected", "the exchange never received it"
                    continue
                await self.apply_update(order.id, venue_order, rules, None)
                async with unit_of_work(self.sessionmaker) as session:
                    await ledger_repository.touch_order(session, order.id)
                done += 1
            except Exception as exc:  # one venue's trouble must not stop the others
                log.warning("live_reconcile_failed", order_id=str(order.id), error=repr(exc))
        return done


def _new_fill(
    order: Order, venue_order: dict[str, Any], delta: Decimal, rules: MarketRules
) -> Fill:
    """The ``delta`` the venue filled since the last look, at its price and fee."""
    cost = Decimal(str(venue_order.get("cost") or 0))
    previous_cost = (order.average_price or ZERO) * order.filled_quantity
    price = (
        money((cost - previous_cost) / delta)
        if cost > previous_cost
        else money(Decimal(str(venue_order.get("average") or venue_order["price"])))
    )
    fee_info = venue_order.get("fee") or {}
    if fee_info.get("cost") is not None:
        fee = max(money(Decimal(str(fee_info["cost"]))) - order.fee, ZERO)
        fee_currency = str(fee_info.get("currency") or rules.quote)
    else:
        # Order status reads (Binance's GET /order) carry no commission: the
        # market's fee schedule, in the quote asset, stands in for it.
        rate = rules.maker_fee if order.type == "limit" else rules.taker_fee
        fee = money(money(delta * price) * rate)
        fee_currency = rules.quote
    return Fill(
        price=price,
        quantity=delta,
        fee=fee,
        fee_currency=fee_currency,
        liquidity="maker" if order.type == "limit" else "taker",  # a stop fills at market
    )


def _str(value: object) -> str | None:
    return None if value is None else str(value)

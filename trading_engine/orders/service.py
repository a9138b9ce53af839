"""Placing, filling and canceling orders, paper and live.

Paper orders are booked in one transaction: the order row (idempotent on
``client_order_id``), every fill as a ``trades`` row, balances and the position. Live
orders are committed as ``open`` before they are sent (a crash never loses one), sent
once (order creation is never retried), then followed by
:class:`~trading_engine.orders.live_tracking.LiveOrderTracker` until final.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db import unit_of_work
from shared.errors import Conflict, Forbidden, NotFound, ValidationFailed
from trading_engine.brokers.live import LiveBroker
from trading_engine.brokers.paper import crosses, walk_book
from trading_engine.ledger import repository as ledger_repository
from trading_engine.ledger.arithmetic import fee_for
from trading_engine.ledger.service import (
    Fill,
    record_fill,
    release_reserve,
    reserve_for_limit,
)
from trading_engine.market_client import MarketClient
from trading_engine.models import ORDER_FINAL_STATUSES, Order
from trading_engine.money import ZERO, money
from trading_engine.orders import repository
from trading_engine.orders.live_tracking import LiveOrderTracker
from trading_engine.orders.schemas import OrderCreate
from trading_engine.orders.venue import (
    Venue,
    check_minimums,
    normalise_price,
    normalise_quantity,
    reference_price,
)
from trading_engine.portfolio.mirror import refresh_mirror
from trading_engine.risk.entry import ProposedEntry, guard_entry
from trading_engine.risk.events import report_block
from trading_engine.risk.rules import RiskLimitExceeded
from trading_engine.settings import TradingSettings
from trading_engine.user_client import UserAccount, UserClient


class OrderService:
    """Manual orders (`POST /trading/orders`) and the paper book shared with bots."""

    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        redis: Redis,
        market: MarketClient,
        users: UserClient,
        live: LiveBroker,
        settings: TradingSettings,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.redis = redis
        self.market = market
        self.users = users
        self.live = live
        self.settings = settings
        self.live_orders = LiveOrderTracker(
            sessionmaker=sessionmaker, users=users, live=live, settings=settings
        )

    # --- shared with bots ---------------------------------------------------------------

    async def paper_venue(self, exchange: str, symbol: str, *, with_book: bool = True) -> Venue:
        rules = await self.market.rules(exchange, symbol)
        book = (
            await self.market.order_book(exchange, symbol, self.settings.order_book_depth)
            if with_book
            else None
        )
        return Venue(
            rules=rules,
            book=book,
            taker_fee=self.settings.paper_taker_fee
            if self.settings.paper_taker_fee is not None
            else rules.taker_fee,
            maker_fee=self.settings.paper_maker_fee
            if self.settings.paper_maker_fee is not None
            else rules.maker_fee,
        )

    async def ensure_wallet(self, session: AsyncSession, user_id: uuid.UUID) -> None:
        """The user's paper wallet, created with its starting amount on first use."""
        await ledger_repository.ensure_balance(
            session,
            user_id,
            None,
            self.settings.paper_wallet_asset,
            self.settings.paper_wallet_amount,
        )

    async def submit_paper(
        self,
        session: AsyncSession,
        order: Order,
        venue: Venue,
        *,
        strategy_name: str | None = None,
    ) -> None:
        """Fill a new paper order against the book; a limit remainder rests, funds locked."""
        rules, book = venue.rules, venue.book
        assert book is not None  # noqa: S101 - paper orders are submitted with a book
        buying = order.side == "buy"
        levels = book.asks if buying else book.bids
        fills = walk_book(
            levels,
            order.quantity,
            fee_rate=venue.taker_fee,
            fee_currency=rules.quote,
            limit_price=order.price if order.type == "limit" else None,
            buying=buying,
            partial=order.type == "limit",
        )
        for fill in fills:
            await record_fill(
                session,
                order,
                fill,
                base=rules.base,
                quote=rules.quote,
                strategy_name=strategy_name,
            )
        if order.type == "limit" and order.filled_quantity < order.quantity:
            order.fee_rate = venue.maker_fee
            await reserve_for_limit(session, order, rules.base, rules.quote)
            order.status = "partially_filled" if order.filled_quantity > 0 else "open"
        # No flush here: the commit writes the fills, so the fills of many bots booked in
        # one transaction (see trading_engine.bots.batch.apply_candles) go out together.

    async def fill_paper_at(
        self,
        session: AsyncSession,
        order: Order,
        venue: Venue,
        price: Decimal,
        *,
        executed_at: datetime,
        strategy_name: str | None = None,
    ) -> None:
        """Fill a paper bot's protective exit whole at ``price``, the level its candle
        traded through (the open on a gap), paying the taker fee as the backtest pays its
        ``fee``: a resting stop / take-profit order, not a walk of today's book."""
        rules = venue.rules
        await record_fill(
            session,
            order,
            Fill(
                price=price,
                quantity=order.quantity,
                fee=fee_for(order.quantity, price, venue.taker_fee),
                fee_currency=rules.quote,
                liquidity="taker",
                executed_at=executed_at,
            ),
            base=rules.base,
            quote=rules.quote,
            strategy_name=strategy_name,
        )

    # --- manual orders ------------------------------------------------------------------

    async def place(
        self, user_id: uuid.UUID, permissions: frozenset[str], body: OrderCreate
    ) -> tuple[Order, bool]:
        """Place a manual order; returns ``(order, created)`` (False for a repeat)."""
        client_order_id = body.client_order_id or uuid.uuid4().hex
        async with self.sessionmaker() as session:
            existing = await repository.order_by_client_id(session, user_id, client_order_id)
        if existing is not None:
            await self._check_repeat(existing, body)
            return existing, False
        account = await self.users.account(user_id)
        if body.mode == "live":
            if "trade:live" not in permissions or not account.can("trade:live"):
                raise Forbidden("Live trading needs the 'trade:live' permission.")
            return await self._place_live(user_id, account, body, client_order_id)
        if not account.can("trade:paper") and "trade:paper" not in permissions:
            raise Forbidden("Paper trading needs the 'trade:paper' permission.")
        venue = await self.paper_venue(body.exchange, body.symbol)
        rules = venue.rules
        quantity = normalise_quantity(body.quantity, rules)
        price = normalise_price(body.price, rules) if body.price is not None else None
        check_minimums(quantity, reference_price(body.side, venue.book, price), rules)
        try:
            async with unit_of_work(self.sessionmaker) as session:
                await self.ensure_wallet(session, user_id)
                order = await repository.insert_order(
                    session,
                    _order_values(user_id, None, body, client_order_id, quantity, price),
                )
                if order is None:  # a request with this key committed first
                    repeat = await repository.order_by_client_id(session, user_id, client_order_id)
                    if repeat is None:
                        raise Conflict("A concurrent request with this client_order_id failed.")
                    await self._check_repeat(repeat, body)
                    return repeat, False
                ref = reference_price(body.side, venue.book, price)
                if ref is not None:
                    await guard_entry(
                        session,
                        ProposedEntry(
                            user_id=user_id,
                            bot_id=None,
                            exchange=body.exchange,
                            symbol=body.symbol,
                            mode="paper",
                            side=body.side,
                            quantity=quantity,
                            price=ref,
                        ),
                        account.limits,
                    )
                await self.submit_paper(session, order, venue)
        except RiskLimitExceeded as breach:
            await report_block(self.sessionmaker, user_id, None, breach)
            raise
        await refresh_mirror(self.sessionmaker, self.redis, user_id)
        return order, True

    async def _place_live(
        self,
        user_id: uuid.UUID,
        account: UserAccount,
        body: OrderCreate,
        client_order_id: str,
        *,
        bot_id: uuid.UUID | None = None,
        strategy_name: str | None = None,
        check_limits: bool = True,
    ) -> tuple[Order, bool]:
        credentials = await self.users.credentials(user_id, body.exchange)
        rules = await self.live.rules(credentials, body.symbol)
        quantity = normalise_quantity(body.quantity, rules)
        price = normalise_price(body.price, rules) if body.price is not None else None
        ref = price if price is not None else await self.live.last_price(credentials, body.symbol)
        check_minimums(quantity, ref, rules)
        async with unit_of_work(self.sessionmaker) as session:
            order = await repository.insert_order(
                session, _order_values(user_id, bot_id, body, client_order_id, quantity, price)
            )
            if order is None:
                repeat = await repository.order_by_client_id(session, user_id, client_order_id)
                if repeat is None:
                    raise Conflict("A concurrent request with this client_order_id failed.")
                if bot_id is None:  # a bot's replayed candle re-derives its own order
                    await self._check_repeat(repeat, body)
                return repeat, False
            if ref is not None and check_limits:
                try:
                    await guard_entry(
                        session,
                        ProposedEntry(
                            user_id=user_id,
                            bot_id=bot_id,
                            exchange=body.exchange,
                            symbol=body.symbol,
                            mode="live",
                            side=body.side,
                            quantity=quantity,
                            price=ref,
                        ),
                        account.limits,
                    )
                except RiskLimitExceeded as breach:
                    await session.rollback()
                    await report_block(self.sessionmaker, user_id, bot_id, breach)
                    raise
        try:
            venue_order = await self.live.create_order(credentials, order)
        except ValidationFailed as refused:
            async with unit_of_work(self.sessionmaker) as session:
                row = await repository.order_of_user(session, user_id, order.id, lock=True)
                assert row is not None  # noqa: S101 - committed above
                row.status, row.reason = "rejected", refused.detail
            raise
        await self.live_orders.apply_update(order.id, venue_order, rules, strategy_name)
        final = await self.live_orders.poll(order.id, credentials, rules, strategy_name)
        await refresh_mirror(self.sessionmaker, self.redis, user_id)
        return final, True

    async def _check_repeat(self, existing: Order, body: OrderCreate) -> None:
        """A repeated ``client_order_id`` must carry the order it names: the same key
        with another body is a 422, never the first order passed off as this one."""
        differs = [
            name
            for name in ("exchange", "symbol", "side", "type", "mode")
            if getattr(existing, name) != getattr(body, name)
        ]
        if not differs and (body.quantity != existing.quantity or body.price != existing.price):
            # The stored order holds the quantity and price at the venue's precision: the
            # repeat is the same order if it normalises to them.
            if existing.mode == "paper":
                rules = await self.market.rules(existing.exchange, existing.symbol)
            else:
                credentials = await self.users.credentials(existing.user_id, existing.exchange)
                rules = await self.live.rules(credentials, existing.symbol)
            if normalise_quantity(body.quantity, rules) != existing.quantity:
                differs.append("quantity")
            price = normalise_price(body.price, rules) if body.price is not None else None
            if price != existing.price:
                differs.append("price")
        if differs:
            raise ValidationFailed(
                f"The client_order_id {existing.client_order_id!r} was already used for another "
                f"order (its {', '.join(differs)} differ); use a new key for a new order.",
                extra={
                    "errors": [
                        {
                            "loc": ["body", "client_order_id"],
                            "msg": "already used for another order",
                            "type": "idempotency_key_reused",
                        }
                    ],
                    "order_id": str(existing.id),
                },
            )

    async def place_for_bot(
        self,
        user_id: uuid.UUID,
        account: UserAccount,
        body: OrderCreate,
        *,
        bot_id: uuid.UUID,
        strategy_name: str,
    ) -> tuple[Order, bool]:
        """A live bot's order (its risk checks already ran in the bot's transaction)."""
        return await self._place_live(
            user_id,
            account,
            body,
            body.client_order_id or uuid.uuid4().hex,
            bot_id=bot_id,
            strategy_name=strategy_name,
            check_limits=False,
        )

    async def cancel(self, user_id: uuid.UUID, order_id: uuid.UUID) -> Order:
        async with unit_of_work(self.sessionmaker) as session:
            order = await repository.order_of_user(session, user_id, order_id, lock=True)
            if order is None:
                raise NotFound("No such order.")
            if order.status in ORDER_FINAL_STATUSES:
                raise Conflict(f"The order is already {order.status}.")
            if order.mode == "paper":
                rules = await self.market.rules(order.exchange, order.symbol)
                await release_reserve(session, order, rules.base, rules.quote)
            else:
                credentials = await self.users.credentials(user_id, order.exchange)
                await self.live.cancel_order(credentials, order)
            order.status = "canceled"
            order.reason = "canceled by the user"
            order.updated_at = datetime.now(UTC)
        await refresh_mirror(self.sessionmaker, self.redis, user_id)
        return order

    async def fill_resting(
        self, exchange: str, symbol: str, candle: list[float], candle_minutes: float
    ) -> int:
        """Fill the resting paper limit orders a closed candle traded through (maker fee).

        Only orders placed before the candle opened qualify: an older candle's low says
        nothing about an order placed after it.
        """
        opened_at = datetime.fromtimestamp(candle[0] / 1000, UTC)
        low, high = Decimal(str(candle[3])), Decimal(str(candle[2]))
        touched: set[uuid.UUID] = set()
        async with unit_of_work(self.sessionmaker) as session:
            orders = await repository.resting_paper_orders(session, exchange, symbol, opened_at)
            if not orders:
                return 0
            rules = await self.market.rules(exchange, symbol)
            at = opened_at + timedelta(minutes=candle_minutes)
            for order in orders:
                assert order.price is not None  # noqa: S101 - limit orders have a price
                if not crosses(order.side, order.price, low, high):
                    continue
                remaining = order.quantity - order.filled_quantity
                rate = order.fee_rate or ZERO
                await record_fill(
                    session,
                    order,
                    Fill(
                        price=order.price,
                        quantity=remaining,
                        fee=money(money(remaining * order.price) * rate),
                        fee_currency=rules.quote,
                        liquidity="maker",
                        executed_at=min(at, datetime.now(UTC)),
                    ),
                    base=rules.base,
                    quote=rules.quote,
                    from_reserve=True,
                )
                touched.add(order.user_id)
        for user_id in touched:
            await refresh_mirror(self.sessionmaker, self.redis, user_id)
        return len(touched)


def _order_values(
    user_id: uuid.UUID,
    bot_id: uuid.UUID | None,
    body: OrderCreate,
    client_order_id: str,
    quantity: Decimal,
    price: Decimal | None,
) -> dict[str, object]:
    return {
        "user_id": user_id,
        "bot_id": bot_id,
        "client_order_id": client_order_id,
        "exchange": body.exchange,
        "symbol": body.symbol,
        "side": body.side,
        "type": body.type,
        "mode": body.mode,
        "quantity": quantity,
        "price": price,
        "status": "open",
    }

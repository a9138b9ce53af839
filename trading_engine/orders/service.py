"""Placing, filling and canceling orders, paper and live.

Paper orders are booked in one transaction: the order row (idempotent on
``client_order_id``), every fill as a ``trades`` row, balances and the position. Live
orders are committed as ``open`` before they are sent (a crash never loses one), sent
once (order creation is never retried), then polled until final; each newly filled
amount is booked like a paper fill.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import structlog
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db import unit_of_work
from shared.errors import Conflict, Forbidden, NotFound, ValidationFailed
from shared.events import RISK_LIMIT_EXCEEDED, Event, stage
from trading_engine.brokers.errors import InvalidOrder
from trading_engine.brokers.live import LiveBroker
from trading_engine.brokers.paper import crosses, walk_book
from trading_engine.ledger import repository as ledger_repository
from trading_engine.ledger.service import (
    SOURCE,
    Fill,
    record_fill,
    release_reserve,
    request_notification,
    reserve_for_limit,
)
from trading_engine.market_client import MarketClient, MarketRules, OrderBook
from trading_engine.models import Order
from trading_engine.money import ZERO, as_text, floor_to_step, money
from trading_engine.orders import repository
from trading_engine.orders.schemas import OrderCreate
from trading_engine.portfolio.mirror import refresh_mirror
from trading_engine.risk.rules import (
    EntryContext,
    RiskLimitExceeded,
    RiskSettings,
    check_entry,
)
from trading_engine.settings import TradingSettings
from trading_engine.user_client import TradingLimits, UserAccount, UserClient

log = structlog.get_logger("trading.orders")
FINAL_STATUSES = {"filled", "canceled", "rejected"}


@dataclass(frozen=True)
class Venue:
    """What an order needs to know of its market before it is booked."""

    rules: MarketRules
    book: OrderBook | None
    taker_fee: Decimal
    maker_fee: Decimal


def start_of_day() -> datetime:
    now = datetime.now(UTC)
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


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
    if limit is not None:
        return limit
    if book is None:
        return None
    levels = book.asks if side == "buy" else book.bids
    return levels[0][0] if levels else None


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

    async def entry_context(
        self,
        session: AsyncSession,
        *,
        user_id: uuid.UUID,
        bot_id: uuid.UUID | None,
        exchange: str,
        symbol: str,
        mode: str,
        side: str,
        quantity: Decimal,
        price: Decimal,
        lock: bool = True,
        limits: TradingLimits | None = None,
        risk: RiskSettings | None = None,
    ) -> EntryContext:
        """What the entry limits look at; with ``limits``/``risk`` given, only the figures
        a configured limit needs are queried (a bot without limits costs no queries)."""
        everything = limits is None and risk is None
        user = limits or TradingLimits()
        own = risk or RiskSettings()
        position = await ledger_repository.lock_open_position(
            session, user_id, bot_id, exchange, symbol, mode, lock=lock
        )
        held = position.quantity if position is not None else ZERO
        since = start_of_day()
        wants_count = (
            everything or user.max_open_positions is not None or own.max_open_positions is not None
        )
        wants_realized = everything or user.daily_loss_limit is not None
        wants_bot_realized = bot_id is not None and (everything or own.daily_loss_limit is not None)
        if wants_count or wants_realized or wants_bot_realized:
            # The user's other bots may have fills pending in this transaction.
            await session.flush()
        return EntryContext(
            side=side,
            order_value=money(quantity * price),
            position_value_after=money((held + quantity) * price),
            opens_new_position=position is None,
            open_positions=(
                await ledger_repository.count_open_positions(session, user_id) if wants_count else 0
            ),
            realized_today=(
                await ledger_repository.realized_since(session, user_id, since)
                if wants_realized
                else ZERO
            ),
            bot_realized_today=(
                await ledger_repository.realized_since(session, user_id, since, bot_id)
                if wants_bot_realized
                else None
            ),
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
        # one transaction (see trading_engine.adapter.apply_candles) go out together.

    # --- manual orders ------------------------------------------------------------------

    async def place(
        self, user_id: uuid.UUID, permissions: frozenset[str], body: OrderCreate
    ) -> tuple[Order, bool]:
        """Place a manual order; returns ``(order, created)`` (False for a repeat)."""
        client_order_id = body.client_order_id or uuid.uuid4().hex
        async with self.sessionmaker() as session:
            existing = await repository.order_by_client_id(session, user_id, client_order_id)
        if existing is not None:
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
                if order is None:  # an identical request committed first
                    repeat = await repository.order_by_client_id(session, user_id, client_order_id)
                    if repeat is None:
                        raise Conflict("A concurrent request with this client_order_id failed.")
                    return repeat, False
                ref = reference_price(body.side, venue.book, price)
                if ref is not None:
                    context = await self.entry_context(
                        session,
                        user_id=user_id,
                        bot_id=None,
                        exchange=body.exchange,
                        symbol=body.symbol,
                        mode="paper",
                        side=body.side,
                        quantity=quantity,
                        price=ref,
                    )
                    check_entry(context, account.limits)
                await self.submit_paper(session, order, venue)
        except RiskLimitExceeded as breach:
            await self.report_block(user_id, None, breach)
            raise
        await refresh_mirror(self.sessionmaker, self.redis, user_id)
        return order, True

    async def report_block(
        self, user_id: uuid.UUID, bot_id: uuid.UUID | None, breach: RiskLimitExceeded
    ) -> None:
        """A refused order changed nothing, so its event goes out without a transaction."""
        async with unit_of_work(self.sessionmaker) as session:
            stage_risk_event(session, user_id, bot_id, breach.rule, breach.detail, "blocked")

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
                return repeat, False
            if ref is not None and check_limits:
                context = await self.entry_context(
                    session,
                    user_id=user_id,
                    bot_id=bot_id,
                    exchange=body.exchange,
                    symbol=body.symbol,
                    mode="live",
                    side=body.side,
                    quantity=quantity,
                    price=ref,
                )
                try:
                    check_entry(context, account.limits)
                except RiskLimitExceeded as breach:
                    await session.rollback()
                    await self.report_block(user_id, bot_id, breach)
                    raise
        try:
            venue_order = await self.live.create_order(credentials, order)
        except ValidationFailed as refused:
            async with unit_of_work(self.sessionmaker) as session:
                row = await repository.order_of_user(session, user_id, order.id, lock=True)
                assert row is not None  # noqa: S101 - committed above
                row.status, row.reason = "rejected", refused.detail
            raise
        await self.apply_live_update(order.id, venue_order, rules, strategy_name)
        final = await self.poll_live(order.id, credentials, rules, strategy_name)
        await refresh_mirror(self.sessionmaker, self.redis, user_id)
        return final, True

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

    async def poll_live(
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
            if order.status in FINAL_STATUSES:
                return order
            if asyncio.get_running_loop().time() > deadline:
                return order
            await sleep(self.settings.live_poll_interval_s)
            venue_order = await self.live.fetch_order(credentials, order)
            await self.apply_live_update(order_id, venue_order, rules, strategy_name)

    async def apply_live_update(
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
            if order.status in FINAL_STATUSES:
                return
            order.exchange_order_id = order.exchange_order_id or _str(venue_order.get("id"))
            filled = money(Decimal(str(venue_order.get("filled") or 0)))
            delta = filled - order.filled_quantity
            if delta > 0:
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
                    rate = rules.taker_fee if order.type == "market" else rules.maker_fee
                    fee = money(money(delta * price) * rate)
                    fee_currency = rules.quote
                await record_fill(
                    session,
                    order,
                    Fill(
                        price=price,
                        quantity=delta,
                        fee=fee,
                        fee_currency=fee_currency,
                        liquidity="taker" if order.type == "market" else "maker",
                    ),
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

    async def reconcile_live(self, older_than_s: float = 30.0) -> int:
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
                await self.apply_live_update(order.id, venue_order, rules, None)
                async with unit_of_work(self.sessionmaker) as session:
                    await ledger_repository.touch_order(session, order.id)
                done += 1
            except Exception as exc:  # one venue's trouble must not stop the others
                log.warning("live_reconcile_failed", order_id=str(order.id), error=repr(exc))
        return done

    async def cancel(self, user_id: uuid.UUID, order_id: uuid.UUID) -> Order:
        async with unit_of_work(self.sessionmaker) as session:
            order = await repository.order_of_user(session, user_id, order_id, lock=True)
            if order is None:
                raise NotFound("No such order.")
            if order.status in FINAL_STATUSES:
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


def stage_risk_event(
    session: AsyncSession,
    user_id: uuid.UUID,
    bot_id: uuid.UUID | None,
    rule: str,
    detail: str,
    action: str,
) -> None:
    """``risk.limit.exceeded`` plus its notification request, in the caller's transaction."""
    data = {
        "user_id": str(user_id),
        "bot_id": None if bot_id is None else str(bot_id),
        "rule": rule,
        "detail": detail,
        "action": action,
    }
    event = Event(type=RISK_LIMIT_EXCEEDED, data=data, source=SOURCE)
    stage(session, event)
    request_notification(
        session,
        user_id=user_id,
        kind=RISK_LIMIT_EXCEEDED,
        title=f"Risk limit {rule}: {action}",
        body=detail,
        data=data,
        source_event_id=event.id,
    )


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


def _str(value: object) -> str | None:
    return None if value is None else str(value)

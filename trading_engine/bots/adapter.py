"""The bot ``Adapter``: one bot's link to its exchange (docs/trading.md, bots).

``connection_exchange() -> bool``, ``execute_trade(signal) -> TradeResult`` and
``manage_risk(position) -> RiskAction``, over the paper book (default) or the live ccxt
broker. :meth:`Adapter.apply` is one closed candle for the bot inside a database
transaction that has its row locked and re-checked (still running, candle not yet seen):
risk exits first, then the strategy's signal, the order and its fills, the bot's last
signal; ``strategy.triggered`` / ``risk.limit.exceeded`` staged with it.
:func:`trading_engine.bots.batch.apply_candles` runs it for many bots of one market in
one transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from shared.events import STRATEGY_TRIGGERED, Event, stage
from shared.exchange_errors import InvalidOrder
from shared.strategies import SignalAction, TradingSignal, TradingStrategy
from shared.timeframes import TIMEFRAME_MS
from trading_engine.bots import repository as bot_repository
from trading_engine.bots import venue_exits
from trading_engine.bots.batch import CandleOutcome, CandleWork, apply_candles
from trading_engine.brokers.exit_support import exit_support
from trading_engine.brokers.paper import quantity_for_budget
from trading_engine.ledger import repository as ledger_repository
from trading_engine.ledger.service import SOURCE
from trading_engine.models import Bot, Order, Position
from trading_engine.money import ZERO, as_text, money
from trading_engine.orders import exit_orders
from trading_engine.orders import repository as order_repository
from trading_engine.orders.schemas import OrderCreate
from trading_engine.orders.service import OrderService
from trading_engine.orders.venue import check_minimums, normalise_quantity
from trading_engine.risk.entry import ProposedEntry, guard_entry
from trading_engine.risk.events import stage_risk_event
from trading_engine.risk.pauses import PAUSING_RULES, pause
from trading_engine.risk.rules import (
    PositionView,
    RiskAction,
    RiskKind,
    RiskLimitExceeded,
    RiskSettings,
    exit_rule,
    peak_of,
)

log = structlog.get_logger("trading.adapter")


@dataclass(frozen=True)
class TradeResult:
    """What ``execute_trade`` did: an order (maybe none) and why."""

    action: str
    order_id: uuid.UUID | None = None
    status: str = "skipped"
    filled_quantity: Decimal = ZERO
    average_price: Decimal | None = None
    fee: Decimal = ZERO
    reason: str = ""
    trade_ids: list[uuid.UUID] = field(default_factory=list)

    @classmethod
    def from_order(cls, action: str, order: Order, reason: str = "") -> TradeResult:
        return cls(
            action=action,
            order_id=order.id,
            status=order.status,
            filled_quantity=order.filled_quantity,
            average_price=order.average_price,
            fee=order.fee,
            reason=reason,
        )


class Adapter:
    """A running bot's exchange, orders and positions (one per bot on its runner)."""

    def __init__(
        self,
        bot: Bot,
        strategy: TradingStrategy,
        orders: OrderService,
        *,
        symbol: str | None = None,
        order_tag: str = "",
    ) -> None:
        self.bot_id = bot.id
        self.user_id = bot.user_id
        self.exchange = bot.exchange
        # A portfolio bot has an adapter per pair (trading_engine/bots/portfolio.py); its
        # order ids carry the pair's tag, as its orders of one candle share a timestamp.
        self.symbol = symbol or bot.symbol
        self.order_tag = order_tag
        # Set by a portfolio bot before an entry: the stake it may spend (capped at the
        # free quote) instead of position_size x the free quote.
        self.stake: Decimal | None = None
        self.timeframe = bot.timeframe
        self.mode = bot.mode
        self.strategy = strategy
        self.orders = orders
        # The bot's own risk settings win; a strategy's stops (rule strategies) fill gaps.
        risk = RiskSettings.model_validate(bot.risk or {})
        self.risk = risk.model_copy(
            update={
                name: Decimal(str(value))
                for name, value in (
                    ("stop_loss", strategy.stop_loss()),
                    ("take_profit", strategy.take_profit()),
                    ("trailing_stop", strategy.trailing_stop()),
                )
                if value is not None and getattr(risk, name) is None
            }
        )
        self.position_size = bot.position_size
        self.positions: list[Position] = []
        self._session: AsyncSession | None = None
        self._position: Position | None = None
        self._bot: Bot | None = None
        self._candle: list[float] | None = None

    @property
    def has_exit_rules(self) -> bool:
        """Does an open position need looking at on every candle?"""
        return any(
            value is not None
            for value in (self.risk.stop_loss, self.risk.take_profit, self.risk.trailing_stop)
        )

    @staticmethod
    def result_of(order: Order | None, reason: str) -> TradeResult:
        """A sell's result (none placed when the venue's fill was booked already)."""
        if order is None:
            return TradeResult("sell", reason=reason)
        return TradeResult.from_order("sell", order, reason)

    @property
    def rests_venue_stop(self) -> bool:
        """Does a live bot keep its stop resting on the venue (brokers/exit_support.py)?"""
        has_stop = self.risk.stop_loss is not None or self.risk.trailing_stop is not None
        return has_stop and exit_support(self.exchange).venue_stop

    # --- the original design's interface (docs/architecture.md) -----------------------------

    async def connection_exchange(self) -> bool:
        """Can the bot reach its market (paper: the market service; live: the venue)?"""
        try:
            if self.mode == "live":
                credentials = await self.orders.users.credentials(self.user_id, self.exchange)
                return await self.orders.live.connection_exchange(credentials)
            await self.orders.market.rules(self.exchange, self.symbol)
        except Exception as exc:
            log.warning("connection_exchange_failed", bot_id=str(self.bot_id), error=repr(exc))
            return False
        return True

    def manage_risk(self, position: Position | None) -> RiskAction:
        """The protective exit (stop loss, trailing stop, take profit) the last closed
        candle triggers for the position held before it (docs/trading.md)."""
        if position is None or self._candle is None:
            return RiskAction.keep()
        _, open_, high, low, _, _ = self._candle
        return exit_rule(
            self.risk,
            PositionView(position.quantity, position.average_entry_price, position.highest_price),
            open_=Decimal(str(open_)),
            high=Decimal(str(high)),
            low=Decimal(str(low)),
        )

    async def execute_trade(self, signal: TradingSignal) -> TradeResult:
        """Turn a BUY/SELL signal into an order of the right size (inside ``on_candle``)."""
        session, bot = self._session, self._bot
        if session is None or bot is None:
            raise RuntimeError("execute_trade runs inside Adapter.on_candle")
        action = signal.action.value
        position = self._position
        client_order_id = f"bot-{bot.id.hex[:16]}-{signal.timestamp}-{action}{self.order_tag}"
        if self.mode == "live":
            return await self._execute_live(session, bot, signal, position, client_order_id)
        if signal.action is SignalAction.BUY:
            if position is not None and position.quantity > 0:
                return TradeResult(action, reason="already in a position")
            venue = await self.orders.paper_venue(self.exchange, self.symbol)
            assert venue.book is not None  # noqa: S101
            rules = venue.rules
            quote = await ledger_repository.lock_balance(
                session, self.user_id, self.bot_id, rules.quote
            )
            budget = (
                money(quote.free * self.position_size)
                if self.stake is None
                else min(self.stake, quote.free)
            )
            quantity = quantity_for_budget(venue.book, budget, venue.taker_fee, rules.amount_step)
            if quantity <= 0 or not venue.book.asks:
                return TradeResult(action, reason="nothing to buy with")
            price = venue.book.asks[0][0]
            try:
                check_minimums(quantity, price, rules)
            except InvalidOrder as exc:
                return TradeResult(action, reason=exc.detail)
            account = await self.orders.users.account(self.user_id)
            await guard_entry(
                session,
                ProposedEntry(
                    user_id=self.user_id,
                    bot_id=self.bot_id,
                    exchange=self.exchange,
                    symbol=self.symbol,
                    mode="paper",
                    side="buy",
                    quantity=quantity,
                    price=price,
                ),
                account.limits,
                self.risk,
            )
        else:
            if position is None or position.quantity <= 0:
                return TradeResult(action, reason="no position to sell")
            venue = await self.orders.paper_venue(self.exchange, self.symbol)
            rules = venue.rules
            base = await ledger_repository.lock_balance(
                session, self.user_id, self.bot_id, rules.base
            )
            quantity = min(position.quantity, base.free)
        # The bot row is locked and has not seen this candle, and a bot's paper order is
        # committed with its candle mark: no order of this candle can exist yet, so the
        # order goes out with the transaction's other writes (no INSERT round trip).
        order = order_repository.add_order(
            session,
            {
                "user_id": self.user_id,
                "bot_id": self.bot_id,
                "client_order_id": client_order_id,
                "exchange": self.exchange,
                "symbol": self.symbol,
                "side": action,
                "type": "market",
                "mode": "paper",
                "quantity": quantity,
                "price": None,
                "status": "open",
            },
        )
        await self.orders.submit_paper(session, order, venue, strategy_name=self.strategy.name)
        return TradeResult.from_order(action, order, signal.reason)

    # --- one candle ---------------------------------------------------------------------

    async def on_candle(
        self, candle: list[float], signal: TradingSignal, *, signal_at: float | None = None
    ) -> CandleOutcome:
        """Apply one closed candle's signal and risk exits in one transaction."""
        loop = asyncio.get_running_loop()
        work = CandleWork(self, candle, signal, loop.time() if signal_at is None else signal_at)
        (outcome,) = await apply_candles(self.orders, [work])
        return outcome

    @contextlib.contextmanager
    def bound(
        self, session: AsyncSession, bot: Bot, position: Position | None, candle: list[float]
    ) -> Iterator[None]:
        """The transaction, locked bot row, position and candle that :meth:`manage_risk`,
        :meth:`execute_trade` and :meth:`close_by_rule` act in (a portfolio bot's step)."""
        self._session, self._bot, self._position, self._candle = session, bot, position, candle
        try:
            yield
        finally:
            self._session, self._bot, self._position = None, None, None

    async def apply(
        self,
        session: AsyncSession,
        bot: Bot,
        position: Position | None,
        candle: list[float],
        signal: TradingSignal,
        outcome: CandleOutcome,
    ) -> None:
        """The candle for this bot inside the caller's transaction (its row locked):
        risk exits first, then the signal; the bot's last signal recorded."""
        candle_at = datetime.fromtimestamp(candle[0] / 1000, UTC)
        if bot.last_candle_at is not None and bot.last_candle_at >= candle_at:
            return
        self._candle = candle
        self._session, self._bot, self._position = session, bot, position
        try:
            venue_stops = self.mode == "live" and self.rests_venue_stop
            risk_action = RiskAction.keep() if venue_stops else self.manage_risk(position)
            result: TradeResult | None = None
            acted = signal
            if venue_stops:
                result = await venue_exits.on_candle(self, session, bot, position, candle)
                if result is not None:
                    acted = TradingSignal(
                        action=SignalAction.SELL,
                        timestamp=signal.timestamp,
                        price=signal.price,
                        strategy=signal.strategy,
                        reason=result.reason,
                    )
                    self._stage_triggered(session, acted, candle_at, result)
            elif risk_action.kind is RiskKind.CLOSE:
                # A protective exit is a resting order the candle traded through: it is
                # booked at the rule's price and the bot goes on with this candle's signal
                # (after the exit, a BUY re-enters as the backtest does at the next open).
                acted = TradingSignal(
                    action=SignalAction.SELL,
                    timestamp=signal.timestamp,
                    price=signal.price,
                    strategy=signal.strategy,
                    reason=risk_action.rule,
                )
                try:
                    result = await self.close_by_rule(session, bot, risk_action, candle)
                except RiskLimitExceeded as breach:  # a live bot that lost 'trade:live'
                    result = self._blocked(session, bot, outcome, breach, acted)
                else:
                    stage_risk_event(
                        session,
                        self.user_id,
                        self.bot_id,
                        risk_action.rule,
                        risk_action.detail,
                        "closed",
                    )
                    self._stage_triggered(session, acted, candle_at, result)
            elif position is not None and position.status == "open":
                # The candle's high counts for the trailing stop from the next candle on.
                peak = peak_of(
                    PositionView(
                        position.quantity, position.average_entry_price, position.highest_price
                    )
                )
                position.highest_price = money(max(peak, Decimal(str(candle[2]))))
            if signal.action is not SignalAction.HOLD and not outcome.paused:
                try:
                    signal_result = await self.execute_trade(signal)
                except RiskLimitExceeded as breach:
                    signal_result = self._blocked(session, bot, outcome, breach, signal)
                if signal_result.order_id is not None or result is None:
                    result, acted = signal_result, signal
                    self._stage_triggered(session, acted, candle_at, result)
                if venue_stops and signal.action is SignalAction.BUY:
                    await venue_exits.rest_entry_stop(self, bot, signal_result, candle)
            bot.last_candle_at = candle_at
            bot.last_signal = signal_record(acted, result)
            bot.error = None
            bot.updated_at = datetime.now(UTC)
            outcome.flat = _flat_after(position, result)
            outcome.processed = True
            outcome.result = result
        finally:
            self._session, self._bot, self._position = None, None, None

    def _stage_triggered(
        self,
        session: AsyncSession,
        acted: TradingSignal,
        candle_at: datetime,
        result: TradeResult | None,
    ) -> None:
        if result is None or result.order_id is None:
            return
        stage(
            session,
            Event(
                type=STRATEGY_TRIGGERED,
                data={
                    "user_id": str(self.user_id),
                    "bot_id": str(self.bot_id),
                    "strategy": self.strategy.name,
                    "action": acted.action.value,
                    "price": acted.price,
                    "candle_at": candle_at.isoformat(),
                },
                source=SOURCE,
            ),
        )

    def _blocked(
        self,
        session: AsyncSession,
        bot: Bot,
        outcome: CandleOutcome,
        breach: RiskLimitExceeded,
        signal: TradingSignal,
    ) -> TradeResult:
        """A limit refused the signal's order: nothing is placed. The daily loss limit
        (and a lost live permission) pause the bot, the daily loss limit until the next
        UTC day; any other limit blocks this order only and the bot keeps running."""
        pauses = breach.rule in PAUSING_RULES
        if pauses:
            pause(bot, until_next_day=breach.rule == "daily_loss_limit")
            outcome.paused = True
        action = "paused" if pauses else "blocked"
        stage_risk_event(session, self.user_id, self.bot_id, breach.rule, breach.detail, action)
        return TradeResult(signal.action.value, reason=breach.detail)

    async def close_by_rule(
        self, session: AsyncSession, bot: Bot, action: RiskAction, candle: list[float]
    ) -> TradeResult:
        """Sell the whole position for a protective exit: a paper bot's fill is booked at
        the rule's price with the taker fee (the backtest's fill); a live bot's watched
        exit is a live market sell (a stop resting on the venue: :mod:`.venue_exits`)."""
        position = self._position
        assert position is not None  # noqa: S101 - a close has a position
        assert action.price is not None  # noqa: S101 - and a price
        client_order_id = f"bot-{bot.id.hex[:16]}-{int(candle[0])}-{action.rule}{self.order_tag}"
        if self.mode == "live":
            sell = TradingSignal(
                action=SignalAction.SELL,
                timestamp=int(candle[0]),
                price=float(candle[4]),
                strategy=self.strategy.name,
                reason=action.rule,
            )
            return await self._execute_live(session, bot, sell, position, client_order_id)
        venue = await self.orders.paper_venue(self.exchange, self.symbol, with_book=False)
        base = await ledger_repository.lock_balance(
            session, self.user_id, self.bot_id, venue.rules.base
        )
        order = order_repository.add_order(
            session,
            {
                "user_id": self.user_id,
                "bot_id": self.bot_id,
                "client_order_id": client_order_id,
                "exchange": self.exchange,
                "symbol": self.symbol,
                "side": "sell",
                "type": "market",
                "mode": "paper",
                "quantity": min(position.quantity, base.free),
                "price": None,
                "status": "open",
                "reason": action.rule,
            },
        )
        closes_at = datetime.fromtimestamp(
            (candle[0] + TIMEFRAME_MS.get(self.timeframe, 60_000)) / 1000, UTC
        )
        await self.orders.fill_paper_at(
            session,
            order,
            venue,
            money(action.price),
            executed_at=min(closes_at, datetime.now(UTC)),
            strategy_name=self.strategy.name,
        )
        return TradeResult.from_order("sell", order, action.rule)

    async def _execute_live(
        self,
        session: AsyncSession,
        bot: Bot,
        signal: TradingSignal,
        position: Position | None,
        client_order_id: str,
    ) -> TradeResult:
        """Live: size from the bot's capital and realised PnL; the venue holds the funds."""
        action = signal.action.value
        if signal.action is SignalAction.BUY:
            if position is not None and position.quantity > 0:
                return TradeResult(action, reason="already in a position")
            realized = await bot_repository.realized_pnl(session, bot.id)
            budget = money((bot.capital + realized) * self.position_size)
            price = Decimal(str(signal.price))
            quantity = money(budget / (price * Decimal("1.001")))
        else:
            if position is None or position.quantity <= 0:
                return TradeResult(action, reason="no position to sell")
            quantity = position.quantity
        account = await self.orders.users.account(self.user_id)
        if not account.can("trade:live"):
            raise RiskLimitExceeded("permission", "The user no longer has 'trade:live'.")
        credentials = await self.orders.users.credentials(self.user_id, self.exchange)
        rules = await self.orders.live.rules(credentials, self.symbol)
        quantity = normalise_quantity(quantity, rules)
        if signal.action is SignalAction.SELL and self.rests_venue_stop:
            resting = await exit_orders.resting_stop(self.orders, self.bot_id)
            if resting is not None:  # it holds the base the sell needs
                await exit_orders.cancel(self.orders, resting, credentials)
        if signal.action is SignalAction.BUY:
            await guard_entry(
                session,
                ProposedEntry(
                    user_id=self.user_id,
                    bot_id=self.bot_id,
                    exchange=self.exchange,
                    symbol=self.symbol,
                    mode="live",
                    side="buy",
                    quantity=quantity,
                    price=Decimal(str(signal.price)),
                ),
                account.limits,
                self.risk,
                lock=False,
            )
        # The live order is committed, sent and polled in its own units of work; the
        # deterministic client order id makes a replay of this candle find it again.
        order, _ = await self.orders.place_for_bot(
            self.user_id,
            account,
            OrderCreate(
                exchange=self.exchange,
                symbol=self.symbol,
                side="buy" if signal.action is SignalAction.BUY else "sell",
                type="market",
                quantity=quantity,
                mode="live",
                client_order_id=client_order_id,
            ),
            bot_id=self.bot_id,
            strategy_name=self.strategy.name,
        )
        return TradeResult.from_order(action, order, signal.reason)


def _flat_after(position: Position | None, result: TradeResult | None) -> bool:
    """Whether the bot holds nothing after this candle (without another query)."""
    if result is None or result.order_id is None or result.filled_quantity <= 0:
        return position is None or position.status != "open"
    return result.action == "sell" and (position is None or position.status != "open")


def signal_record(signal: TradingSignal, result: TradeResult | None) -> dict[str, Any]:
    record: dict[str, Any] = {
        "action": signal.action.value,
        "price": signal.price,
        "candle_ts": signal.timestamp,
        "reason": signal.reason,
    }
    if result is not None:
        record.update(
            {
                "order_id": None if result.order_id is None else str(result.order_id),
                "order_status": result.status,
                "filled_quantity": as_text(result.filled_quantity),
                "average_price": as_text(result.average_price),
                "note": result.reason,
            }
        )
    return record

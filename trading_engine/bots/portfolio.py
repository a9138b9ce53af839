"""Portfolio bots (docs/trading.md, portfolio bots): one strategy over a list of pairs from
one capital, at most ``max_open_positions`` positions, by the rules of the portfolio
backtest (``shared/backtest/portfolio.py``).

A portfolio bot is one ``bots`` row with ``pairs`` (its ``symbol`` is the first); it holds
one quote balance and a position per pair at most, and has an :class:`Adapter` per pair
(its paper orders and exits). It acts on a time once every pair's candle of that time has
closed (candles of one time come in one after the other, pair by pair): in one
transaction, with its row locked,

1. the protective exits of every pair, on that pair's candle;
2. the signal exits of every pair;
3. the signal entries in the order of the pair list, while fewer than
   ``max_open_positions`` positions are open, each with a stake of ``stake_amount`` or
   ``position_size`` x equity (the free quote after the exits plus the open positions at
   their pair's close, taken once before the first entry), capped at the free quote.

That is the backtest's order (its next open's exits and entries follow the candle's
protective exits), so on the same candles the bot and ``run_portfolio`` trade alike
(tests/trading_engine/bots/test_portfolio.py). Candles a restart missed are replayed in
order, time by time.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import structlog

from shared.cancellation import raise_if_cancelling
from shared.db import unit_of_work
from shared.strategies import SignalAction, TradingSignal, TradingStrategy
from trading_engine.bots import repository as bot_repository
from trading_engine.bots.adapter import Adapter, TradeResult, signal_record
from trading_engine.bots.batch import CandleOutcome
from trading_engine.bots.booking import CandleBooking
from trading_engine.bots.candles import CandleKey, timeframe_ms
from trading_engine.bots.failures import FAILURES_BEFORE_ERROR, TEMPORARY, failure_detail
from trading_engine.bots.handle import BotHandle
from trading_engine.bots.writes import write_batch
from trading_engine.ledger import repository as ledger_repository
from trading_engine.models import Bot, Position
from trading_engine.money import ZERO, money
from trading_engine.orders.service import OrderService
from trading_engine.risk.events import stage_risk_event
from trading_engine.risk.rules import PositionView, RiskKind, RiskLimitExceeded, peak_of

log = structlog.get_logger("trading.runner")

# Times whose candles are being gathered, at most (older ones are dropped: a bot held up by
# a missing candle replays the times it missed from the history once it has them).
PENDING_TIMES = 64


@dataclass
class PortfolioPlan:
    """What a running portfolio bot trades: its pairs' markets and adapters (pair order),
    its cap and stake, and the candles of each time seen so far."""

    keys: list[CandleKey]
    adapters: list[Adapter]
    max_open: int
    stake_amount: Decimal | None
    position_size: Decimal
    pending: dict[int, dict[CandleKey, list[float]]] = field(default_factory=dict)


def portfolio_handle(
    bot: Bot, strategy: TradingStrategy, orders: OrderService, fingerprint: str
) -> BotHandle:
    """The runner's handle of a portfolio bot: an adapter per pair."""
    pairs = list(bot.pairs or [bot.symbol])
    keys = [CandleKey(bot.exchange, pair, bot.timeframe) for pair in pairs]
    adapters = [
        Adapter(bot, strategy, orders, symbol=pair, order_tag=f"-p{i}")
        for i, pair in enumerate(pairs)
    ]
    plan = PortfolioPlan(
        keys=keys,
        adapters=adapters,
        max_open=bot.max_open_positions or len(pairs),
        stake_amount=bot.stake_amount,
        position_size=bot.position_size,
    )
    return BotHandle(
        adapter=adapters[0],
        key=keys[0],
        warmup=max(1, strategy.warmup),
        last_ts=None if bot.last_candle_at is None else int(bot.last_candle_at.timestamp() * 1000),
        settings=fingerprint,
        portfolio=plan,
    )


@dataclass
class _Pair:
    """One pair at one time: its adapter, candle (None: no candle then), signal, close."""

    adapter: Adapter
    candle: list[float] | None
    signal: TradingSignal | None
    close: float | None  # its last close up to this time (the mark of its position)


class PortfolioBooking:
    """Candles in for portfolio bots, and their times booked (see the module docstring)."""

    def __init__(self, booking: CandleBooking) -> None:
        self.booking = booking

    def wake(
        self, bot_id: uuid.UUID, handle: BotHandle, key: CandleKey, candle: list[float]
    ) -> None:
        """Note a pair's closed candle; once every pair has the time's, book it."""
        plan = handle.portfolio
        ts = int(candle[0])
        if plan is None or (handle.last_ts is not None and ts <= handle.last_ts):
            return
        seen = plan.pending.setdefault(ts, {})
        seen[key] = candle
        while len(plan.pending) > PENDING_TIMES:  # a pair's candle that never came
            del plan.pending[min(plan.pending)]
        if len(seen) == len(plan.keys):
            self.booking.spawn(self.process(bot_id, ts))

    async def process(self, bot_id: uuid.UUID, ts: int) -> None:
        """Book the bot's time ``ts`` (and, first, the times it missed)."""
        booking = self.booking
        handle = booking.handles.get(bot_id)
        if handle is None or handle.portfolio is None:
            return
        plan = handle.portfolio
        async with handle.lock:
            if booking.handles.get(bot_id) is not handle:
                return
            if handle.last_ts is not None and ts <= handle.last_ts:
                return
            latest = plan.pending.get(ts)
            if latest is None or len(latest) < len(plan.keys):
                return
            try:
                step = timeframe_ms(plan.keys[0].timeframe)
                missed = 0 if handle.last_ts is None else (ts - handle.last_ts) // step - 1
                need = handle.warmup + 1 + min(max(missed, 0), booking.replay_limit)
                windows = [
                    await booking.candles.window(key, latest[key], need) for key in plan.keys
                ]
                times = sorted(
                    {
                        int(row[0])
                        for rows in windows
                        for row in rows
                        if handle.last_ts is None or row[0] > handle.last_ts
                    }
                )
                times = [ts] if handle.last_ts is None else times[-booking.replay_limit :]
                for at in times:
                    pairs = self._pairs_at(plan, windows, at)
                    async with booking.slots.hold():
                        outcome = await book_time(booking.orders, bot_id, plan, at, pairs)
                    handle.last_ts = at
                    handle.failures = 0
                    if outcome.result is not None:
                        booking.mirrors.request(handle.adapter.user_id)
                    if outcome.paused:
                        await booking.leases.release(bot_id)
                        booking.handles.pop(bot_id, None)
                        return
                for seen in [t for t in plan.pending if t <= ts]:
                    del plan.pending[seen]
            except TEMPORARY as exc:
                await booking.failures.note_errors([bot_id], failure_detail(exc))
            except Exception as exc:
                raise_if_cancelling()
                handle.failures += 1
                log.exception("bot_failed", bot_id=str(bot_id))
                if handle.failures >= FAILURES_BEFORE_ERROR:
                    await booking.failures.fail(handle.adapter.user_id, bot_id, repr(exc))
                    booking.handles.pop(bot_id, None)

    def _pairs_at(
        self, plan: PortfolioPlan, windows: list[list[list[float]]], at: int
    ) -> list[_Pair]:
        pairs: list[_Pair] = []
        for key, adapter, rows in zip(plan.keys, plan.adapters, windows, strict=True):
            upto = [i for i, row in enumerate(rows) if row[0] <= at]
            if not upto:
                pairs.append(_Pair(adapter, None, None, None))
                continue
            index = upto[-1]
            if int(rows[index][0]) != at:  # no candle of this pair at this time
                pairs.append(_Pair(adapter, None, None, rows[index][4]))
                continue
            signal = self.booking.candles.signal(key, rows, index, adapter.strategy)
            pairs.append(_Pair(adapter, rows[index], signal, rows[index][4]))
        return pairs


async def book_time(
    orders: OrderService, bot_id: uuid.UUID, plan: PortfolioPlan, at: int, pairs: list[_Pair]
) -> CandleOutcome:
    """One time of a portfolio bot in one transaction (its row locked): protective exits,
    signal exits, then entries in pair order (the module docstring)."""
    outcome = CandleOutcome(processed=False)
    candle_at = datetime.fromtimestamp(at / 1000, UTC)
    async with unit_of_work(orders.sessionmaker) as session:
        bot = await bot_repository.lock_by_id(session, bot_id)
        if bot is None or bot.status != "running":
            return outcome
        if bot.last_candle_at is not None and bot.last_candle_at >= candle_at:
            return outcome
        held = {p.symbol: p for p in await bot_repository.open_positions(session, bot)}
        assets: set[str] = set()
        for pair in pairs:
            rules = await orders.market.rules(bot.exchange, pair.adapter.symbol)
            assets |= {rules.base, rules.quote}
        await ledger_repository.lock_bot_balances(session, [(bot.user_id, bot.id)], sorted(assets))
        for pair in pairs:
            ledger_repository.remember_open_position(
                session, bot.user_id, bot.id, bot.exchange, pair.adapter.symbol, bot.mode,
                held.get(pair.adapter.symbol),
            )  # fmt: skip
        records: dict[str, dict[str, Any]] = {}
        step = _Step(session, bot, held, candle_at, outcome)
        with session.no_autoflush:
            for pair in pairs:  # 1. protective exits, on each pair's candle
                if pair.candle is not None:
                    result = await _protect(step, pair)
                    if result is not None:
                        records[pair.adapter.symbol] = result
            for pair in pairs:  # 2. signal exits
                if pair.signal is not None and pair.signal.action is SignalAction.SELL:
                    records[pair.adapter.symbol] = await _act(step, pair)
            open_count = sum(1 for p in held.values() if _is_open(p))
            stake: Decimal | None = None
            for pair in pairs:  # 3. entries, in pair order
                if pair.signal is None or pair.signal.action is not SignalAction.BUY:
                    continue
                if outcome.paused or _is_open(held.get(pair.adapter.symbol)):
                    records.setdefault(pair.adapter.symbol, signal_record(pair.signal, None))
                    continue
                if open_count >= plan.max_open:
                    records[pair.adapter.symbol] = signal_record(
                        pair.signal, TradeResult("buy", reason="no free position slot")
                    )
                    continue
                if stake is None:
                    stake = await _stake(session, bot, plan, pairs, held)
                pair.adapter.stake = stake
                try:
                    records[pair.adapter.symbol] = await _act(step, pair)
                finally:
                    pair.adapter.stake = None
                if _is_open(held.get(pair.adapter.symbol)):
                    open_count += 1
            for pair in pairs:
                if pair.signal is not None:
                    records.setdefault(pair.adapter.symbol, signal_record(pair.signal, None))
        bot.last_candle_at = candle_at
        # A pair without a candle at this time keeps its last record (its mark).
        previous = (bot.last_signal or {}).get("pairs", {})
        bot.last_signal = {"candle_ts": at, "pairs": {**previous, **records}}
        bot.error = None
        bot.updated_at = datetime.now(UTC)
        outcome.processed = True
        await write_batch(session)
    return outcome


def _is_open(position: Position | None) -> bool:
    return position is not None and position.status == "open" and position.quantity > 0


@dataclass
class _Step:
    """One time of a portfolio bot being booked: its transaction, locked row, open
    positions by pair and outcome."""

    session: Any
    bot: Bot
    held: dict[str, Position]
    candle_at: datetime
    outcome: CandleOutcome


async def _protect(step: _Step, pair: _Pair) -> dict[str, Any] | None:
    """The pair's protective exit on its candle (shared/exits.py), as a single bot's."""
    session, bot, held, candle_at = step.session, step.bot, step.held, step.candle_at
    adapter, candle = pair.adapter, pair.candle
    assert candle is not None  # noqa: S101 - only pairs with a candle
    position = held.get(adapter.symbol)
    if not _is_open(position):
        return None
    assert position is not None  # noqa: S101 - _is_open
    with adapter.bound(session, bot, position, candle):
        action = adapter.manage_risk(position)
        if action.kind is not RiskKind.CLOSE:
            peak = peak_of(
                PositionView(
                    position.quantity, position.average_entry_price, position.highest_price
                )
            )
            position.highest_price = money(max(peak, Decimal(str(candle[2]))))
            return None
        sell = TradingSignal(
            action=SignalAction.SELL,
            timestamp=int(candle[0]),
            price=float(candle[4]),
            strategy=adapter.strategy.name,
            reason=action.rule,
        )
        result = await adapter.close_by_rule(session, bot, action, candle)
        stage_risk_event(session, bot.user_id, bot.id, action.rule, action.detail, "closed")
        adapter._stage_triggered(session, sell, candle_at, result)
    step.outcome.result = result
    return signal_record(sell, result)


async def _act(step: _Step, pair: _Pair) -> dict[str, Any]:
    """The pair's signal order (a sell of its position, or an entry of the set stake)."""
    session, bot, held, outcome = step.session, step.bot, step.held, step.outcome
    adapter, signal, candle = pair.adapter, pair.signal, pair.candle
    assert signal is not None  # noqa: S101 - only signalled pairs
    assert candle is not None  # noqa: S101 - have a candle
    position = held.get(adapter.symbol)
    with adapter.bound(session, bot, position, candle):
        try:
            result = await adapter.execute_trade(signal)
        except RiskLimitExceeded as breach:
            result = adapter._blocked(session, bot, outcome, breach, signal)
        adapter._stage_triggered(session, signal, step.candle_at, result)
    if result.order_id is not None:
        outcome.result = result
        if signal.action is SignalAction.BUY:
            # the position the fill opened (the ledger remembers it for this owner)
            opened = await ledger_repository.lock_open_position(
                session, bot.user_id, bot.id, bot.exchange, adapter.symbol, bot.mode
            )
            if opened is not None:
                held[adapter.symbol] = opened
    return signal_record(signal, result)


async def _stake(
    session: Any, bot: Bot, plan: PortfolioPlan, pairs: list[_Pair], held: dict[str, Position]
) -> Decimal:
    """The stake of this time's entries: the fixed one, or position_size x (the free quote
    after the exits + the open positions at their pair's last close)."""
    if plan.stake_amount is not None:
        return plan.stake_amount
    quote = bot.pairs[0].split("/")[1] if bot.pairs else bot.symbol.split("/")[1]
    balance = await ledger_repository.lock_balance(session, bot.user_id, bot.id, quote)
    closes = {pair.adapter.symbol: pair.close for pair in pairs}
    equity = balance.free
    for symbol, position in held.items():
        if _is_open(position):
            close = closes.get(symbol)
            equity += (
                money(position.quantity * Decimal(str(close)))
                if close is not None
                else position.cost_basis
            )
    return money(max(equity, ZERO) * plan.position_size)


def portfolio_markets(handles: dict[uuid.UUID, BotHandle]) -> set[str]:
    """Every market the portfolio bots of a replica trade (its candle subscriptions)."""
    return {
        key.member
        for handle in handles.values()
        if handle.portfolio is not None
        for key in handle.portfolio.keys
    }

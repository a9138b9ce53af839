"""Booking the closed candle of many bots of one market in one transaction: their rows,
open positions and balances locked in a few statements, each bot's rules and order in
turn, every write of the batch made in one statement per table at the end
(:mod:`~trading_engine.bots.writes`; docs/trading.md, running bots)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import text

from shared.db import COMMITTED_AT, unit_of_work
from shared.strategies import TradingSignal
from trading_engine.bots import repository as bot_repository
from trading_engine.bots.writes import write_batch
from trading_engine.ledger import repository as ledger_repository
from trading_engine.orders.service import OrderService

if TYPE_CHECKING:
    from trading_engine.bots.adapter import Adapter, TradeResult


@dataclass
class CandleOutcome:
    """What one bot's candle did, and when (the runner's latency figures)."""

    processed: bool
    result: TradeResult | None = None
    paused: bool = False
    flat: bool | None = None  # the bot holds no position after this candle
    signal_at: float | None = None  # loop time the signal was known (for latency figures)
    woken_at: float | None = None  # loop time the candle reached the runner
    ordered_at: float | None = None


@dataclass
class CandleWork:
    """One bot's closed candle and the signal computed on it."""

    adapter: Adapter
    candle: list[float]
    signal: TradingSignal
    signal_at: float


async def apply_candles(orders: OrderService, work: Sequence[CandleWork]) -> list[CandleOutcome]:
    """Apply the closed candle of many bots in ONE transaction (outcomes in ``work`` order).

    The bots' rows and open positions are locked in one query and their balances in
    another; each bot then runs its rules and orders in turn with nothing flushed until
    the end, where every table's new and changed rows are written in one set-based
    statement each (:func:`~trading_engine.bots.writes.write_batch`), so a burst of
    orders on one candle costs a few statements instead of a transaction per bot. A
    query that needs the other bots' writes (a user's open positions or realised PnL
    for their limits) flushes first (through the ORM). Any error rolls the whole
    batch back: the caller then retries each bot on its own.
    """
    loop = asyncio.get_running_loop()
    outcomes = [CandleOutcome(processed=False, signal_at=item.signal_at) for item in work]
    async with unit_of_work(orders.sessionmaker) as session:
        locked = await bot_repository.lock_with_positions(
            session, [item.adapter.bot_id for item in work]
        )
        paper = [bot for bot, _ in locked.values() if bot.mode == "paper"]
        assets: set[str] = set()
        for market in {(bot.exchange, bot.symbol) for bot in paper}:
            rules = await orders.market.rules(*market)
            assets |= {rules.base, rules.quote}
        await ledger_repository.lock_bot_balances(
            session, [(bot.user_id, bot.id) for bot in paper], sorted(assets)
        )
        with session.no_autoflush:
            for item, outcome in zip(work, outcomes, strict=True):
                row = locked.get(item.adapter.bot_id)
                if row is None or row[0].status != "running":
                    continue
                bot, position = row
                ledger_repository.remember_open_position(
                    session, bot.user_id, bot.id, bot.exchange, bot.symbol, bot.mode, position
                )
                await item.adapter.apply(session, bot, position, item.candle, item.signal, outcome)
        await write_batch(session)
        if not any(_ordered(outcome) for outcome in outcomes):
            # No money moved: a crash may lose these status writes (the candle is then
            # replayed), so they need not wait for the WAL flush.
            await session.execute(text("SET LOCAL synchronous_commit TO OFF"))
    # The orders exist from the commit on (their events are published after it).
    committed_at = session.info.get(COMMITTED_AT, loop.time())
    for outcome in outcomes:
        if _ordered(outcome):
            outcome.ordered_at = committed_at
    return outcomes


def _ordered(outcome: CandleOutcome) -> bool:
    return outcome.result is not None and outcome.result.order_id is not None

"""`GET /trading/bots/{id}/replay`: the bot's own candles through the backtest with the
bot's settings, and every fill where the two part ways (docs/trading.md, checking a bot
against its backtest).

The window starts at the candle of the bot's first order (or its creation) and ends at the
last candle it processed; signals before the window are ignored, so the backtest starts
flat with the bot's capital as the bot did. A bot's fill is placed on the candle whose
open (a signal order, made at the close of the candle before) or whose range (a
protective exit) the backtest fills it on; its client order id names that candle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Literal

import numpy as np
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.backtest import simulate_signals
from shared.candles import Candles
from shared.errors import ValidationFailed
from shared.strategies import create_strategy
from shared.timeframes import TIMEFRAME_MS
from trading_engine.bots.adapter import Adapter
from trading_engine.models import Bot, Order, Strategy
from trading_engine.orders.schemas import Money
from trading_engine.orders.service import OrderService

MAX_CANDLES = 5000  # the market service's page
EXIT_REASONS = ("stop_loss", "take_profit", "trailing_stop")
# A float backtest against 8-place money: prices agree to 1e-8, quantities to a step.
PRICE_EPSILON = Decimal("0.00000001")
QUANTITY_RELATIVE = Decimal("0.0000001")


class ReplayFill(BaseModel):
    price: Money
    quantity: Money
    reason: str


class ReplayDifference(BaseModel):
    candle_at: datetime
    side: Literal["buy", "sell"]
    bot: ReplayFill | None
    backtest: ReplayFill | None


class ReplayRead(BaseModel):
    bot_id: str
    start: datetime | None
    end: datetime | None
    candles: int
    fills: int
    differences: list[ReplayDifference]


@dataclass(frozen=True)
class _Fill:
    candle_ms: int
    side: Literal["buy", "sell"]
    price: Decimal
    quantity: Decimal
    reason: str


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def bot_fill(order: Order, frame_ms: int) -> _Fill | None:
    """A bot order as the backtest would see it; None for one the bot did not place from
    a candle (a manual close)."""
    parts = order.client_order_id.split("-")
    if len(parts) != 4 or parts[0] != "bot" or not parts[2].isdigit():
        return None
    ts, tail = int(parts[2]), parts[3]
    if order.average_price is None:
        return None
    side: Literal["buy", "sell"] = "buy" if order.side == "buy" else "sell"
    if tail in EXIT_REASONS:
        return _Fill(ts, side, order.average_price, order.filled_quantity, tail)
    if tail == "stop":  # a live stop that rested on the venue: the candle it filled in
        filled_ms = int(order.updated_at.timestamp() * 1000) // frame_ms * frame_ms
        reason = order.reason or "stop_loss"
        return _Fill(filled_ms, side, order.average_price, order.filled_quantity, reason)
    return _Fill(ts + frame_ms, side, order.average_price, order.filled_quantity, "signal")


async def _bot_orders(session: AsyncSession, bot: Bot) -> list[Order]:
    rows = await session.scalars(
        select(Order)
        .where(Order.bot_id == bot.id, Order.filled_quantity > 0)
        .order_by(Order.created_at, Order.id)
    )
    return list(rows)


def _same(bot: _Fill, expected: _Fill, amount_step: Decimal) -> bool:
    quantity_slack = max(amount_step, PRICE_EPSILON) + expected.quantity * QUANTITY_RELATIVE
    return (
        bot.reason == expected.reason
        and abs(bot.price - expected.price) <= PRICE_EPSILON
        and abs(bot.quantity - expected.quantity) <= quantity_slack
    )


def _as_read(fill: _Fill | None) -> ReplayFill | None:
    if fill is None:
        return None
    return ReplayFill(price=fill.price, quantity=fill.quantity, reason=fill.reason)


def _decimal(value: float) -> Decimal:
    return Decimal(repr(value)) if math.isfinite(value) else Decimal(0)


async def replay(session: AsyncSession, bot: Bot, orders: OrderService) -> ReplayRead:
    """Replay ``bot``'s candles through the backtest and list the fills that differ."""
    if bot.pairs is not None:
        raise ValidationFailed(
            "The replay covers bots of one symbol; backtest a portfolio bot's pairs with "
            "POST /analysis/backtests (pairs, max_open_positions, stake)."
        )
    frame_ms = TIMEFRAME_MS.get(bot.timeframe)
    if frame_ms is None:
        raise ValidationFailed(f"Timeframe {bot.timeframe} cannot be replayed.")
    strategy_row = await session.get(Strategy, bot.strategy_id)
    if strategy_row is None:  # pragma: no cover - a foreign key
        raise ValidationFailed("The bot's strategy is gone.")
    try:
        strategy = create_strategy(strategy_row.strategy, strategy_row.parameters)
    except Exception as exc:  # a plugin gone or parameters no longer valid
        raise ValidationFailed(f"The bot's strategy cannot be built: {exc}") from exc
    own = await _bot_orders(session, bot)
    fills = [f for f in (bot_fill(o, frame_ms) for o in own) if f is not None]
    if bot.last_candle_at is None:
        return ReplayRead(
            bot_id=str(bot.id), start=None, end=None, candles=0, fills=0, differences=[]
        )
    end_ms = int(bot.last_candle_at.timestamp() * 1000)
    created_ms = int(bot.created_at.timestamp() * 1000) // frame_ms * frame_ms
    # The first acting candle: the signal candle of the first order, else the creation.
    first_ms = min([f.candle_ms - frame_ms for f in fills if f.reason == "signal"] or [created_ms])
    warmup = max(1, strategy.warmup_candles(frame_ms)) + 1  # higher timeframes' included
    since = first_ms - warmup * frame_ms
    rows = await orders.market.ohlcv(
        bot.exchange, bot.symbol, bot.timeframe, MAX_CANDLES, since=since
    )
    rows = [row for row in rows if row[0] <= end_ms]
    venue = await orders.paper_venue(bot.exchange, bot.symbol, with_book=False)
    if len(rows) < 2:
        unmatched = [
            ReplayDifference(
                candle_at=_utc(f.candle_ms), side=f.side, bot=_as_read(f), backtest=None
            )
            for f in fills
        ]
        return ReplayRead(
            bot_id=str(bot.id),
            start=None,
            end=bot.last_candle_at,
            candles=len(rows),
            fills=len(fills),
            differences=unmatched,
        )
    candles = Candles.from_rows(rows)
    signals = np.array(strategy.signals(candles), dtype=np.int8)
    signals[candles.timestamp < first_ms] = 0
    risk = Adapter(bot, strategy, orders).risk  # the bot's settings, the strategy's gaps
    result = simulate_signals(
        candles,
        signals,
        initial_capital=bot.capital,
        fee=float(venue.taker_fee),
        slippage=0.0,
        position_size=float(bot.position_size),
        stop_loss=None if risk.stop_loss is None else float(risk.stop_loss),
        take_profit=None if risk.take_profit is None else float(risk.take_profit),
        trailing_stop=None if risk.trailing_stop is None else float(risk.trailing_stop),
        frame_ms=frame_ms,
    )
    expected: list[_Fill] = []
    for trade in result.trades:
        entry_ms = int(trade.entry_at.timestamp() * 1000)
        expected.append(
            _Fill(entry_ms, "buy", _decimal(trade.entry_price), _decimal(trade.quantity), "signal")
        )
        if trade.exit_reason != "end":  # the bot still holds what the backtest sells here
            exit_ms = int(trade.exit_at.timestamp() * 1000)
            expected.append(
                _Fill(
                    exit_ms,
                    "sell",
                    _decimal(trade.exit_price),
                    _decimal(trade.quantity),
                    trade.exit_reason,
                )
            )
    by_key: dict[tuple[int, str], list[_Fill]] = {}
    for fill in expected:
        by_key.setdefault((fill.candle_ms, fill.side), []).append(fill)
    differences: list[ReplayDifference] = []
    for fill in fills:
        if fill.candle_ms > end_ms:  # the last candle's order: its open is still to come
            continue
        candidates = by_key.get((fill.candle_ms, fill.side), [])
        match = candidates.pop(0) if candidates else None
        if match is None or not _same(fill, match, venue.rules.amount_step):
            differences.append(
                ReplayDifference(
                    candle_at=_utc(fill.candle_ms),
                    side=fill.side,
                    bot=_as_read(fill),
                    backtest=_as_read(match),
                )
            )
    for (candle_ms, side), left in by_key.items():
        for fill in left:
            if candle_ms <= end_ms:
                differences.append(
                    ReplayDifference(
                        candle_at=_utc(candle_ms),
                        side="buy" if side == "buy" else "sell",
                        bot=None,
                        backtest=_as_read(fill),
                    )
                )
    differences.sort(key=lambda d: (d.candle_at, d.side))
    return ReplayRead(
        bot_id=str(bot.id),
        start=_utc(int(candles.timestamp[0])),
        end=bot.last_candle_at,
        candles=len(candles),
        fills=len(fills),
        differences=differences,
    )

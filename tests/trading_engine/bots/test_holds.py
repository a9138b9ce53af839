"""HOLD candles are recorded without a transaction of their own and written in batches
that yield to the candle transactions in flight."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.strategies import SignalAction, TradingSignal
from tests.trading_engine.bots.driver import START_MS, make_bot
from tests.waiting import eventually
from trading_engine.bots import holds as holds_module
from trading_engine.bots.holds import HoldRecorder
from trading_engine.bots.slots import BookingSlots
from trading_engine.models import Bot

CANDLE = [float(START_MS), 100.0, 101.0, 99.0, 100.5, 10.0]
HOLD = TradingSignal(
    action=SignalAction.HOLD, timestamp=START_MS, price=100.5, strategy="ma_crossover"
)


async def _marked(session: AsyncSession, bot_id: uuid.UUID) -> Any:
    await session.rollback()  # a fresh snapshot
    bot = await session.get(Bot, bot_id, populate_existing=True)
    assert bot is not None
    expected = datetime.fromtimestamp(START_MS / 1000, UTC)
    return bot if bot.last_candle_at == expected else None


async def test_hold_writes_wait_for_the_candle_transactions_in_flight(
    client: httpx.AsyncClient,
    new_user,
    sessionmaker: async_sessionmaker[AsyncSession],
    session: AsyncSession,
) -> None:
    user = await new_user()
    bot_id = uuid.UUID(await make_bot(client, user.headers))
    slots = BookingSlots(4)
    recorder = HoldRecorder(sessionmaker, slots)
    waiting = asyncio.Event()
    wait_idle = slots.wait_idle

    async def noted_wait_idle() -> None:
        waiting.set()
        await wait_idle()

    slots.wait_idle = noted_wait_idle  # type: ignore[method-assign]

    async with slots.hold():
        recorder.record(bot_id, CANDLE, HOLD)
        await asyncio.wait_for(waiting.wait(), timeout=5)
        assert bot_id in recorder.pending  # the flush is waiting on the booking

    bot = await eventually(lambda: _marked(session, bot_id))
    assert bot.last_signal["action"] == "hold"
    assert recorder.pending == {}


async def test_hold_writes_yield_to_a_long_booking_for_a_bounded_time(
    client: httpx.AsyncClient,
    new_user,
    sessionmaker: async_sessionmaker[AsyncSession],
    session: AsyncSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(holds_module, "WAIT_FOR_BOOKINGS_S", 0.05)
    user = await new_user()
    bot_id = uuid.UUID(await make_bot(client, user.headers))
    slots = BookingSlots(4)
    recorder = HoldRecorder(sessionmaker, slots)

    async with slots.hold():
        recorder.record(bot_id, CANDLE, HOLD)
        await eventually(lambda: _marked(session, bot_id))
        assert slots.in_flight == 1

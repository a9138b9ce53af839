"""HOLD candles that need no transaction: a bot that is flat (or holds a position with no
exit rules) and gets HOLD only has its status written, in batches of one
``UPDATE ... FROM unnest(...)``, after the candle's orders."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db import unit_of_work
from shared.strategies import SignalAction, TradingSignal
from trading_engine.bots import repository
from trading_engine.bots.adapter import signal_record
from trading_engine.bots.handle import BotHandle
from trading_engine.bots.slots import BookingSlots

log = structlog.get_logger("trading.runner")

COALESCE_S = 0.05  # a burst of bots on the same candle goes in one statement
WAIT_FOR_BOOKINGS_S = 1.0  # the longest the status writes yield to candle transactions


class HoldRecorder:
    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], bookings: BookingSlots
    ) -> None:
        self.sessionmaker = sessionmaker
        self.bookings = bookings
        self.pending: dict[uuid.UUID, tuple[datetime, dict[str, Any]]] = {}
        self._flusher: asyncio.Task[None] | None = None

    def take(
        self, bot_id: uuid.UUID, handle: BotHandle, candle: list[float], signal: TradingSignal
    ) -> bool:
        """A HOLD with nothing to trade or protect (flat, or a position without stop /
        take-profit / trailing rules) needs no transaction: the candle is marked seen and
        the bot row's status is written in batches. False if the candle must be booked."""
        if signal.action is not SignalAction.HOLD or not (
            handle.flat or (handle.flat is False and not handle.adapter.has_exit_rules)
        ):
            return False
        self.record(bot_id, candle, signal)
        handle.last_ts = int(candle[0])
        handle.failures = 0
        return True

    def record(self, bot_id: uuid.UUID, candle: list[float], signal: TradingSignal) -> None:
        candle_at = datetime.fromtimestamp(candle[0] / 1000, UTC)
        self.pending[bot_id] = (candle_at, signal_record(signal, None))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())

    async def _flush(self) -> None:
        # Holds that arrive while a batch is being written go in the next one.
        while self.pending:
            await asyncio.sleep(COALESCE_S)
            # Orders first: these status-only writes wait (a second at most) while bots'
            # candles are being booked, instead of competing with them.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(WAIT_FOR_BOOKINGS_S):
                    await self.bookings.wait_idle()
            holds, self.pending = self.pending, {}
            try:
                async with unit_of_work(self.sessionmaker) as session:
                    await repository.mark_candles(session, holds)
            except Exception as exc:  # status only: the next candle writes it again
                log.warning("hold_flush_failed", count=len(holds), error=repr(exc))

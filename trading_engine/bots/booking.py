"""Booking one closed candle for the bots of one market (docs/trading.md, running bots).

Signals are computed once per strategy configuration; a bot that holds with nothing to
protect needs no transaction (:class:`~trading_engine.bots.holds.HoldRecorder`); the bots
that trade or must check their exits are booked together, ``BOT_BATCH_SIZE`` to a
transaction (:func:`~trading_engine.bots.batch.apply_candles`). A bot that is busy,
trades live or missed earlier candles (a replay) is booked on its own, and so is every
bot of a batch that failed, so an error is counted against that bot only.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

import structlog

from shared.cancellation import raise_if_cancelling
from trading_engine.bots.batch import CandleOutcome, CandleWork, apply_candles
from trading_engine.bots.candles import CandleBook, CandleKey, timeframe_ms
from trading_engine.bots.failures import (
    FAILURES_BEFORE_ERROR,
    TEMPORARY,
    BotFailures,
    failure_detail,
)
from trading_engine.bots.handle import BotHandle
from trading_engine.bots.holds import HoldRecorder
from trading_engine.bots.lease import BotLeases
from trading_engine.bots.metrics import observe_order_latency
from trading_engine.bots.slots import BookingSlots
from trading_engine.orders.service import OrderService
from trading_engine.portfolio.mirror import MirrorFlusher

log = structlog.get_logger("trading.runner")


class CandleBooking:
    def __init__(
        self,
        *,
        handles: dict[uuid.UUID, BotHandle],
        candles: CandleBook,
        orders: OrderService,
        batch_size: int,
        replay_limit: int,
        slots: BookingSlots,
        holds: HoldRecorder,
        mirrors: MirrorFlusher,
        failures: BotFailures,
        leases: BotLeases,
        spawn: Callable[[Coroutine[Any, Any, object]], None],
    ) -> None:
        self.handles = handles
        self.candles = candles
        self.orders = orders
        self.batch_size = batch_size
        self.replay_limit = replay_limit
        self.slots = slots
        self.holds = holds
        self.mirrors = mirrors
        self.failures = failures
        self.leases = leases
        self.spawn = spawn

    # --- one market, one candle ---------------------------------------------------------

    async def process_market(
        self, key: CandleKey, candle: list[float], bot_ids: list[uuid.UUID], *, woken_at: float
    ) -> None:
        """One closed candle for the bots of one market: the free paper bots in batches,
        the others each on its own (:meth:`process`)."""
        alone: list[uuid.UUID] = []
        held: dict[uuid.UUID, BotHandle] = {}
        for bot_id in bot_ids:
            handle = self.handles.get(bot_id)
            if handle is None:
                continue
            if handle.lock.locked() or handle.adapter.mode != "paper":
                alone.append(bot_id)
                continue
            await handle.lock.acquire()  # free: taken without yielding
            held[bot_id] = handle
        try:
            if held:
                await self._book_market(key, candle, held, alone, woken_at)
        finally:
            for handle in held.values():
                handle.lock.release()
        for bot_id in alone:
            self.spawn(self.process(bot_id, candle, woken_at=woken_at))

    async def _book_market(
        self,
        key: CandleKey,
        candle: list[float],
        held: dict[uuid.UUID, BotHandle],
        alone: list[uuid.UUID],
        woken_at: float,
    ) -> None:
        """Signals, holds and batches of the bots whose locks :meth:`process_market` holds;
        the bots to run on their own are added to ``alone``."""
        loop = asyncio.get_running_loop()
        need = max(handle.warmup for handle in held.values()) + 1
        higher: dict[str, int] = {}
        for handle in held.values():
            for timeframe, count in handle.higher.items():
                higher[timeframe] = max(higher.get(timeframe, 0), count)
        try:
            rows = await self.candles.window(key, candle, need)
            if higher:
                await self.candles.load_higher(key, candle, higher)
        except TEMPORARY as exc:
            await self.failures.note_errors(list(held), failure_detail(exc))
            return
        except Exception:
            alone.extend(held)  # each bot on its own, where the error counts against it
            return
        last = len(rows) - 1
        previous_ts = int(rows[last - 1][0]) if last > 0 else None
        work: list[CandleWork] = []
        for bot_id, handle in held.items():
            if handle.last_ts is not None and candle[0] <= handle.last_ts:
                continue  # seen meanwhile
            if handle.last_ts is not None and handle.last_ts != previous_ts:
                alone.append(bot_id)  # missed candles: replayed in order on its own
                continue
            adapter = handle.adapter
            try:
                signal = self.candles.signal(key, rows, last, adapter.strategy)
            except Exception:
                alone.append(bot_id)  # counted against the bot by process()
                continue
            if self.holds.take(bot_id, handle, rows[last], signal):
                continue
            work.append(CandleWork(adapter, rows[last], signal, loop.time()))
        size = self.batch_size
        # More than one batch per market run side by side (up to BOT_CONCURRENCY).
        await asyncio.gather(
            *(
                self._apply_batch(work[start : start + size], held, alone, woken_at)
                for start in range(0, len(work), size)
            )
        )

    async def _apply_batch(
        self,
        chunk: list[CandleWork],
        held: dict[uuid.UUID, BotHandle],
        alone: list[uuid.UUID],
        woken_at: float,
    ) -> None:
        try:
            async with self.slots.hold():
                outcomes = await apply_candles(self.orders, chunk)
        except TEMPORARY as exc:
            await self.failures.note_errors(
                [item.adapter.bot_id for item in chunk], failure_detail(exc)
            )
            return
        except Exception as exc:
            # One bot's error rolls its batch back: each goes again on its own, so the
            # error is counted against that bot only.
            log.warning("bot_batch_failed", count=len(chunk), error=repr(exc))
            alone.extend(item.adapter.bot_id for item in chunk)
            return
        for item, outcome in zip(chunk, outcomes, strict=True):
            bot_id = item.adapter.bot_id
            outcome.woken_at = woken_at
            await self._settle(bot_id, held[bot_id], outcome, int(item.candle[0]))

    async def _settle(
        self, bot_id: uuid.UUID, handle: BotHandle, outcome: CandleOutcome, candle_ts: int
    ) -> None:
        """Book-keeping after a bot's candle was applied."""
        handle.flat = outcome.flat
        handle.last_ts = candle_ts
        handle.failures = 0
        observe_order_latency(outcome)
        if outcome.result is not None and outcome.result.order_id is not None:
            self.mirrors.request(handle.adapter.user_id)
        if outcome.paused:
            await self.leases.release(bot_id)
            self.handles.pop(bot_id, None)

    # --- one bot, one candle ------------------------------------------------------------

    async def process(
        self, bot_id: uuid.UUID, candle: list[float], *, woken_at: float | None = None
    ) -> None:
        """One bot on its own: compute its signal on the closed candle and act on it,
        first replaying (in order) the candles it missed while no replica ran it.

        Latency is measured from ``woken_at`` (the candle reaching this replica) to the
        order's commit, so queueing behind other bots counts.
        """
        handle = self.handles.get(bot_id)
        if handle is None:
            return
        woken_at = woken_at if woken_at is not None else asyncio.get_running_loop().time()
        async with handle.lock:
            if self.handles.get(bot_id) is not handle:
                return  # handed over or dropped while this waited
            if handle.last_ts is not None and candle[0] <= handle.last_ts:
                return
            adapter = handle.adapter
            try:
                step = timeframe_ms(handle.key.timeframe)
                missed = (
                    0
                    if handle.last_ts is None
                    else min(int(candle[0] - handle.last_ts) // step - 1, self.replay_limit)
                )
                rows = await self.candles.window(
                    handle.key, candle, handle.warmup + 1 + max(missed, 0)
                )
                if handle.higher:
                    await self.candles.load_higher(handle.key, candle, handle.higher)
                # Every candle missed since the last one the bot processed is replayed in
                # order (the window is consecutive), so a signal is never lost; past
                # BOT_REPLAY_LIMIT the oldest are skipped and shown on the bot. A bot
                # that never saw a candle starts at this one.
                last = len(rows) - 1
                pending = (
                    [last]
                    if handle.last_ts is None
                    else [i for i, row in enumerate(rows) if row[0] > handle.last_ts]
                ) or [last]
                pending = pending[-self.replay_limit :]
                skipped = (
                    0
                    if handle.last_ts is None
                    else int(rows[pending[0]][0] - handle.last_ts) // step - 1
                )
                for index in pending:
                    signal = self.candles.signal(handle.key, rows, index, adapter.strategy)
                    if self.holds.take(bot_id, handle, rows[index], signal):
                        continue
                    signal_at = asyncio.get_running_loop().time()
                    async with self.slots.hold():
                        outcome = await adapter.on_candle(rows[index], signal, signal_at=signal_at)
                    outcome.woken_at = woken_at
                    await self._settle(bot_id, handle, outcome, int(rows[index][0]))
                    if outcome.paused:
                        return
                if skipped > 0:
                    await self.failures.note_skipped(bot_id, skipped, int(rows[pending[0]][0]))
            except TEMPORARY as exc:
                # The market, the exchange, the database or Redis is slow or down: keep
                # the bot's state and retry on the next candle or sync.
                await self.failures.note_errors([bot_id], failure_detail(exc))
            except Exception as exc:
                raise_if_cancelling()  # a stopping runner's error is not the bot's
                handle.failures += 1
                log.exception("bot_failed", bot_id=str(bot_id))
                if handle.failures >= FAILURES_BEFORE_ERROR:
                    await self.failures.fail(adapter.user_id, bot_id, repr(exc))
                    self.handles.pop(bot_id, None)

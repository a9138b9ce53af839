"""Bulk history: a long range of closed candles, filled and read window by window.

``GET /market/ohlcv/bulk`` answers a backtest's whole range in one response. The range is
cut into windows of ``ohlcv_bulk_window`` candles; for each, the stored candles are read
with one COPY, the runs the table lacks are fetched from the exchange (the sim builds them
in whole arrays, a ccxt exchange page by page) and stored with one COPY, and the window
goes out as one Arrow record batch. ``ohlcv_bulk_parallel`` windows are worked on at once
(each on its own connection, so PostgreSQL uses as many cores), sent in order. Memory
stays at a few windows, and the first bytes leave before the last window is filled.

Only closed candles are served: a backtest must not read a candle that is still forming.
The number crunching (decoding, encoding, the sim's path) runs on worker threads, so the
service keeps answering other requests while a big range streams.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from market_service.exchanges import TIMEFRAME_MS, MarketExchange
from market_service.ohlcv.bulk_repository import driver_connection, insert_new, read_range
from market_service.ohlcv.copy_codec import Columns
from market_service.ohlcv.service import bucket_ceil, bucket_floor, fetch_range, validate_market
from market_service.settings import MarketSettings
from shared.errors import ValidationFailed


def _problem(message: str, name: str) -> ValidationFailed:
    return ValidationFailed(message, extra={"errors": [{"loc": ["query", name], "msg": message}]})


def missing_runs(
    stored_ms: np.ndarray, start_ms: int, end_ms: int, frame_ms: int
) -> list[tuple[int, int]]:
    """Runs ``[from, to)`` of bucket open times in ``[start_ms, end_ms)`` that the sorted
    ``stored_ms`` lacks."""
    bounds = np.concatenate([[start_ms - frame_ms], stored_ms, [end_ms]]).astype(np.int64)
    holes = np.nonzero(np.diff(bounds) > frame_ms)[0]
    return [(int(bounds[i]) + frame_ms, int(bounds[i + 1])) for i in holes]


def _columns(rows: np.ndarray) -> Columns:
    return (
        rows[:, 0].astype(np.int64),
        *(np.ascontiguousarray(rows[:, i], dtype=np.float64) for i in range(1, 6)),
    )  # type: ignore[return-value]


def _merge(parts: list[Columns]) -> Columns:
    """One set of columns, oldest first, from disjoint parts."""
    joined = [np.concatenate([part[i] for part in parts]) for i in range(6)]
    order = np.argsort(joined[0], kind="stable")
    return tuple(np.ascontiguousarray(column[order]) for column in joined)  # type: ignore[return-value]


@dataclass(frozen=True)
class BulkPlan:
    exchange: str
    symbol: str
    timeframe: str
    start_ms: int
    end_ms: int  # exclusive; the forming candle's open time at most
    windows: list[tuple[int, int]] = field(default_factory=list)

    @property
    def candles(self) -> int:
        return (self.end_ms - self.start_ms) // TIMEFRAME_MS[self.timeframe]


class BulkOhlcv:
    """Plans a range, then fills and reads it one window at a time."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        exchange: MarketExchange,
        settings: MarketSettings,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.exchange = exchange
        self.settings = settings

    async def plan(
        self, symbol: str, timeframe: str, since_ms: int, until_ms: int | None
    ) -> BulkPlan:
        """Check the request and cut its closed part into windows (422/404 when bad)."""
        await validate_market(self.exchange, symbol, timeframe)
        frame = TIMEFRAME_MS[timeframe]
        closed_end = bucket_floor(self.exchange.now_ms(), timeframe)
        if until_ms is not None and until_ms <= since_ms:
            raise _problem("until must be after since", "until")
        start = bucket_ceil(since_ms, timeframe)
        if until_ms is not None:
            closed_end = min(closed_end, bucket_ceil(until_ms, timeframe))
        end = max(start, closed_end)
        count = (end - start) // frame
        limit = self.settings.ohlcv_bulk_max_candles
        if count > limit:
            raise _problem(
                f"the range holds {count} {timeframe} candles; at most {limit} in one request",
                "until",
            )
        step = self.settings.ohlcv_bulk_window * frame
        windows = [(lo, min(lo + step, end)) for lo in range(start, end, step)]
        return BulkPlan(self.exchange.id, symbol, timeframe, start, end, windows)

    async def windows(self, plan: BulkPlan) -> AsyncGenerator[Columns, None]:
        """Every window's candles, in order, ``ohlcv_bulk_parallel`` worked on at once."""
        todo = iter(plan.windows)
        running: deque[asyncio.Task[Columns]] = deque()

        def start_next() -> None:
            window = next(todo, None)
            if window is not None:
                running.append(asyncio.create_task(self.window(plan, *window)))

        try:
            for _ in range(max(1, self.settings.ohlcv_bulk_parallel)):
                start_next()
            while running:
                columns = await running.popleft()
                start_next()
                yield columns
        finally:  # the client went away, or a window failed: stop the others
            for task in running:
                task.cancel()
            for task in running:
                with contextlib.suppress(BaseException):
                    await task

    async def window(self, plan: BulkPlan, start_ms: int, end_ms: int) -> Columns:
        """The closed candles of ``[start_ms, end_ms)``: stored ones, and missing ones
        fetched from the exchange and stored."""
        timeout = self.settings.ohlcv_copy_timeout_s
        key = (plan.exchange, plan.symbol, plan.timeframe)
        frame = TIMEFRAME_MS[plan.timeframe]
        async with self.sessionmaker() as session:
            driver = await driver_connection(session)
            stored = await read_range(driver, *key, start_ms, end_ms, timeout_s=timeout)
        runs = missing_runs(stored[0], start_ms, end_ms, frame)
        if not runs:
            return stored
        # No connection is held while the exchange answers (a ccxt range takes many calls).
        fetched = [await self._fetch(plan, lo, hi) for lo, hi in runs]
        fresh = fetched[0] if len(fetched) == 1 else await asyncio.to_thread(_merge, fetched)
        async with self.sessionmaker() as session:
            driver = await driver_connection(session)
            async with driver.transaction():
                await insert_new(driver, *key, fresh, timeout_s=timeout)
        if len(stored[0]) == 0:
            return fresh
        return await asyncio.to_thread(_merge, [stored, fresh])

    async def _fetch(self, plan: BulkPlan, start_ms: int, end_ms: int) -> Columns:
        rows_of = getattr(self.exchange, "closed_ohlcv_rows", None)
        if rows_of is not None:  # the sim: whole arrays, no pages
            return await asyncio.to_thread(
                lambda: _columns(rows_of(plan.symbol, plan.timeframe, start_ms, end_ms))
            )
        pages = await fetch_range(self.exchange, plan.symbol, plan.timeframe, start_ms, end_ms)
        return _columns(np.asarray(pages, dtype=np.float64).reshape(-1, 6))

"""Bulk history: a long range of closed candles, in weeks, read or filled window by window.

``GET /market/ohlcv/bulk`` answers a backtest's whole range in one response. History is
kept in weeks (Monday 00:00 UTC to the next Monday): once every candle of a week has
closed and the week has been filled from the exchange, it is **sealed**, stored as one
Arrow record batch in ``ohlcv_blocks``, and never fetched again. A sealed week costs
PostgreSQL one short row to read (about a tenth of the time of its rows in ``ohlcv_data``,
and no decoding in this service: the stored batch goes into the response as it is).

The range is cut into windows of at most ``ohlcv_bulk_window`` candles (whole weeks): a
run of sealed weeks is read with one query; a run of weeks not sealed yet is filled: the
rows ``ohlcv_data`` already holds for it (the paged route's, a backfill's) are read with one
COPY, the runs it lacks are fetched from the exchange (the sim builds them in whole
arrays, a ccxt exchange page by page), and the closed weeks are sealed. Only the week
still in progress goes the old way: its new closed candles are stored in ``ohlcv_data``
with one COPY. ``ohlcv_bulk_parallel`` windows are worked on at once (each on its own
connection), sent in order; memory stays at a few windows, and the first bytes leave
before the last window is filled.

Only closed candles are served: a backtest must not read a candle that is still forming.
The number crunching (decoding, encoding, the sim's path) runs on worker threads, so the
service keeps answering other requests while a big range streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict, deque
from collections.abc import AsyncGenerator, Iterator
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from market_service.exchanges import TIMEFRAME_MS, MarketExchange
from market_service.ohlcv.bulk_repository import (
    Block,
    driver_connection,
    insert_new,
    read_blocks,
    read_range,
    seal,
    sealed_weeks,
)
from market_service.ohlcv.copy_codec import Columns
from market_service.ohlcv.service import (
    WEEK_OFFSET_MS,
    bucket_ceil,
    bucket_floor,
    fetch_range,
    validate_market,
)
from market_service.settings import MarketSettings
from shared.candle_arrow import batch_columns, stream_batch
from shared.errors import ValidationFailed

WEEK_MS = 7 * 86_400_000


def week_floor(timestamp_ms: int) -> int:
    """Monday 00:00 UTC of the week holding ``timestamp_ms``."""
    return (timestamp_ms - WEEK_OFFSET_MS) // WEEK_MS * WEEK_MS + WEEK_OFFSET_MS


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


def _between(columns: Columns, start_ms: int, end_ms: int) -> Columns:
    """The candles opening in ``[start_ms, end_ms)`` (views)."""
    lo, hi = np.searchsorted(columns[0], [start_ms, end_ms])
    return tuple(column[lo:hi] for column in columns)  # type: ignore[return-value]


def _slice_batch(batch: bytes, start_ms: int, end_ms: int) -> bytes:
    part = _between(batch_columns(batch), start_ms, end_ms)  # type: ignore[arg-type]
    return stream_batch(part) if len(part[0]) else b""


@dataclass(frozen=True)
class Window:
    """Consecutive weeks of a plan, all sealed (read) or none (filled)."""

    weeks: tuple[int, ...]
    sealed: bool


@dataclass(frozen=True)
class BulkPlan:
    exchange: str
    symbol: str
    timeframe: str
    start_ms: int
    end_ms: int  # exclusive; the forming candle's open time at most
    closed_end_ms: int  # the forming candle's open time: weeks ending by then can be sealed
    windows: list[Window] = field(default_factory=list)

    @property
    def candles(self) -> int:
        return (self.end_ms - self.start_ms) // TIMEFRAME_MS[self.timeframe]

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.exchange, self.symbol, self.timeframe)


class BulkOhlcv:
    """Plans a range, then reads or fills it one window at a time."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        exchange: MarketExchange,
        settings: MarketSettings,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.exchange = exchange
        self.settings = settings
        # Where a request's time went, summed over its windows (worked on two at a time):
        # seconds in PostgreSQL reads, exchange fetches and writes, and weeks read/filled.
        self.spent: defaultdict[str, float] = defaultdict(float)

    @contextlib.contextmanager
    def _timed(self, name: str) -> Iterator[None]:
        clock = time.perf_counter()
        try:
            yield
        finally:
            self.spent[name] += time.perf_counter() - clock

    async def plan(
        self, symbol: str, timeframe: str, since_ms: int, until_ms: int | None
    ) -> BulkPlan:
        """Check the request, find its sealed weeks and cut it into windows (422/404 when
        the request is bad)."""
        await validate_market(self.exchange, symbol, timeframe)
        frame = TIMEFRAME_MS[timeframe]
        closed_end = bucket_floor(self.exchange.now_ms(), timeframe)
        if until_ms is not None and until_ms <= since_ms:
            raise _problem("until must be after since", "until")
        start = bucket_ceil(since_ms, timeframe)
        end = closed_end if until_ms is None else min(closed_end, bucket_ceil(until_ms, timeframe))
        end = max(start, end)
        count = (end - start) // frame
        limit = self.settings.ohlcv_bulk_max_candles
        if count > limit:
            raise _problem(
                f"the range holds {count} {timeframe} candles; at most {limit} in one request",
                "until",
            )
        plan = BulkPlan(self.exchange.id, symbol, timeframe, start, end, closed_end)
        if end <= start:
            return plan
        weeks = range(week_floor(start), end, WEEK_MS)
        async with self.sessionmaker() as session:
            driver = await driver_connection(session)
            sealed = await sealed_weeks(driver, plan.key, weeks[0], end)
        per_window = max(1, self.settings.ohlcv_bulk_window * frame // WEEK_MS)
        for week in weeks:
            is_sealed = week in sealed
            last = plan.windows[-1] if plan.windows else None
            if last is not None and last.sealed == is_sealed and len(last.weeks) < per_window:
                plan.windows[-1] = Window((*last.weeks, week), is_sealed)
            else:
                plan.windows.append(Window((week,), is_sealed))
        return plan

    async def windows(self, plan: BulkPlan) -> AsyncGenerator[list[bytes], None]:
        """Every window's record batches, in order, ``ohlcv_bulk_parallel`` worked on at
        once."""
        todo = iter(plan.windows)
        running: deque[asyncio.Task[list[bytes]]] = deque()

        def start_next() -> None:
            window = next(todo, None)
            if window is not None:
                work = self._read if window.sealed else self._fill
                running.append(asyncio.create_task(work(plan, window.weeks)))

        try:
            for _ in range(max(1, self.settings.ohlcv_bulk_parallel)):
                start_next()
            while running:
                batches = await running.popleft()
                start_next()
                yield batches
        finally:  # the client went away, or a window failed: stop the others
            for task in running:
                task.cancel()
            for task in running:
                with contextlib.suppress(BaseException):
                    await task

    async def _read(self, plan: BulkPlan, weeks: tuple[int, ...]) -> list[bytes]:
        """Sealed weeks as stored; the weeks at the ends of the range cut to it."""
        with self._timed("read_s"):
            async with self.sessionmaker() as session:
                driver = await driver_connection(session)
                blocks = await read_blocks(
                    driver,
                    plan.key,
                    weeks[0],
                    weeks[-1] + WEEK_MS,
                    timeout_s=self.settings.ohlcv_copy_timeout_s,
                )
        self.spent["weeks_read"] += len(blocks)
        if len(blocks) < len(weeks):  # unsealed since the plan was made (by hand): fill
            return await self._fill(plan, weeks)
        return await self._requested(plan, blocks)

    async def _requested(self, plan: BulkPlan, blocks: list[Block]) -> list[bytes]:
        out = []
        for week, count, batch in blocks:
            if count == 0:
                continue
            if plan.start_ms <= week and week + WEEK_MS <= plan.end_ms:
                out.append(batch)
            else:
                part = await asyncio.to_thread(_slice_batch, batch, plan.start_ms, plan.end_ms)
                if part:
                    out.append(part)
        return out

    async def _fill(self, plan: BulkPlan, weeks: tuple[int, ...]) -> list[bytes]:
        """Weeks not sealed yet: the closed ones filled and sealed whole, the week in
        progress (the last of a range ending now, if any) up to the range's end, its new
        candles stored as rows."""
        timeout = self.settings.ohlcv_copy_timeout_s
        frame = TIMEFRAME_MS[plan.timeframe]
        closed = [week for week in weeks if week + WEEK_MS <= plan.closed_end_ms]
        # The buckets opening in these weeks (a 3-day bucket need not open on a Monday).
        start = bucket_ceil(weeks[0] if closed else max(weeks[0], plan.start_ms), plan.timeframe)
        end = plan.end_ms if len(closed) < len(weeks) else closed[-1] + WEEK_MS
        end = bucket_ceil(end, plan.timeframe)
        with self._timed("read_s"):
            async with self.sessionmaker() as session:
                driver = await driver_connection(session)
                stored = await read_range(driver, plan.key, start, end, timeout_s=timeout)
        # No connection is held while the exchange answers (a ccxt range takes many calls).
        runs = missing_runs(stored[0], start, end, frame)
        with self._timed("exchange_s"):
            fetched = [await fetch_columns(self.exchange, *plan.key[1:], lo, hi) for lo, hi in runs]
        parts = [part for part in (stored, *fetched) if len(part[0])]
        candles = (
            await asyncio.to_thread(_merge, parts) if len(parts) > 1 else (parts or [stored])[0]
        )
        blocks = await asyncio.to_thread(_blocks, candles, closed)
        open_week = [
            _between(part, closed[-1] + WEEK_MS if closed else start, end) for part in fetched
        ]
        new_rows = [part for part in open_week if len(part[0])]
        with self._timed("store_s"):
            async with self.sessionmaker() as session:
                driver = await driver_connection(session)
                async with driver.transaction():
                    await seal(driver, plan.key, blocks, timeout_s=timeout)
                    for part in new_rows:
                        await insert_new(driver, plan.key, part, timeout_s=timeout)
        self.spent["weeks_sealed"] += len(blocks)
        out = await self._requested(plan, blocks)
        if len(closed) < len(weeks):
            part = _between(candles, max(weeks[-1], plan.start_ms), plan.end_ms)
            if len(part[0]):
                out.append(await asyncio.to_thread(stream_batch, part))
        return out


async def fetch_columns(
    exchange: MarketExchange, symbol: str, timeframe: str, start_ms: int, end_ms: int
) -> Columns:
    """Closed candles opening in ``[start_ms, end_ms)`` from the exchange, as columns: the
    sim builds them in whole arrays (on a worker thread), a ccxt exchange pages."""
    rows_of = getattr(exchange, "closed_ohlcv_rows", None)
    if rows_of is not None:
        return await asyncio.to_thread(
            lambda: _columns(rows_of(symbol, timeframe, start_ms, end_ms))
        )
    pages = await fetch_range(exchange, symbol, timeframe, start_ms, end_ms)
    return _columns(np.asarray(pages, dtype=np.float64).reshape(-1, 6))


def _blocks(candles: Columns, weeks: list[int]) -> list[Block]:
    """``(week, candles, record batch)`` of each of ``weeks`` (an empty week included: it
    is sealed too, so a span the exchange has nothing for is not asked again)."""
    out = []
    for week in weeks:
        part = _between(candles, week, week + WEEK_MS)
        out.append((week, len(part[0]), stream_batch(part)))
    return out

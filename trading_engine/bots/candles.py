"""Closed candles per (exchange, symbol, timeframe), shared by every bot of a replica:
history fetched once from the market service, then extended by each
``market.data.updated`` candle (refetched on a gap). The higher timeframes the bots'
strategies read are kept beside them (range reads of the market's stored history, one
more each time a higher candle closes) and handed to a strategy with the candles, each
visible from the close of the candle it closed on (docs/trading.md, several timeframes)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from shared.candles import Candles
from shared.errors import DependencyUnavailable
from shared.resample import attach, bucket_open
from shared.strategies import TradingSignal, TradingStrategy
from trading_engine.market_client import MarketClient

MARKET_PAGE = 5000  # the most candles the market service answers at once
_UNIT_MS = {"m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def timeframe_ms(timeframe: str) -> int:
    return int(timeframe[:-1]) * _UNIT_MS[timeframe[-1]]


@dataclass(frozen=True)
class CandleKey:
    exchange: str
    symbol: str
    timeframe: str

    @property
    def member(self) -> str:
        return f"{self.exchange}|{self.symbol}|{self.timeframe}"

    @classmethod
    def parse(cls, member: str) -> CandleKey:
        exchange, symbol, timeframe = member.split("|")
        return cls(exchange, symbol, timeframe)


class CandleBook:
    def __init__(self, market: MarketClient, *, keep: int = 500) -> None:
        self.market = market
        self.keep = keep
        self._rows: dict[CandleKey, list[list[float]]] = {}
        self._locks: dict[CandleKey, asyncio.Lock] = {}
        self._frames: dict[CandleKey, tuple[tuple[int, int, float], Candles]] = {}
        self._signals: dict[CandleKey, dict[tuple[str, str], TradingSignal]] = {}
        self._signal_marker: dict[CandleKey, tuple[CandleKey, int, int, float]] = {}
        self._higher: dict[CandleKey, list[list[float]]] = {}
        self._higher_frames: dict[CandleKey, tuple[tuple[int, int], Candles]] = {}
        self._higher_checked: dict[CandleKey, int] = {}  # newest closed candle asked for

    def frame(self, key: CandleKey, rows: list[list[float]], index: int) -> Candles:
        """``rows[: index + 1]`` as arrays, built once per candle for all bots of a market."""
        if index != len(rows) - 1:
            return Candles.from_rows(rows[: index + 1])
        marker = (int(rows[index][0]), len(rows), rows[index][4])
        cached = self._frames.get(key)
        if cached is not None and cached[0] == marker:
            return cached[1]
        frame = Candles.from_rows(rows)
        self._frames[key] = (marker, frame)
        return frame

    def signal(
        self, key: CandleKey, rows: list[list[float]], index: int, strategy: TradingStrategy
    ) -> TradingSignal:
        """The strategy's signal on ``rows[index]``; bots of one market with the same
        strategy and parameters share one computation per candle."""
        if index != len(rows) - 1:
            past = Candles.from_rows(rows[: index + 1])
            return strategy.generate_signal(self.with_higher(key, past, strategy))
        frame = self.frame(key, rows, index)
        marker = (key, int(rows[index][0]), len(rows), rows[index][4])
        if self._signal_marker.get(key) != marker:
            self._signal_marker[key] = marker
            self._signals[key] = {}
        config = (strategy.name, strategy.params.model_dump_json())
        cached = self._signals[key].get(config)
        if cached is None:
            cached = strategy.generate_signal(self.with_higher(key, frame, strategy))
            self._signals[key][config] = cached
        return cached

    def with_higher(self, key: CandleKey, frame: Candles, strategy: TradingStrategy) -> Candles:
        """``frame`` carrying the book's candles of the higher timeframes ``strategy``
        reads (one the book lacks is aggregated from ``frame`` by the strategy)."""
        loaded: dict[str, Candles] = {}
        for timeframe in strategy.higher_timeframes():
            higher_key = CandleKey(key.exchange, key.symbol, timeframe)
            rows = self._higher.get(higher_key)
            if rows:
                marker = (int(rows[-1][0]), len(rows))
                cached = self._higher_frames.get(higher_key)
                if cached is None or cached[0] != marker:
                    cached = (marker, Candles.from_rows(rows))
                    self._higher_frames[higher_key] = cached
                loaded[timeframe] = cached[1]
        return attach(frame, loaded, timeframe_ms(key.timeframe)) if loaded else frame

    async def load_higher(
        self, key: CandleKey, candle: list[float], needs: Mapping[str, int]
    ) -> None:
        """Have the higher candles closed by ``candle``'s close, at least ``needs[tf]`` of
        each when the market has them. Until the market has the newest one
        :class:`CandlesMissing` is raised (the bot waits and retries, as for its own
        candles)."""
        close_ms = int(candle[0]) + timeframe_ms(key.timeframe)
        for timeframe, count in needs.items():
            await self._load_higher(CandleKey(key.exchange, key.symbol, timeframe), close_ms, count)

    async def _load_higher(self, key: CandleKey, close_ms: int, count: int) -> None:
        step = timeframe_ms(key.timeframe)
        # The newest candle closed by close_ms: the one holding the moment a frame earlier.
        newest = int(bucket_open(np.array([close_ms - step], dtype=np.int64), key.timeframe)[0])
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            rows = self._higher.get(key, [])
            keep = max(self.keep, count + 1)
            if rows and rows[-1][0] >= newest and rows[0][0] <= newest - (count - 1) * step:
                return
            if key in self._higher_checked and self._higher_checked[key] >= newest:
                return  # read after ``newest`` closed: the market has nothing older
            if rows and rows[0][0] <= newest - (count - 1) * step and rows[-1][0] < newest:
                since = int(rows[-1][0]) + step  # the candles closed since the last read
            else:
                rows, since = [], newest - (keep - 1) * step
            limit = min(MARKET_PAGE, (newest - since) // step + 1)
            fetched = await self.market.ohlcv(
                key.exchange, key.symbol, key.timeframe, limit, since=since
            )
            # A range read may end with the candle still forming: never kept, but it shows
            # the market is past ``newest``, so a missing ``newest`` never existed (the
            # market's history starts later, or nothing traded then).
            rows = rows + [r for r in fetched if since <= r[0] <= newest]
            later = any(r[0] > newest for r in fetched)
            if (not rows or rows[-1][0] != newest) and not later:
                raise CandlesMissing(key, newest, newest + step)
            del rows[: max(0, len(rows) - keep)]
            self._higher[key] = rows
            self._higher_checked[key] = newest

    async def window(self, key: CandleKey, candle: list[float], need: int) -> list[list[float]]:
        """Consecutive closed candles up to and including ``candle`` (at least ``need`` when
        the market has them). The recent history the market service answers may be
        cached and end short of ``candle``: the missing range is fetched from its stored
        history, and while candles are still missing :class:`CandlesMissing` is raised
        (the bot waits and retries at the next candle or sync), so a window never spans
        a gap."""
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            rows = self._rows.get(key, [])
            step = timeframe_ms(key.timeframe)
            keep = max(self.keep, need + 1)
            ts = candle[0]
            if rows and ts < rows[-1][0]:
                upto = [r for r in rows if r[0] <= ts]
                if len(upto) >= need and upto[-1][0] == ts:
                    return upto
                rows = []
            elif rows and rows[-1][0] == ts:
                rows = rows[:-1]
            if rows and ts - rows[-1][0] > step:
                rows = rows + await self._between(key, rows[-1][0], ts, step)
            if len(rows) + 1 < need or (rows and ts - rows[-1][0] != step):
                fetched = await self.market.ohlcv(key.exchange, key.symbol, key.timeframe, keep)
                rows = consecutive_tail([r for r in fetched if r[0] < ts], step)
                if rows and ts - rows[-1][0] > step:
                    rows = rows + await self._between(key, rows[-1][0], ts, step)
            if rows and ts - rows[-1][0] != step:
                raise CandlesMissing(key, int(rows[-1][0]) + step, int(ts))
            rows.append(candle)
            del rows[: max(0, len(rows) - keep)]
            self._rows[key] = rows
            return list(rows)  # a copy: the next candle extends the book's own list

    async def _between(
        self, key: CandleKey, after: float, before: float, step: int
    ) -> list[list[float]]:
        """The closed candles strictly between ``after`` and ``before`` (a range read),
        as far as they are consecutive from ``after`` on."""
        count = int((before - after) // step) - 1
        fetched = await self.market.ohlcv(
            key.exchange, key.symbol, key.timeframe, count, since=int(after) + step
        )
        out: list[list[float]] = []
        expected = after + step
        for row in fetched:
            if row[0] >= before or row[0] != expected:
                break
            out.append(row)
            expected += step
        return out


class CandlesMissing(DependencyUnavailable):
    """The market service does not have the candles between a bot's history and the
    closed candle yet: the bot waits for them (retried at the next candle or sync)."""

    def __init__(self, key: CandleKey, first: int, before: int) -> None:
        super().__init__(
            f"Candles of {key.member} from {first} to {before} (epoch ms) are missing; "
            "waiting for them.",
        )


def consecutive_tail(rows: list[list[float]], step: int) -> list[list[float]]:
    """The longest run at the end of ``rows`` in which each candle follows the one before."""
    start = len(rows) - 1
    while start > 0 and rows[start][0] - rows[start - 1][0] == step:
        start -= 1
    return rows[max(start, 0) :]

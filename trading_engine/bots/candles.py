"""Closed candles per (exchange, symbol, timeframe), shared by every bot of a replica:
history fetched once from the market service, then extended by each
``market.data.updated`` candle (refetched on a gap)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from shared.candles import Candles
from shared.errors import DependencyUnavailable
from shared.strategies import TradingSignal, TradingStrategy
from trading_engine.market_client import MarketClient

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
            return strategy.generate_signal(Candles.from_rows(rows[: index + 1]))
        frame = self.frame(key, rows, index)
        marker = (key, int(rows[index][0]), len(rows), rows[index][4])
        if self._signal_marker.get(key) != marker:
            self._signal_marker[key] = marker
            self._signals[key] = {}
        config = (strategy.name, strategy.params.model_dump_json())
        cached = self._signals[key].get(config)
        if cached is None:
            cached = strategy.generate_signal(frame)
            self._signals[key][config] = cached
        return cached

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

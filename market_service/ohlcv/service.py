"""OHLCV: recent candles from the cache, ranges from PostgreSQL, gaps from the exchange.

A range request (``since``) reads the stored closed candles first; each run of missing
buckets is fetched from the exchange, paginated past its per-call limit, and stored
(upsert), so the next request for the same range makes no exchange call.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from market_service.exchanges import TIMEFRAME_MS, BadTimeframe, Candle, MarketExchange
from market_service.ohlcv import repository
from market_service.ohlcv.cache import OhlcvCache, ohlcv_key
from market_service.settings import MarketSettings
from market_service.singleflight import SingleFlight

WEEK_OFFSET_MS = 4 * 86_400_000  # the epoch was a Thursday; weekly candles open on Monday


def bucket_floor(timestamp_ms: int, timeframe: str) -> int:
    """The open time of the candle containing ``timestamp_ms``."""
    tf = TIMEFRAME_MS[timeframe]
    offset = WEEK_OFFSET_MS if timeframe == "1w" else 0
    return (timestamp_ms - offset) // tf * tf + offset


def bucket_ceil(timestamp_ms: int, timeframe: str) -> int:
    floor = bucket_floor(timestamp_ms, timeframe)
    return floor if floor == timestamp_ms else floor + TIMEFRAME_MS[timeframe]


def missing_runs(
    stored: list[Candle], start_ms: int, end_ms: int, tf_ms: int
) -> list[tuple[int, int]]:
    """Runs ``[from, to)`` of bucket open times in the range that ``stored`` lacks."""
    have = {int(c[0]) for c in stored}
    runs: list[tuple[int, int]] = []
    run_start: int | None = None
    ts = start_ms
    while ts < end_ms:
        if ts not in have and run_start is None:
            run_start = ts
        elif ts in have and run_start is not None:
            runs.append((run_start, ts))
            run_start = None
        ts += tf_ms
    if run_start is not None:
        runs.append((run_start, end_ms))
    return runs


async def fetch_range(
    exchange: MarketExchange, symbol: str, timeframe: str, start_ms: int, end_ms: int
) -> list[Candle]:
    """Candles opening in ``[start_ms, end_ms)``, paginated past the per-call limit."""
    tf = TIMEFRAME_MS[timeframe]
    out: list[Candle] = []
    cursor = start_ms
    while cursor < end_ms:
        wanted = min(exchange.ohlcv_page_limit, -(-(end_ms - cursor) // tf))
        page = await exchange.fetch_ohlcv(symbol, timeframe, cursor, wanted)
        page = [c for c in page if cursor <= c[0] < end_ms]
        if not page:
            break
        out.extend(page)
        cursor = int(page[-1][0]) + tf
    return out


async def validate_market(exchange: MarketExchange, symbol: str, timeframe: str) -> None:
    """Raise BadTimeframe / BadSymbol unless ``exchange`` offers both."""
    if timeframe not in exchange.timeframes or timeframe not in TIMEFRAME_MS:
        offered = [t for t in exchange.timeframes if t in TIMEFRAME_MS]
        raise BadTimeframe(
            f"Timeframe {timeframe!r} is not offered by {exchange.id!r}; use one of "
            f"{', '.join(offered)}."
        )
    await exchange.market(symbol)


class OhlcvService:
    """The original design's ``fetch_crypto_ohlcv`` with history and pagination."""

    def __init__(
        self,
        session: AsyncSession,
        cache: OhlcvCache,
        exchange: MarketExchange,
        flights: SingleFlight,
        settings: MarketSettings,
    ) -> None:
        self.session = session
        self.cache = cache
        self.exchange = exchange
        self.flights = flights
        self.settings = settings

    async def validate(self, symbol: str, timeframe: str) -> None:
        await validate_market(self.exchange, symbol, timeframe)

    async def fetch_crypto_ohlcv(
        self, symbol: str, timeframe: str, limit: int, since: int | None = None
    ) -> list[Candle]:
        """``limit`` candles from ``since`` (or the most recent ones), oldest first."""
        await self.validate(symbol, timeframe)
        if since is None:
            return await self._recent(symbol, timeframe, limit)
        return await self._range(symbol, timeframe, since, limit)

    async def _recent(self, symbol: str, timeframe: str, limit: int) -> list[Candle]:
        ex = self.exchange.id
        cached = await self.cache.recent(ex, symbol, timeframe, limit)
        if cached is not None:
            return cached
        tf = TIMEFRAME_MS[timeframe]
        now = self.exchange.now_ms()
        keep = max(limit, min(200, self.settings.ohlcv_cache_length))

        async def fetch() -> list[Candle]:
            start = bucket_floor(now, timeframe) - (keep - 1) * tf
            candles = await fetch_range(self.exchange, symbol, timeframe, start, now + 1)
            await self.cache.put(
                ex,
                symbol,
                timeframe,
                candles,
                ttl_seconds=self.settings.ohlcv_ttl_seconds,
                max_length=max(keep, self.settings.ohlcv_cache_length),
            )
            return candles

        candles = await self.flights.do(f"{ohlcv_key(ex, symbol, timeframe)}:{keep}", fetch)
        await self._store_closed(symbol, timeframe, candles, now)
        return candles[-limit:]

    async def _range(self, symbol: str, timeframe: str, since: int, limit: int) -> list[Candle]:
        tf = TIMEFRAME_MS[timeframe]
        now = self.exchange.now_ms()
        start = bucket_ceil(since, timeframe)
        end = start + limit * tf
        closed_end = min(end, bucket_floor(now, timeframe))  # buckets before the forming one
        stored = await repository.select_candles(
            self.session, self.exchange.id, symbol, timeframe, start, closed_end
        )
        fetched: list[Candle] = []
        for run_start, run_end in missing_runs(stored, start, closed_end, tf):
            fetched.extend(await fetch_range(self.exchange, symbol, timeframe, run_start, run_end))
        if fetched:
            await self._store_closed(symbol, timeframe, fetched, now)
        forming: list[Candle] = []
        if end > closed_end and closed_end < now:
            forming = await fetch_range(
                self.exchange, symbol, timeframe, max(closed_end, start), min(end, now + 1)
            )
        merged = {int(c[0]): c for c in [*stored, *fetched, *forming]}
        return [merged[ts] for ts in sorted(merged)][:limit]

    async def _store_closed(
        self, symbol: str, timeframe: str, candles: list[Candle], now_ms: int
    ) -> None:
        tf = TIMEFRAME_MS[timeframe]
        closed = [c for c in candles if c[0] + tf <= now_ms]
        if closed:
            await repository.upsert_candles(
                self.session, self.exchange.id, symbol, timeframe, closed
            )

"""Tickers: cache first, one exchange call per key on a miss (single-flight)."""

from __future__ import annotations

import asyncio

from market_service.exchanges import ExchangeRegistry, Ticker
from market_service.settings import MarketSettings
from market_service.singleflight import SingleFlight
from market_service.tickers.cache import TickerCache, ticker_key


class TickerService:
    """The original design's ``fetch_crypto_price`` / ``fetch_crypto_prices``."""

    def __init__(
        self,
        cache: TickerCache,
        registry: ExchangeRegistry,
        flights: SingleFlight,
        settings: MarketSettings,
    ) -> None:
        self.cache = cache
        self.registry = registry
        self.flights = flights
        self.settings = settings

    async def fetch_crypto_price(
        self, symbol: str, base: str | None = None, *, exchange: str | None = None
    ) -> Ticker:
        """The ticker of ``symbol`` (``BTC/USDT``, or ``BTC`` with ``base="USDT"``)."""
        if base and "/" not in symbol:
            symbol = f"{symbol}/{base}"
        venue = self.registry.get(exchange)
        symbol = symbol.upper()
        cached = await self.cache.get(venue.id, symbol)
        if cached is not None:
            return cached

        async def fetch() -> Ticker:
            ticker = await venue.fetch_ticker(symbol)
            await self.cache.put(ticker, self.settings.ticker_ttl_seconds)
            return ticker

        return await self.flights.do(ticker_key(venue.id, symbol), fetch)

    async def fetch_crypto_prices(
        self, pairs: list[str], *, exchange: str | None = None
    ) -> list[Ticker]:
        """Tickers of many symbols, fetched concurrently."""
        return list(
            await asyncio.gather(*(self.fetch_crypto_price(p, exchange=exchange) for p in pairs))
        )

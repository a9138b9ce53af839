"""ccxt-backed exchanges (binance, gate, mexc) through ccxt's async API.

Every read goes through the same three layers: ccxt errors are translated into
:mod:`shared.exchange_errors` and :mod:`market_service.exchanges.errors` here at the
boundary; temporary ones (network, timeout, 429) are retried with tenacity (exponential
back-off, bounded); and a circuit breaker per exchange counts what is left, so a dead
exchange answers 503 at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import ccxt
import ccxt.async_support as ccxt_async
import ccxt.pro as ccxt_pro
import structlog
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from market_service.exchanges.base import Candle, OrderBook, Ticker, Trade
from market_service.exchanges.errors import BadRequestToExchange, BadSymbol, BadTimeframe
from shared.breaker import BreakerState, CircuitBreaker, CircuitOpenError
from shared.exchange_errors import ExchangeError, ExchangeRateLimited, ExchangeUnavailable

T = TypeVar("T")
log = structlog.get_logger("exchange")

# Venue capabilities as data: ccxt options per exchange (spot markets only; otherwise ccxt
# also calls the futures endpoints) and the most candles one OHLCV call returns.
VENUES: dict[str, dict[str, Any]] = {
    "binance": {"options": {"fetchMarkets": {"types": ["spot"]}}, "ohlcv_page_limit": 1000},
    "gate": {"options": {"fetchMarkets": {"types": ["spot"]}}, "ohlcv_page_limit": 1000},
    "mexc": {"options": {"fetchMarkets": {"types": {"spot": True}}}, "ohlcv_page_limit": 1000},
}


def translate(exc: Exception, exchange: str) -> ExchangeError:
    """A ccxt exception as one of ours (the order matters: subclasses first)."""
    text = str(exc)[:300]
    if isinstance(exc, ccxt.BadSymbol):
        return BadSymbol(f"Unknown symbol on exchange {exchange!r}: {text}")
    if isinstance(exc, ccxt.RateLimitExceeded | ccxt.DDoSProtection):
        return ExchangeRateLimited(f"Exchange {exchange!r} is rate limiting us; retry later.")
    if isinstance(exc, ccxt.NetworkError):  # timeouts, maintenance, connection errors
        return ExchangeUnavailable(f"Exchange {exchange!r} is unreachable: {type(exc).__name__}.")
    if isinstance(exc, ccxt.BadRequest | ccxt.ArgumentsRequired):
        return BadRequestToExchange(f"Exchange {exchange!r} refused the request: {text}")
    return ExchangeError(f"Exchange {exchange!r} failed: {type(exc).__name__}.")


def override_api_urls(urls: Any, base: str) -> Any:
    """Every URL in ccxt's ``urls['api']`` with its scheme and host replaced by ``base``."""
    if isinstance(urls, dict):
        return {key: override_api_urls(value, base) for key, value in urls.items()}
    if isinstance(urls, str) and urls.startswith("http"):
        target = urlsplit(base)
        parts = urlsplit(urls)
        path = target.path.rstrip("/") + parts.path
        return urlunsplit((target.scheme, target.netloc, path, parts.query, ""))
    return urls


class CcxtExchange:
    """One ccxt exchange, public market data only."""

    def __init__(
        self,
        exchange_id: str,
        *,
        timeout_ms: int = 10_000,
        rate_limit: bool = True,
        retry_attempts: int = 3,
        retry_wait_min: float = 4.0,
        retry_wait_max: float = 10.0,
        breaker: CircuitBreaker | None = None,
        base_url: str | None = None,
        markets_ttl: float = 3600.0,
        use_streams: bool = True,
    ) -> None:
        venue = VENUES[exchange_id]
        self.id = exchange_id
        self.client: Any = getattr(ccxt_async, exchange_id)(
            {
                "enableRateLimit": rate_limit,
                "timeout": timeout_ms,
                "options": dict(venue["options"]),
            }
        )
        # Only public data is read: skip the currency list (a private endpoint on some venues).
        self.client.has = {**self.client.has, "fetchCurrencies": False}
        if base_url:
            self.client.urls = {
                **self.client.urls,
                "api": override_api_urls(self.client.urls["api"], base_url),
            }
        self.timeframes: list[str] = list(self.client.timeframes or {})
        self.ohlcv_page_limit: int = venue["ohlcv_page_limit"]
        self.breaker = breaker or CircuitBreaker(f"exchange:{exchange_id}")
        self._retry_attempts = retry_attempts
        self._wait_min = retry_wait_min
        self._wait_max = max(retry_wait_max, retry_wait_min)
        self._markets_ttl = markets_ttl
        self._markets_at = 0.0
        self._markets_lock = asyncio.Lock()
        # A REST stub has no streams; otherwise stream when ccxt.pro can for this venue.
        self._use_streams = (
            use_streams
            and not base_url
            and bool(getattr(ccxt_pro, exchange_id)().has.get("watchTicker"))
        )
        self._stream_client: Any = None

    def now_ms(self) -> int:
        return int(time.time() * 1000)

    def clock_rate(self) -> None:
        return None

    def is_available(self) -> bool:
        return self.breaker.state is not BreakerState.OPEN

    async def _read(self, call: Callable[[], Awaitable[T]]) -> T:
        """One exchange read: translated, retried while temporary, through the breaker."""

        async def translated() -> T:
            try:
                return await call()
            except ccxt.BaseError as exc:
                raise translate(exc, self.id) from exc

        async def retried() -> T:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(self._retry_attempts),
                wait=wait_exponential(multiplier=1, min=self._wait_min, max=self._wait_max),
                retry=retry_if_exception_type(ExchangeUnavailable),
                reraise=True,
            ):
                with attempt:
                    return await translated()
            raise AssertionError("unreachable")  # pragma: no cover - reraise=True

        try:
            return await self.breaker.call(
                retried,
                is_failure=lambda exc: (
                    isinstance(exc, ExchangeError)
                    and not isinstance(exc, BadSymbol | BadTimeframe | BadRequestToExchange)
                ),
            )
        except CircuitOpenError as exc:
            raise ExchangeUnavailable(
                f"Exchange {self.id!r} is unavailable (circuit open); retry later.",
                retry_after=max(1, int(exc.retry_after + 0.999)),
            ) from exc

    async def load_markets(self, *, reload: bool = False) -> dict[str, dict[str, Any]]:
        """Spot markets, loaded once and refreshed after ``markets_ttl``."""
        fresh = time.monotonic() - self._markets_at < self._markets_ttl
        if self.client.markets and fresh and not reload:
            return dict(self.client.markets)
        async with self._markets_lock:
            fresh = time.monotonic() - self._markets_at < self._markets_ttl
            if not (self.client.markets and fresh and not reload):
                await self._read(lambda: self.client.load_markets(reload=True))
                self._markets_at = time.monotonic()
        return {s: m for s, m in self.client.markets.items() if m.get("spot", True)}

    async def market(self, symbol: str) -> dict[str, Any]:
        markets = await self.load_markets()
        found = markets.get(symbol)
        if found is None:
            raise BadSymbol(f"Unknown symbol {symbol!r} on exchange {self.id!r}.")
        return found

    def check_timeframe(self, timeframe: str) -> None:
        if timeframe not in self.timeframes:
            raise BadTimeframe(
                f"Timeframe {timeframe!r} is not offered by {self.id!r}; use one of "
                f"{', '.join(self.timeframes)}."
            )

    async def fetch_ticker(self, symbol: str) -> Ticker:
        await self.market(symbol)
        raw = await self._read(lambda: self.client.fetch_ticker(symbol))
        return self._ticker(symbol, raw)

    def _ticker(self, symbol: str, raw: dict[str, Any]) -> Ticker:
        price = raw.get("last") or raw.get("close")
        if price is None:
            raise ExchangeUnavailable(f"Exchange {self.id!r} sent a ticker without a price.")
        return Ticker(
            exchange=self.id,
            symbol=symbol,
            price=float(price),
            bid=_float(raw.get("bid")),
            ask=_float(raw.get("ask")),
            volume=_float(raw.get("baseVolume")),
            change=_float(raw.get("percentage")),
            timestamp_ms=int(raw.get("timestamp") or self.now_ms()),
        )

    async def fetch_ohlcv(
        self, symbol: str, timeframe: str, since: int | None, limit: int
    ) -> list[Candle]:
        self.check_timeframe(timeframe)
        await self.market(symbol)
        limit = min(limit, self.ohlcv_page_limit)
        rows = await self._read(lambda: self.client.fetch_ohlcv(symbol, timeframe, since, limit))
        return [[float(v) if v is not None else 0.0 for v in row[:6]] for row in rows]

    async def fetch_order_book(self, symbol: str, depth: int) -> OrderBook:
        await self.market(symbol)
        raw = await self._read(lambda: self.client.fetch_order_book(symbol, _book_limit(depth)))
        return OrderBook(
            exchange=self.id,
            symbol=symbol,
            bids=[[float(p), float(a)] for p, a, *_ in raw["bids"][:depth]],
            asks=[[float(p), float(a)] for p, a, *_ in raw["asks"][:depth]],
            timestamp_ms=int(raw.get("timestamp") or self.now_ms()),
        )

    async def fetch_trades(self, symbol: str, limit: int) -> list[Trade]:
        await self.market(symbol)
        raw = await self._read(lambda: self.client.fetch_trades(symbol, None, limit))
        return [
            Trade(
                str(t["id"]),
                int(t["timestamp"]),
                str(t["side"]),
                float(t["price"]),
                float(t["amount"]),
            )
            for t in raw
        ]

    @property
    def can_watch(self) -> bool:
        """Whether ccxt.pro streams tickers for this venue (and streaming is enabled)."""
        return self._use_streams

    async def watch_ticker(self, symbol: str) -> Ticker:
        """The next ticker update over the exchange's WebSocket (ccxt.pro)."""
        if self._stream_client is None:
            self._stream_client = getattr(ccxt_pro, self.id)(
                {"enableRateLimit": True, "options": dict(VENUES[self.id]["options"])}
            )
            self._stream_client.markets = self.client.markets
            self._stream_client.markets_by_id = self.client.markets_by_id
        try:
            raw = await self._stream_client.watch_ticker(symbol)
        except ccxt.BaseError as exc:
            raise translate(exc, self.id) from exc
        return self._ticker(symbol, raw)

    async def close(self) -> None:
        if self._stream_client is not None:
            await self._stream_client.close()
        await self.client.close()


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _book_limit(depth: int) -> int:
    # Binance accepts only these depths; the others take any value and we cut after.
    for allowed in (5, 10, 20, 50, 100, 500, 1000, 5000):
        if depth <= allowed:
            return allowed
    return 5000

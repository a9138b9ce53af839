"""The live broker: ccxt (async) with the user's decrypted keys.

Order creation is sent exactly once, never retried automatically (a timeout leaves the
order ``open`` and the poller asks the venue by client order id). Reads (markets, order
status, tickers) are retried with tenacity on network errors. ccxt's error classes are
translated here into :mod:`shared.exchange_errors`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any, TypeVar

import ccxt.async_support as ccxt
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from shared.breaker import CircuitBreaker, CircuitOpenError
from shared.exchange_errors import (
    ExchangeAuthError,
    ExchangeError,
    ExchangeInsufficientFunds,
    ExchangeUnavailable,
    InvalidOrder,
)
from trading_engine.market_client import MarketRules, parse_market
from trading_engine.models import Order
from trading_engine.user_client import ExchangeCredentials

T = TypeVar("T")


def translate(exc: Exception) -> ExchangeError:
    """A ccxt error as the engine's own (4xx for the order, 503 for the venue)."""
    if isinstance(exc, ccxt.InsufficientFunds):
        return ExchangeInsufficientFunds(f"The exchange refused the order: {exc}")
    if isinstance(exc, ccxt.AuthenticationError | ccxt.PermissionDenied | ccxt.AccountSuspended):
        return ExchangeAuthError(f"The exchange refused the API key: {exc}")
    if isinstance(exc, ccxt.OrderNotFound):  # before its base class, ccxt.InvalidOrder
        return InvalidOrder(f"The exchange does not know the order: {exc}")
    if isinstance(exc, ccxt.InvalidOrder | ccxt.BadSymbol | ccxt.BadRequest):
        return InvalidOrder(f"The exchange refused the order: {exc}")
    # Network trouble, "operation failed", exchange-side errors we cannot attribute to
    # the order: the venue is the problem, so a 503 the caller may retry later.
    return ExchangeUnavailable(f"The exchange is unavailable: {exc}", retry_after=5)


class LiveBroker:
    """ccxt clients per (exchange, api key), kept open for the engine's lifetime."""

    def __init__(self, url_overrides: dict[str, str] | None = None) -> None:
        self._urls = url_overrides or {}
        self._clients: dict[tuple[str, str], Any] = {}
        self._lock = asyncio.Lock()
        self._breakers: dict[str, CircuitBreaker] = {}

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()

    async def _client(self, credentials: ExchangeCredentials) -> Any:
        key = (credentials.exchange, credentials.api_key)
        async with self._lock:
            client = self._clients.get(key)
            if client is None:
                exchange_class = getattr(ccxt, credentials.exchange, None)
                if exchange_class is None:
                    raise InvalidOrder(f"Live trading on {credentials.exchange} is not supported.")
                config: dict[str, Any] = {
                    "apiKey": credentials.api_key,
                    "secret": credentials.api_secret,
                    "enableRateLimit": True,
                    "options": {
                        "defaultType": "spot",
                        "fetchMarkets": {"types": ["spot"]},
                        "fetchCurrencies": False,
                        "fetchMargins": False,
                        "adjustForTimeDifference": False,
                    },
                }
                if credentials.passphrase:
                    config["password"] = credentials.passphrase
                client = exchange_class(config)
                base = self._urls.get(credentials.exchange)
                if base:
                    api = dict(client.urls["api"])
                    for name in ("public", "private"):
                        api[name] = base.rstrip("/") + "/api/v3"
                    client.urls["api"] = api
                self._clients[key] = client
            return client

    def _breaker(self, exchange: str) -> CircuitBreaker:
        breaker = self._breakers.get(exchange)
        if breaker is None:
            breaker = CircuitBreaker(f"trading->{exchange}", failure_threshold=5, reset_timeout=15)
            self._breakers[exchange] = breaker
        return breaker

    async def _call(self, exchange: str, fn: Callable[[], Awaitable[T]], *, retry: bool) -> T:
        def is_failure(exc: BaseException) -> bool:
            return isinstance(exc, ccxt.OperationFailed | ccxt.ExchangeNotAvailable)

        async def attempt_all() -> T:
            if not retry:
                return await fn()
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(3),
                wait=wait_exponential(multiplier=0.2, min=0.2, max=2.0),
                retry=retry_if_exception_type(ccxt.NetworkError),
                reraise=True,
            ):
                with attempt:
                    return await fn()
            raise AssertionError("unreachable")  # pragma: no cover

        try:
            return await self._breaker(exchange).call(attempt_all, is_failure=is_failure)
        except CircuitOpenError as exc:
            raise ExchangeUnavailable(
                f"{exchange} is failing; retry later.", retry_after=max(1, int(exc.retry_after))
            ) from exc
        except ccxt.BaseError as exc:
            raise translate(exc) from exc

    async def connection_exchange(self, credentials: ExchangeCredentials) -> bool:
        """Can we reach the venue and do the keys work? (The original design's name.)"""
        client = await self._client(credentials)
        try:
            await self._call(credentials.exchange, client.fetch_balance, retry=True)
        except (ExchangeUnavailable, ExchangeAuthError):
            return False
        return True

    async def rules(self, credentials: ExchangeCredentials, symbol: str) -> MarketRules:
        client = await self._client(credentials)
        markets = await self._call(credentials.exchange, client.load_markets, retry=True)
        market = markets.get(symbol)
        if market is None:
            raise InvalidOrder(f"{symbol} is not traded on {credentials.exchange}.")
        return parse_market(market)

    async def last_price(self, credentials: ExchangeCredentials, symbol: str) -> Decimal | None:
        client = await self._client(credentials)
        ticker = await self._call(
            credentials.exchange, lambda: client.fetch_ticker(symbol), retry=True
        )
        last = ticker.get("last") or ticker.get("close")
        return None if last is None else Decimal(str(last))

    async def create_order(self, credentials: ExchangeCredentials, order: Order) -> dict[str, Any]:
        """Send the order once; the client order id lets a later look find it."""
        client = await self._client(credentials)
        params: dict[str, Any] = {"clientOrderId": order.client_order_id}
        kind, price = order.type, None if order.price is None else float(order.price)
        if order.type == "stop":  # a resting stop-market order (brokers/exit_support.py)
            assert price is not None  # noqa: S101 - a stop order has its level
            kind, params["stopLossPrice"], price = "market", price, None
        result: dict[str, Any] = await self._call(
            credentials.exchange,
            lambda: client.create_order(
                order.symbol, kind, order.side, float(order.quantity), price, params
            ),
            retry=False,
        )
        return result

    async def fetch_order(self, credentials: ExchangeCredentials, order: Order) -> dict[str, Any]:
        client = await self._client(credentials)
        params = {} if order.exchange_order_id else {"origClientOrderId": order.client_order_id}
        result: dict[str, Any] = await self._call(
            credentials.exchange,
            lambda: client.fetch_order(order.exchange_order_id or "", order.symbol, params),
            retry=True,
        )
        return result

    async def cancel_order(self, credentials: ExchangeCredentials, order: Order) -> dict[str, Any]:
        client = await self._client(credentials)
        params = {} if order.exchange_order_id else {"origClientOrderId": order.client_order_id}
        result: dict[str, Any] = await self._call(
            credentials.exchange,
            lambda: client.cancel_order(order.exchange_order_id or "", order.symbol, params),
            retry=False,
        )
        return result

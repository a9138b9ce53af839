"""The market service over HTTP (see docs/, market data): order books, candles, market rules.

Calls go through the shared :class:`~shared.service_client.ServiceClient` (every replica in
``MARKET_SERVICE_URLS``, retried reads, a breaker per replica); a market service that stays
down surfaces as :class:`~shared.errors.ServiceUnavailable` (a 503 with Retry-After).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from shared.errors import ValidationFailed
from shared.service_client import ServiceClient

Level = tuple[Decimal, Decimal]


@dataclass(frozen=True)
class OrderBook:
    exchange: str
    symbol: str
    bids: list[Level]  # best (highest) first
    asks: list[Level]  # best (lowest) first


@dataclass(frozen=True)
class MarketRules:
    """What an exchange allows for one symbol (ccxt's precision and limits)."""

    symbol: str
    base: str
    quote: str
    amount_step: Decimal  # 0 when the exchange gives no amount precision
    price_step: Decimal
    min_amount: Decimal
    min_cost: Decimal
    maker_fee: Decimal
    taker_fee: Decimal


def _step(value: Any) -> Decimal:
    """ccxt precision: an int is a number of decimals, a float a tick size."""
    if value is None:
        return Decimal(0)
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(1).scaleb(-value)
    return Decimal(str(value))


def _dec(value: Any, default: str = "0") -> Decimal:
    return Decimal(default) if value is None else Decimal(str(value))


def parse_market(entry: dict[str, Any]) -> MarketRules:
    symbol = str(entry["symbol"])
    base, _, quote = symbol.partition("/")
    precision = entry.get("precision") or {}
    limits = entry.get("limits") or {}
    return MarketRules(
        symbol=symbol,
        base=str(entry.get("base") or base),
        quote=str(entry.get("quote") or quote.split(":")[0]),
        amount_step=_step(precision.get("amount")),
        price_step=_step(precision.get("price")),
        min_amount=_dec((limits.get("amount") or {}).get("min")),
        min_cost=_dec((limits.get("cost") or {}).get("min")),
        maker_fee=_dec(entry.get("maker"), "0.001"),
        taker_fee=_dec(entry.get("taker"), "0.001"),
    )


class MarketClient:
    """Reads of the market service; market rules cached for a few minutes."""

    def __init__(
        self,
        http: ServiceClient,
        *,
        rules_ttl_s: float = 300.0,
        book_ttl_s: float = 0.0,
    ) -> None:
        self._http = http
        self._rules: dict[str, tuple[float, dict[str, MarketRules]]] = {}
        self._rules_ttl_s = rules_ttl_s
        self._book_ttl_s = book_ttl_s
        self._books: dict[tuple[str, str, int], tuple[float, OrderBook]] = {}
        self._book_locks: dict[tuple[str, str, int], asyncio.Lock] = {}

    async def order_book(self, exchange: str, symbol: str, depth: int = 50) -> OrderBook:
        """The current book; with ``book_ttl_s`` one snapshot serves every order of a
        burst (many bots acting on the same closed candle), fetched once."""
        if self._book_ttl_s <= 0:
            return await self._fetch_book(exchange, symbol, depth)
        key = (exchange, symbol, depth)
        lock = self._book_locks.setdefault(key, asyncio.Lock())
        async with lock:
            cached = self._books.get(key)
            if cached is not None and time.monotonic() - cached[0] < self._book_ttl_s:
                return cached[1]
            book = await self._fetch_book(exchange, symbol, depth)
            self._books[key] = (time.monotonic(), book)
            return book

    async def _fetch_book(self, exchange: str, symbol: str, depth: int) -> OrderBook:
        body = await self._http.get(
            "/market/orderbook", params={"exchange": exchange, "symbol": symbol, "depth": depth}
        )

        def levels(rows: list[list[Any]]) -> list[Level]:
            return [(Decimal(str(p)), Decimal(str(a))) for p, a, *_ in rows]

        return OrderBook(
            exchange, symbol, levels(body.get("bids", [])), levels(body.get("asks", []))
        )

    async def last_prices(self, exchange: str, symbols: list[str]) -> dict[str, Decimal]:
        """The last traded price of each symbol (the market service's cached tickers);
        a symbol it could not price is left out."""
        if not symbols:
            return {}
        body = await self._http.get(
            "/market/tickers", params={"exchange": exchange, "symbols": ",".join(symbols)}
        )
        return {
            str(t["symbol"]): Decimal(str(t["price"]))
            for t in body.get("tickers", [])
            if t.get("price") is not None
        }

    async def ohlcv(
        self, exchange: str, symbol: str, timeframe: str, limit: int, *, since: int | None = None
    ) -> list[list[float]]:
        """The most recent ``limit`` candles, or ``limit`` from ``since`` (epoch ms): a range
        is read from the stored history, not the short-lived cache of recent candles."""
        params: dict[str, object] = {
            "exchange": exchange,
            "symbol": symbol,
            "timeframe": timeframe,
            "limit": limit,
        }
        if since is not None:
            params["since"] = since
        body = await self._http.get("/market/ohlcv", params=params)
        return [list(map(float, row[:6])) for row in body.get("candles", [])]

    async def rules(self, exchange: str, symbol: str) -> MarketRules:
        cached = self._rules.get(exchange)
        if cached is None or time.monotonic() - cached[0] > self._rules_ttl_s:
            body = await self._http.get("/market/markets", params={"exchange": exchange})
            entries = body.get("markets", body) if isinstance(body, dict) else body
            if isinstance(entries, dict):
                entries = [{"symbol": key, **value} for key, value in entries.items()]
            table = {str(e["symbol"]): parse_market(e) for e in entries}
            cached = (time.monotonic(), table)
            self._rules[exchange] = cached
        try:
            return cached[1][symbol]
        except KeyError:
            raise ValidationFailed(f"{symbol} is not traded on {exchange}.") from None

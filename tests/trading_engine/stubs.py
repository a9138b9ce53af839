"""Small stand-ins for the services the engine calls, shaped exactly as docs/api.md says:
the market service's routes and the user service's internal API."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import FastAPI, Header, HTTPException

from tests.stores import TEST_INTERNAL_TOKEN

DEFAULT_MARKETS: dict[str, dict[str, Any]] = {
    "BTC/USDT": {
        "symbol": "BTC/USDT",
        "base": "BTC",
        "quote": "USDT",
        "precision": {"amount": 1e-06, "price": 0.01},
        "limits": {"amount": {"min": 1e-05, "max": None}, "cost": {"min": 10.0, "max": None}},
        "maker": 0.001,
        "taker": 0.001,
    },
    "ETH/USDT": {
        "symbol": "ETH/USDT",
        "base": "ETH",
        "quote": "USDT",
        "precision": {"amount": 0.0001, "price": 0.01},
        "limits": {"amount": {"min": 0.0001, "max": None}, "cost": {"min": 5.0, "max": None}},
        "maker": 0.001,
        "taker": 0.001,
    },
}


class MarketStub:
    """Order books, candles and market rules a test sets; served like the market service."""

    def __init__(self) -> None:
        self.reset()
        self.app = self._build()

    def reset(self) -> None:
        self.books: dict[tuple[str, str], dict[str, list[list[float]]]] = {}
        self.candles: dict[tuple[str, str, str], list[list[float]]] = {}
        # The stored history ranges are read from (default: ``candles``); a test sets it
        # apart to make the recent candles a stale cache.
        self.history: dict[tuple[str, str, str], list[list[float]]] = {}
        self.markets: dict[str, dict[str, dict[str, Any]]] = {"sim": dict(DEFAULT_MARKETS)}
        self.down = False
        self.requests: list[str] = []

    def set_book(
        self,
        symbol: str,
        *,
        bids: list[list[float]] | None = None,
        asks: list[list[float]] | None = None,
        exchange: str = "sim",
    ) -> None:
        self.books[(exchange, symbol)] = {"bids": bids or [], "asks": asks or []}

    def set_price(
        self, symbol: str, price: float, *, depth: float = 1e6, exchange: str = "sim"
    ) -> None:
        """One deep level at ``price`` on both sides."""
        self.set_book(symbol, bids=[[price, depth]], asks=[[price, depth]], exchange=exchange)

    def _build(self) -> FastAPI:
        app = FastAPI()

        def check() -> None:
            if self.down:
                raise HTTPException(503, "exchange down")

        @app.get("/market/orderbook")
        async def orderbook(symbol: str, exchange: str = "sim", depth: int = 50) -> dict[str, Any]:
            self.requests.append(f"orderbook {symbol}")
            check()
            book = self.books.get((exchange, symbol))
            if book is None:
                raise HTTPException(404, f"unknown symbol {symbol}")
            return {
                "exchange": exchange,
                "symbol": symbol,
                "bids": book["bids"][:depth],
                "asks": book["asks"][:depth],
                "timestamp": "2026-01-01T00:00:00+00:00",
            }

        @app.get("/market/tickers")
        async def tickers(symbols: str, exchange: str = "sim") -> dict[str, Any]:
            """The last price: the best bid of the book a test set (unknown ones left out)."""
            self.requests.append(f"tickers {symbols}")
            check()
            found = []
            for symbol in symbols.split(","):
                book = self.books.get((exchange, symbol))
                if book and book["bids"]:
                    found.append(
                        {"exchange": exchange, "symbol": symbol, "price": book["bids"][0][0]}
                    )
            return {"exchange": exchange, "tickers": found}

        @app.get("/market/ohlcv")
        async def ohlcv(
            symbol: str,
            timeframe: str = "1m",
            limit: int = 100,
            exchange: str = "sim",
            since: int | None = None,
        ) -> dict[str, Any]:
            self.requests.append(f"ohlcv {symbol} {timeframe}")
            check()
            rows = self.candles.get((exchange, symbol, timeframe), [])
            if since is not None:  # a range: the stored history, never the stale cache
                rows = self.history.get((exchange, symbol, timeframe), rows)
                rows = [r for r in rows if r[0] >= since][:limit]
            else:
                rows = rows[-limit:]
            return {"exchange": exchange, "symbol": symbol, "timeframe": timeframe, "candles": rows}

        @app.get("/market/markets")
        async def markets(exchange: str = "sim") -> dict[str, Any]:
            check()
            return {"exchange": exchange, "markets": list(self.markets.get(exchange, {}).values())}

        return app


class UserStub:
    """The user service's internal API for the users a test registers."""

    TOKEN = TEST_INTERNAL_TOKEN

    def __init__(self) -> None:
        self.reset()
        self.app = self._build()

    def reset(self) -> None:
        self.accounts: dict[str, dict[str, Any]] = {}
        self.keys: dict[tuple[str, str], dict[str, Any]] = {}

    def add(
        self,
        user_id: uuid.UUID,
        *,
        permissions: tuple[str, ...] = ("trade:paper",),
        limits: dict[str, Any] | None = None,
    ) -> None:
        self.accounts[str(user_id)] = {
            "id": str(user_id),
            "email": f"{user_id.hex[:8]}@example.com",
            "permissions": list(permissions),
            "trading_limits": limits or {},
            "preferences": {},
        }

    def _build(self) -> FastAPI:
        app = FastAPI()

        def authorise(token: str | None) -> None:
            if token != self.TOKEN:
                raise HTTPException(401, "internal token required")

        @app.get("/user/internal/users/{user_id}")
        async def user(
            user_id: str, x_internal_token: str | None = Header(default=None)
        ) -> dict[str, Any]:
            authorise(x_internal_token)
            account = self.accounts.get(user_id)
            if account is None:
                raise HTTPException(404, "unknown user")
            return account

        @app.get("/user/internal/users/{user_id}/exchange-keys/{exchange}")
        async def keys(
            user_id: str, exchange: str, x_internal_token: str | None = Header(default=None)
        ) -> dict[str, Any]:
            authorise(x_internal_token)
            found = self.keys.get((user_id, exchange))
            if found is None:
                raise HTTPException(404, "no key")
            return found

        return app

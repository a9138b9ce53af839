"""`GET /market/ticker`, `/market/tickers`, `/market/orderbook`, `/market/trades`."""

from __future__ import annotations

import re
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response

from market_service.deps import (
    ExchangeDep,
    FlightsDep,
    MarketSettingsDep,
    RedisDep,
    SymbolQuery,
)
from market_service.exchanges.base import iso_ms
from market_service.tickers.books import OrderBookCache, OrderBookService
from market_service.tickers.schemas import OrderBookRead, TickerRead, TickersRead, TradesRead
from market_service.tickers.service import TickerService
from shared.strict_query import StrictQueryRoute
from shared.validation import SINGLE_LINE, invalid_input

router = APIRouter(route_class=StrictQueryRoute, prefix="/market", tags=["market"])
_SYMBOL = re.compile(r"^[A-Za-z0-9]{1,15}/[A-Za-z0-9]{1,10}$")


async def ticker_service(request: Request) -> TickerService:
    """The app's one ticker service (made at start-up: nothing in it is per request)."""
    service: TickerService = request.app.state.tickers
    return service


TickerServiceDep = Annotated[TickerService, Depends(ticker_service)]


@router.get("/ticker", response_model=TickerRead)
async def get_ticker(
    symbol: SymbolQuery, exchange: ExchangeDep, tickers: TickerServiceDep
) -> Response:
    """The latest ticker of one symbol (cached for a couple of seconds)."""
    ticker = await tickers.fetch_crypto_price(symbol, exchange=exchange.id)
    # Already in TickerRead's wire form (the busiest route: no second validation pass).
    return Response(orjson.dumps(ticker.to_json()), media_type="application/json")


@router.get("/tickers", response_model=TickersRead)
async def get_tickers(
    exchange: ExchangeDep,
    tickers: TickerServiceDep,
    symbols: Annotated[
        str,
        Query(
            max_length=2000,
            pattern=SINGLE_LINE,
            description="Required: 1 to 100 comma-separated symbols, e.g. BTC/USDT,ETH/USDT.",
        ),
    ],
) -> dict[str, Any]:
    """Tickers of many symbols in one call, fetched concurrently."""
    wanted = list(dict.fromkeys(s.strip().upper() for s in symbols.split(",") if s.strip()))
    bad = [s for s in wanted if not _SYMBOL.match(s)]
    if not wanted or bad or len(wanted) > 100:
        raise invalid_input(
            ["query", "symbols"],
            "symbols must be 1 to 100 comma-separated unified symbols like BTC/USDT"
            + (f"; invalid: {', '.join(bad)}" if bad else ""),
        )
    found = await tickers.fetch_crypto_prices(wanted, exchange=exchange.id)
    return {"exchange": exchange.id, "tickers": [t.to_json() for t in found]}


@router.get("/orderbook", response_model=OrderBookRead)
async def get_order_book(
    symbol: SymbolQuery,
    exchange: ExchangeDep,
    redis: RedisDep,
    flights: FlightsDep,
    settings: MarketSettingsDep,
    depth: Annotated[int, Query(ge=1, le=100)] = 20,
) -> dict[str, Any]:
    """The order book, best levels first on each side (cached for about a second)."""
    books = OrderBookService(OrderBookCache(redis), exchange, flights, settings)
    book = await books.fetch_order_book(symbol.upper(), depth)
    return book.to_json()


@router.get("/trades", response_model=TradesRead)
async def get_trades(
    symbol: SymbolQuery,
    exchange: ExchangeDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """The most recent public trades, oldest first."""
    trades = await exchange.fetch_trades(symbol.upper(), limit)
    return {
        "exchange": exchange.id,
        "symbol": symbol.upper(),
        "trades": [
            {
                "id": t.id,
                "timestamp": iso_ms(t.timestamp_ms),
                "side": t.side,
                "price": t.price,
                "amount": t.amount,
            }
            for t in trades
        ],
    }

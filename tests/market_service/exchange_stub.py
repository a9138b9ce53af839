"""A local HTTP server answering like the public REST APIs of Binance, Gate and MEXC for
the endpoints the market service reads, so the real ccxt classes can be tested offline.

Response shapes follow ccxt's recorded responses (ts/src/test/static/response/*.json);
prices come from a small table so tests can check what ccxt parsed. ``fail_with`` makes the
market-data endpoints answer an HTTP status (e.g. 429) and ``delay`` makes them hang.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from aiohttp import web

from tests.servers import free_port

# symbol -> (last, bid, ask, base volume, change %)
PRICES: dict[tuple[str, str], tuple[float, float, float, float, float]] = {
    ("BTC", "USDT"): (65000.5, 64999.9, 65001.1, 1234.5, 2.5),
    ("ETH", "USDT"): (3100.25, 3100.2, 3100.3, 45678.9, -1.25),
}
CANDLE_START_MS = 1_700_000_000_000 // 60_000 * 60_000


def candle(i: int) -> tuple[int, float, float, float, float, float]:
    """The i-th 1 m candle every venue serves: [ts, o, h, l, c, v]."""
    base = 60000.0 + i
    return CANDLE_START_MS + i * 60_000, base, base + 5.5, base - 4.25, base + 1.5, 10.0 + i


class ExchangeStub:
    def __init__(self, venue: str = "binance") -> None:
        self.venue = venue
        self.hits: Counter[str] = Counter()
        self.fail_with: int | None = None
        self.delay: float = 0.0
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._runner: web.AppRunner | None = None
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._dispatch)
        self.app = app

    async def start(self) -> ExchangeStub:
        self._runner = web.AppRunner(self.app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def market_hits(self) -> int:
        return sum(
            n
            for path, n in self.hits.items()
            if "exchangeInfo" not in path
            and "currency_pairs" not in path
            and "contract" not in path
        )

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        self.hits[path] += 1
        q = request.query
        routes: dict[str, Any] = {
            "/api/v3/exchangeInfo": self._binance_like_info,
            "/api/v3/ticker/24hr": self._binance_ticker,
            "/api/v3/klines": self._binance_klines,
            "/api/v3/depth": self._depth,
            "/api/v4/spot/currency_pairs": self._gate_pairs,
            "/api/v4/margin/currency_pairs": lambda _q: [],
            "/api/v4/spot/tickers": self._gate_tickers,
            "/api/v4/spot/candlesticks": self._gate_candles,
            "/api/v4/spot/order_book": self._gate_book,
            "/api/v1/contract/detail": lambda _q: {"success": True, "code": 0, "data": []},
        }
        handler = routes.get(path)
        if handler is None:
            return web.json_response({"code": -1, "msg": f"no route {path}"}, status=404)
        is_market_data = (
            "exchangeInfo" not in path and "pairs" not in path and "contract" not in path
        )
        if is_market_data and self.delay:
            await asyncio.sleep(self.delay)
        if is_market_data and self.fail_with:
            return web.json_response(
                {"code": -1003, "msg": "Too many requests."}, status=self.fail_with
            )
        result = handler(q)
        if isinstance(result, web.StreamResponse):
            return result
        return web.json_response(result)

    # -- binance and mexc (same v3 shapes) -------------------------------------------------

    def _binance_like_info(self, _q: Any) -> dict[str, Any]:
        symbols = []
        for base, quote in PRICES:
            symbols.append(
                {
                    "symbol": base + quote,
                    "status": "TRADING",  # mexc answers "1"; ccxt accepts both per venue
                    "baseAsset": base,
                    "baseAssetPrecision": 5 if self.venue == "mexc" else 8,
                    "quoteAsset": quote,
                    "quotePrecision": 2 if self.venue == "mexc" else 8,
                    "quoteAssetPrecision": 8,
                    "baseCommissionPrecision": 8,
                    "quoteCommissionPrecision": 8,
                    "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"],
                    "isSpotTradingAllowed": True,
                    "isMarginTradingAllowed": False,
                    "quoteAmountPrecision": "5",
                    "baseSizePrecision": "0.00001",
                    "makerCommission": "0.001",
                    "takerCommission": "0.001",
                    "maxQuoteAmount": "2000000",
                    "filters": [
                        {
                            "filterType": "PRICE_FILTER",
                            "minPrice": "0.01",
                            "maxPrice": "1000000.00",
                            "tickSize": "0.01",
                        },
                        {
                            "filterType": "LOT_SIZE",
                            "minQty": "0.00001",
                            "maxQty": "9000.00000000",
                            "stepSize": "0.00001",
                        },
                        {
                            "filterType": "NOTIONAL",
                            "minNotional": "5.00000000",
                            "applyMinToMarket": True,
                            "maxNotional": "9000000.00000000",
                            "applyMaxToMarket": False,
                            "avgPriceMins": 5,
                        },
                    ],
                    "permissions": ["SPOT"],
                    "permissionSets": [["SPOT"]],
                    "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
                    "allowedSelfTradePreventionModes": ["EXPIRE_MAKER"],
                }
            )
        return {
            "timezone": "UTC",
            "serverTime": CANDLE_START_MS,
            "rateLimits": [],
            "exchangeFilters": [],
            "symbols": symbols,
        }

    def _pair(self, market_id: str) -> tuple[str, str] | None:
        for base, quote in PRICES:
            if market_id in (base + quote, f"{base}_{quote}"):
                return base, quote
        return None

    def _binance_ticker(self, q: Any) -> Any:
        pair = self._pair(q.get("symbol", ""))
        if pair is None:
            return web.json_response({"code": -1121, "msg": "Invalid symbol."}, status=400)
        last, bid, ask, volume, change = PRICES[pair]
        return {
            "symbol": q["symbol"],
            "priceChange": "10.0",
            "priceChangePercent": str(change / 100 if self.venue == "mexc" else change),
            "weightedAvgPrice": str(last),
            "prevClosePrice": str(last - 10),
            "lastPrice": str(last),
            "lastQty": "0.1",
            "bidPrice": str(bid),
            "bidQty": "1.0",
            "askPrice": str(ask),
            "askQty": "1.0",
            "openPrice": str(last - 10),
            "highPrice": str(last + 100),
            "lowPrice": str(last - 100),
            "volume": str(volume),
            "quoteVolume": str(volume * last),
            "openTime": CANDLE_START_MS,
            "closeTime": CANDLE_START_MS + 86_399_999,
            "firstId": 1,
            "lastId": 2,
            "count": 2,
        }

    def _candles(
        self, q: Any, start_key: str, scale: int
    ) -> list[tuple[int, float, float, float, float, float]]:
        limit = int(q.get("limit", 500))
        start = int(q.get(start_key, CANDLE_START_MS // scale)) * scale
        first = max(0, (start - CANDLE_START_MS) // 60_000)
        return [candle(i) for i in range(first, first + min(limit, 1000))]

    def _binance_klines(self, q: Any) -> list[list[Any]]:
        return [
            [t, str(o), str(h), str(lo), str(c), str(v), t + 59_999, "0", 1, "0", "0", "0"]
            for t, o, h, lo, c, v in self._candles(q, "startTime", 1)
        ]

    def _depth(self, q: Any) -> Any:
        if self._pair(q.get("symbol", "")) is None:
            return web.json_response({"code": -1121, "msg": "Invalid symbol."}, status=400)
        return {
            "lastUpdateId": 1027024,
            "bids": [["64999.90", "1.5"], ["64999.00", "2.0"], ["64990.00", "3.0"]],
            "asks": [["65001.10", "0.5"], ["65002.00", "1.0"], ["65010.00", "4.0"]],
        }

    # -- gate --------------------------------------------------------------------------------

    def _gate_pairs(self, _q: Any) -> list[dict[str, Any]]:
        return [
            {
                "id": f"{b}_{qt}",
                "base": b,
                "base_name": b,
                "quote": qt,
                "quote_name": qt,
                "fee": "0.2",
                "min_base_amount": "0.00001",
                "min_quote_amount": "3",
                "max_quote_amount": "5000000",
                "amount_precision": 5,
                "precision": 2,
                "trade_status": "tradable",
                "sell_start": 0,
                "buy_start": 0,
                "type": "normal",
            }
            for b, qt in PRICES
        ]

    def _gate_tickers(self, q: Any) -> Any:
        pair = self._pair(q.get("currency_pair", ""))
        if pair is None:
            return web.json_response(
                {"label": "INVALID_CURRENCY_PAIR", "message": "bad"}, status=400
            )
        last, bid, ask, volume, change = PRICES[pair]
        return [
            {
                "currency_pair": q["currency_pair"],
                "last": str(last),
                "lowest_ask": str(ask),
                "highest_bid": str(bid),
                "change_percentage": str(change),
                "base_volume": str(volume),
                "quote_volume": str(volume * last),
                "high_24h": str(last + 100),
                "low_24h": str(last - 100),
            }
        ]

    def _gate_candles(self, q: Any) -> list[list[str]]:
        return [
            [str(t // 1000), str(v * c), str(c), str(h), str(lo), str(o), str(v), "true"]
            for t, o, h, lo, c, v in self._candles(q, "from", 1000)
        ]

    def _gate_book(self, q: Any) -> Any:
        if self._pair(q.get("currency_pair", "")) is None:
            return web.json_response(
                {"label": "INVALID_CURRENCY_PAIR", "message": "bad"}, status=400
            )
        return {
            "id": 123,
            "current": CANDLE_START_MS,
            "update": CANDLE_START_MS,
            "asks": [["65001.1", "0.5"], ["65002", "1"]],
            "bids": [["64999.9", "1.5"], ["64999", "2"]],
        }

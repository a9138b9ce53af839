"""A fake market service for the analysis service tests: ``GET /market/ohlcv`` over fixed
1h candles of BTC/USDT, served on ``httpx.MockTransport``."""

from __future__ import annotations

import httpx

from shared.candles import Candles
from tests.shared.sample_candles import random_candles

HOUR = 3_600_000
MARKET_CANDLES = random_candles(
    3000, seed=21, frame_ms=HOUR, start_ms=1_700_000_000_000 // HOUR * HOUR
)


class FakeMarket:
    """``GET /market/ohlcv`` over fixed 1h candles of BTC/USDT (the last one 'forming')."""

    def __init__(self, candles: Candles) -> None:
        self.rows = candles.to_rows()
        self.calls: list[httpx.Request] = []
        self.down = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request)
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        if request.url.path != "/market/ohlcv":
            return httpx.Response(404, json={"detail": "Not Found"})
        params = request.url.params
        if params["symbol"] != "BTC/USDT":
            return httpx.Response(
                404, json={"status": 404, "detail": f"Unknown symbol {params['symbol']!r}."}
            )
        if params.get("timeframe", "1h") != "1h":
            return httpx.Response(422, json={"detail": "Timeframe not offered"})
        limit = int(params.get("limit", 100))
        if "since" in params:
            since = int(params["since"])
            rows = [r for r in self.rows if r[0] >= since][:limit]
        else:
            rows = self.rows[-limit:]
        return httpx.Response(
            200,
            json={"exchange": "sim", "symbol": "BTC/USDT", "timeframe": "1h", "candles": rows},
        )

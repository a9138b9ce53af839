"""A fake market service for the analysis service tests: ``GET /market/ohlcv`` (JSON) and
``GET /market/ohlcv/bulk`` (Arrow IPC, closed candles only) over fixed 1h candles of
BTC/USDT, served on ``httpx.MockTransport``."""

from __future__ import annotations

import httpx

from shared.candle_arrow import MEDIA_TYPE, stream_batch, stream_end, stream_header
from shared.candles import Candles
from tests.shared.sample_candles import random_candles

HOUR = 3_600_000
MARKET_CANDLES = random_candles(
    3000, seed=21, frame_ms=HOUR, start_ms=1_700_000_000_000 // HOUR * HOUR
)


class FakeMarket:
    """``GET /market/ohlcv`` over fixed 1h candles of BTC/USDT (the last one 'forming')."""

    def __init__(self, candles: Candles) -> None:
        self.candles = candles
        self.rows = candles.to_rows()
        self.calls: list[httpx.Request] = []
        self.down = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request)
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        if request.url.path not in ("/market/ohlcv", "/market/ohlcv/bulk"):
            return httpx.Response(404, json={"detail": "Not Found"})
        params = request.url.params
        if params["symbol"] != "BTC/USDT":
            return httpx.Response(
                404, json={"status": 404, "detail": f"Unknown symbol {params['symbol']!r}."}
            )
        if params.get("timeframe", "1h") != "1h":
            return httpx.Response(422, json={"detail": "Timeframe not offered"})
        if request.url.path == "/market/ohlcv/bulk":
            return self.bulk(int(params["since"]), int(params["until"]))
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

    def bulk(self, since: int, until: int) -> httpx.Response:
        c = self.candles
        closed = c.timestamp[:-1]  # the last candle is still forming
        keep = (closed >= since) & (closed < until)
        columns = [a[:-1][keep] for a in (c.timestamp, c.open, c.high, c.low, c.close, c.volume)]
        body = stream_header() + stream_batch(columns) + stream_end()
        return httpx.Response(200, content=body, headers={"content-type": MEDIA_TYPE})

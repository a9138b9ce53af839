"""Recent candles: the list ``market:ohlcv:{exchange}:{symbol}:{timeframe}`` (JSON rows)."""

from __future__ import annotations

import orjson
from redis.asyncio import Redis

from market_service.exchanges import Candle


def ohlcv_key(exchange: str, symbol: str, timeframe: str) -> str:
    return f"market:ohlcv:{exchange}:{symbol}:{timeframe}"


class OhlcvCache:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def recent(
        self, exchange: str, symbol: str, timeframe: str, limit: int
    ) -> list[Candle] | None:
        """The last ``limit`` candles, or None when fewer are cached."""
        key = ohlcv_key(exchange, symbol, timeframe)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.llen(key)
            pipe.lrange(key, -limit, -1)
            length, rows = await pipe.execute()
        if length < limit:
            return None
        return [orjson.loads(row) for row in rows]

    async def put(
        self,
        exchange: str,
        symbol: str,
        timeframe: str,
        candles: list[Candle],
        *,
        ttl_seconds: float,
        max_length: int,
    ) -> None:
        key = ohlcv_key(exchange, symbol, timeframe)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            if candles:
                pipe.rpush(key, *[orjson.dumps(c) for c in candles[-max_length:]])
                pipe.pexpire(key, int(ttl_seconds * 1000))
            await pipe.execute()

"""Ticker cache: the hash ``market:tickers:{exchange}:{symbol}`` with a short TTL."""

from __future__ import annotations

from redis.asyncio import Redis

from market_service.exchanges import Ticker


def ticker_key(exchange: str, symbol: str) -> str:
    return f"market:tickers:{exchange}:{symbol}"


def _opt(value: str | None) -> float | None:
    return None if value in (None, "") else float(value)


def ticker_fields(ticker: Ticker) -> dict[str, str]:
    """The hash fields of one cached ticker."""
    return {
        "price": repr(ticker.price),
        "bid": "" if ticker.bid is None else repr(ticker.bid),
        "ask": "" if ticker.ask is None else repr(ticker.ask),
        "volume": "" if ticker.volume is None else repr(ticker.volume),
        "change": "" if ticker.change is None else repr(ticker.change),
        "timestamp_ms": str(ticker.timestamp_ms),
    }


class TickerCache:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def get(self, exchange: str, symbol: str) -> Ticker | None:
        raw: dict[str, str] = await self.redis.hgetall(ticker_key(exchange, symbol))  # type: ignore[assignment]
        if not raw or "price" not in raw:
            return None
        return Ticker(
            exchange=exchange,
            symbol=symbol,
            price=float(raw["price"]),
            bid=_opt(raw.get("bid")),
            ask=_opt(raw.get("ask")),
            volume=_opt(raw.get("volume")),
            change=_opt(raw.get("change")),
            timestamp_ms=int(raw["timestamp_ms"]),
        )

    async def put(self, ticker: Ticker, ttl_seconds: float) -> None:
        key = ticker_key(ticker.exchange, ticker.symbol)
        fields = ticker_fields(ticker)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=fields)  # type: ignore[arg-type]
            pipe.pexpire(key, int(ttl_seconds * 1000))
            await pipe.execute()

"""Order books: cached in the sorted set ``market:orderbook:{exchange}:{symbol}``.

Members are ``b|price|amount`` / ``a|price|amount`` scored by price, plus one ``t|ms``
member (score -1) holding the book's timestamp; the whole set is replaced atomically.
"""

from __future__ import annotations

from redis.asyncio import Redis

from market_service.exchanges import MarketExchange, OrderBook
from market_service.settings import MarketSettings
from market_service.singleflight import SingleFlight

CACHED_DEPTH = 100


def orderbook_key(exchange: str, symbol: str) -> str:
    return f"market:orderbook:{exchange}:{symbol}"


class OrderBookCache:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def get(self, exchange: str, symbol: str, depth: int) -> OrderBook | None:
        members: list[str] = await self.redis.zrange(orderbook_key(exchange, symbol), 0, -1)  # type: ignore[assignment]
        if not members:
            return None
        bids: list[list[float]] = []
        asks: list[list[float]] = []
        timestamp_ms = 0
        for member in members:
            side, _, rest = member.partition("|")
            if side == "t":
                timestamp_ms = int(rest)
                continue
            price, _, amount = rest.partition("|")
            (bids if side == "b" else asks).append([float(price), float(amount)])
        bids.reverse()  # highest first
        return OrderBook(exchange, symbol, bids[:depth], asks[:depth], timestamp_ms)

    async def put(self, book: OrderBook, ttl_seconds: float) -> None:
        key = orderbook_key(book.exchange, book.symbol)
        mapping: dict[str, float] = {f"t|{book.timestamp_ms}": -1.0}
        mapping.update({f"b|{p!r}|{a!r}": p for p, a in book.bids})
        mapping.update({f"a|{p!r}|{a!r}": p for p, a in book.asks})
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.zadd(key, mapping)  # type: ignore[arg-type,unused-ignore]
            pipe.pexpire(key, int(ttl_seconds * 1000))
            await pipe.execute()


class OrderBookService:
    def __init__(
        self,
        cache: OrderBookCache,
        exchange: MarketExchange,
        flights: SingleFlight,
        settings: MarketSettings,
    ) -> None:
        self.cache = cache
        self.exchange = exchange
        self.flights = flights
        self.settings = settings

    async def fetch_order_book(self, symbol: str, depth: int) -> OrderBook:
        """``depth`` levels a side; the cache keeps the top 100 so any depth is a hit."""
        await self.exchange.market(symbol)
        cached = await self.cache.get(self.exchange.id, symbol, depth)
        if cached is not None:
            return cached

        async def fetch() -> OrderBook:
            book = await self.exchange.fetch_order_book(symbol, CACHED_DEPTH)
            await self.cache.put(book, self.settings.orderbook_ttl_seconds)
            return book

        book = await self.flights.do(orderbook_key(self.exchange.id, symbol), fetch)
        return OrderBook(
            book.exchange, book.symbol, book.bids[:depth], book.asks[:depth], book.timestamp_ms
        )

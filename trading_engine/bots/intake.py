"""Closed candles into the replica: the ``trading`` consumer group reads
``events:market.data.updated``; each candle is recorded as the latest of its market
(``trading:candles:latest``), fills resting paper limit orders it traded through, and is
fanned out on the ``CANDLE_CHANNEL`` setting (``channel:trading:candles``) so every
replica wakes the bots it owns."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import structlog
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.cancellation import raise_if_cancelling
from shared.events import MARKET_DATA_UPDATED, Event, EventConsumer, stream_for
from trading_engine.bots.candles import CandleKey, timeframe_ms
from trading_engine.bots.service import LATEST_CANDLES_KEY
from trading_engine.orders.service import OrderService

log = structlog.get_logger("trading.runner")

CONSUMER_GROUP = "trading"


class CandleIntake:
    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        redis: Redis,
        orders: OrderService,
        claim_idle_ms: int,
        channel: str,
        wake: Callable[[CandleKey, list[float]], object],
    ) -> None:
        self.sessionmaker = sessionmaker
        self.redis = redis
        self.orders = orders
        self.claim_idle_ms = claim_idle_ms
        self.channel = channel
        self.wake = wake

    async def consume(self) -> None:
        """Read the market's closed candles as the ``trading`` group (runs until canceled)."""
        consumer = EventConsumer(
            self.redis,
            self.sessionmaker,
            group=CONSUMER_GROUP,
            handlers={stream_for(MARKET_DATA_UPDATED): self.on_market_data},
            claim_idle_ms=self.claim_idle_ms,
        )
        await consumer.run()

    async def on_market_data(self, event: Event, session: AsyncSession) -> None:
        """One closed candle: remember it, fill limit orders, wake bots."""
        data = event.data
        key = CandleKey(str(data["exchange"]), str(data["symbol"]), str(data["timeframe"]))
        candle = [float(v) for v in data["candle"][:6]]
        message = json.dumps({"key": key.member, "candle": candle})
        previous = await self.redis.hget(LATEST_CANDLES_KEY, key.member)
        if previous is None or json.loads(previous)["candle"][0] <= candle[0]:
            await self.redis.hset(LATEST_CANDLES_KEY, key.member, message)
        # Bots first: resting limit orders need the market service, which may be down
        # (the entry is then retried, waking the bots again harmlessly).
        await self.redis.publish(self.channel, message)
        await self.orders.fill_resting(
            key.exchange, key.symbol, candle, timeframe_ms(key.timeframe) / 60_000
        )

    async def listen(self) -> None:
        """Wake the owned bots of every candle fanned out on the channel."""
        while True:
            try:
                async with self.redis.pubsub() as pubsub:
                    await pubsub.subscribe(self.channel)
                    async for message in pubsub.listen():
                        if message.get("type") != "message":
                            continue
                        body = json.loads(message["data"])
                        self.wake(CandleKey.parse(body["key"]), body["candle"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                raise_if_cancelling()
                log.warning("candle_listener_error", error=repr(exc))
                await asyncio.sleep(1.0)

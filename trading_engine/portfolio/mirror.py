"""The Redis mirror of a user's open positions and open orders (docs/events.md):
``trading:positions:{userId}`` and ``trading:orders:{userId}``, hashes of id -> JSON,
rewritten from PostgreSQL after each commit that changed them."""

from __future__ import annotations

import asyncio
import uuid

import structlog
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from trading_engine.orders import repository
from trading_engine.orders.schemas import OrderRead, PositionRead

log = structlog.get_logger("trading.mirror")


def positions_key(user_id: uuid.UUID) -> str:
    return f"trading:positions:{user_id}"


def orders_key(user_id: uuid.UUID) -> str:
    return f"trading:orders:{user_id}"


async def refresh_mirror(
    sessionmaker: async_sessionmaker[AsyncSession], redis: Redis, user_id: uuid.UUID
) -> None:
    """Rewrite both hashes; a Redis outage is logged, the database stays the truth."""
    try:
        async with sessionmaker() as session:
            positions = await repository.list_positions(session, user_id)
            orders = await repository.open_orders_of(session, user_id)
        async with redis.pipeline(transaction=True) as pipe:
            pipe.delete(positions_key(user_id), orders_key(user_id))
            if positions:
                pipe.hset(
                    positions_key(user_id),
                    mapping={
                        str(p.id): PositionRead.model_validate(p).model_dump_json()
                        for p in positions
                    },
                )
            if orders:
                pipe.hset(
                    orders_key(user_id),
                    mapping={
                        str(o.id): OrderRead.model_validate(o).model_dump_json() for o in orders
                    },
                )
            await pipe.execute()
    except Exception as exc:  # the mirror is a cache: never fail the committed work
        log.warning("mirror_refresh_failed", user_id=str(user_id), error=repr(exc))


class MirrorFlusher:
    """Refreshes users' mirrors shortly after their fills; one refresh covers a burst."""

    DELAY_S = 0.05

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], redis: Redis) -> None:
        self.sessionmaker = sessionmaker
        self.redis = redis
        self._users: set[uuid.UUID] = set()
        self._flusher: asyncio.Task[None] | None = None

    def request(self, user_id: uuid.UUID) -> None:
        """Refresh the user's Redis mirror soon."""
        self._users.add(user_id)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())

    async def _flush(self) -> None:
        while self._users:
            await asyncio.sleep(self.DELAY_S)
            users, self._users = self._users, set()
            for user_id in users:
                await refresh_mirror(self.sessionmaker, self.redis, user_id)

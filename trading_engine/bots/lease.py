"""One replica owns a running bot through a Redis lease: ``SET NX PX``, renewed while it
runs, released on stop; if the owner dies the lease expires and another replica takes it."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from redis.asyncio import Redis

_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


def lease_key(bot_id: uuid.UUID) -> str:
    return f"trading:bot:lease:{bot_id}"


class BotLeases:
    def __init__(self, redis: Redis, owner: str, ttl_ms: int) -> None:
        self.redis = redis
        self.owner = owner
        self.ttl_ms = ttl_ms

    async def acquire(self, bot_id: uuid.UUID) -> bool:
        return bool(await self.redis.set(lease_key(bot_id), self.owner, nx=True, px=self.ttl_ms))

    async def acquire_many(self, bot_ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
        """Try to take many leases in one round trip; returns the ones now held."""
        ids = list(bot_ids)
        if not ids:
            return set()
        async with self.redis.pipeline(transaction=False) as pipe:
            for bot_id in ids:
                pipe.set(lease_key(bot_id), self.owner, nx=True, px=self.ttl_ms)
            results = await pipe.execute()
        return {bot_id for bot_id, ok in zip(ids, results, strict=True) if ok}

    async def renew(self, bot_ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
        """Renew many leases at once; returns the ones this replica no longer holds."""
        ids = list(bot_ids)
        if not ids:
            return set()
        async with self.redis.pipeline(transaction=False) as pipe:
            for bot_id in ids:
                pipe.eval(_RENEW, 1, lease_key(bot_id), self.owner, self.ttl_ms)
            results = await pipe.execute()
        return {bot_id for bot_id, ok in zip(ids, results, strict=True) if not ok}

    async def release(self, bot_id: uuid.UUID) -> None:
        await self.redis.eval(_RELEASE, 1, lease_key(bot_id), self.owner)

    async def owner_of(self, bot_id: uuid.UUID) -> str | None:
        value = await self.redis.get(lease_key(bot_id))
        return None if value is None else str(value)

"""Bot leases on real Redis: one replica owns a running bot."""

from __future__ import annotations

import uuid

from redis.asyncio import Redis

from trading_engine.bots.lease import BotLeases, lease_key


async def test_renewing_extends_the_held_leases_and_reports_the_lost_ones(redis: Redis) -> None:
    mine = BotLeases(redis, "replica-a", ttl_ms=5_000)
    held, stolen, expired = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    assert await mine.acquire_many([held, stolen, expired]) == {held, stolen, expired}
    await redis.set(lease_key(stolen), "replica-b", px=5_000)  # another replica took it
    await redis.delete(lease_key(expired))
    await redis.pexpire(lease_key(held), 100)

    assert await mine.renew([held, stolen, expired]) == {stolen, expired}

    assert await redis.pttl(lease_key(held)) > 1_000
    assert await redis.get(lease_key(stolen)) == "replica-b"
    assert await redis.get(lease_key(expired)) is None
    assert await mine.renew([]) == set()

"""One replica owns a running bot through a Redis lease: ``SET NX PX``, renewed while it
runs, released on stop; if the owner dies the lease expires and another replica takes it.

A bot that belongs on another live replica (:mod:`trading_engine.bots.placement`) moves
by hand-over: that replica asks for it (``trading:bot:handover:{id}`` = its id), and the
owner, between two candles of the bot, passes the lease over in one script that checks
it still holds the lease, the asker still asks and is still live. The lease is never free
in between, so no third replica can take the bot, and the new owner starts from the
bot row's ``last_candle_at`` (docs/architecture.md, replicas)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from redis.asyncio import Redis

# Renews every given lease the owner still holds; returns the 1-based positions of the
# ones it no longer holds. One call for a whole replica's bots (was one EVAL per bot: a
# thousand commands packed and parsed every sync, tens of ms of the event loop).
_RENEW_ALL = """
local lost = {}
for i, key in ipairs(KEYS) do
  if redis.call('get', key) == ARGV[1] then
    redis.call('pexpire', key, ARGV[2])
  else
    lost[#lost + 1] = i
  end
end
return lost
"""
_RENEW_CHUNK = 1000
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


# Pairs of KEYS (lease, hand-over request) per bot; ARGV: owner, ttl, member key prefix,
# then the asker per bot. Returns the 1-based positions of the bots passed over.
_HAND_OVER = """
local moved = {}
for i = 1, #KEYS / 2 do
  local lease, request, to = KEYS[2 * i - 1], KEYS[2 * i], ARGV[3 + i]
  if redis.call('get', lease) == ARGV[1] and redis.call('get', request) == to
      and redis.call('exists', ARGV[3] .. to) == 1 then
    redis.call('set', lease, to, 'PX', ARGV[2])
    redis.call('del', request)
    moved[#moved + 1] = i
  end
end
return moved
"""


def lease_key(bot_id: uuid.UUID) -> str:
    return f"trading:bot:lease:{bot_id}"


def handover_key(bot_id: uuid.UUID) -> str:
    return f"trading:bot:handover:{bot_id}"


class BotLeases:
    def __init__(self, redis: Redis, owner: str, ttl_ms: int) -> None:
        self.redis = redis
        self.owner = owner
        self.ttl_ms = ttl_ms
        self._renew_all = redis.register_script(_RENEW_ALL)
        self._hand_over = redis.register_script(_HAND_OVER)

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
        lost: set[uuid.UUID] = set()
        for start in range(0, len(ids), _RENEW_CHUNK):
            chunk = ids[start : start + _RENEW_CHUNK]
            positions = await self._renew_all(
                keys=[lease_key(bot_id) for bot_id in chunk], args=[self.owner, self.ttl_ms]
            )
            lost.update(chunk[int(i) - 1] for i in positions)
        return lost

    async def release(self, bot_id: uuid.UUID) -> None:
        await self.redis.eval(_RELEASE, 1, lease_key(bot_id), self.owner)

    async def owner_of(self, bot_id: uuid.UUID) -> str | None:
        value = await self.redis.get(lease_key(bot_id))
        return None if value is None else str(value)

    async def owners(self, bot_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, str | None]:
        """Who holds each bot's lease (None: nobody), in one round trip."""
        ids = list(bot_ids)
        if not ids:
            return {}
        values = await self.redis.mget([lease_key(bot_id) for bot_id in ids])
        return {b: None if v is None else str(v) for b, v in zip(ids, values, strict=True)}

    async def ask(self, bot_ids: Iterable[uuid.UUID]) -> None:
        """Ask the owners of these bots to hand them over to this replica."""
        ids = list(bot_ids)
        if not ids:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for bot_id in ids:
                pipe.set(handover_key(bot_id), self.owner, px=self.ttl_ms)
            await pipe.execute()

    async def askers(self, bot_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, str | None]:
        """Which replica asks for each bot (None: nobody)."""
        ids = list(bot_ids)
        if not ids:
            return {}
        values = await self.redis.mget([handover_key(bot_id) for bot_id in ids])
        return {b: None if v is None else str(v) for b, v in zip(ids, values, strict=True)}

    async def hand_over(self, moves: dict[uuid.UUID, str], member_prefix: str) -> set[uuid.UUID]:
        """Pass the leases of ``moves`` (bot -> asking replica) to the askers still asking
        and live; returns the bots passed over."""
        ids = list(moves)
        if not ids:
            return set()
        keys = [key for bot_id in ids for key in (lease_key(bot_id), handover_key(bot_id))]
        positions = await self._hand_over(
            keys=keys, args=[self.owner, self.ttl_ms, member_prefix, *moves.values()]
        )
        return {ids[int(i) - 1] for i in positions}

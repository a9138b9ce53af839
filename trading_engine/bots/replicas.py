"""The live engine replicas: each one heartbeats its own key ``trading:replica:{id}``
(``PX`` = the bot lease) and its id in the set ``trading:replicas``; the set is pruned of
ids whose key has expired. Every replica reads the same membership from Redis's clock,
so they agree on where each bot belongs (:mod:`trading_engine.bots.placement`)."""

from __future__ import annotations

from redis.asyncio import Redis

MEMBERS_KEY = "trading:replicas"
MEMBER_PREFIX = "trading:replica:"

# Heartbeat, then the live members (sorted), pruning the dead: one round trip.
_HEARTBEAT = """
redis.call('set', ARGV[3] .. ARGV[1], '1', 'PX', ARGV[2])
redis.call('sadd', KEYS[1], ARGV[1])
local live = {}
for _, id in ipairs(redis.call('smembers', KEYS[1])) do
  if redis.call('exists', ARGV[3] .. id) == 1 then
    live[#live + 1] = id
  else
    redis.call('srem', KEYS[1], id)
  end
end
return live
"""


def member_key(replica_id: str) -> str:
    return f"{MEMBER_PREFIX}{replica_id}"


class ReplicaMembership:
    def __init__(self, redis: Redis, replica_id: str, ttl_ms: int) -> None:
        self.redis = redis
        self.replica_id = replica_id
        self.ttl_ms = ttl_ms
        self._heartbeat = redis.register_script(_HEARTBEAT)

    async def heartbeat(self) -> list[str]:
        """Renew this replica's membership; the live replicas, sorted (this one included)."""
        live = await self._heartbeat(
            keys=[MEMBERS_KEY], args=[self.replica_id, self.ttl_ms, MEMBER_PREFIX]
        )
        return sorted(str(member) for member in live)

    async def leave(self) -> None:
        """Leave at shutdown, so the others take this replica's bots at their next sync
        instead of after the heartbeat expires."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(member_key(self.replica_id))
            pipe.srem(MEMBERS_KEY, self.replica_id)
            await pipe.execute()

"""Sessions in Redis: ``user:session:{sid}`` = {userId, expiresAt, permissions, refreshJti}.

The hash lives as long as the refresh token. Every access token names its session, and
every service checks that the hash still exists, so deleting it ends the session at once.
Refresh rotation is one Lua script: the presented refresh jti must be the current one; an
older (already rotated) jti means the token was stolen or replayed, so the session goes.
"""

from __future__ import annotations

import time
import uuid
from enum import Enum

from redis.asyncio import Redis

from shared.auth import session_key

# KEYS[1] session hash; ARGV: presented jti, new jti, user id.
# Returns 1 rotated, 0 no such session, -1 reuse detected (session deleted), -2 wrong owner.
_ROTATE = """
local current = redis.call('HGET', KEYS[1], 'refreshJti')
if not current then return 0 end
if redis.call('HGET', KEYS[1], 'userId') ~= ARGV[3] then return -2 end
if current ~= ARGV[1] then
  redis.call('DEL', KEYS[1])
  return -1
end
redis.call('HSET', KEYS[1], 'refreshJti', ARGV[2])
return 1
"""


class Rotation(Enum):
    ROTATED = 1
    UNKNOWN = 0
    REUSED = -1
    FOREIGN = -2


def user_sessions_key(user_id: uuid.UUID | str) -> str:
    return f"user:sessions:{user_id}"


class SessionStore:
    def __init__(self, redis: Redis, *, ttl_seconds: int) -> None:
        self.redis = redis
        self.ttl = ttl_seconds

    async def open(self, user_id: uuid.UUID, permissions: list[str]) -> tuple[str, str]:
        """A new session; returns (session id, its first refresh jti)."""
        sid = uuid.uuid4().hex
        jti = uuid.uuid4().hex
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                session_key(sid),
                mapping={
                    "userId": str(user_id),
                    "expiresAt": str(int(time.time()) + self.ttl),
                    "permissions": ",".join(permissions),
                    "refreshJti": jti,
                },
            )
            pipe.expire(session_key(sid), self.ttl)
            pipe.sadd(user_sessions_key(user_id), sid)
            pipe.expire(user_sessions_key(user_id), self.ttl)
            await pipe.execute()
        return sid, jti

    async def rotate(self, sid: str, *, presented_jti: str, user_id: str) -> tuple[Rotation, str]:
        new_jti = uuid.uuid4().hex
        outcome = await self.redis.eval(
            _ROTATE, 1, session_key(sid), presented_jti, new_jti, user_id
        )
        return Rotation(int(outcome)), new_jti

    async def set_permissions(self, sid: str, permissions: list[str]) -> None:
        await self.redis.hset(session_key(sid), "permissions", ",".join(permissions))

    async def revoke(self, sid: str, user_id: uuid.UUID | str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(session_key(sid))
            pipe.srem(user_sessions_key(user_id), sid)
            await pipe.execute()

    async def revoke_all(self, user_id: uuid.UUID | str) -> int:
        """End every session of the user (logout everywhere)."""
        sids = await self.redis.smembers(user_sessions_key(user_id))
        async with self.redis.pipeline(transaction=True) as pipe:
            for sid in sids:
                pipe.delete(session_key(str(sid)))
            pipe.delete(user_sessions_key(user_id))
            await pipe.execute()
        return len(sids)

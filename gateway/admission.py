"""Admission of a request: the session check and the rate-limit count in ONE Redis call.

The counter is a fixed window that starts at a caller's first request
(``gateway:ratelimit:{user|ip}:{id}``, INCR + PEXPIRE in a Lua script), so every gateway
replica shares one budget and the 101st request inside a minute is refused. The same
script reads ``userId`` of the token's session, so an authenticated request costs one
round trip, not two.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import jwt

from gateway.script_channel import ScriptChannel
from shared.auth import REQUIRED_CLAIMS
from shared.errors import Unauthorized

# KEYS[1] rate counter, KEYS[2] (optional) session hash. ARGV[1] window ms.
# Returns {count, ms until the window resets, session owner or false}.
_ADMIT = """
local n = redis.call('INCR', KEYS[1])
local ttl = tonumber(ARGV[1])
if n == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
else
  ttl = redis.call('PTTL', KEYS[1])
  if ttl < 0 then
    redis.call('PEXPIRE', KEYS[1], ARGV[1])
    ttl = tonumber(ARGV[1])
  end
end
local owner = false
if KEYS[2] then owner = redis.call('HGET', KEYS[2], 'userId') end
return {n, ttl, owner}
"""

WINDOW_MS = 60_000
_LIMIT_BYTES: dict[int, bytes] = {}


@dataclass(frozen=True)
class AccessClaims:
    user_id: str
    session_id: str
    expires_at: int


@dataclass(frozen=True)
class Admission:
    count: int
    limit: int
    reset_ms: int
    session_owner: str | None

    @property
    def allowed(self) -> bool:
        return self.count <= self.limit

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.count)

    @property
    def reset_seconds(self) -> int:
        return max(1, math.ceil(self.reset_ms / 1000))

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [
            (b"x-ratelimit-limit", _LIMIT_BYTES.get(self.limit) or str(self.limit).encode()),
            (b"x-ratelimit-remaining", str(self.remaining).encode()),
            (b"x-ratelimit-reset", str(self.reset_seconds).encode()),
        ]


class TokenVerifier:
    """Access-token signature and claims check, memoised per token string.

    A token's signature and claims never change, so a verified token is remembered until
    its expiry (bounded LRU); the session it names is still checked on every request.
    """

    def __init__(self, secret: str, algorithm: str, *, capacity: int = 10_000) -> None:
        self.secret = secret
        self.algorithm = algorithm
        self.capacity = capacity
        self._cache: OrderedDict[str, AccessClaims] = OrderedDict()

    def verify(self, token: str) -> AccessClaims:
        cached = self._cache.get(token)
        now = int(time.time())
        if cached is not None:
            if cached.expires_at > now:
                return cached
            del self._cache[token]
            raise Unauthorized("The token has expired.")
        claims = self._decode(token)
        verified = AccessClaims(str(claims["sub"]), str(claims["sid"]), int(claims["exp"]))
        self._cache[token] = verified
        if len(self._cache) > self.capacity:
            self._cache.popitem(last=False)
        return verified

    def _decode(self, token: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self.secret,
                algorithms=[self.algorithm],
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("The token has expired.") from exc
        except jwt.PyJWTError as exc:
            raise Unauthorized("The token is invalid.") from exc
        if claims.get("type") != "access":
            raise Unauthorized("An access token is required.")
        return claims


class Admitter:
    """Counts a request against its caller's budget and reads the token's session."""

    def __init__(self, redis_url: str, *, limit: int, enabled: bool = True) -> None:
        self.limit = limit
        _LIMIT_BYTES[limit] = str(limit).encode()
        self.enabled = enabled
        self.channel = ScriptChannel(redis_url, _ADMIT)

    async def admit(self, caller: str, session_key: str | None) -> Admission:
        # With the limit off the script still reads the session, on a throwaway counter.
        rate_key = f"gateway:ratelimit:{caller}" if self.enabled else "gateway:ratelimit:off"
        keys = [rate_key] if session_key is None else [rate_key, session_key]
        count, ttl, owner = await self.channel.run(keys, [WINDOW_MS])
        if not self.enabled:
            count = 0
        return Admission(
            int(count), self.limit, int(ttl), owner.decode() if owner is not None else None
        )

    async def close(self) -> None:
        await self.channel.close()

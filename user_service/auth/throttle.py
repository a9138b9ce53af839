"""Brute-force throttle of logins: failures counted per account and per client IP."""

from __future__ import annotations

import hashlib

from redis.asyncio import Redis

from shared.errors import RateLimited

# KEYS: counters; ARGV[1] window seconds. INCR each, start its window on the first failure.
_RECORD = """
for i, key in ipairs(KEYS) do
  if redis.call('INCR', key) == 1 then redis.call('EXPIRE', key, ARGV[1]) end
end
return 1
"""


class LoginThrottle:
    def __init__(self, redis: Redis, *, max_failures: int, window_seconds: int) -> None:
        self.redis = redis
        self.max_failures = max_failures
        self.window = window_seconds

    @staticmethod
    def _keys(email: str, ip: str | None) -> list[str]:
        # The email is hashed so the key space does not hold addresses in clear.
        digest = hashlib.sha256(email.encode()).hexdigest()[:32]
        keys = [f"user:login-failures:account:{digest}"]
        if ip:
            keys.append(f"user:login-failures:ip:{ip}")
        return keys

    async def check(self, email: str, ip: str | None) -> None:
        """429 with Retry-After while the account or the IP is over its failure budget."""
        keys = self._keys(email, ip)
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.get(key)
                pipe.ttl(key)
            values = await pipe.execute()
        for count, ttl in zip(values[::2], values[1::2], strict=True):
            if count is not None and int(count) >= self.max_failures:
                raise RateLimited(
                    "Too many failed logins; wait before trying again.",
                    retry_after=int(ttl) if ttl and int(ttl) > 0 else self.window,
                )

    async def record_failure(self, email: str, ip: str | None) -> None:
        keys = self._keys(email, ip)
        await self.redis.eval(_RECORD, len(keys), *keys, self.window)

    async def clear_account(self, email: str) -> None:
        await self.redis.delete(self._keys(email, None)[0])

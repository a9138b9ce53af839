"""A benchmark's own PostgreSQL database (migrated) and Redis database index, the same
isolation the test suite uses (tests/stores.py), so a bench never touches another run's data."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from tests.stores import RedisIndexLock, create_database, drop_database


@dataclass
class ScratchStores:
    database_url: str
    redis_url: str
    _redis_index: RedisIndexLock

    @classmethod
    async def open(cls) -> ScratchStores:
        """Create and migrate a database; take a free Redis index (held by a lock key)."""
        database_url = await asyncio.to_thread(create_database, "tradebot_bench")
        try:
            redis_index = await asyncio.to_thread(RedisIndexLock, 3600)
        except BaseException:
            await asyncio.to_thread(drop_database, database_url)
            raise
        return cls(database_url, redis_index.url, redis_index)

    async def close(self) -> None:
        """Release the Redis index (if still ours) and drop the database."""
        await asyncio.to_thread(self._redis_index.release)
        await asyncio.to_thread(drop_database, self.database_url)

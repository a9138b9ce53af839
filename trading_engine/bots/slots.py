"""Candle transactions in flight on a replica: at most ``BOT_CONCURRENCY`` at once, and
an idle signal that lower-priority writes (HOLD status rows) wait on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class BookingSlots:
    def __init__(self, limit: int) -> None:
        self._slots = asyncio.Semaphore(limit)
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        """One of the slots, counted as in flight while it runs."""
        async with self._slots:
            self._in_flight += 1
            self._idle.clear()
            try:
                yield
            finally:
                self._in_flight -= 1
                if not self._in_flight:
                    self._idle.set()

    async def wait_idle(self) -> None:
        """Return once no candle transaction is in flight."""
        await self._idle.wait()

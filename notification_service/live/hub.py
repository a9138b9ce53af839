"""Live push through Redis pub/sub, so a socket on any replica gets its user's notifications.

:class:`LivePublisher` PUBLISHes to ``channel:notifications:{userId}`` (only after the commit
that stored the notification; see :func:`shared.db.after_commit`), batching what
arrives together into one pipeline. :class:`LiveHub` holds one pattern subscription per
replica and hands each message to the queues of that user's sockets on this replica; a
socket whose queue is full is dropped, never allowed to stall the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence

import structlog
from prometheus_client import Counter, Gauge
from redis.asyncio import Redis

log = structlog.get_logger("live")

CHANNEL_PREFIX = "channel:notifications:"

LIVE_SOCKETS = Gauge("notification_ws_connections", "Open notification WebSockets")
LIVE_PUSHED = Counter("notification_ws_pushed_total", "Notifications handed to sockets")
LIVE_DROPPED = Counter("notification_ws_dropped_total", "Sockets dropped for being too slow")


def channel_for(user_id: uuid.UUID | str) -> str:
    return f"{CHANNEL_PREFIX}{user_id}"


class LivePublisher:
    """Queue of (user, JSON text) to PUBLISH; ``push`` never blocks or awaits."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._queue: asyncio.Queue[tuple[str, str | bytes]] = asyncio.Queue()

    def push(self, user_id: uuid.UUID, message: str | bytes) -> None:
        self._queue.put_nowait((channel_for(user_id), message))

    def push_many(self, messages: Sequence[tuple[uuid.UUID, str | bytes]]) -> None:
        for user_id, message in messages:
            self._queue.put_nowait((channel_for(user_id), message))

    async def run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty() and len(batch) < 500:
                batch.append(self._queue.get_nowait())
            await self._publish(batch)

    async def drain(self) -> None:
        """Publish whatever is queued (on shutdown)."""
        batch: list[tuple[str, str | bytes]] = []
        while not self._queue.empty():
            batch.append(self._queue.get_nowait())
        if batch:
            await self._publish(batch)

    async def _publish(self, batch: list[tuple[str, str | bytes]]) -> None:
        for attempt in range(3):
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for channel, message in batch:
                        pipe.publish(channel, message)
                    await pipe.execute()
                return
            except Exception as exc:
                # Live push is best effort: the notification is stored and listed anyway.
                log.warning("live_publish_failed", error=repr(exc), attempt=attempt + 1)
                await asyncio.sleep(0.2 * (attempt + 1))


class LiveHub:
    """This replica's sockets, by user, fed from one ``PSUBSCRIBE channel:notifications:*``."""

    def __init__(self, redis: Redis, *, queue_size: int) -> None:
        self.redis = redis
        self.queue_size = queue_size
        self._sockets: dict[str, set[asyncio.Queue[str | None]]] = defaultdict(set)
        self.subscribed = asyncio.Event()

    @contextlib.asynccontextmanager
    async def connect(self, user_id: uuid.UUID) -> AsyncIterator[asyncio.Queue[str | None]]:
        """A queue of this user's messages; ``None`` in it means "too slow, disconnect"."""
        key = str(user_id)
        queue: asyncio.Queue[str | None] = asyncio.Queue(self.queue_size)
        self._sockets[key].add(queue)
        LIVE_SOCKETS.inc()
        try:
            yield queue
        finally:
            LIVE_SOCKETS.dec()
            sockets = self._sockets.get(key)
            if sockets is not None:
                sockets.discard(queue)
                if not sockets:
                    del self._sockets[key]

    def deliver(self, user_id: str, message: str) -> None:
        for queue in list(self._sockets.get(user_id, ())):
            try:
                queue.put_nowait(message)
                LIVE_PUSHED.inc()
            except asyncio.QueueFull:
                LIVE_DROPPED.inc()
                self._sockets[user_id].discard(queue)
                with contextlib.suppress(asyncio.QueueFull):
                    queue.get_nowait()
                    queue.put_nowait(None)

    async def run(self) -> None:
        """Listen until cancelled, re-subscribing after a Redis outage."""
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe(CHANNEL_PREFIX + "*")
                self.subscribed.set()
                delivered = 0
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is None or message.get("type") != "pmessage":
                        continue
                    channel = str(message["channel"])
                    self.deliver(channel.removeprefix(CHANNEL_PREFIX), str(message["data"]))
                    delivered += 1
                    if delivered % 32 == 0:
                        # Buffered messages are read without suspending: let the sockets'
                        # senders run, so a burst is not mistaken for a slow client.
                        await asyncio.sleep(0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.subscribed.clear()
                log.warning("live_subscription_lost", error=repr(exc))
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

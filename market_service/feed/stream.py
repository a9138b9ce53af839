"""``MarketDataStream``: WebSocket subscribers fed through Redis pub/sub (docs/api.md).

Ticks are published once to ``channel:market:{exchange}:{symbol}`` by whichever replica
holds that symbol's watcher lease; every replica subscribes to the channels its own clients
want and fans each message out to them as the very string it received, framed once for all
of them (``OutgoingFrame``; no per-client JSON or framing).
``subscriptions:market:{exchange}:{symbol}`` lists the subscribers of every replica as
``{instance}:{client}``. A replica that stops cleanly removes its own members; one that
crashed cannot, so every replica keeps ``market:feed:replica:{instance}`` alive (a TTL it
renews) and now and then removes the members of instances whose key has expired.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
import structlog
from redis.asyncio import Redis

from market_service.feed.clients import FeedClient, OutgoingFrame
from shared.cancellation import raise_if_cancelling

if TYPE_CHECKING:
    from market_service.feed.watchers import FeedWatchers

log = structlog.get_logger("feed")


def channel_for(exchange: str, symbol: str) -> str:
    return f"channel:market:{exchange}:{symbol}"


def subscriptions_key(exchange: str, symbol: str) -> str:
    return f"subscriptions:market:{exchange}:{symbol}"


def replica_key(instance_id: str) -> str:
    return f"market:feed:replica:{instance_id}"


REPLICA_TTL_MS = 15_000  # renewed every third of it
SWEEP_EVERY = 6  # renewals between two sweeps of stale members (~30 s)


class MarketDataStream:
    def __init__(
        self,
        redis: Redis,
        watchers: FeedWatchers,
        instance_id: str,
        *,
        heartbeat_seconds: float = 15.0,
    ) -> None:
        self.redis = redis
        self.heartbeat_seconds = heartbeat_seconds
        self.connected: set[FeedClient] = set()
        self._heartbeat: asyncio.Task[None] | None = None
        self._presence: asyncio.Task[None] | None = None
        self.watchers = watchers
        self.instance_id = instance_id
        self._clients: dict[str, dict[str, FeedClient]] = {}  # channel -> client id -> client
        self._pubsub = redis.pubsub(ignore_subscribe_messages=True)
        self._reader: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._stopping = False
        # Set by stop() as well as cancelling: redis-py may swallow a cancellation, and the
        # timers then still wake at once instead of after their full sleep.
        self._stopped = asyncio.Event()

    async def start(self) -> None:
        # The read loop subscribes a private channel, which keeps the pub/sub connection
        # open before any client subscribes; with Redis down it retries there, so the
        # service still starts and reports redis: down.
        self._reader = asyncio.create_task(self._read_loop(), name="market-feed-reader")
        self._heartbeat = asyncio.create_task(self._heartbeats(), name="market-feed-heartbeat")
        self._presence = asyncio.create_task(self._keep_presence(), name="market-feed-presence")

    async def stop(self) -> None:
        self._stopping = True
        self._stopped.set()
        tasks = {t for t in (self._reader, self._heartbeat, self._presence) if t is not None}
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        for channel, clients in list(self._clients.items()):
            exchange, symbol = channel.removeprefix("channel:market:").split(":", 1)
            with contextlib.suppress(Exception):
                await self.redis.srem(
                    subscriptions_key(exchange, symbol),
                    *[f"{self.instance_id}:{cid}" for cid in clients],
                )  # type: ignore[misc,unused-ignore]
        self._clients.clear()
        with contextlib.suppress(Exception):
            await self.redis.delete(replica_key(self.instance_id))
        with contextlib.suppress(Exception):
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _heartbeats(self) -> None:
        """One timer for every connection: a heartbeat frame every ``heartbeat_seconds``."""
        while not await self._pause(self.heartbeat_seconds):
            frame = OutgoingFrame.json(
                {"type": "heartbeat", "timestamp": datetime.now(UTC).isoformat()}
            )
            for client in list(self.connected):
                client.offer(frame)

    async def _keep_presence(self) -> None:
        """Renew this replica's key; every ``SWEEP_EVERY`` renewals, sweep stale members."""
        renewals = 0
        while not self._stopping:
            try:
                await self.announce()
                if renewals % SWEEP_EVERY == 0:
                    await self.sweep_stale_subscriptions()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis gone: retried at the next renewal
                raise_if_cancelling()
                log.warning("feed_presence_error", error=repr(exc))
            renewals += 1
            if await self._pause(REPLICA_TTL_MS / 3000):
                return

    async def _pause(self, seconds: float) -> bool:
        """Sleep ``seconds``; True as soon as the stream stops."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopped.wait(), seconds)
        return self._stopped.is_set()

    async def announce(self) -> None:
        """Mark this replica alive for ``REPLICA_TTL_MS``."""
        await self.redis.set(replica_key(self.instance_id), 1, px=REPLICA_TTL_MS)

    async def sweep_stale_subscriptions(self) -> int:
        """Remove the subscribers of replicas that are gone (crashed); how many were removed."""
        removed = 0
        async for key in self.redis.scan_iter(match="subscriptions:market:*", count=500):
            members: set[str] = await self.redis.smembers(key)  # type: ignore[assignment,misc,unused-ignore]
            instances = sorted({m.split(":", 1)[0] for m in members})
            if not instances:
                continue
            async with self.redis.pipeline(transaction=False) as pipe:
                for instance in instances:
                    pipe.exists(replica_key(instance))
                flags = await pipe.execute()
            dead = {i for i, flag in zip(instances, flags, strict=True) if not flag}
            stale = [m for m in members if m.split(":", 1)[0] in dead]
            if stale:
                removed += await self.redis.srem(key, *stale)  # type: ignore[misc,unused-ignore]
                log.info("feed_stale_subscribers_removed", key=key, replicas=sorted(dead))
        return removed

    def local_subscribers(self, exchange: str, symbol: str) -> int:
        return len(self._clients.get(channel_for(exchange, symbol), {}))

    async def subscribe(
        self, symbol: str, user_id: str, *, exchange: str, client: FeedClient
    ) -> None:
        """Deliver ``symbol``'s ticks to ``client`` (``user_id`` names the subscriber)."""
        channel = channel_for(exchange, symbol)
        async with self._lock:
            clients = self._clients.setdefault(channel, {})
            if user_id in clients:
                return
            first = not clients
            clients[user_id] = client
            if first:
                await self._pubsub.subscribe(channel)
                self.watchers.want(exchange, symbol)
        client.subscriptions.add((exchange, symbol))
        async with self.redis.pipeline(transaction=False) as pipe:
            # Alive before its member is visible, or a sweep could take it for a crashed one.
            pipe.set(replica_key(self.instance_id), 1, px=REPLICA_TTL_MS)
            pipe.sadd(subscriptions_key(exchange, symbol), f"{self.instance_id}:{user_id}")
            await pipe.execute()

    async def unsubscribe(self, symbol: str, user_id: str, *, exchange: str) -> None:
        """Stop delivering ``symbol`` to ``user_id``; the last one out stops the watcher."""
        channel = channel_for(exchange, symbol)
        async with self._lock:
            clients = self._clients.get(channel)
            if not clients or user_id not in clients:
                return
            client = clients.pop(user_id)
            client.subscriptions.discard((exchange, symbol))
            if not clients:
                del self._clients[channel]
                await self._pubsub.unsubscribe(channel)
                self.watchers.unwant(exchange, symbol)
        await self.redis.srem(subscriptions_key(exchange, symbol), f"{self.instance_id}:{user_id}")  # type: ignore[misc,unused-ignore]

    async def broadcast(self, symbol: str, data: dict[str, Any], *, exchange: str) -> None:
        """Publish one frame to every replica's subscribers of ``symbol``."""
        await self.redis.publish(channel_for(exchange, symbol), orjson.dumps(data))

    async def _read_loop(self) -> None:
        control = f"channel:market:_control:{self.instance_id}"
        while not self._stopping:
            try:
                if not self._pubsub.subscribed:
                    await self._pubsub.subscribe(control)
                message = await self._pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis gone: keep trying, clients stay connected
                raise_if_cancelling()
                log.warning("feed_pubsub_error", error=repr(exc))
                await asyncio.sleep(1.0)
                continue
            if message is None or message.get("type") != "message":
                continue
            self.fan_out(message["channel"], message["data"])

    def fan_out(self, channel: str, text: str) -> None:
        """Hand one frame to every local subscriber of ``channel`` without waiting."""
        clients = self._clients.get(channel)
        if clients:
            frame = OutgoingFrame.of(text)
            for client in list(clients.values()):
                client.offer(frame)

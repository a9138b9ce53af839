"""Fan-out: a client whose sends block is dropped; the others get every frame."""

from __future__ import annotations

import asyncio
from typing import Any

from market_service.feed.clients import FeedClient
from market_service.feed.stream import MarketDataStream


class FakeSocket:
    def __init__(self, *, blocked: bool) -> None:
        self.blocked = blocked
        self.sent: list[str] = []
        self.closed_with: int | None = None

    async def send(self, message: dict[str, Any]) -> None:
        if self.blocked:
            await asyncio.Event().wait()  # a peer that never reads: the send never completes
        self.sent.append(message["text"])

    async def close(self, code: int = 1000) -> None:
        self.closed_with = code


class NoWatchers:
    def want(self, exchange: str, symbol: str) -> None: ...

    def unwant(self, exchange: str, symbol: str) -> None: ...


async def test_a_blocked_client_is_dropped_and_the_others_receive_every_frame(redis) -> None:
    stream = MarketDataStream(redis, NoWatchers(), "test")  # type: ignore[arg-type]
    sockets = [FakeSocket(blocked=i == 0) for i in range(20)]
    clients = [FeedClient(s, queue_size=8) for s in sockets]  # type: ignore[arg-type]
    senders = [asyncio.create_task(c.run_sender()) for c in clients]
    for client in clients:
        await stream.subscribe("BTC/USDT", client.id, exchange="sim", client=client)
    channel = "channel:market:sim:BTC/USDT"
    for i in range(100):
        stream.fan_out(channel, f"tick {i}")
        await asyncio.sleep(0.001)
    await asyncio.sleep(0.05)

    assert clients[0].dropped
    assert clients[0].closed.is_set()
    await clients[0].close()
    assert sockets[0].closed_with == 1008
    for sock in sockets[1:]:
        assert sock.sent == [f"tick {i}" for i in range(100)]
    for task in senders:
        task.cancel()
    await asyncio.gather(*senders, return_exceptions=True)
    assert await redis.scard("subscriptions:market:sim:BTC/USDT") == 20

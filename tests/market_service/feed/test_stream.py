"""Fan-out: a client that stops reading is dropped; the others get every frame."""

from __future__ import annotations

import asyncio
from typing import Any

from market_service.feed.clients import FeedClient
from market_service.feed.protocol import RAW_FRAMES, encode_text_frame
from market_service.feed.stream import MarketDataStream
from tests.waiting import eventually

CHANNEL = "channel:market:sim:BTC/USDT"


class FakeSocket:
    """An ASGI WebSocket whose sends never complete when ``blocked`` (a peer not reading)."""

    def __init__(self, *, blocked: bool) -> None:
        self.blocked = blocked
        self.scope: dict[str, Any] = {"type": "websocket", "extensions": {}}
        self.sent: list[str] = []
        self.closed_with: int | None = None

    async def send(self, message: dict[str, Any]) -> None:
        if self.blocked:
            await asyncio.Event().wait()  # a peer that never reads: the send never completes
        self.sent.append(message["text"])

    async def close(self, code: int = 1000) -> None:
        self.closed_with = code


class FakeWriter:
    """The feed protocol's raw writer over a transport; ``blocked``: the kernel takes nothing."""

    def __init__(self, *, blocked: bool) -> None:
        self.blocked = blocked
        self.written: list[bytes] = []
        self.unsent = 0
        self.aborted = False

    def write(self, frame: bytes) -> int:
        self.written.append(frame)
        if self.blocked:
            self.unsent += len(frame)
        return self.unsent

    def abort(self) -> None:
        self.aborted = True


class NoWatchers:
    def want(self, exchange: str, symbol: str) -> None: ...

    def unwant(self, exchange: str, symbol: str) -> None: ...


async def test_a_blocked_client_is_dropped_and_the_others_receive_every_frame(redis) -> None:
    stream = MarketDataStream(redis, NoWatchers(), "test")  # type: ignore[arg-type]
    sockets = [FakeSocket(blocked=i == 0) for i in range(20)]
    clients = [FeedClient(s, max_unsent=1024) for s in sockets]  # type: ignore[arg-type]
    assert not any(c.direct for c in clients)
    senders = [asyncio.create_task(c.run_sender()) for c in clients]
    for client in clients:
        await stream.subscribe("BTC/USDT", client.id, exchange="sim", client=client)
    for i in range(200):
        stream.fan_out(CHANNEL, f"tick {i:03}")
        await asyncio.sleep(0.001)

    async def all_delivered() -> bool:
        return clients[0].dropped and all(len(sock.sent) == 200 for sock in sockets[1:])

    await eventually(all_delivered)
    assert clients[0].dropped
    assert clients[0].closed.is_set()
    await clients[0].close()
    assert sockets[0].closed_with == 1008
    for sock in sockets[1:]:
        assert sock.sent == [f"tick {i:03}" for i in range(200)]
    for task in senders:
        task.cancel()
    await asyncio.gather(*senders, return_exceptions=True)
    assert await redis.scard("subscriptions:market:sim:BTC/USDT") == 20


async def test_on_the_feed_protocol_one_encoded_frame_is_written_to_every_client(redis) -> None:
    stream = MarketDataStream(redis, NoWatchers(), "test")  # type: ignore[arg-type]
    sockets = [FakeSocket(blocked=False) for _ in range(20)]
    writers = [FakeWriter(blocked=i == 0) for i in range(20)]
    for sock, writer in zip(sockets, writers, strict=True):
        sock.scope["extensions"][RAW_FRAMES] = {"writer": writer}
    clients = [FeedClient(s, max_unsent=1024) for s in sockets]  # type: ignore[arg-type]
    assert all(c.direct for c in clients)
    for client in clients:
        await stream.subscribe("BTC/USDT", client.id, exchange="sim", client=client)
    for i in range(200):
        stream.fan_out(CHANNEL, f"tick {i:03}")

    assert clients[0].dropped
    assert clients[0].closed.is_set()
    assert len(writers[0].written) < 200  # nothing more once it passed the limit
    await clients[0].close()
    assert sockets[0].closed_with == 1008
    assert writers[0].aborted  # its close frame would sit behind what it never read
    expected = [encode_text_frame(f"tick {i:03}".encode()) for i in range(200)]
    for writer in writers[1:]:
        assert writer.written == expected
        assert not writer.aborted
    # Encoded once per tick: every client got the very same bytes object.
    assert all(w.written[7] is writers[1].written[7] for w in writers[2:])
    for sock in sockets:
        assert sock.sent == []  # nothing went through ASGI


async def test_subscribers_of_a_crashed_replica_are_swept_and_live_ones_kept(redis) -> None:
    live = MarketDataStream(redis, NoWatchers(), "live0001")  # type: ignore[arg-type]
    client = FeedClient(FakeSocket(blocked=False), max_unsent=1024)  # type: ignore[arg-type]
    await live.subscribe("BTC/USDT", client.id, exchange="sim", client=client)
    # A replica that stopped cleanly is gone from the sets; a crashed one left its members
    # and its presence key expires.
    key = "subscriptions:market:sim:BTC/USDT"
    other = "subscriptions:market:sim:ETH/USDT"
    await redis.sadd(key, "crashed01:c1", "crashed01:c2")
    await redis.sadd(other, "crashed01:c3", "running2:c9")
    await redis.set("market:feed:replica:running2", 1, px=60_000)

    assert await live.sweep_stale_subscriptions() == 3

    assert await redis.smembers(key) == {f"live0001:{client.id}"}
    assert await redis.smembers(other) == {"running2:c9"}
    assert await live.sweep_stale_subscriptions() == 0


async def test_a_replica_announces_itself_and_its_clean_stop_leaves_nothing_behind(redis) -> None:
    stream = MarketDataStream(redis, NoWatchers(), "replica7")  # type: ignore[arg-type]
    await stream.start()
    try:
        client = FeedClient(FakeSocket(blocked=False), max_unsent=1024)  # type: ignore[arg-type]
        await stream.subscribe("BTC/USDT", client.id, exchange="sim", client=client)
        assert await redis.pttl("market:feed:replica:replica7") > 0
        assert await redis.smembers("subscriptions:market:sim:BTC/USDT") == {
            f"replica7:{client.id}"
        }
    finally:
        await stream.stop()
    assert await redis.exists("market:feed:replica:replica7") == 0
    assert await redis.exists("subscriptions:market:sim:BTC/USDT") == 0

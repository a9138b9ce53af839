"""`WS /market/ws` on real uvicorn servers: ticks, fan-out, slow clients, replicas."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, cast

import pytest
from fastapi import FastAPI
from redis.asyncio import Redis
from websockets.asyncio.client import ClientConnection, connect

from market_service.main import create_app
from market_service.settings import MarketSettings
from shared.events import stream_for
from tests.servers import UvicornThread, app_client
from tests.waiting import eventually
from tradebot.stack import WS_PROTOCOLS

pytestmark = pytest.mark.e2e

# The WebSocket protocol `tradebot up` runs the service with (frames written straight to
# the transport), and uvicorn's default, under which the feed sends through ASGI.
FEED_PROTOCOL = WS_PROTOCOLS["market"]
PROTOCOLS = pytest.mark.parametrize("protocol", [FEED_PROTOCOL, "auto"])


@asynccontextmanager
async def market_server(
    *, ws: str = FEED_PROTOCOL, ping_interval: float = 20.0, **overrides: Any
) -> AsyncIterator[UvicornThread]:
    app = create_app(MarketSettings(**overrides))
    async with UvicornThread(
        app, ws=ws, ws_ping_interval=ping_interval, ws_ping_timeout=ping_interval
    ) as server:
        yield server


def app_state(server: UvicornThread) -> Any:
    """The running app's ``state`` (feed, watchers), read from the test's thread."""
    return cast(FastAPI, server.server.config.app).state


def ws_url(server: UvicornThread) -> str:
    return server.url.replace("http", "ws") + "/market/ws"


async def open_client(server: UvicornThread) -> ClientConnection:
    return await connect(ws_url(server), compression=None, max_queue=None)


async def subscribe(ws: ClientConnection, *symbols: str, exchange: str = "sim") -> dict[str, Any]:
    await ws.send(json.dumps({"op": "subscribe", "symbols": list(symbols), "exchange": exchange}))
    while True:
        frame: dict[str, Any] = json.loads(await ws.recv())
        if frame["type"] != "ticker":
            return frame


async def ticks(ws: ClientConnection, count: int) -> list[dict[str, Any]]:
    """The next ``count`` ticker frames (other frames skipped)."""
    out: list[dict[str, Any]] = []
    while len(out) < count:
        frame = json.loads(await ws.recv())
        if frame["type"] == "ticker":
            out.append(frame)
    return out


async def common_ticks(
    clients: list[ClientConnection], count: int, *, until: Callable[[], bool] = lambda: True
) -> list[list[str]]:
    """Tick timestamps of each client over the stretch every one of them was receiving,
    once that stretch holds ``count`` ticks (and ``until()`` holds). Every client reads all
    along, so none falls behind while the others are waited on."""
    stamps: list[list[str]] = [[] for _ in clients]

    async def read(ws: ClientConnection, mine: list[str]) -> None:
        while True:
            frame = json.loads(await ws.recv())
            if frame["type"] == "ticker":
                mine.append(frame["timestamp"])

    async def enough() -> list[list[str]] | None:
        if not all(stamps):
            return None
        start = max(s[0] for s in stamps)
        end = min(s[-1] for s in stamps)
        common = [[t for t in s if start <= t <= end] for s in stamps]
        return common if len(common[0]) >= count and until() else None

    readers = [
        asyncio.create_task(read(ws, mine)) for ws, mine in zip(clients, stamps, strict=True)
    ]
    try:
        common: list[list[str]] = await eventually(enough, timeout=60)
    finally:
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
    return common


async def test_the_subscribed_reply_comes_before_the_first_tick() -> None:
    async with market_server() as server:
        for _ in range(5):
            ws = await open_client(server)
            await ws.send(json.dumps({"op": "subscribe", "symbols": ["ETH/USDT", "BTC/USDT"]}))
            first = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert first["type"] == "subscribed", first
            await ws.close()


async def test_subscribe_receives_ticks_and_unsubscribe_stops_them() -> None:
    async with market_server() as server:
        ws = await open_client(server)
        ack = await subscribe(ws, "BTC/USDT")
        assert ack == {"type": "subscribed", "exchange": "sim", "symbols": ["BTC/USDT"]}
        first = await ticks(ws, 5)
        tick = first[0]
        assert set(tick) == {
            "type",
            "exchange",
            "symbol",
            "price",
            "bid",
            "ask",
            "volume",
            "change",
            "timestamp",
        }
        assert tick["symbol"] == "BTC/USDT"
        assert tick["bid"] < tick["ask"]
        assert len({t["timestamp"] for t in first}) == 5

        await ws.send(json.dumps({"op": "unsubscribe", "symbols": ["BTC/USDT"]}))
        while json.loads(await ws.recv())["type"] != "unsubscribed":
            pass
        # Ticks keep flowing (another client gets three), and none of them reach this one:
        # everything sent to it after the unsubscribe came before the answer to its ping.
        other = await open_client(server)
        await subscribe(other, "BTC/USDT")
        await ticks(other, 3)
        await ws.send(json.dumps({"op": "ping"}))
        after: list[str] = []
        while (frame := json.loads(await ws.recv()))["type"] != "pong":
            after.append(frame["type"])
        assert "ticker" not in after
        await ws.close()
        await other.close()


async def test_malformed_frames_get_an_error_and_the_connection_stays_open() -> None:
    async with market_server() as server:
        ws = await open_client(server)
        for bad in [
            "not json",
            "[1, 2]",
            '{"op": "dance"}',
            '{"op": "subscribe", "symbols": "BTC"}',
        ]:
            await ws.send(bad)
            frame = json.loads(await ws.recv())
            assert frame["type"] == "error"
            assert frame["message"]
        await ws.send(json.dumps({"op": "subscribe", "symbols": ["NOPE/USDT"]}))
        frame = json.loads(await ws.recv())
        assert frame["type"] == "error"
        assert "NOPE/USDT" in frame["message"]
        await ws.send(json.dumps({"op": "ping"}))
        assert json.loads(await ws.recv())["type"] == "pong"
        await ws.close()


@PROTOCOLS
async def test_two_hundred_clients_on_one_symbol_all_receive_every_tick(protocol: str) -> None:
    async with market_server(ws=protocol) as server:
        clients = await asyncio.gather(*(open_client(server) for _ in range(200)))
        await asyncio.gather(*(subscribe(ws, "ETH/USDT") for ws in clients))
        feed = app_state(server).feed
        # The feed's own protocol writes frames straight to the transport; elsewhere ASGI.
        assert {c.direct for c in feed.connected} == {protocol == FEED_PROTOCOL}
        # Over the stretch every client was subscribed, everybody saw the same ticks.
        common = await common_ticks(clients, 8)
        assert all(c == common[0] for c in common)
        await asyncio.gather(*(ws.close() for ws in clients))


def _never_reading_client(port: int) -> socket.socket:
    """A raw WebSocket client with a tiny receive buffer that subscribes and never reads."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /market/ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(1)
    assert b" 101 " in response
    payload = json.dumps({"op": "subscribe", "symbols": ["BTC/USDT"]}).encode()
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + masked)
    return sock


@PROTOCOLS
async def test_a_client_that_never_reads_is_dropped_and_does_not_slow_the_others(
    protocol: str,
) -> None:
    async with market_server(
        # Room for ~1.5 s of ticks: a reader slowed by a busy machine (it shares this
        # process with the server) is not mistaken for the stuck client, which passes the
        # limit a few seconds in.
        ws=protocol,
        sim_tick_interval=0.005,
        ws_client_max_unsent=65_536,
    ) as server:
        feed = app_state(server).feed
        readers = await asyncio.gather(*(open_client(server) for _ in range(3)))
        await asyncio.gather(*(subscribe(ws, "BTC/USDT") for ws in readers))
        stuck = await asyncio.to_thread(_never_reading_client, server.port)

        async def all_four_subscribed() -> bool:
            return bool(feed.local_subscribers("sim", "BTC/USDT") == 4)

        await eventually(all_four_subscribed)

        # 200 ticks/s. The feed's protocol caps the kernel's send buffer, so the stuck
        # client's unsent bytes soon pass the limit and it is dropped; under uvicorn's
        # default the kernel first buffers megabytes (the keepalive catches it, see below),
        # so there only the readers are checked.
        def stuck_one_dropped() -> bool:
            return protocol != FEED_PROTOCOL or feed.local_subscribers("sim", "BTC/USDT") == 3

        common = await common_ticks(readers, 100, until=stuck_one_dropped)
        # Meanwhile the readers missed nothing: each has the same run of ticks.
        assert common[0] == common[1] == common[2]
        stuck.close()
        await asyncio.gather(*(ws.close() for ws in readers))


async def test_a_client_that_stops_answering_pings_is_dropped_by_the_keepalive() -> None:
    # A stuck client with room left in the buffers is still caught: it misses uvicorn's
    # keepalive ping (every 20 s, 20 s to answer, as `tradebot up` runs it; 0.3 s here).
    async with market_server(ping_interval=0.3) as server:
        feed = app_state(server).feed
        stuck = await asyncio.to_thread(_never_reading_client, server.port)

        async def subscribed() -> bool:
            return bool(feed.local_subscribers("sim", "BTC/USDT") == 1)

        async def dropped() -> bool:
            return not feed.connected

        await eventually(subscribed)
        await eventually(dropped)
        assert feed.local_subscribers("sim", "BTC/USDT") == 0
        stuck.close()


async def test_a_second_instance_serves_the_same_ticks_through_redis() -> None:
    async with market_server() as one, market_server() as two:
        a = await open_client(one)
        b = await open_client(two)
        await subscribe(a, "SOL/USDT")
        await subscribe(b, "SOL/USDT")
        window_a, window_b = await common_ticks([a, b], 8)
        assert window_a == window_b  # one publisher
        assert len(window_a) == len(set(window_a))  # no duplicates
        await a.close()
        await b.close()


async def test_candle_registry_members_get_market_data_updated_per_closed_candle(
    redis: Redis,
) -> None:
    await redis.sadd("subscriptions:candles", "sim|ETH/USDT|1m", "sim|BTC/USDT|5m", "bogus")
    app = create_app(MarketSettings(sim_speed=600, candle_registry_interval=0.1))
    async with app_client(app):

        async def both_updated() -> list[dict[str, Any]] | None:
            entries: Any = await redis.xrange(stream_for("market.data.updated"))
            datas = [json.loads(fields["data"]) for _, fields in entries]
            seen = {(d["symbol"], d["timeframe"]) for d in datas}
            return datas if {("ETH/USDT", "1m"), ("BTC/USDT", "5m")} <= seen else None

        datas = await eventually(both_updated)
        eth = [d for d in datas if d["symbol"] == "ETH/USDT" and d["timeframe"] == "1m"]
        assert eth, datas
        event = eth[0]
        assert set(event) == {"exchange", "symbol", "timeframe", "candle"}
        assert event["exchange"] == "sim"
        assert len(event["candle"]) == 6
        assert event["candle"][0] % 60_000 == 0
        assert any(d["timeframe"] == "5m" and d["symbol"] == "BTC/USDT" for d in datas)
        stamps = [d["candle"][0] for d in eth]
        assert stamps == sorted(set(stamps))  # each closed candle once, in order


async def test_a_quiet_connection_gets_heartbeats() -> None:
    async with market_server(ws_heartbeat_seconds=0.2) as server:
        ws = await open_client(server)
        frame = json.loads(await asyncio.wait_for(ws.recv(), 2))
        assert frame["type"] == "heartbeat"
        assert frame["timestamp"]
        await ws.close()


async def test_a_ccxt_exchange_is_polled_for_the_feed_when_it_has_no_stream() -> None:
    from tests.market_service.exchange_stub import ExchangeStub

    stub = await ExchangeStub("binance").start()
    try:
        async with market_server(
            market_exchanges="binance",
            exchange_base_urls={"binance": stub.url},
            exchange_rate_limit=False,
            feed_poll_interval=0.1,
        ) as server:
            ws = await open_client(server)
            ack = await subscribe(ws, "ETH/USDT", exchange="binance")
            assert ack["exchange"] == "binance"
            polled = await ticks(ws, 3)
            assert {(t["exchange"], t["price"], t["bid"], t["ask"]) for t in polled} == {
                ("binance", 3100.25, 3100.2, 3100.3)
            }
            await ws.close()
    finally:
        await stub.stop()


async def test_the_last_unsubscribe_stops_the_watcher_and_a_resubscribe_starts_one(
    redis: Redis,
) -> None:
    async with market_server() as server:
        ws = await open_client(server)
        for _ in range(3):
            await subscribe(ws, "BNB/USDT")
            await ticks(ws, 1)
            await ws.send(json.dumps({"op": "unsubscribe", "symbols": ["BNB/USDT"]}))
            while json.loads(await ws.recv())["type"] != "unsubscribed":
                pass
        watchers = app_state(server).watchers

        # No watcher left behind: a watcher releases its lease only once its upstream loop
        # (the one publishing ticks) has ended.
        async def lease_released() -> bool:
            return await redis.exists("market:feed:lease:sim:BNB/USDT") == 0

        await eventually(lease_released)
        assert ("sim", "BNB/USDT") not in watchers.tasks

        await subscribe(ws, "BNB/USDT")
        stamps = [t["timestamp"] for t in await ticks(ws, 10)]
        assert len(stamps) == len(set(stamps))
        # One watcher again, and it holds the lease: it is the one publisher.
        assert list(watchers.tasks) == [("sim", "BNB/USDT")]
        assert await redis.exists("market:feed:lease:sim:BNB/USDT") == 1
        await ws.close()

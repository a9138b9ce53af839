"""The WebSocket proxy: frames both ways, close codes passed on, tokens checked."""

from __future__ import annotations

import uuid

import pytest
from redis.asyncio import Redis
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.factories import issue_access_token
from tests.gateway.stack import GatewayFactory, all_upstreams
from tests.gateway.upstream_app import DISCONNECTS
from tests.servers import UvicornThread
from tests.waiting import eventually


def ws_url(server: UvicornThread, path: str) -> str:
    return server.url.replace("http://", "ws://") + path


async def test_frames_go_both_ways_through_the_gateway(
    gateway: GatewayFactory, upstream: UvicornThread
) -> None:
    async with gateway(**all_upstreams(upstream.url)) as gw:
        async with connect(ws_url(gw, "/market/ws")) as socket:
            await socket.send("hello")
            assert await socket.recv() == "a:hello"
            await socket.send("push")
            assert await socket.recv() == "a:push"
            assert await socket.recv() == "a:server-push"
        async with connect(ws_url(gw, "/market/ws")) as socket:
            await socket.send("close-me")
            with pytest.raises(ConnectionClosed) as closed:
                await socket.recv()
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 4000


async def test_user_sockets_need_a_token_and_a_bad_one_closes_with_4401(
    gateway: GatewayFactory, upstream: UvicornThread, redis: Redis
) -> None:
    token, _ = await issue_access_token(redis, uuid.uuid4())
    async with gateway(**all_upstreams(upstream.url)) as gw:
        for url in (
            ws_url(gw, "/notifications/ws"),
            ws_url(gw, "/notifications/ws?token=forged"),
        ):
            async with connect(url) as socket:
                with pytest.raises(ConnectionClosed) as closed:
                    await socket.recv()
                assert closed.value.rcvd is not None
                assert closed.value.rcvd.code == 4401
        async with connect(ws_url(gw, f"/notifications/ws?token={token}")) as socket:
            await socket.send("ping")
            assert await socket.recv() == "a:ping"
        async with connect(
            ws_url(gw, "/notifications/ws"), additional_headers={"Authorization": f"Bearer {token}"}
        ) as socket:
            await socket.send("hi")
            assert await socket.recv() == "a:hi"


async def test_a_client_going_away_closes_the_upstream_socket(
    gateway: GatewayFactory, upstream: UvicornThread
) -> None:
    DISCONNECTS.clear()
    async with gateway(**all_upstreams(upstream.url)) as gw:
        async with connect(ws_url(gw, "/market/ws")) as socket:
            await socket.send("hello")
            await socket.recv()
            await socket.close(code=1001)

        async def upstream_saw_it_go() -> list[int]:
            return DISCONNECTS

        await eventually(upstream_saw_it_go)
    assert DISCONNECTS == [1001]

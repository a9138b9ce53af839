"""The gateway's HTTP protocol (gateway/server.py): which requests take the lean cycle, and
that HTTP/1.1 holds on it: pipelining, HTTP/1.0, client disconnects, errors."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from redis.asyncio import Redis

from gateway import server
from gateway.main import create_app
from gateway.proxy import GatewayProxy
from tests.factories import issue_access_token
from tests.gateway.stack import GatewayFactory, all_upstreams, gateway_settings
from tests.servers import UvicornThread
from tradebot.stack import HTTP_PROTOCOLS


@pytest.fixture
def lean_runs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Paths the lean cycle ran (the servers run in this process, on another thread)."""
    seen: list[str] = []
    run = server.LeanCycle.run

    async def spy(self: server.LeanCycle, proxy: GatewayProxy) -> None:
        seen.append(self.scope["path"])
        await run(self, proxy)

    monkeypatch.setattr(server.LeanCycle, "run", spy)
    return seen


async def connect(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = url.removeprefix("http://").split(":")
    return await asyncio.open_connection(host, int(port))


async def raw_exchange(url: str, request: bytes) -> bytes:
    """Send raw bytes; everything the server sends until it closes the connection."""
    reader, writer = await connect(url)
    writer.write(request)
    await writer.drain()
    data = b""
    try:
        while chunk := await asyncio.wait_for(reader.read(65536), 10):
            data += chunk
    finally:
        writer.close()
    return data


async def test_plain_proxied_requests_take_the_lean_cycle_and_the_rest_do_not(
    gateway: GatewayFactory, upstream: UvicornThread, redis: Redis, lean_runs: list[str]
) -> None:
    token, _ = await issue_access_token(redis, uuid.uuid4())
    auth = {"Authorization": f"Bearer {token}"}
    async with gateway(**all_upstreams(upstream.url)) as gw, httpx.AsyncClient() as client:
        small = await client.post(f"{gw.url}/trading/echo", content=b"x" * 1000, headers=auth)
        large = await client.post(f"{gw.url}/trading/echo", content=b"y" * 70_000, headers=auth)
        forwarded = await client.get(
            f"{gw.url}/market/echo", headers={"X-Forwarded-For": "203.0.113.9"}
        )
        health = await client.get(f"{gw.url}/health")
    assert small.status_code == large.status_code == 201
    assert small.json()["body"] == "x" * 1000
    assert large.json()["body"] == "y" * 70_000
    assert forwarded.status_code == 200
    assert health.status_code == 200
    # The small body and the forwarded request went the lean way (the gateway reads
    # X-Forwarded-For itself): the large one streams through uvicorn's cycle, /health is
    # FastAPI's.
    assert lean_runs == ["/trading/echo", "/market/echo"]


async def test_pipelined_requests_are_answered_in_order(
    gateway: GatewayFactory, upstream: UvicornThread, redis: Redis, lean_runs: list[str]
) -> None:
    token, _ = await issue_access_token(redis, uuid.uuid4())
    async with gateway(**all_upstreams(upstream.url)) as gw:
        raw = await raw_exchange(
            gw.url,
            b"GET /trading/slow?seconds=0.2 HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer "
            + token.encode()
            + b"\r\n\r\nGET /market/echo?n=2 HTTP/1.1\r\nHost: t\r\n\r\n"
            b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        )
    answers = raw.split(b"HTTP/1.1 ")[1:]
    assert [a[:3] for a in answers] == [b"200", b"200", b"200"]
    assert b'{"instance":"a"}' in answers[0]  # the slow one first, though it took longest
    assert b'"query":"n=2"' in answers[1]
    assert b'"status":"healthy"' in answers[2]
    # The first went the lean way; the two queued behind it went through uvicorn's queue.
    assert lean_runs == ["/trading/slow"]


async def test_http_1_0_is_answered_and_the_connection_closed(
    gateway: GatewayFactory, upstream: UvicornThread, lean_runs: list[str]
) -> None:
    async with gateway(**all_upstreams(upstream.url)) as gw:
        raw = await raw_exchange(gw.url, b"GET /market/echo HTTP/1.0\r\nHost: t\r\n\r\n")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"connection: close" in head.lower()
    assert b'"method":"GET"' in body
    assert lean_runs == ["/market/echo"]


async def test_a_client_that_leaves_mid_request_does_not_disturb_the_next(
    gateway: GatewayFactory, upstream: UvicornThread, lean_runs: list[str]
) -> None:
    async with gateway(**all_upstreams(upstream.url)) as gw:
        _, writer = await connect(gw.url)
        writer.write(b"GET /trading/slow?seconds=0.3 HTTP/1.1\r\nHost: t\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.close()  # gone before the upstream answers
        await asyncio.sleep(0.4)
        async with httpx.AsyncClient() as client:
            after = await client.get(f"{gw.url}/market/echo")
            health = await client.get(f"{gw.url}/health")
    assert after.status_code == 200
    assert health.json()["status"] in ("healthy", "degraded")
    assert lean_runs == ["/trading/slow", "/market/echo"]


async def test_a_failure_inside_the_proxy_is_a_500_and_the_gateway_carries_on(
    gateway: GatewayFactory,
    upstream: UvicornThread,
    lean_runs: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    async with gateway(**all_upstreams(upstream.url)) as gw, httpx.AsyncClient() as client:
        with monkeypatch.context() as patch:
            patch.setattr(GatewayProxy, "handle", broken)
            failed = await client.get(f"{gw.url}/market/echo")
        after = await client.get(f"{gw.url}/market/echo")
    assert failed.status_code == 500
    assert failed.headers["connection"] == "close"
    assert after.status_code == 200
    assert lean_runs == ["/market/echo", "/market/echo"]


async def test_a_keep_alive_connection_serves_many_and_shutdown_does_not_wait_on_it(
    upstream: UvicornThread, lean_runs: list[str]
) -> None:
    app = create_app(gateway_settings(**all_upstreams(upstream.url)))
    # An hour of keep-alive: had shutdown waited for the idle connection to end on its own,
    # the server thread would still be running when stop() gives up on it.
    gw = UvicornThread(app, http=HTTP_PROTOCOLS["gateway"], timeout_keep_alive=3600)
    async with gw:
        reader, writer = await connect(gw.url)
        for i in range(20):
            writer.write(f"GET /market/echo?i={i} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            body = await reader.readexactly(length)
            assert head.startswith(b"HTTP/1.1 200 ")
            assert f'"query":"i={i}"'.encode() in body
        # Leaving the block stops the server while this connection is still open and idle.
    assert not gw.thread.is_alive()
    assert await reader.read() == b""  # the server closed the idle connection
    writer.close()
    assert len(lean_runs) == 20

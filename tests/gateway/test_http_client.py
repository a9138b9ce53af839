"""The upstream client against a raw socket server: fragmented, chunked and close-delimited
answers, keep-alive reuse, and its errors."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from gateway.http_client import (
    UpstreamClient,
    UpstreamConnectError,
    UpstreamProtocolError,
    UpstreamTimeout,
)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def serve(handler: Handler) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


def client(url: str, read_timeout: float = 2.0) -> UpstreamClient:
    return UpstreamClient(url, connect_timeout=1.0, read_timeout=read_timeout, max_connections=4)


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            await reader.readexactly(int(line.split(b":")[1]))
    return head


async def test_fragmented_chunked_answers_arrive_whole_and_the_connection_is_reused() -> None:
    connections = 0
    heads: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        for _ in range(2):
            heads.append(await read_request(reader))
            wire = (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n"
                b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
            )
            for i in range(0, len(wire), 7):
                writer.write(wire[i : i + 7])
                await writer.drain()
                await asyncio.sleep(0)
        writer.close()

    server, url = await serve(handler)
    upstream = client(url)
    try:
        for _ in range(2):
            response = await upstream.request(
                b"POST", b"/x?q=1", [(b"x-b", b"2")], b"body", replayable=True
            )
            assert response.status == 200
            assert (b"X-A", b"1") in response.headers
            assert await response.read() == b"hello world"
            response.release()
    finally:
        await upstream.close()
        server.close()
    assert connections == 1
    assert heads[0].startswith(b"POST /x?q=1 HTTP/1.1\r\nHost: 127.0.0.1:")
    assert b"x-b: 2\r\n" in heads[0]
    assert b"content-length: 4\r\n" in heads[0]


async def test_a_body_delimited_by_close_and_a_streamed_upload() -> None:
    received = bytearray()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        while True:  # chunked upload: read until the last chunk
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            data = await reader.readexactly(size + 2)
            if size == 0:
                break
            received.extend(data[:-2])
        writer.write(b"HTTP/1.1 201 Created\r\nConnection: close\r\n\r\nall of it")
        await writer.drain()
        writer.close()

    async def upload() -> AsyncIterator[bytes]:
        for piece in (b"abc", b"", b"defg"):
            yield piece

    server, url = await serve(handler)
    upstream = client(url)
    try:
        response = await upstream.request(b"PUT", b"/", [], upload(), replayable=False)
        assert response.status == 201
        assert await response.read() == b"all of it"
        response.release()
    finally:
        await upstream.close()
        server.close()
    assert bytes(received) == b"abcdefg"


async def test_connect_timeout_and_protocol_errors_are_told_apart() -> None:
    dead = client("http://127.0.0.1:1")
    with pytest.raises(UpstreamConnectError):
        await dead.request(b"GET", b"/", [], None, replayable=True)

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(2)
        writer.close()

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"SMTP ready\r\n\r\n")
        await writer.drain()
        writer.close()

    server, url = await serve(silent)
    try:
        with pytest.raises(UpstreamTimeout):
            await client(url, read_timeout=0.2).request(b"GET", b"/", [], None, replayable=True)
    finally:
        server.close()
    server, url = await serve(garbage)
    try:
        with pytest.raises(UpstreamProtocolError):
            await client(url).request(b"GET", b"/", [], None, replayable=True)
    finally:
        server.close()


async def test_a_connection_idle_past_the_expiry_is_not_reused(monkeypatch) -> None:
    """The upstream may be closing a connection idle that long: a request written on it
    could fail unanswered, so the pool opens a new one instead."""
    monkeypatch.setattr("gateway.http_client.IDLE_EXPIRY_S", 0.05)
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                await read_request(reader)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()

    server, url = await serve(handler)
    upstream = client(url)
    try:
        for pause in (0, 0, 0.2):
            await asyncio.sleep(pause)
            response = await upstream.request(b"POST", b"/", [], b"{}", replayable=False)
            assert await response.read() == b"ok"
            response.release()
    finally:
        await upstream.close()
        server.close()
    assert connections == 2  # the first reused once, then dropped after its idle spell

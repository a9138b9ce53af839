"""A lean HTTP/1.1 keep-alive client for the proxy's upstream calls.

Measured on the gateway's hot path, a general-purpose client (aiohttp) spends most of a
proxied request's CPU time building and parsing messages it then hands over unchanged.
This client does only what a reverse proxy needs: it writes the request head and body as
bytes, parses the response with ``httptools`` (llhttp, the parser uvicorn uses) and hands
back the raw header pairs and the body as it arrives, so nothing is buffered unless the
caller asks. One :class:`UpstreamClient` per upstream base URL holds its own pool of
keep-alive connections (bounded), with timeouts on connect and on every read.

Errors, for the breaker: :class:`UpstreamConnectError` (nothing was sent: safe to try
another instance), :class:`UpstreamTimeout`, :class:`UpstreamProtocolError`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator
from typing import cast
from urllib.parse import urlsplit

import httptools

from shared.service_client import IDLE_EXPIRY_S

Headers = list[tuple[bytes, bytes]]
Body = bytes | AsyncIterator[bytes] | None

_HIGH_WATER = 256 * 1024  # pause reading the upstream while this much is unconsumed


class UpstreamError(Exception):
    """Base of the upstream call failures."""


class UpstreamConnectError(UpstreamError):
    """Could not connect: the request never left."""


class UpstreamTimeout(UpstreamError):
    """The upstream did not answer (or stopped sending) in time."""


class UpstreamProtocolError(UpstreamError):
    """The connection broke or the upstream sent something that is not HTTP."""


class _StaleConnection(UpstreamProtocolError):
    """A pooled keep-alive connection was closed by the upstream before it answered."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection; parses one response at a time."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.served = 0  # responses completed on this connection
        self.idle_since = 0.0  # loop time it went back to the pool
        self.write_paused = False
        self._drain: asyncio.Future[None] | None = None
        self._reset()

    def _reset(self) -> None:
        self.headers: Headers = []
        self.content_length: int | None = None
        self.status = 0
        self.keep_alive = False
        self.until_eof = False
        self.got_bytes = False
        self.complete = False
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.error: UpstreamError | None = None
        self.head_ready: asyncio.Future[None] = self.loop.create_future()
        self.waiter: asyncio.Future[None] | None = None

    # --- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamProtocolError(f"invalid HTTP from upstream: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.head_ready.done() and self.until_eof and not self.complete:
            self.on_message_complete()  # a body delimited by the connection's end
        elif not self.complete:
            error = _StaleConnection if not self.got_bytes else UpstreamProtocolError
            self._fail(error("the upstream closed the connection"))
        self._wake_drain()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._wake_drain()

    # --- httptools callbacks ------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))
        if len(name) == 14 and name.lower() == b"content-length":
            with contextlib.suppress(ValueError):
                self.content_length = int(value)

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()
        self.until_eof = (
            self.content_length is None
            and not any(name.lower() == b"transfer-encoding" for name, _ in self.headers)
            and self.status not in (204, 304)
            and self.status >= 200
        )
        if not self.head_ready.done():
            self.head_ready.set_result(None)

    def on_body(self, body: bytes) -> None:
        self.chunks.append(bytes(body))
        self.buffered += len(body)
        if self.buffered > _HIGH_WATER and self.transport is not None:
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        self.complete = True
        self._wake()

    # --- used by the client -------------------------------------------------------------

    def _time_out(self, waiter: asyncio.Future[None]) -> None:
        # A timer handle instead of asyncio.timeout(): cheaper on the per-request path.
        if not waiter.done():
            waiter.set_exception(UpstreamTimeout("the upstream did not answer in time"))

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def _wake_drain(self) -> None:
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    def _fail(self, error: UpstreamError) -> None:
        self.error = error
        if not self.head_ready.done():
            self.head_ready.set_exception(error)
            self.head_ready.exception()  # retrieved: no "never retrieved" warning
        self._wake()

    async def drain(self) -> None:
        if self.write_paused and not self.closed:
            self._drain = self.loop.create_future()
            await self._drain
        if self.closed:
            raise UpstreamProtocolError("the upstream closed the connection")

    async def next_chunk(self, limit_s: float) -> bytes | None:
        """The next piece of the body, or None at its end."""
        while not self.chunks:
            if self.complete:
                return None
            if self.error is not None:
                raise self.error
            self.waiter = self.loop.create_future()
            timer = self.loop.call_later(limit_s, self._time_out, self.waiter)
            try:
                await self.waiter
            finally:
                timer.cancel()
        chunk = self.chunks.popleft()
        self.buffered -= len(chunk)
        if self.buffered <= _HIGH_WATER // 2 and self.transport is not None and not self.closed:
            self.transport.resume_reading()
        return chunk

    def take_all(self) -> bytes:
        """Everything buffered, at once (the body is complete)."""
        body = b"".join(self.chunks)
        self.chunks.clear()
        self.buffered = 0
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()
        return body

    def reusable(self) -> bool:
        return self.complete and self.keep_alive and not self.closed and self.error is None

    def recycle(self) -> None:
        self.served += 1
        self._reset()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class UpstreamResponse:
    """Status, raw header pairs, and the body read whole or piece by piece."""

    def __init__(
        self, client: UpstreamClient, conn: _Connection, *, head_only: bool, timeout: float
    ) -> None:
        self.status = conn.status
        self.headers = conn.headers
        self._client = client
        self._conn: _Connection | None = conn
        self._timeout = timeout
        self._head_only = head_only
        self.content_length = conn.content_length

    async def read(self) -> bytes:
        conn = self._conn
        if conn is not None and conn.complete and not self._head_only:
            return conn.take_all()  # the usual small answer: already here, whole
        return b"".join([chunk async for chunk in self.iter_chunks()])

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        conn = self._conn
        if conn is None or self._head_only:
            return
        while (chunk := await conn.next_chunk(self._timeout)) is not None:
            yield chunk

    def release(self) -> None:
        """Back to the pool when fully read and kept alive; closed otherwise."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self._head_only:
            conn.close()  # the parser cannot know a HEAD answer has no body
        self._client.give_back(conn)


class UpstreamClient:
    """A bounded pool of keep-alive connections to one upstream base URL."""

    def __init__(
        self,
        base_url: str,
        *,
        connect_timeout: float,
        read_timeout: float,
        max_connections: int,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http":
            raise ValueError(f"only http:// upstreams are supported, not {base_url!r}")
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.host_header = (parts.netloc or self.host).encode()
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._idle: deque[_Connection] = deque()
        self._slots = asyncio.Semaphore(max_connections)
        self._closing = False

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, conn = await loop.create_connection(_Connection, self.host, self.port)
        except (OSError, TimeoutError) as exc:
            raise UpstreamConnectError(f"cannot connect to {self.host}:{self.port}: {exc}") from exc
        return conn

    async def request(
        self,
        method: bytes,
        target: bytes,
        headers: Headers,
        body: Body,
        *,
        replayable: bool,
    ) -> UpstreamResponse:
        """Send one request; the response's body is read through the returned object.

        ``headers`` must not carry Host or hop-by-hop fields; a bytes body gets its own
        Content-Length, a streamed one is sent chunked unless headers carry a length.
        """
        await self._slots.acquire()
        try:
            for _attempt in range(2):
                conn = self._take_idle()
                if conn is None:
                    conn = await self._connect()
                reused = conn.served > 0
                try:
                    return await self._exchange(conn, method, target, headers, body)
                except _StaleConnection:
                    conn.close()
                    if not (replayable and reused):
                        raise
                except BaseException:
                    conn.close()
                    raise
            raise UpstreamProtocolError("the upstream closed the connection")
        except BaseException:
            self._slots.release()
            raise

    def _take_idle(self) -> _Connection | None:
        while self._idle:
            conn = self._idle.pop()
            if conn.closed:
                continue
            if conn.loop.time() - conn.idle_since > IDLE_EXPIRY_S:
                conn.close()  # the upstream may be closing it (shared/service_client.py)
                continue
            return conn
        return None

    async def _exchange(
        self, conn: _Connection, method: bytes, target: bytes, headers: Headers, body: Body
    ) -> UpstreamResponse:
        transport = conn.transport
        assert transport is not None  # noqa: S101 - set by connection_made
        lines = [method, b" ", target, b" HTTP/1.1\r\nHost: ", self.host_header, b"\r\n"]
        for name, value in headers:
            lines += (name, b": ", value, b"\r\n")
        streamed = body is not None and not isinstance(body, bytes)
        chunked = streamed and not any(n.lower() == b"content-length" for n, _ in headers)
        if isinstance(body, bytes):
            lines += (b"content-length: ", str(len(body)).encode(), b"\r\n\r\n", body)
        elif chunked:
            lines.append(b"transfer-encoding: chunked\r\n\r\n")
        else:
            lines.append(b"\r\n")
        transport.write(b"".join(lines))
        if body is not None and not isinstance(body, bytes):
            async for piece in body:
                if not piece:
                    continue
                transport.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
                await conn.drain()
            if chunked:
                transport.write(b"0\r\n\r\n")
        if not conn.head_ready.done():
            waiter = conn.head_ready
            timer = conn.loop.call_later(self.read_timeout, conn._time_out, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
        else:
            conn.head_ready.result()  # raises the failure, if that is what arrived
        return UpstreamResponse(self, conn, head_only=method == b"HEAD", timeout=self.read_timeout)

    def give_back(self, conn: _Connection) -> None:
        self._slots.release()
        if conn.reusable() and not self._closing:
            conn.recycle()
            conn.idle_since = conn.loop.time()
            self._idle.append(conn)
        else:
            conn.close()

    async def close(self) -> None:
        self._closing = True
        while self._idle:
            self._idle.pop().close()

"""WebSocket proxy: one upstream socket per client socket, frames pumped both ways, and
each side closed (with the other's close code) as soon as either goes away."""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp
import structlog
from starlette.types import Receive, Scope, Send
from yarl import URL

from gateway.upstreams import Upstream

log = structlog.get_logger("gateway.ws")

# Negotiated by each hop itself.
_SKIP = ("sec-websocket-", "connection", "upgrade")


async def proxy_websocket(
    scope: Scope,
    receive: Receive,
    send: Send,
    upstream: Upstream,
    headers: list[tuple[str, str]],
) -> None:
    """Connect upstream first; accept the client only once the upstream has accepted."""
    forward = [(k, v) for k, v in headers if not k.lower().startswith(_SKIP)]
    target = scope.get("raw_path", b"").decode("latin-1") or scope["path"]
    if scope.get("query_string"):
        target += "?" + scope["query_string"].decode("latin-1")
    protocols = tuple(scope.get("subprotocols") or ())

    upstream_ws: aiohttp.ClientWebSocketResponse | None = None
    for instance in upstream.candidates():
        if not instance.breaker.allow():
            continue
        try:
            upstream_ws = await instance.client.ws_connect(
                URL(instance.url + target, encoded=True),
                headers=forward,
                protocols=protocols,
                autoclose=False,
                max_msg_size=0,
            )
        except aiohttp.WSServerHandshakeError as exc:
            # The upstream answered but refused the socket: it is alive, the request is not.
            (
                instance.breaker.record_failure
                if exc.status >= 500
                else instance.breaker.record_success
            )()
            await send({"type": "websocket.close", "code": 1008})
            return
        except (aiohttp.ClientError, TimeoutError):
            instance.breaker.record_failure()
            continue
        instance.breaker.record_success()
        break
    if upstream_ws is None:
        await send({"type": "websocket.close", "code": 1013})  # try again later
        return

    await send({"type": "websocket.accept", "subprotocol": upstream_ws.protocol})
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(upstream_ws.close)
        to_upstream = asyncio.create_task(_client_to_upstream(receive, upstream_ws))
        to_client = asyncio.create_task(_upstream_to_client(upstream_ws, send))
        done, pending = await asyncio.wait(
            {to_upstream, to_client}, return_when=asyncio.FIRST_COMPLETED
        )
        for task in pending:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if to_client in done and not to_client.cancelled() and to_client.exception() is None:
            code = upstream_ws.close_code or 1000
            with contextlib.suppress(Exception):
                await send({"type": "websocket.close", "code": code})


async def _client_to_upstream(receive: Receive, ws: aiohttp.ClientWebSocketResponse) -> None:
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            await ws.close(code=message.get("code", 1000))
            return
        if message["type"] != "websocket.receive":
            continue
        if message.get("text") is not None:
            await ws.send_str(message["text"])
        elif message.get("bytes") is not None:
            await ws.send_bytes(message["bytes"])


async def _upstream_to_client(ws: aiohttp.ClientWebSocketResponse, send: Send) -> None:
    async for message in ws:
        if message.type is aiohttp.WSMsgType.TEXT:
            await send({"type": "websocket.send", "text": message.data})
        elif message.type is aiohttp.WSMsgType.BINARY:
            await send({"type": "websocket.send", "bytes": message.data})
        elif message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.ERROR):
            break

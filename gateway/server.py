"""The gateway's uvicorn HTTP protocol: uvicorn's own (httptools), with a lean request cycle
for the proxied routes.

Why: at ~11k requests/s the gateway is the one saturated process of a benchmark run, and a
fifth of its CPU went to uvicorn's generic ASGI cycle around the proxy (an ``asyncio.Event``
and a cycle object per request, the ``run_asgi`` wrapper, uvicorn's proxy-headers middleware,
a regular-expression check of every response header, head and body as separate writes). The
proxy's own work (:mod:`gateway.proxy`) is unchanged: the lean cycle hands it the same scope,
``receive`` and ``send`` shapes, so both paths share one implementation of the gateway.

A request takes the lean cycle only when it is a plain proxied request: a proxied prefix, no
upgrade, no ``Expect``, a body of known length under 64 KiB (buffered before the proxy
starts, as the proxy would anyway), no ``X-Forwarded-For``/``-Proto`` when uvicorn's
proxy-headers logic is on (``tradebot serve`` turns it off), and no earlier request still
answering on the connection (pipelined requests keep uvicorn's queue). Everything else
(``/health``, ``/metrics``, WebSocket upgrades, streamed uploads) is uvicorn's code path
as before.

The class runs only when the gateway is served with ``--http gateway.server:GatewayHttpProtocol``
(``tradebot serve gateway`` does); under any other server the gateway is plain ASGI.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httptools
from starlette.types import Message
from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from gateway.main import GatewayApp
from gateway.proxy import GatewayProxy
from gateway.upstreams import Upstream

# Request headers that send a request down uvicorn's generic path; X-Forwarded-* too when
# uvicorn's proxy-headers logic is on (`tradebot serve` turns it off: the gateway reads
# X-Forwarded-For itself, from TRUSTED_PROXIES only).
_GENERIC = frozenset({b"transfer-encoding", b"expect"})
_GENERIC_WITH_PROXY_HEADERS = _GENERIC | {b"x-forwarded-for", b"x-forwarded-proto"}
_NO_BODY_STATUS = (204, 304)


class LeanCycle:
    """One proxied request and its response: the attributes uvicorn's protocol reads of a
    cycle (``response_complete``, ``disconnected``, ``keep_alive``, ``message_event``,
    ``body``) plus an ASGI ``receive``/``send`` pair that writes straight to the transport."""

    __slots__ = (
        "_body_sent",
        "_gone",
        "body",
        "chunked",
        "disconnected",
        "head",
        "keep_alive",
        "protocol",
        "response_complete",
        "response_started",
        "scope",
        "upstream",
    )

    def __init__(
        self,
        protocol: GatewayHttpProtocol,
        scope: dict[str, Any],
        upstream: Upstream,
        keep_alive: bool,
    ) -> None:
        self.protocol = protocol
        self.scope = scope
        self.upstream = upstream
        self.body = bytearray()
        self.keep_alive = keep_alive
        self.disconnected = False
        self.response_started = False
        self.response_complete = False
        self.chunked = False
        self.head: list[bytes] | None = None
        self._body_sent = False
        self._gone: asyncio.Future[None] | None = None

    @property
    def message_event(self) -> LeanCycle:
        """uvicorn's protocol calls ``cycle.message_event.set()`` when the client goes away."""
        return self

    def set(self) -> None:
        if self._gone is not None and not self._gone.done():
            self._gone.set_result(None)

    async def receive(self) -> Message:
        if not self._body_sent and not self.disconnected:
            self._body_sent = True
            return {"type": "http.request", "body": bytes(self.body), "more_body": False}
        # The body is all read: what is left to tell is the client going away.
        if not (self.disconnected or self.response_complete):
            self._gone = self.protocol.loop.create_future()
            await self._gone
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        protocol = self.protocol
        if protocol.flow.write_paused and not self.disconnected:
            await protocol.flow.drain()
        if self.disconnected:
            return
        if message["type"] == "http.response.start":
            if self.response_started:
                raise RuntimeError("the response has already started")
            self.response_started = True
            self._start(message["status"], message.get("headers", ()))
            return
        if not self.response_started or self.response_complete:
            raise RuntimeError(f"unexpected ASGI message {message['type']!r}")
        body: bytes = message.get("body", b"")
        more = message.get("more_body", False)
        out = self.head or []
        self.head = None
        if self.scope["method"] == "HEAD":
            pass
        elif self.chunked:
            if body:
                out += (b"%x\r\n" % len(body), body, b"\r\n")
            if not more:
                out.append(b"0\r\n\r\n")
        elif body:
            out.append(body)
        if out:
            protocol.transport.write(b"".join(out))
        if not more:
            self.response_complete = True
            self.set()
            if not self.keep_alive:
                protocol.transport.close()
            protocol.on_response_complete()

    def _start(self, status: int, headers: Any) -> None:
        """The status line and headers, held until the first body part (one write for both)."""
        head = [STATUS_LINE[status]]
        framed = closing = False
        for name, value in (*self.protocol.server_state.default_headers, *headers):
            if name == b"content-length":
                framed = True
            elif name == b"transfer-encoding":
                framed = self.chunked = value.lower() == b"chunked"
            elif name == b"connection" and b"close" in value.lower():
                self.keep_alive = False
                closing = True
            head += (name, b": ", value, b"\r\n")
        if not self.keep_alive and not closing:
            head.append(b"connection: close\r\n")
        if not framed and self.scope["method"] != "HEAD" and status not in _NO_BODY_STATUS:
            self.chunked = True
            head.append(b"transfer-encoding: chunked\r\n")
        head.append(b"\r\n")
        self.head = head

    async def run(self, proxy: GatewayProxy) -> None:
        try:
            await proxy.handle(self.scope, self.receive, self.send, self.upstream)
        except BaseException as exc:
            self.protocol.logger.error("Exception in ASGI application", exc_info=exc)
            if not self.response_started and not self.disconnected:
                self.keep_alive = False
                await self.send(
                    {
                        "type": "http.response.start",
                        "status": 500,
                        "headers": [
                            (b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", b"21"),
                        ],
                    }
                )
                await self.send({"type": "http.response.body", "body": b"Internal Server Error"})
            else:
                self.protocol.transport.close()
            if not isinstance(exc, Exception):
                raise
        else:
            if not self.response_complete and not self.disconnected:
                self.protocol.logger.error("The gateway returned without completing a response.")
                self.protocol.transport.close()


class GatewayHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol; plain proxied requests run on :class:`LeanCycle`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gateway = _find_gateway(self.app)
        self.generic = _GENERIC_WITH_PROXY_HEADERS if self.config.proxy_headers else _GENERIC

    def on_headers_complete(self) -> None:
        cycle = self.cycle
        if (
            self.gateway is None
            or self.limit_concurrency is not None
            or (cycle is not None and not cycle.response_complete)
            or self.parser.should_upgrade()
            or not self._plain_headers()
        ):
            super().on_headers_complete()
            return
        parsed = httptools.parse_url(self.url)
        raw_path: bytes = parsed.path
        path = raw_path.decode("ascii")
        if "%" in path:
            super().on_headers_complete()  # uvicorn's own unquoting rules
            return
        scope = self.scope
        scope["method"] = self.parser.get_method().decode("ascii")
        http_version = self.parser.get_http_version()
        if http_version != "1.1":
            scope["http_version"] = http_version
        scope["path"] = self.root_path + path
        scope["raw_path"] = self.root_path.encode("ascii") + raw_path
        scope["query_string"] = parsed.query or b""
        upstream = self.gateway.proxy.upstream_for(scope)  # type: ignore[arg-type]
        if upstream is None:
            super().on_headers_complete()
            return
        keep_alive = http_version != "1.0" and self.parser.should_keep_alive()
        self.cycle = LeanCycle(self, scope, upstream, keep_alive)  # type: ignore[assignment, arg-type]

    def _plain_headers(self) -> bool:
        generic = self.generic
        for name, value in self.headers:
            if name in generic:
                return False
            if name == b"content-length" and (not value.isdigit() or int(value) > HIGH_WATER_LIMIT):
                return False
        return True

    def on_body(self, body: bytes) -> None:
        cycle = self.cycle
        if isinstance(cycle, LeanCycle):
            cycle.body += body
        else:
            super().on_body(body)

    def on_message_complete(self) -> None:
        cycle = self.cycle
        if isinstance(cycle, LeanCycle):
            assert self.gateway is not None  # noqa: S101 - a lean cycle implies a gateway
            task = self.loop.create_task(cycle.run(self.gateway.proxy))
            task.add_done_callback(self.tasks.discard)
            self.tasks.add(task)
        else:
            super().on_message_complete()


def _find_gateway(app: Any) -> GatewayApp | None:
    """The GatewayApp under uvicorn's wrappers (proxy headers, message logger), if any."""
    for _ in range(8):
        if isinstance(app, GatewayApp):
            return app
        app = getattr(app, "app", None)
    return None

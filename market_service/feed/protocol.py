"""The feed's uvicorn WebSocket protocol: uvicorn's own, plus one ASGI extension that writes a
ready-made frame straight to the connection.

Why: a tick goes to thousands of sockets at once. Through ASGI every copy costs a sender
task wake-up, Starlette's and uvicorn's ``send`` coroutines and a fresh frame built by
websockets; 2,000 of them took ~40 ms per tick, which alone is most of a 50 ms p99. A
server-to-client frame is unmasked, so its bytes are the same for every client: the fan-out
builds them once (``encode_text_frame``, websockets' own serializer) and hands them to each
connection's transport with ``write`` below (a few microseconds).

The extension, ``scope["extensions"][RAW_FRAMES] == {"writer": RawFrameWriter}``, is there
only when the service runs on this class (``tradebot up`` passes ``--ws
market_service.feed.protocol:FeedWebSocketProtocol``); under any other server the feed falls
back to plain ASGI sends (``feed/clients.py``).

Frames written here bypass websockets' state machine, so ``write`` refuses once the
connection is not OPEN (a close was sent or received): nothing is ever written after a
close frame. Everything else (handshake, reads, pings, close) stays uvicorn's code.
"""

from __future__ import annotations

import contextlib
import socket
from asyncio import BaseTransport

# `websockets_sansio_impl` is what uvicorn's default ("auto") picks when websockets is
# installed; subclassing it keeps every behaviour of the default server.
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import State

RAW_FRAMES = "tradebot.websocket.raw_frames"


def encode_text_frame(payload: bytes) -> bytes:
    """One complete, unmasked, uncompressed text frame (what a server sends)."""
    return Frame(Opcode.TEXT, payload).serialize(mask=False)


class RawFrameWriter:
    """Writes whole frames to one connection's transport, in order with uvicorn's own."""

    __slots__ = ("_protocol",)

    def __init__(self, protocol: WebSocketsSansIOProtocol) -> None:
        self._protocol = protocol

    def write(self, frame: bytes) -> int | None:
        """Queue ``frame``; the bytes still unsent in user space, or None once closed."""
        protocol = self._protocol
        transport = protocol.transport
        if protocol.conn.state is not State.OPEN or transport.is_closing():
            return None
        transport.write(frame)
        return transport.get_write_buffer_size()

    def abort(self) -> None:
        """Cut the connection at once, dropping whatever it has not sent."""
        self._protocol.transport.abort()


# Kernel send buffer of a feed connection (Linux doubles it). Left to autotuning it grows
# to megabytes behind a client that stopped reading, and such a client is noticed only
# once that is full; a feed frame is ~200 bytes, so this still holds hundreds of them.
SEND_BUFFER_BYTES = 32 * 1024


class FeedWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol with the ``RAW_FRAMES`` extension in every scope."""

    def connection_made(self, transport: BaseTransport) -> None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
        super().connection_made(transport)

    async def run_asgi(self) -> None:
        # The scope is built when the handshake request arrives; the app sees it only here.
        self.scope.setdefault("extensions", {})[RAW_FRAMES] = {"writer": RawFrameWriter(self)}
        await super().run_asgi()

"""One WebSocket client of the feed, and the frames handed to it.

Fan-out never waits on a client. On the feed's own uvicorn protocol (``feed/protocol.py``)
a frame is written straight to the connection's transport, already encoded once for every
client; elsewhere it goes into a bounded buffer drained by the client's own sender task
through ASGI (a deque plus one future the idle sender waits on: cheaper per frame than an
``asyncio.Queue``). Either way a client with more than ``max_unsent`` bytes not yet handed
to the kernel has stopped reading, and it is dropped instead of slowing everybody else.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

import orjson
import structlog
from starlette.websockets import WebSocket

from market_service.feed.protocol import RAW_FRAMES, RawFrameWriter, encode_text_frame

log = structlog.get_logger("feed")
_ids = itertools.count(1)

# Close code for a client dropped for not reading (1008 = policy violation).
SLOW_CLIENT_CLOSE = 1008


@dataclass(frozen=True, slots=True)
class OutgoingFrame:
    """A text frame as ASGI wants it (``text``) and as the wire carries it (``wire``)."""

    text: str
    wire: bytes

    @classmethod
    def of(cls, text: str) -> OutgoingFrame:
        return cls(text, encode_text_frame(text.encode()))

    @classmethod
    def json(cls, body: Mapping[str, object]) -> OutgoingFrame:
        return cls.of(orjson.dumps(body).decode())


class FeedClient:
    def __init__(self, websocket: WebSocket, *, max_unsent: int) -> None:
        self.id = f"c{next(_ids)}"
        self.websocket = websocket
        self.max_unsent = max_unsent
        self.closed = asyncio.Event()
        self.dropped = False
        self.subscriptions: set[tuple[str, str]] = set()
        extension = (websocket.scope.get("extensions") or {}).get(RAW_FRAMES) or {}
        self._writer: RawFrameWriter | None = extension.get("writer")
        self._buffer: deque[str] = deque()
        self._buffered = 0  # bytes in _buffer
        self._waiter: asyncio.Future[None] | None = None

    @property
    def direct(self) -> bool:
        """Frames go straight to the transport (no sender task needed)."""
        return self._writer is not None

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def offer(self, frame: OutgoingFrame) -> None:
        """Send or buffer a frame without waiting; too much unsent drops the client."""
        if self.closed.is_set():
            return
        writer = self._writer
        if writer is not None:
            unsent = writer.write(frame.wire)
            if unsent is None:  # closing: the endpoint cleans up
                self.closed.set()
            elif unsent > self.max_unsent:
                self._drop()
            return
        if self._buffered + len(frame.text) > self.max_unsent:
            self._drop()
            return
        self._buffer.append(frame.text)
        self._buffered += len(frame.text)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def send_json(self, body: Mapping[str, object]) -> None:
        self.offer(OutgoingFrame.json(body))

    def _drop(self) -> None:
        self.dropped = True
        log.info("feed_client_dropped", client=self.id, reason="not reading")
        self.closed.set()

    async def run_sender(self) -> None:
        """Send buffered frames in order (the ASGI path)."""
        send = self.websocket.send
        buffer = self._buffer
        loop = asyncio.get_running_loop()
        try:
            while True:
                while buffer:
                    text = buffer.popleft()
                    self._buffered -= len(text)
                    await send({"type": "websocket.send", "text": text})
                self._waiter = loop.create_future()
                await self._waiter
                self._waiter = None
        except (OSError, RuntimeError, asyncio.CancelledError):
            self.closed.set()
            raise
        except Exception:  # a closed connection surfaces as various websocket errors
            self.closed.set()

    async def close(self) -> None:
        """Close the connection; bounded, since a client that does not read may never ack.

        A dropped client on the direct path is then cut off (its close frame sits behind
        everything it did not read, so only an abort frees the connection)."""
        self.closed.set()
        code = SLOW_CLIENT_CLOSE if self.dropped else 1000
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.websocket.close(code=code), 1.0)
        if self.dropped and self._writer is not None:
            self._writer.abort()

"""One WebSocket client of the feed: a bounded buffer drained by its own sender task.

Fan-out only ever appends to the buffer: a client whose buffer is full has stopped
reading, and it is dropped instead of slowing the loop that serves everybody else. The
buffer is a deque plus one future the idle sender waits on (cheaper per frame than an
``asyncio.Queue`` with a timeout; heartbeats come from the stream's own timer).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import deque
from collections.abc import Mapping

import orjson
import structlog
from starlette.websockets import WebSocket

log = structlog.get_logger("feed")
_ids = itertools.count(1)

# Close code for a client dropped for not reading (1008 = policy violation).
SLOW_CLIENT_CLOSE = 1008


class FeedClient:
    def __init__(self, websocket: WebSocket, *, queue_size: int) -> None:
        self.id = f"c{next(_ids)}"
        self.websocket = websocket
        self.queue_size = queue_size
        self.closed = asyncio.Event()
        self.dropped = False
        self.subscriptions: set[tuple[str, str]] = set()
        self._buffer: deque[str] = deque()
        self._waiter: asyncio.Future[None] | None = None

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def offer(self, frame: str) -> None:
        """Buffer a frame without waiting; a full buffer drops the client."""
        if self.closed.is_set():
            return
        if len(self._buffer) >= self.queue_size:
            self.dropped = True
            log.info("feed_client_dropped", client=self.id, reason="not reading")
            self.closed.set()
            return
        self._buffer.append(frame)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def send_json(self, body: Mapping[str, object]) -> None:
        self.offer(orjson.dumps(body).decode())

    async def run_sender(self) -> None:
        """Send buffered frames in order."""
        send = self.websocket.send
        buffer = self._buffer
        loop = asyncio.get_running_loop()
        try:
            while True:
                while buffer:
                    await send({"type": "websocket.send", "text": buffer.popleft()})
                self._waiter = loop.create_future()
                await self._waiter
                self._waiter = None
        except (OSError, RuntimeError, asyncio.CancelledError):
            self.closed.set()
            raise
        except Exception:  # a closed connection surfaces as various websocket errors
            self.closed.set()

    async def close(self) -> None:
        """Close the connection; bounded, since a client that does not read may never ack."""
        self.closed.set()
        code = SLOW_CLIENT_CLOSE if self.dropped else 1000
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.websocket.close(code=code), 1.0)

"""One WebSocket client of the feed: a bounded queue drained by its own sender task.

Fan-out only ever does ``put_nowait``: a client whose queue is full has stopped reading,
and it is dropped instead of slowing the loop that serves everybody else.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Mapping
from datetime import UTC, datetime

import orjson
import structlog
from starlette.websockets import WebSocket

log = structlog.get_logger("feed")
_ids = itertools.count(1)

# Close code for a client dropped for not reading (1008 = policy violation).
SLOW_CLIENT_CLOSE = 1008


class FeedClient:
    def __init__(self, websocket: WebSocket, *, queue_size: int, heartbeat_s: float) -> None:
        self.id = f"c{next(_ids)}"
        self.websocket = websocket
        self.queue: asyncio.Queue[str] = asyncio.Queue(maxsize=queue_size)
        self.heartbeat_s = heartbeat_s
        self.closed = asyncio.Event()
        self.dropped = False
        self.subscriptions: set[tuple[str, str]] = set()

    def offer(self, frame: str) -> None:
        """Queue a frame without waiting; a full queue drops the client."""
        if self.closed.is_set():
            return
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.dropped = True
            log.info("feed_client_dropped", client=self.id, reason="not reading")
            self.closed.set()

    def send_json(self, body: Mapping[str, object]) -> None:
        self.offer(orjson.dumps(body).decode())

    async def run_sender(self) -> None:
        """Send queued frames in order; a heartbeat when the feed is quiet."""
        send = self.websocket.send
        try:
            while True:
                try:
                    frame = self.queue.get_nowait()  # fast path: no timer while busy
                except asyncio.QueueEmpty:
                    try:
                        frame = await asyncio.wait_for(self.queue.get(), self.heartbeat_s)
                    except TimeoutError:
                        frame = orjson.dumps(
                            {"type": "heartbeat", "timestamp": datetime.now(UTC).isoformat()}
                        ).decode()
                await send({"type": "websocket.send", "text": frame})
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

"""A WebSocket client of `/notifications/ws` that collects what it is pushed."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from websockets.asyncio.client import ClientConnection, connect


class LiveClient:
    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.frames: list[dict[str, Any]] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(Exception):
            async for raw in self.connection:
                self.frames.append(json.loads(raw))

    @property
    def notifications(self) -> list[dict[str, Any]]:
        return [f for f in self.frames if f.get("type") == "notification"]

    async def close(self) -> None:
        await self.connection.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


def ws_url(base_url: str) -> str:
    return base_url.replace("http://", "ws://") + "/notifications/ws"


@contextlib.asynccontextmanager
async def live(base_url: str, token: str, *, in_query: bool = False) -> AsyncIterator[LiveClient]:
    """Connected and subscribed (the server's first frame is ``connected``)."""
    if in_query:
        connection = await connect(f"{ws_url(base_url)}?token={token}")
    else:
        connection = await connect(
            ws_url(base_url), additional_headers={"Authorization": f"Bearer {token}"}
        )
    first = json.loads(await asyncio.wait_for(connection.recv(), 10))
    assert first["type"] == "connected", first
    client = LiveClient(connection)
    try:
        yield client
    finally:
        await client.close()

"""`WS /notifications/ws`: the caller's notifications, live.

The access token comes in the ``Authorization: Bearer`` header or the ``token`` query
parameter; a missing, bad or revoked token closes the socket with code 4401 (also later,
when the session ends while connected). Server frames: ``{"type": "notification", ...the
notification...}``, ``{"type": "pong"}``, ``{"type": "error", "detail"}``; client frames:
``{"op": "ping"}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Annotated

from fastapi import APIRouter, Depends, Query, WebSocket, WebSocketDisconnect
from redis.asyncio import Redis
from redis.exceptions import RedisError

from notification_service.live.hub import LiveHub
from notification_service.settings import NotificationSettings
from shared.auth import Principal, bearer_token, session_key, verify_access_token
from shared.errors import Unauthorized
from shared.strict_query import StrictQueryRoute, refuse_unknown_query_params

router = APIRouter(route_class=StrictQueryRoute, tags=["notifications"])

CLOSE_UNAUTHORIZED = 4401
CLOSE_TOO_SLOW = 4008
CLOSE_TRY_AGAIN = 1013


async def _authenticate(websocket: WebSocket, token: str | None) -> Principal:
    settings: NotificationSettings = websocket.app.state.settings
    header = websocket.headers.get("authorization")
    raw = bearer_token(header) if header else (token or "")
    if not raw:
        raise Unauthorized("Missing access token.")
    return await verify_access_token(
        raw,
        secret=settings.jwt_secret,
        algorithm=settings.jwt_algorithm,
        redis=websocket.app.state.redis,
    )


@router.websocket("/notifications/ws", dependencies=[Depends(refuse_unknown_query_params)])
async def notifications_ws(
    websocket: WebSocket, token: Annotated[str | None, Query(max_length=4096)] = None
) -> None:
    """Push the caller's notifications as they are stored."""
    await websocket.accept()
    try:
        principal = await _authenticate(websocket, token)
    except Unauthorized as exc:
        await websocket.close(code=CLOSE_UNAUTHORIZED, reason=exc.detail[:120])
        return
    except (RedisError, OSError):
        # Sessions live in Redis: without it no token can be checked; come back later.
        await websocket.close(code=CLOSE_TRY_AGAIN, reason="session store unavailable")
        return
    hub: LiveHub = websocket.app.state.live_hub
    settings: NotificationSettings = websocket.app.state.settings
    async with hub.connect(principal.user_id) as inbox:
        # "connected" promises live delivery: wait (briefly) for the hub's subscription.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(hub.subscribed.wait(), timeout=5.0)
        await websocket.send_json({"type": "connected", "user_id": str(principal.user_id)})
        tasks = {
            asyncio.create_task(_send(websocket, inbox)),
            asyncio.create_task(_receive(websocket)),
            asyncio.create_task(
                _watch_session(websocket, websocket.app.state.redis, principal, settings)
            ),
        }
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def _send(websocket: WebSocket, inbox: asyncio.Queue[str | None]) -> None:
    while True:
        message = await inbox.get()
        if message is None:
            await websocket.close(code=CLOSE_TOO_SLOW, reason="too slow")
            return
        await websocket.send_text(message)


async def _receive(websocket: WebSocket) -> None:
    """Answer client frames until the client goes away; a binary frame gets an error
    frame like any other unreadable one (the socket stays open)."""
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None:
                await websocket.send_json({"type": "error", "detail": "frames must be JSON text"})
            else:
                await websocket.send_json(_answer(text))


async def _watch_session(
    websocket: WebSocket, redis: Redis, principal: Principal, settings: NotificationSettings
) -> None:
    """Close with 4401 once the token's session has ended (logout, refresh reuse)."""
    while True:
        await asyncio.sleep(settings.ws_session_check_s)
        if not await redis.exists(session_key(principal.session_id)):
            await websocket.close(code=CLOSE_UNAUTHORIZED, reason="session ended")
            return


def _answer(text: str) -> dict[str, str]:
    try:
        frame = json.loads(text)
    except ValueError:
        return {"type": "error", "detail": "frames must be JSON"}
    if isinstance(frame, dict) and frame.get("op") == "ping":
        return {"type": "pong"}
    return {"type": "error", "detail": "unknown op; expected {'op': 'ping'}"}

"""`WS /notifications/ws`: token in header or query, 4401 for a bad one, own pushes only."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from notification_service.main import create_app
from notification_service.settings import NotificationSettings
from shared.auth import session_key
from shared.events import publish
from tests.factories import create_user
from tests.notification_service.events import trade_event
from tests.notification_service.fakes import FakeUserService
from tests.notification_service.live_client import live, ws_url
from tests.notification_service.settings import make_settings
from tests.notification_service.settled import entries_handled, pushed_so_far
from tests.servers import UvicornThread, free_port
from tests.waiting import eventually


async def closed_with(url: str, **kwargs: object) -> int | None:
    async with connect(url, **kwargs) as ws:  # type: ignore[arg-type]
        with pytest.raises(ConnectionClosed):
            await _read_until_closed(ws)
        return ws.close_code


async def _read_until_closed(ws: ClientConnection) -> None:
    while True:
        await asyncio.wait_for(ws.recv(), 5)


@pytest.mark.parametrize(
    "how",
    ["none", "garbage", "wrong-secret", "revoked"],
)
async def test_a_bad_token_closes_the_socket_with_4401(
    how: str, service: UvicornThread, session: AsyncSession, redis: Redis
) -> None:
    user = await create_user(session, redis)
    token = user.token
    if how == "garbage":
        token = "not.a.jwt"
    elif how == "wrong-secret":
        import jwt

        claims = jwt.decode(user.token, options={"verify_signature": False})
        token = jwt.encode(claims, "another-secret-entirely-long-enough", algorithm="HS256")
    elif how == "revoked":
        await redis.delete(session_key(user.session_id))
    url = ws_url(service.url) if how == "none" else f"{ws_url(service.url)}?token={token}"
    assert await closed_with(url) == 4401


async def test_the_token_may_come_in_the_query_and_pushes_reach_only_their_owner(
    service: UvicornThread, session: AsyncSession, redis: Redis
) -> None:
    owner = await create_user(session, redis)
    other = await create_user(session, redis)
    async with (
        live(service.url, owner.token, in_query=True) as first,
        live(service.url, owner.token) as second,
        live(service.url, other.token) as stranger,
    ):
        await publish(redis, trade_event(owner.id, symbol="ETH/USDT", side="sell", pnl="12.5"))

        async def both_got_it() -> bool:
            return len(first.notifications) == 1 and len(second.notifications) == 1

        await eventually(both_got_it)
        await entries_handled(redis, "events:trade.executed")
        assert await pushed_so_far(stranger, redis, other.id) == []
        assert first.notifications == second.notifications
        note = first.notifications[0]
        assert note["title"] == "Sold 0.01 ETH/USDT at 50000"
        assert "realised PnL 12.5" in note["body"]


async def test_a_ping_gets_a_pong(
    service: UvicornThread, session: AsyncSession, redis: Redis
) -> None:
    user = await create_user(session, redis)
    async with live(service.url, user.token) as client:
        await client.connection.send('{"op": "ping"}')
        await client.connection.send("not json")

        async def answered() -> bool:
            return len(client.frames) >= 2

        await eventually(answered)
    assert client.frames[0] == {"type": "pong"}
    assert client.frames[1]["type"] == "error"


async def test_a_binary_frame_gets_an_error_frame_and_the_socket_stays_open(
    service: UvicornThread, session: AsyncSession, redis: Redis
) -> None:
    user = await create_user(session, redis)
    async with live(service.url, user.token) as client:
        await client.connection.send(b"\x00\x01binary")
        await client.connection.send('{"op": "ping"}')

        async def answered() -> bool:
            return len(client.frames) >= 2

        await eventually(answered)
        assert client.frames[0] == {"type": "error", "detail": "frames must be JSON text"}
        assert client.frames[1] == {"type": "pong"}
        assert client.connection.close_code is None


async def test_an_unknown_query_parameter_refuses_the_handshake(
    service: UvicornThread, session: AsyncSession, redis: Redis
) -> None:
    user = await create_user(session, redis)
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"{ws_url(service.url)}?token={user.token}&tokne=typo"):
            pass
    assert refused.value.response.status_code == 403


async def test_a_socket_is_closed_4401_when_its_session_ends(
    session: AsyncSession, redis: Redis, users: FakeUserService
) -> None:
    settings: NotificationSettings = make_settings(users.url, ws_session_check_s=0.2)
    async with UvicornThread(create_app(settings)) as service:
        user = await create_user(session, redis)
        async with connect(f"{ws_url(service.url)}?token={user.token}") as ws:
            assert '"connected"' in str(await asyncio.wait_for(ws.recv(), 5))
            await redis.delete(session_key(user.session_id))  # logout
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)
            assert ws.close_code == 4401


async def test_a_socket_on_one_replica_gets_what_another_replica_consumed(
    service: UvicornThread, session: AsyncSession, redis: Redis, users: FakeUserService
) -> None:
    # `service` consumes; this replica only holds sockets (no consumers at all).
    sockets_only = make_settings(users.url, consumer_concurrency=0)
    async with UvicornThread(create_app(sockets_only)) as other_replica:
        user = await create_user(session, redis)
        async with live(other_replica.url, user.token) as client:
            await publish(redis, trade_event(user.id))

            async def pushed() -> bool:
                return len(client.notifications) == 1

            await eventually(pushed)
    assert client.notifications[0]["user_id"] == str(user.id)


async def test_with_redis_down_a_socket_is_told_to_come_back_later(
    session: AsyncSession, redis: Redis, users: FakeUserService
) -> None:
    no_redis = make_settings(users.url, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    user = await create_user(session, redis)
    async with UvicornThread(create_app(no_redis)) as service:
        assert await closed_with(f"{ws_url(service.url)}?token={user.token}") == 1013
        async with httpx.AsyncClient(base_url=service.url) as client:
            listed = await client.get("/notifications", headers=user.headers)
    assert listed.status_code == 503
    assert "Retry-After" in listed.headers

"""Through the gateway (:5000 in production): the notification routes and the live socket."""

from __future__ import annotations

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from gateway.main import create_app as create_gateway_app
from gateway.settings import GatewaySettings
from shared.events import publish
from tests.factories import create_user
from tests.notification_service.events import trade_event
from tests.notification_service.live_client import live, ws_url
from tests.servers import UvicornThread
from tests.waiting import eventually

pytestmark = pytest.mark.e2e


async def test_through_the_gateway_a_user_lists_and_receives_their_notifications(
    service: UvicornThread, session: AsyncSession, redis: Redis
) -> None:
    settings = GatewaySettings(notification_service_urls=service.url, log_json=False)
    user = await create_user(session, redis)
    async with UvicornThread(create_gateway_app(settings)) as gateway:
        async with live(gateway.url, user.token) as client:
            await publish(redis, trade_event(user.id))

            async def pushed() -> bool:
                return len(client.notifications) == 1

            await eventually(pushed)
        async with httpx.AsyncClient(base_url=gateway.url) as http:
            listed = (await http.get("/notifications", headers=user.headers)).json()
        assert [n["id"] for n in listed["items"]] == [client.notifications[0]["id"]]

        async with connect(f"{ws_url(gateway.url)}?token=forged") as socket:
            with pytest.raises(ConnectionClosed):
                await socket.recv()
            assert socket.close_code == 4401

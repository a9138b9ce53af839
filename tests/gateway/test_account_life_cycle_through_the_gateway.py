"""A gateway in front of a real user service: the account life cycle end to end, and
logout taking effect at once through the gateway and on the service's own port."""

from __future__ import annotations

import httpx

from tests.gateway.stack import GatewayFactory
from tests.servers import UvicornThread
from tests.stores import TEST_INTERNAL_TOKEN
from tests.user_service.sign_up import PASSWORD
from user_service.main import create_app as create_user_app
from user_service.settings import UserSettings


async def test_account_life_cycle_through_the_gateway_and_logout_is_immediate(
    gateway: GatewayFactory,
) -> None:
    async with (
        UvicornThread(create_user_app(UserSettings())) as users,
        gateway(user_service_urls=users.url) as gw,
        httpx.AsyncClient() as client,
    ):
        registered = await client.post(
            f"{gw.url}/user/auth/register", json={"email": "zoe@example.com", "password": PASSWORD}
        )
        assert registered.status_code == 201, registered.text
        tokens = (
            await client.post(
                f"{gw.url}/user/auth/login", json={"email": "zoe@example.com", "password": PASSWORD}
            )
        ).json()
        headers = {"Authorization": f"Bearer {tokens['access_token']}"}
        me = await client.get(f"{gw.url}/user/me", headers=headers)
        assert me.status_code == 200
        assert me.json()["email"] == "zoe@example.com"
        prefs = await client.put(
            f"{gw.url}/user/me/preferences",
            json={"notifications": {"info": ["webhook"]}},
            headers=headers,
        )
        assert prefs.status_code == 200
        rotated = await client.post(
            f"{gw.url}/user/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
        )
        assert rotated.status_code == 200
        headers = {"Authorization": f"Bearer {rotated.json()['access_token']}"}
        assert (await client.get(f"{gw.url}/user/me", headers=headers)).status_code == 200
        assert (await client.get(f"{users.url}/user/me", headers=headers)).status_code == 200

        out = await client.post(f"{gw.url}/user/auth/logout", headers=headers)
        assert out.status_code == 204

        via_gateway = await client.get(f"{gw.url}/user/me", headers=headers)
        direct = await client.get(f"{users.url}/user/me", headers=headers)
        assert via_gateway.status_code == 401
        assert direct.status_code == 401
        assert direct.headers["content-type"] == "application/problem+json"
        internal = await client.get(
            f"{gw.url}/user/internal/users/{me.json()['id']}",
            headers={"X-Internal-Token": TEST_INTERNAL_TOKEN},
        )
        assert internal.status_code == 404

"""`/notifications/webhooks`: owner-only CRUD, the secret shown once, unsafe URLs refused,
a cap per user."""

from __future__ import annotations

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from notification_service.main import create_app
from tests.factories import create_user
from tests.notification_service.fakes import FakeUserService, WebhookReceiver
from tests.notification_service.settings import make_settings


async def test_webhook_crud_is_owner_only_and_the_secret_is_shown_once(
    client: httpx.AsyncClient, session: AsyncSession, redis: Redis, receiver: WebhookReceiver
) -> None:
    owner = await create_user(session, redis)
    other = await create_user(session, redis)
    created = await client.post(
        "/notifications/webhooks",
        json={"url": f"{receiver.url}/hooks/a", "kinds": ["trade.executed"]},
        headers=owner.headers,
    )
    assert created.status_code == 201
    hook = created.json()
    assert hook["secret"].startswith("whsec_")
    assert hook["kinds"] == ["trade.executed"]
    path = f"/notifications/webhooks/{hook['id']}"

    shown = (await client.get(path, headers=owner.headers)).json()
    assert "secret" not in shown
    assert [
        w["id"]
        for w in (await client.get("/notifications/webhooks", headers=owner.headers)).json()[
            "items"
        ]
    ] == [hook["id"]]
    assert (await client.get("/notifications/webhooks", headers=other.headers)).json()[
        "items"
    ] == []
    for method in ("GET", "PATCH", "DELETE"):
        response = await client.request(
            method,
            path,
            headers=other.headers,
            json={"active": False} if method == "PATCH" else None,
        )
        assert response.status_code == 404, method
        assert response.headers["content-type"].startswith("application/problem+json")

    patched = await client.patch(path, json={"active": False, "kinds": []}, headers=owner.headers)
    assert patched.status_code == 200
    assert patched.json()["active"] is False
    assert patched.json()["kinds"] == []
    assert (await client.delete(path, headers=owner.headers)).status_code == 204
    assert (await client.get(path, headers=owner.headers)).status_code == 404
    assert (await client.get("/notifications/webhooks")).status_code == 401


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0.0.0.0/hook",
        "ftp://example.com/hook",
        "http://user:pass@example.com/hook",
        "http://no-such-host.invalid/hook",
        "http://exa\u0000mple.com/hook",
        "http://example.com/a b",
    ],
)
async def test_webhook_urls_that_reach_internal_addresses_are_refused_by_default(
    url: str, session: AsyncSession, redis: Redis, users: FakeUserService
) -> None:
    strict = make_settings(users.url, webhook_allowed_networks="")
    app = create_app(strict)
    user = await create_user(session, redis)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://test") as client,
    ):
        response = await client.post(
            "/notifications/webhooks", json={"url": url}, headers=user.headers
        )
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["loc"] == ["body", "url"]
        assert (await client.get("/notifications/webhooks", headers=user.headers)).json()[
            "items"
        ] == []


async def test_a_user_may_hold_only_so_many_webhooks(
    session: AsyncSession, redis: Redis, users: FakeUserService, receiver: WebhookReceiver
) -> None:
    settings = make_settings(users.url, webhook_max_per_user=2)
    user = await create_user(session, redis)
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client,
    ):
        statuses = [
            (
                await client.post(
                    "/notifications/webhooks",
                    json={"url": f"{receiver.url}/hooks/{i}"},
                    headers=user.headers,
                )
            ).status_code
            for i in range(3)
        ]
        assert statuses == [201, 201, 409]
        assert (await client.get("/notifications/webhooks", headers=user.headers)).json()[
            "total"
        ] == 2

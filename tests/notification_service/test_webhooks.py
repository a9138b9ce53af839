"""Webhooks: owner-only CRUD, the SSRF guard, signed delivery with retries, the attempt log."""

from __future__ import annotations

from collections.abc import Sequence

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from notification_service.main import create_app
from notification_service.models import WebhookDelivery, WebhookDispatch
from notification_service.webhooks.signing import SIGNATURE_HEADER, verify
from notification_service.webhooks.url_guard import AddressPolicy, UnsafeWebhookUrl, resolve
from shared.events import publish
from tests.factories import create_user
from tests.notification_service.conftest import (
    FakeUserService,
    WebhookReceiver,
    eventually,
    make_settings,
    trade_event,
)
from tests.servers import UvicornThread


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
        w["id"] for w in (await client.get("/notifications/webhooks", headers=owner.headers)).json()
    ] == [hook["id"]]
    assert (await client.get("/notifications/webhooks", headers=other.headers)).json() == []
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
    ],
)
async def test_webhook_urls_that_reach_internal_addresses_are_refused_by_default(
    url: str, session: AsyncSession, redis: Redis, users: FakeUserService
) -> None:
    strict = make_settings(users.url, webhook_allowed_networks="")  # type: ignore[attr-defined]
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
        assert (await client.get("/notifications/webhooks", headers=user.headers)).json() == []


async def test_the_address_policy_allows_listed_networks_and_public_addresses() -> None:
    import ipaddress

    strict = AddressPolicy(allow_private=False)
    assert strict.permits(ipaddress.ip_address("93.184.216.34"))
    assert not strict.permits(ipaddress.ip_address("127.0.0.1"))
    assert not strict.permits(ipaddress.ip_address("100.64.0.1"))  # carrier-grade NAT
    listed = AddressPolicy(False, (ipaddress.ip_network("127.0.0.1/32"),))
    assert listed.permits(ipaddress.ip_address("127.0.0.1"))
    assert not listed.permits(ipaddress.ip_address("127.0.0.2"))
    lax = AddressPolicy(allow_private=True)
    assert lax.permits(ipaddress.ip_address("10.0.0.1"))
    assert not lax.permits(ipaddress.ip_address("0.0.0.0"))  # noqa: S104 - an address, not a bind
    resolved = await resolve("http://127.0.0.1:8080/x?y=1", listed)
    assert resolved.pinned_url == "http://127.0.0.1:8080/x?y=1"
    with pytest.raises(UnsafeWebhookUrl):
        await resolve("http://127.0.0.2:8080/x", listed)


async def test_a_receiver_that_fails_twice_then_succeeds_gets_it_once_with_three_attempts_recorded(
    client: httpx.AsyncClient,
    session: AsyncSession,
    redis: Redis,
    receiver: WebhookReceiver,
    users: FakeUserService,
) -> None:
    user = await create_user(session, redis)
    users.preferences[str(user.id)] = {}
    hook = (
        await client.post(
            "/notifications/webhooks",
            json={"url": f"{receiver.url}/hooks/flaky"},
            headers=user.headers,
        )
    ).json()
    receiver.fail_next["/hooks/flaky"] = 2

    await publish(redis, trade_event(user.id))
    await eventually(lambda: _len(receiver.accepted, 1))

    async def settled() -> list[WebhookDelivery]:
        await session.commit()
        rows = list(
            (await session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.attempt))).all()
        )
        return rows if len(rows) == 3 else []

    attempts = await eventually(settled)
    assert [(a.attempt, a.status_code, a.succeeded) for a in attempts] == [
        (1, 500, False),
        (2, 500, False),
        (3, 204, True),
    ]
    dispatch = await session.scalar(select(WebhookDispatch))
    assert dispatch is not None
    assert (dispatch.state, dispatch.attempts) == ("delivered", 3)
    assert len(receiver.calls) == 3
    assert len(receiver.accepted) == 1
    # Every attempt is the same delivery (same id), each freshly signed.
    assert len({c.headers["x-tradebot-delivery"] for c in receiver.calls}) == 1
    for call in receiver.calls:
        assert verify(hook["secret"], call.body, call.headers[SIGNATURE_HEADER.lower()])
    log = (
        await client.get(f"/notifications/webhooks/{hook['id']}/deliveries", headers=user.headers)
    ).json()
    assert [d["attempt"] for d in log] == [3, 2, 1]


async def _len(items: Sequence[object], n: int) -> bool:
    return len(items) >= n


async def test_a_delivery_that_keeps_failing_stops_after_the_configured_attempts(
    session: AsyncSession, redis: Redis, receiver: WebhookReceiver, users: FakeUserService
) -> None:
    settings = make_settings(users.url, webhook_max_attempts=3)  # type: ignore[attr-defined]
    async with UvicornThread(create_app(settings)) as service:
        user = await create_user(session, redis)
        async with httpx.AsyncClient(base_url=service.url) as client:
            await client.post(
                "/notifications/webhooks",
                json={"url": f"{receiver.url}/hooks/down", "kinds": ["trade.executed"]},
                headers=user.headers,
            )
        receiver.fail_next["/hooks/down"] = 100
        await publish(redis, trade_event(user.id))

        async def given_up() -> WebhookDispatch | None:
            await session.commit()
            row = await session.scalar(select(WebhookDispatch))
            return row if row is not None and row.state == "failed" else None

        dispatch = await eventually(given_up)
    assert dispatch.attempts == 3
    assert dispatch.last_error == "HTTP 500"
    assert len(receiver.calls) == 3


async def test_a_webhook_filtered_to_other_kinds_is_not_called(
    client: httpx.AsyncClient, session: AsyncSession, redis: Redis, receiver: WebhookReceiver
) -> None:
    user = await create_user(session, redis)
    await client.post(
        "/notifications/webhooks",
        json={"url": f"{receiver.url}/hooks/risk-only", "kinds": ["risk.limit.exceeded"]},
        headers=user.headers,
    )
    await publish(redis, trade_event(user.id))

    async def stored() -> bool:
        listed = (await client.get("/notifications", headers=user.headers)).json()
        return bool(listed["total"] == 1)

    await eventually(stored)
    await session.commit()
    assert await session.scalar(select(WebhookDispatch)) is None
    assert receiver.calls == []


async def test_an_address_refused_at_delivery_time_is_recorded_not_called(
    session: AsyncSession, redis: Redis, receiver: WebhookReceiver, users: FakeUserService
) -> None:
    # Saved while the operator allowed loopback; the policy is stricter when it is sent.
    lax = make_settings(users.url)  # type: ignore[attr-defined]
    user = await create_user(session, redis)
    async with (
        UvicornThread(create_app(lax)) as service,
        httpx.AsyncClient(base_url=service.url) as client,
    ):
        created = await client.post(
            "/notifications/webhooks",
            json={"url": f"{receiver.url}/hooks/x"},
            headers=user.headers,
        )
        assert created.status_code == 201
    strict = make_settings(users.url, webhook_allowed_networks="", webhook_max_attempts=1)  # type: ignore[attr-defined]
    async with UvicornThread(create_app(strict)):
        await publish(redis, trade_event(user.id))

        async def attempted() -> WebhookDelivery | None:
            await session.commit()
            return await session.scalar(select(WebhookDelivery))

        attempt = await eventually(attempted)
    assert attempt.succeeded is False
    assert attempt.status_code is None
    assert attempt.error is not None
    assert attempt.error.startswith("refused")
    assert receiver.calls == []


async def test_a_slow_receiver_does_not_hold_up_deliveries_to_others(
    client: httpx.AsyncClient, session: AsyncSession, redis: Redis, receiver: WebhookReceiver
) -> None:
    slow = await create_user(session, redis)
    quick = await create_user(session, redis)
    for user, path in ((slow, "/hooks/slow"), (quick, "/hooks/quick")):
        created = await client.post(
            "/notifications/webhooks", json={"url": receiver.url + path}, headers=user.headers
        )
        assert created.status_code == 201
    receiver.delay_s["/hooks/slow"] = 3.0

    await publish(redis, trade_event(slow.id))
    await eventually(lambda: _len(receiver.calls, 1))  # the slow call is in flight
    await publish(redis, trade_event(quick.id))
    await eventually(lambda: _len(receiver.accepted, 2), timeout=10)

    assert [c.path for c in receiver.accepted] == ["/hooks/quick", "/hooks/slow"]


async def test_a_user_may_hold_only_so_many_webhooks(
    session: AsyncSession, redis: Redis, users: FakeUserService, receiver: WebhookReceiver
) -> None:
    settings = make_settings(users.url, webhook_max_per_user=2)  # type: ignore[attr-defined]
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
        assert len((await client.get("/notifications/webhooks", headers=user.headers)).json()) == 2

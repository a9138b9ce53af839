"""The webhook dispatcher: signed deliveries, retries and their log, the kinds filter, the
SSRF guard at send time, slow receivers."""

from __future__ import annotations

from collections.abc import Sequence

import httpx
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from notification_service.main import create_app
from notification_service.models import WebhookDelivery, WebhookDispatch
from notification_service.webhooks.signing import SIGNATURE_HEADER, verify
from shared.events import publish
from tests.factories import create_user
from tests.notification_service.events import trade_event
from tests.notification_service.fakes import FakeUserService, WebhookReceiver
from tests.notification_service.settings import make_settings
from tests.servers import UvicornThread
from tests.waiting import eventually


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
    ).json()["items"]
    assert [d["attempt"] for d in log] == [3, 2, 1]


async def _len(items: Sequence[object], n: int) -> bool:
    return len(items) >= n


async def test_a_delivery_that_keeps_failing_stops_after_the_configured_attempts(
    session: AsyncSession, redis: Redis, receiver: WebhookReceiver, users: FakeUserService
) -> None:
    settings = make_settings(users.url, webhook_max_attempts=3)
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
    lax = make_settings(users.url)
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
    strict = make_settings(users.url, webhook_allowed_networks="", webhook_max_attempts=1)
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

"""Events in, notifications out: stored once, pushed to the owner only, posted signed."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence

import httpx
from redis.asyncio import Redis
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from notification_service.main import create_app
from notification_service.models import Notification
from notification_service.webhooks.signing import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    verify,
)
from shared.events import DEAD_LETTER_STREAM, NOTIFICATION_QUEUE, Event, publish
from tests.factories import create_user
from tests.notification_service.events import trade_event
from tests.notification_service.fakes import FakeUserService, WebhookReceiver
from tests.notification_service.live_client import live
from tests.notification_service.settings import make_settings
from tests.notification_service.settled import (
    MARKER_KIND,
    entries_handled,
    pushed_so_far,
    webhooks_settled,
)
from tests.servers import UvicornThread, free_port
from tests.waiting import eventually


async def add_webhook(
    client: httpx.AsyncClient, headers: dict[str, str], url: str, **extra: object
) -> dict[str, object]:
    response = await client.post(
        "/notifications/webhooks", json={"url": url, **extra}, headers=headers
    )
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


async def stored_count(session: AsyncSession, user_id: uuid.UUID | None = None) -> int:
    stmt = select(func.count()).select_from(Notification)
    if user_id is not None:
        stmt = stmt.where(Notification.user_id == user_id)
    await session.commit()  # a fresh snapshot on every poll
    return int(await session.scalar(stmt) or 0)


async def test_a_trade_is_stored_once_pushed_to_its_owner_only_and_posted_signed(
    client: httpx.AsyncClient,
    service: UvicornThread,
    session: AsyncSession,
    redis: Redis,
    receiver: WebhookReceiver,
    users: FakeUserService,
) -> None:
    owner = await create_user(session, redis)
    other = await create_user(session, redis)
    users.preferences[str(owner.id)] = {"notifications": {MARKER_KIND: ["ws"]}}
    users.preferences[str(other.id)] = {"notifications": {MARKER_KIND: ["ws"]}}
    hook = await add_webhook(client, owner.headers, f"{receiver.url}/hooks/owner")
    await add_webhook(client, other.headers, f"{receiver.url}/hooks/other")

    async with (
        live(service.url, owner.token) as owner_ws,
        live(service.url, other.token) as other_ws,
    ):
        event = trade_event(owner.id)
        await publish(redis, event)
        await publish(redis, event)  # redelivered with the same id: no second effect
        # ...and the same fill as a notification request about that event: still one.
        request = Event(
            type="notification.requested",
            data={
                "user_id": str(owner.id),
                "kind": "trade.executed",
                "title": "Trade",
                "body": "again",
                "data": {},
                "source_event_id": str(event.id),
            },
            source="trading",
        )
        await publish(redis, request, stream=NOTIFICATION_QUEUE)
        await entries_handled(redis, "events:trade.executed", NOTIFICATION_QUEUE)

        assert await stored_count(session, owner.id) == 1
        assert await stored_count(session, other.id) == 0
        listed = (await client.get("/notifications", headers=owner.headers)).json()
        assert (await client.get("/notifications", headers=other.headers)).json()["items"] == []
        owner_pushes = await pushed_so_far(owner_ws, redis, owner.id)
        assert await pushed_so_far(other_ws, redis, other.id) == []
    await webhooks_settled(session)

    assert len(owner_pushes) == 1
    pushed = owner_pushes[0]
    assert pushed["kind"] == "trade.executed"
    assert pushed["event_id"] == str(event.id)
    assert pushed["title"] == "Bought 0.01 BTC/USDT at 50000"
    assert pushed["data"]["price"] == "50000.00000000"
    assert [n["id"] for n in listed["items"]] == [pushed["id"]]

    assert len(receiver.calls) == 1
    call = receiver.calls[0]
    assert call.path == "/hooks/owner"
    assert verify(str(hook["secret"]), call.body, call.headers[SIGNATURE_HEADER.lower()])
    assert not verify("some-other-secret-value", call.body, call.headers[SIGNATURE_HEADER.lower()])
    assert call.json["notification"]["id"] == pushed["id"]
    assert call.json["timestamp"] == int(call.headers[TIMESTAMP_HEADER.lower()])
    assert call.json["delivery_id"] == call.headers[DELIVERY_HEADER.lower()]


async def _push_count(frames: list[dict[str, object]], n: int) -> bool:
    return len(frames) >= n


async def _len_at_least(items: Sequence[object], n: int) -> bool:
    return len(items) >= n


async def test_preferences_choose_the_channels_per_kind(
    client: httpx.AsyncClient,
    service: UvicornThread,
    session: AsyncSession,
    redis: Redis,
    receiver: WebhookReceiver,
    users: FakeUserService,
) -> None:
    user = await create_user(session, redis)
    users.preferences[str(user.id)] = {
        "notifications": {"trade.executed": ["webhook"], "bot.failed": [], MARKER_KIND: ["ws"]}
    }
    await add_webhook(client, user.headers, f"{receiver.url}/hooks/prefs")

    async with live(service.url, user.token) as ws:
        await publish(redis, trade_event(user.id))
        await publish(
            redis,
            Event(
                type="bot.failed",
                data={"user_id": str(user.id), "bot_id": str(uuid.uuid4()), "error": "boom"},
                source="trading",
            ),
        )
        await publish(
            redis,
            Event(
                type="risk.limit.exceeded",
                data={
                    "user_id": str(user.id),
                    "bot_id": None,
                    "rule": "daily_loss_limit",
                    "detail": "lost 120 USDT today, limit 100",
                    "action": "paused",
                },
                source="trading",
            ),
        )
        await entries_handled(
            redis, "events:trade.executed", "events:bot.failed", "events:risk.limit.exceeded"
        )
        assert await stored_count(session, user.id) == 3
        pushes = await pushed_so_far(ws, redis, user.id)
    await webhooks_settled(session)

    # trade.executed: webhook only; bot.failed: stored only; risk (absent): everywhere.
    assert [n["kind"] for n in pushes] == ["risk.limit.exceeded"]
    assert sorted(c.json["notification"]["kind"] for c in receiver.accepted) == [
        "risk.limit.exceeded",
        "trade.executed",
    ]
    risk = pushes[0]
    assert risk["title"] == "Risk limit hit: daily_loss_limit"
    assert "paused" in risk["body"]


async def test_when_the_user_service_is_down_the_notification_is_stored_and_sent_everywhere(
    session: AsyncSession, redis: Redis, receiver: WebhookReceiver
) -> None:
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    settings = make_settings(down)
    async with UvicornThread(create_app(settings)) as service:
        user = await create_user(session, redis)
        async with httpx.AsyncClient(base_url=service.url) as client:
            await add_webhook(client, user.headers, f"{receiver.url}/hooks/down")
        async with live(service.url, user.token) as ws:
            await publish(redis, trade_event(user.id))
            await eventually(lambda: _push_count(ws.notifications, 1))
            await eventually(lambda: _len_at_least(receiver.accepted, 1))
    assert await stored_count(session, user.id) == 1


async def test_a_notification_for_a_user_nobody_knows_is_dropped_not_retried(
    service: UvicornThread, session: AsyncSession, redis: Redis, users: FakeUserService
) -> None:
    ghost = uuid.uuid4()  # no row, and the user service answers 404
    await publish(redis, trade_event(ghost))
    await entries_handled(redis, "events:trade.executed")
    assert await stored_count(session) == 0
    assert await redis.xlen(DEAD_LETTER_STREAM) == 0


async def test_a_poison_entry_is_dead_lettered_with_its_error_and_counted_in_metrics(
    client: httpx.AsyncClient, session: AsyncSession, redis: Redis
) -> None:
    before = _dead_lettered(await client.get("/metrics"))
    bad = Event(
        type="notification.requested",
        data={"user_id": "not-a-uuid", "title": "x"},
        source="test",
    )
    await publish(redis, bad, stream=NOTIFICATION_QUEUE)

    entries = await eventually(lambda: redis.xrange(DEAD_LETTER_STREAM), timeout=20)
    assert len(entries) == 1
    record = entries[0][1]
    assert record["id"] == str(bad.id)
    assert record["dead_stream"] == NOTIFICATION_QUEUE
    assert record["dead_group"] == "notification"
    assert "user_id" in record["error"]
    assert json.loads(record["data"]) == bad.data
    assert _dead_lettered(await client.get("/metrics")) == before + 1
    assert (await redis.xpending(NOTIFICATION_QUEUE, "notification"))["pending"] == 0
    assert await stored_count(session) == 0
    applied = await session.scalar(text("SELECT count(*) FROM processed_events"))
    assert applied == 0


def _dead_lettered(response: httpx.Response) -> float:
    for line in response.text.splitlines():
        if line.startswith("events_dead_lettered_total{") and (
            'group="notification"' in line and f'stream="{NOTIFICATION_QUEUE}"' in line
        ):
            return float(line.rsplit(" ", 1)[1])
    return 0.0

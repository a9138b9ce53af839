"""`GET /notifications` (paged, unread filter) and marking as read, owner-only."""

from __future__ import annotations

import uuid

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from notification_service.main import create_app
from notification_service.notifications import service
from notification_service.notifications.schemas import NotificationDraft
from notification_service.settings import NotificationSettings
from tests.factories import TestUser, create_user
from tests.servers import app_client


async def seed(session: AsyncSession, user: TestUser, n: int) -> list[uuid.UUID]:
    ids = []
    for i in range(n):
        stored = await service.record(
            session,
            NotificationDraft(user.id, uuid.uuid4(), "info", f"note {i}", f"body {i}", {"i": i}),
        )
        assert stored is not None
        ids.append(stored.id)
        await session.commit()
    return ids


async def test_notifications_are_paged_newest_first_with_unread_filter_and_counts(
    settings: NotificationSettings, session: AsyncSession, redis: Redis
) -> None:
    user = await create_user(session, redis)
    ids = await seed(session, user, 5)
    async with app_client(create_app(settings)) as client:
        first = (await client.get("/notifications?limit=2", headers=user.headers)).json()
        assert [n["id"] for n in first["items"]] == [str(ids[4]), str(ids[3])]
        assert (first["total"], first["unread"], first["limit"], first["offset"]) == (5, 5, 2, 0)
        third = (await client.get("/notifications?limit=2&offset=4", headers=user.headers)).json()
        assert [n["id"] for n in third["items"]] == [str(ids[0])]

        read = await client.post(f"/notifications/{ids[4]}/read", headers=user.headers)
        assert read.status_code == 200
        read_at = read.json()["read_at"]
        assert read_at is not None
        again = await client.post(f"/notifications/{ids[4]}/read", headers=user.headers)
        assert again.json()["read_at"] == read_at  # the first read time is kept

        unread = (await client.get("/notifications?unread=true", headers=user.headers)).json()
        assert [n["id"] for n in unread["items"]] == [str(i) for i in reversed(ids[:4])]
        assert (unread["total"], unread["unread"]) == (4, 4)

        marked = await client.post("/notifications/read-all", headers=user.headers)
        assert marked.json() == {"updated": 4}
        after = (await client.get("/notifications?unread=true", headers=user.headers)).json()
        assert (after["items"], after["unread"]) == ([], 0)


async def test_another_users_notification_is_404_and_unchanged(
    settings: NotificationSettings, session: AsyncSession, redis: Redis
) -> None:
    owner = await create_user(session, redis)
    other = await create_user(session, redis)
    (note,) = await seed(session, owner, 1)
    async with app_client(create_app(settings)) as client:
        for method, path in (
            ("GET", f"/notifications/{note}"),
            ("POST", f"/notifications/{note}/read"),
        ):
            response = await client.request(method, path, headers=other.headers)
            assert response.status_code == 404
            assert response.headers["content-type"].startswith("application/problem+json")
        assert (await client.post("/notifications/read-all", headers=other.headers)).json() == {
            "updated": 0
        }
        own = (await client.get(f"/notifications/{note}", headers=owner.headers)).json()
        assert own["read_at"] is None


async def test_bad_input_and_missing_tokens_are_problems(
    settings: NotificationSettings, session: AsyncSession, redis: Redis
) -> None:
    user = await create_user(session, redis)
    async with app_client(create_app(settings)) as client:
        assert (await client.get("/notifications")).status_code == 401
        bad = await client.get("/notifications?limit=0", headers=user.headers)
        assert bad.status_code == 422
        assert bad.json()["errors"][0]["loc"] == ["query", "limit"]
        assert (
            await client.get("/notifications/not-a-uuid", headers=user.headers)
        ).status_code == 422
        unknown = await client.post(f"/notifications/{uuid.uuid4()}/read", headers=user.headers)
        assert unknown.status_code == 404


async def test_health_reports_database_and_redis(
    settings: NotificationSettings,
) -> None:
    async with app_client(create_app(settings)) as client:
        body = (await client.get("/health")).json()
    assert body["status"] == "healthy"
    assert body["services"] == {"database": "up", "redis": "up"}

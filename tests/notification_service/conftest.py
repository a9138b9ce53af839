"""Fixtures of the notification service tests: the service on a real uvicorn server, a fake
user service and a local webhook receiver, all on free ports (see fakes.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from notification_service.main import create_app
from notification_service.settings import NotificationSettings
from tests.notification_service.fakes import FakeUserService, WebhookReceiver
from tests.notification_service.settings import make_settings
from tests.servers import UvicornThread


@pytest.fixture(scope="session")
def fake_users() -> Iterator[FakeUserService]:
    fake = FakeUserService()
    server = UvicornThread(fake.app).start()
    fake.url = server.url
    yield fake
    server.stop()


@pytest.fixture(scope="session")
def receiver_server() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    server = UvicornThread(receiver.build()).start()
    receiver.url = server.url
    yield receiver
    server.stop()


@pytest.fixture
def receiver(receiver_server: WebhookReceiver) -> WebhookReceiver:
    receiver_server.reset()
    return receiver_server


@pytest.fixture
def users(fake_users: FakeUserService) -> FakeUserService:
    fake_users.preferences.clear()
    fake_users.calls = 0
    return fake_users


@pytest.fixture
def settings(users: FakeUserService) -> NotificationSettings:
    return make_settings(users.url)


@pytest.fixture
async def service(settings: NotificationSettings) -> AsyncIterator[UvicornThread]:
    """The notification service on a real uvicorn server, consumers running."""
    async with UvicornThread(create_app(settings)) as service:
        yield service


@pytest.fixture
async def client(service: UvicornThread) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=service.url, timeout=10) as http:
        yield http

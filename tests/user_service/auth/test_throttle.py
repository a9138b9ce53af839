"""The login throttle slows guessing and never locks anyone out: a guesser waits longer
after each failure, the owner logs in from elsewhere, a noisy address slows only itself,
and X-Forwarded-For counts only from a trusted proxy."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx
import pytest

from tests.user_service.sign_up import PASSWORD, register
from tests.waiting import eventually
from user_service.main import create_app
from user_service.settings import UserSettings

WRONG = "wrong password 1"
Clients = Callable[[str], httpx.AsyncClient]


@asynccontextmanager
async def user_service(**settings: Any) -> AsyncIterator[Clients]:
    """The user service in-process, and a client per caller address (the TCP peer)."""
    app = create_app(UserSettings(**settings))
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(app.router.lifespan_context(app))
        clients: dict[str, httpx.AsyncClient] = {}

        def at(address: str) -> httpx.AsyncClient:
            if address not in clients:
                transport = httpx.ASGITransport(app=app, client=(address, 40000))
                clients[address] = httpx.AsyncClient(transport=transport, base_url="http://t")
            return clients[address]

        try:
            yield at
        finally:
            for client in clients.values():
                await client.aclose()


@pytest.fixture
async def at() -> AsyncIterator[Clients]:
    async with user_service() as clients:
        yield clients


async def attempt(
    client: httpx.AsyncClient, email: str, password: str, **headers: str
) -> httpx.Response:
    return await client.post(
        "/user/auth/login", json={"email": email, "password": password}, headers=headers
    )


async def test_a_guesser_at_one_address_waits_twice_as_long_after_each_failure() -> None:
    async with user_service(login_backoff_base_seconds=3) as at:
        await a_guesser_waits_twice_as_long_after_each_failure(at)


async def a_guesser_waits_twice_as_long_after_each_failure(at: Clients) -> None:
    await register(at("198.51.100.1"), "erin@example.com")
    guesser = at("203.0.113.9")
    free = [await attempt(guesser, "erin@example.com", WRONG) for _ in range(3)]
    assert [r.status_code for r in free] == [401, 401, 401]

    waiting = await attempt(guesser, "erin@example.com", PASSWORD)
    assert waiting.status_code == 429
    assert 1 <= int(waiting.headers["retry-after"]) <= 3

    async def answered() -> httpx.Response | None:
        response = await attempt(guesser, "erin@example.com", WRONG)
        return response if response.status_code != 429 else None

    assert (await eventually(answered)).status_code == 401
    longer = await attempt(guesser, "erin@example.com", WRONG)
    assert longer.status_code == 429
    assert 3 < int(longer.headers["retry-after"]) <= 6  # twice the first wait


async def test_the_owner_logs_in_from_another_address_during_an_attack(at: Clients) -> None:
    await register(at("198.51.100.1"), "victim@example.com")
    attacker = at("203.0.113.9")
    answers = [await attempt(attacker, "victim@example.com", WRONG) for _ in range(30)]
    assert {r.status_code for r in answers} == {401, 429}

    owner = await attempt(at("198.51.100.77"), "victim@example.com", PASSWORD)

    assert owner.status_code == 200, owner.text


async def test_guessing_from_many_addresses_slows_new_addresses_not_the_owners_own(
    at: Clients,
) -> None:
    await register(at("198.51.100.1"), "frank@example.com")
    home = at("198.51.100.50")
    assert (await attempt(home, "frank@example.com", PASSWORD)).status_code == 200
    for n in range(10):
        guess = await attempt(at(f"203.0.113.{n + 10}"), "frank@example.com", WRONG)
        assert guess.status_code == 401

    # The account is under attack: new addresses take turns, one try every 2 s...
    first = await attempt(at("192.0.2.1"), "frank@example.com", PASSWORD)
    second = await attempt(at("192.0.2.2"), "frank@example.com", PASSWORD)
    assert first.status_code == 200, first.text
    assert second.status_code == 429
    assert 1 <= int(second.headers["retry-after"]) <= 2
    # ...while the owner's usual address is not slowed at all.
    assert (await attempt(home, "frank@example.com", PASSWORD)).status_code == 200


async def test_a_noisy_address_slows_only_itself_and_not_its_known_users() -> None:
    async with user_service(login_ip_failures_before_slowdown=5) as at:
        office, elsewhere = at("198.51.100.8"), at("198.51.100.9")
        await register(office, "colleague@example.com")
        await register(elsewhere, "grace@example.com")
        assert (await attempt(office, "colleague@example.com", PASSWORD)).status_code == 200
        for n in range(5):
            failed = await attempt(office, f"guess{n}@example.com", WRONG)
            assert failed.status_code == 401

        turn = await attempt(office, "guess-a@example.com", WRONG)
        slowed = await attempt(office, "guess-b@example.com", WRONG)
        colleague = await attempt(office, "colleague@example.com", PASSWORD)
        other = await attempt(elsewhere, "grace@example.com", PASSWORD)

    assert turn.status_code == 401
    assert slowed.status_code == 429
    assert colleague.status_code == 200, colleague.text
    assert other.status_code == 200, other.text


async def test_x_forwarded_for_from_an_untrusted_peer_is_ignored(at: Clients) -> None:
    await register(at("198.51.100.1"), "heidi@example.com")
    direct = at("203.0.113.9")
    answers = [
        await attempt(direct, "heidi@example.com", WRONG, **{"X-Forwarded-For": f"10.9.9.{n}"})
        for n in range(4)
    ]
    # A new X-Forwarded-For on every try is still the one address: its budget is spent.
    assert [r.status_code for r in answers] == [401, 401, 401, 429]


async def test_x_forwarded_for_from_a_trusted_proxy_names_the_client() -> None:
    async with user_service(trusted_proxies="10.0.0.0/24") as at:
        gateway = at("10.0.0.5")
        await register(gateway, "ivan@example.com")
        attacker = {"X-Forwarded-For": "198.51.100.66, 203.0.113.9"}
        for _ in range(3):
            assert (
                await attempt(gateway, "ivan@example.com", WRONG, **attacker)
            ).status_code == 401
        blocked = await attempt(gateway, "ivan@example.com", PASSWORD, **attacker)
        owner = await attempt(
            gateway, "ivan@example.com", PASSWORD, **{"X-Forwarded-For": "198.51.100.66"}
        )

    assert blocked.status_code == 429
    assert owner.status_code == 200, owner.text


async def test_two_replicas_share_the_budgets() -> None:
    slow = {"login_backoff_base_seconds": 30}  # still waiting however loaded the machine
    async with user_service(**slow) as one, user_service(**slow) as two:
        await register(one("198.51.100.1"), "judy@example.com")
        for _ in range(3):
            failed = await attempt(one("203.0.113.9"), "judy@example.com", WRONG)
            assert failed.status_code == 401
        elsewhere = await attempt(two("203.0.113.9"), "judy@example.com", PASSWORD)

    assert elsewhere.status_code == 429

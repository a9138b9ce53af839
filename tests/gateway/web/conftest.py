"""The browser tests' stack: the six services as processes (as `tradebot up` runs them),
the sim clock at 60x so a 1-minute bot acts within seconds, and one headless Chromium."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright
from redis import Redis

from market_service.main import SIM_ANCHOR_KEY
from tests.gateway.web.browser import launch
from tests.servers import running_services

SERVICES = ["user", "market", "analysis", "trading", "notification", "gateway"]
# Where the tests save a screenshot of each main page (README: "Screenshots").
SCREENSHOTS = Path(__file__).resolve().parents[3] / "screenshots"


@pytest.fixture(autouse=True)
def clean_state() -> None:
    """The services keep running across this package's tests, so the tables and Redis are
    not wiped between them (each test signs up a user of its own)."""


@pytest.fixture(scope="package")
def stack_env(service_env: dict[str, str]) -> dict[str, str]:
    return {**service_env, "SIM_SPEED": "60", "RATE_LIMIT_PER_MINUTE": "100000"}


@pytest.fixture(scope="package")
def stack(stack_env: dict[str, str]) -> Iterator[dict[str, str]]:
    # A demo that has run for an hour: the sim's clock is 60 hours ahead of the wall's, so
    # whatever mixes the two (trade markers on candles) shows up wrong at once.
    with Redis.from_url(stack_env["REDIS_URL"]) as redis:
        redis.set(SIM_ANCHOR_KEY, int((time.time() - 3600) * 1000))
    with running_services(SERVICES, stack_env) as urls:
        yield urls


@pytest.fixture(scope="package")
def gateway(stack: dict[str, str]) -> str:
    return stack["gateway"]


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, color_scheme="dark")
    ctx.set_default_timeout(20_000)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: BrowserContext) -> Iterator[Page]:
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    assert not errors, f"uncaught errors in the page: {errors}"


@pytest.fixture(scope="package")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(exist_ok=True)
    return SCREENSHOTS

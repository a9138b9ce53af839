"""A service the gateway answers 503 for is shown as that part unavailable, and the rest of
the dashboard keeps working."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.gateway.web.browser import open_logged_in
from tests.servers import ServiceProcess


@pytest.fixture
def gateway_without_analysis(stack: dict[str, str], stack_env: dict[str, str]) -> Iterator[str]:
    """A second gateway on the same services, but with nothing where analysis should be."""
    wiring = {
        "MARKET_SERVICE_URLS": stack["market"],
        "USER_SERVICE_URLS": stack["user"],
        "TRADING_SERVICE_URLS": stack["trading"],
        "ANALYSIS_SERVICE_URLS": "http://127.0.0.1:1",
        "NOTIFICATION_SERVICE_URLS": stack["notification"],
    }
    process = ServiceProcess("gateway", env={**stack_env, **wiring}).start()
    try:
        yield process.url
    finally:
        process.stop()


def test_a_service_down_is_shown_as_that_part_unavailable(
    page: Page, gateway_without_analysis: str
) -> None:
    gateway = gateway_without_analysis
    open_logged_in(page, gateway, f"outage-{uuid.uuid4().hex[:8]}@example.com", "backtests")
    notice = page.locator('.unavailable[data-service="analysis"]').first
    expect(notice).to_contain_text("Analysis and backtests unavailable")
    expect(notice).to_contain_text("The analysis service is unavailable; retry later.")
    expect(page.locator('.outage-bar [data-service="analysis"]')).to_be_visible()

    # Market data, bots and the rest answer as usual.
    page.get_by_role("link", name="Markets").click()
    price = page.locator('tr[data-symbol="BTC/USDT"] td.price')
    expect(price).not_to_have_text("—")
    page.get_by_role("link", name="Bots").click()
    expect(page.get_by_text("No bot yet.")).to_be_visible()
    expect(page.locator('.unavailable[data-service="trading"]')).to_have_count(0)

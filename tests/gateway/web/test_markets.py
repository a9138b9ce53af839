"""The markets page: prices that move without a reload, the chart and the order book."""

from __future__ import annotations

import uuid

from playwright.sync_api import Page, expect

from tests.gateway.web.browser import open_logged_in


def test_a_price_moves_live_over_the_feed_without_a_reload(page: Page, gateway: str) -> None:
    open_logged_in(page, gateway, f"prices-{uuid.uuid4().hex[:8]}@example.com", "markets")
    price = page.locator('tr[data-symbol="BTC/USDT"] td.price')
    expect(price).not_to_have_text("—")
    first = price.inner_text()
    # The sim ticks ten times a second: the cell changes with no navigation in between.
    page.wait_for_function(
        "([selector, first]) => document.querySelector(selector).innerText !== first",
        arg=['tr[data-symbol="BTC/USDT"] td.price', first],
    )
    expect(page.get_by_text("live", exact=True)).to_be_visible()
    expect(page.get_by_role("img", name="BTC/USDT 1h candlestick chart on sim")).to_be_visible()
    expect(page.locator(".orderbook tr.bid").first).to_be_visible()

    page.get_by_role("button", name="ETH/USDT").click()
    expect(page.get_by_role("heading", name="ETH/USDT")).to_be_visible()
    expect(page.get_by_role("img", name="ETH/USDT 1h candlestick chart on sim")).to_be_visible()
    expect(page.get_by_role("table", name="Order book ETH/USDT")).to_be_visible()

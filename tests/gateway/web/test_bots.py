"""A paper bot on the sim exchange, from the browser: a strategy saved, the bot created and
started, and its first trade on its page, in its events and as a toast, with no reload."""

from __future__ import annotations

import uuid

from playwright.sync_api import Page, expect

from tests.gateway.web.browser import open_logged_in


def test_a_started_paper_bot_shows_its_first_trade_without_a_reload(
    page: Page, gateway: str
) -> None:
    open_logged_in(page, gateway, f"bot-{uuid.uuid4().hex[:8]}@example.com", "bots")
    saving = page.locator("form").filter(has=page.get_by_role("heading", name="Save a strategy"))
    saving.get_by_label("Name").fill("buy at once")
    saving.get_by_label("Strategy", exact=True).select_option("rules")
    # A rule that is true on the first closed candle: the bot buys at once.
    saving.get_by_label("Entry").fill("close > 0")
    saving.get_by_role("button", name="Save strategy").click()
    expect(page.get_by_role("region", name="Saved strategies")).to_contain_text("buy at once")

    creating = page.locator("form").filter(has=page.get_by_role("heading", name="Create a bot"))
    expect(creating.get_by_label("Strategy")).to_contain_text("buy at once")
    creating.get_by_label("Name").fill("first bot")
    creating.get_by_label("Timeframe").select_option("1m")
    creating.get_by_label("Capital (quote)").fill("500")
    creating.get_by_label("Stop loss").fill("0.05")
    creating.get_by_role("button", name="Create bot").click()

    expect(page.get_by_role("heading", name="first bot")).to_be_visible()
    expect(page.locator("h1 .badge")).to_have_text("stopped")
    expect(page.get_by_text("No trade yet.")).to_be_visible()
    expect(page.locator('nav a[data-live="true"]')).to_be_visible()
    page.get_by_role("button", name="Start").click()
    expect(page.locator("h1 .badge")).to_have_text("running")

    # The fill reaches the page over /notifications/ws: a toast, the trade, the position.
    expect(page.locator(".toast").filter(has_text="Bought")).to_be_visible(timeout=30_000)
    trade = page.get_by_role("region", name="Trades (1)").locator("tbody tr")
    expect(trade).to_have_count(1)
    expect(trade).to_contain_text("BUY")
    expect(page.get_by_role("region", name="Events")).to_contain_text("order filled")
    expect(page.get_by_role("region", name="Position and balance")).to_contain_text("Entry")
    # The trade is stamped by the wall clock, the candles by the sim's (60 times faster
    # here): the marker still lands among the chart's candles.
    expect(page.get_by_role("img", name="1 trade marked")).to_be_visible()
    expect(page.get_by_role("form", name="Risk settings").get_by_label("stop loss")).to_have_value(
        "0.05"
    )

    page.get_by_role("button", name="Stop").click()
    expect(page.locator("h1 .badge")).to_have_text("stopped")
    page.get_by_role("link", name="← All bots").click()
    row = page.locator("tr", has_text="first bot")
    expect(row).to_contain_text("stopped")
    expect(row).to_contain_text("500.00")

"""Notifications from the browser: a refused webhook URL explained, the list and read marks."""

from __future__ import annotations

import uuid

import httpx
from playwright.sync_api import Page, expect

from tests.gateway.web.browser import open_logged_in


def test_a_refused_webhook_url_is_explained_under_the_field(page: Page, gateway: str) -> None:
    open_logged_in(page, gateway, f"hook-{uuid.uuid4().hex[:8]}@example.com", "notifications")
    hooks = page.get_by_role("region", name="Webhooks")
    hooks.get_by_label("Webhook URL").fill("http://127.0.0.1:9/collect")
    hooks.get_by_role("button", name="Add webhook").click()
    why = hooks.locator(".field-error")
    expect(why).to_contain_text("non-public address")
    expect(hooks).to_contain_text("Webhooks may only call public addresses")
    expect(hooks.get_by_label("Webhook URL")).to_have_attribute("aria-invalid", "true")


def test_a_paper_order_notifies_with_a_toast_and_is_marked_read(page: Page, gateway: str) -> None:
    tokens = open_logged_in(page, gateway, f"note-{uuid.uuid4().hex[:8]}@example.com", "trading")
    # Live notifications are connected (the dot on the menu) before the order is placed.
    expect(page.locator('nav a[data-live="true"]')).to_be_visible()
    order = page.get_by_role("form", name="Paper order")
    order.get_by_label("Quantity (base)").fill("0.01")
    order.get_by_role("button", name="Buy BTC/USDT").click()
    expect(page.locator(".toast", has_text="Bought 0.01 BTC/USDT")).to_be_visible(timeout=20_000)
    expect(page.get_by_role("link", name="Notifications")).to_contain_text("1")

    page.get_by_role("link", name="Notifications").click()
    listed = page.locator("ul.notes li.unread")
    expect(listed).to_have_count(1)
    page.get_by_label("Unread only").check()
    listed.get_by_role("button", name="Mark").click()
    expect(page.get_by_text("Nothing unread.")).to_be_visible()
    unread = httpx.get(
        f"{gateway}/notifications",
        params={"unread": "true"},
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
    ).json()
    assert unread["total"] == 0

"""Settings from the browser: the theme applied at once and kept, limits and exchange keys."""

from __future__ import annotations

import uuid

import httpx
from playwright.sync_api import Page, expect

from tests.gateway.web.browser import open_logged_in


def theme_of(page: Page) -> str | None:
    return page.evaluate("document.documentElement.dataset.theme")


def test_a_theme_switch_applies_at_once_and_is_kept_after_a_reload(
    page: Page, gateway: str
) -> None:
    tokens = open_logged_in(page, gateway, f"theme-{uuid.uuid4().hex[:8]}@example.com", "settings")
    assert theme_of(page) == "dark"  # the context prefers dark; the user chose nothing yet
    dark_background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    with page.expect_response(
        lambda r: r.url.endswith("/user/me/preferences") and r.request.method == "PUT"
    ) as saved:
        page.get_by_role("radio", name="light").check()
        # Applied at once, before the server has answered.
        assert theme_of(page) == "light"
    assert saved.value.status == 200
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") != dark_background

    page.reload()
    expect(page.get_by_role("radio", name="light")).to_be_checked()
    assert theme_of(page) == "light"
    # Kept in the account, not only in this browser: without the local copy it comes back
    # from GET /user/me.
    page.evaluate("localStorage.removeItem('tradebot.theme')")
    page.reload()
    page.wait_for_function("() => document.documentElement.dataset.theme === 'light'")
    answer = httpx.get(
        f"{gateway}/user/me/preferences",
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
    )
    assert answer.json()["theme"] == "light"


def test_limits_and_exchange_keys_are_saved_listed_masked_and_deleted(
    page: Page, gateway: str
) -> None:
    open_logged_in(page, gateway, f"keys-{uuid.uuid4().hex[:8]}@example.com", "settings")
    limits = page.get_by_role("form", name="Trading limits")
    expect(limits.get_by_role("button", name="Save limits")).to_be_enabled()
    limits.get_by_label("Max order value").fill("-5")
    limits.get_by_role("button", name="Save limits").click()
    expect(limits.locator(".field-error")).to_be_visible()
    limits.get_by_label("Max order value").fill("2500")
    limits.get_by_role("button", name="Save limits").click()
    expect(page.locator(".toast", has_text="Trading limits saved")).to_be_visible()

    keys = page.get_by_role("region", name="Exchange API keys")
    keys.get_by_label("API key").fill("AKIAEXAMPLEKEY123456")
    keys.get_by_label("API secret").fill("the-secret-that-never-comes-back")
    keys.get_by_role("button", name="Add key").click()
    row = keys.locator("tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("3456")
    expect(keys).not_to_contain_text("AKIAEXAMPLEKEY123456")
    expect(keys).not_to_contain_text("the-secret-that-never-comes-back")
    keys.get_by_role("button", name="Delete key default on binance").click()
    expect(keys.get_by_text("No key stored.")).to_be_visible()

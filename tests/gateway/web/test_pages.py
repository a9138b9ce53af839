"""Every main page, with data in it: no serious or critical accessibility violation
(axe-core) in either theme, no sideways scrolling at a phone's width, and a screenshot of
each saved to screenshots/ (README: "Screenshots")."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.gateway.web.browser import (
    PASSWORD,
    axe_violations,
    open_logged_in,
    seed_account,
    sign_up,
)

# Route, and what shows that the page has its data.
PAGES = [
    ("markets", ['tr[data-symbol="BTC/USDT"] td.price >> text=/\\d/', ".chart canvas"]),
    ("backtests/{backtest}", ["section.result .metrics", "section.result .chart canvas"]),
    ("bots", ["table.bots tbody tr"]),
    ("bots/{bot}", ["table.trades tbody tr", ".chart canvas"]),
    ("trading", ["table.trades tbody tr"]),
    ("notifications", ["ul.notes li"]),
    ("settings", ["table.channels"]),
]


@pytest.fixture(scope="module")
def account(gateway: str) -> dict[str, str]:
    """A user with a saved strategy, a bot that has traded, a backtest and a notification."""
    email = f"pages-{uuid.uuid4().hex[:8]}@example.com"
    tokens = sign_up(gateway, email)
    return {"email": email, **seed_account(gateway, tokens["access_token"])}


def visit(page: Page, gateway: str, route: str, ready: list[str]) -> None:
    page.goto(f"{gateway}/#/{route}")
    for selector in ready:
        expect(page.locator(selector).first).to_be_visible(timeout=40_000)
    expect(page.locator(".spinner")).to_have_count(0)


@pytest.mark.timeout(240)
def test_every_main_page_is_accessible_in_both_themes_and_fits_a_phone(
    browser: Browser, gateway: str, account: dict[str, str], screenshots: Path
) -> None:
    problems: dict[str, list[str]] = {}
    for theme in ("dark", "light"):
        context = browser.new_context(
            viewport={"width": 1280, "height": 900}, color_scheme=theme, bypass_csp=True
        )
        page = context.new_page()
        page.goto(f"{gateway}/")
        expect(page.get_by_role("heading", name="Log in to TradeBot")).to_be_visible()
        problems[f"login {theme}"] = axe_violations(page)
        page.screenshot(path=screenshots / f"login-{theme}.png")
        page.get_by_label("Email").fill(account["email"])
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("heading", name="Markets")).to_be_visible()
        for route, ready in PAGES:
            path = route.format(**account)
            visit(page, gateway, path, ready)
            name = route.split("/")[0] + ("-detail" if "{" in route else "")
            page.screenshot(path=screenshots / f"{name}-{theme}.png", full_page=True)
            problems[f"{path} {theme}"] = axe_violations(page)
        context.close()

    phone = browser.new_context(
        viewport={"width": 390, "height": 844}, color_scheme="dark", is_mobile=True, has_touch=True
    )
    page = phone.new_page()
    open_logged_in(page, gateway, f"phone-{uuid.uuid4().hex[:8]}@example.com")
    for route, _ in PAGES[:1] + PAGES[2:3] + PAGES[4:]:
        page.goto(f"{gateway}/#/{route}")
        expect(page.locator("main h1")).to_be_visible()
        expect(page.locator(".spinner")).to_have_count(0)
        name = route.split("/")[0]
        page.screenshot(path=screenshots / f"{name}-phone.png", full_page=True)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"{route} scrolls sideways by {overflow}px at 390px"
    phone.close()

    failing = {where: found for where, found in problems.items() if found}
    assert not failing, failing

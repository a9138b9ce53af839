"""Signing up, logging in and out, the silent token refresh, and an ended session."""

from __future__ import annotations

import uuid

import httpx
from playwright.sync_api import Page, expect

from tests.gateway.web.browser import PASSWORD, open_logged_in, stored_session


def test_a_new_user_signs_up_with_the_keyboard_and_stays_logged_in_after_a_reload(
    page: Page, gateway: str
) -> None:
    email = f"kb-{uuid.uuid4().hex[:8]}@example.com"
    page.goto(f"{gateway}/")
    page.get_by_role("button", name="Create an account").click()
    expect(page.get_by_role("heading", name="Create your account")).to_be_visible()
    page.get_by_label("Email").focus()
    page.keyboard.type(email)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Markets")).to_be_visible()
    expect(page.get_by_text(email)).to_be_visible()
    page.reload()
    expect(page.get_by_role("heading", name="Markets")).to_be_visible()

    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="Log in to TradeBot")).to_be_visible()
    assert stored_session(page) is None
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill("not the password 1")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("Invalid email or password")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Markets")).to_be_visible()


def test_a_password_refused_at_sign_up_is_explained_under_its_field(
    page: Page, gateway: str
) -> None:
    page.goto(f"{gateway}/")
    page.get_by_role("button", name="Create an account").click()
    page.get_by_label("Email").fill(f"short-{uuid.uuid4().hex[:8]}@example.com")
    page.get_by_label("Password").evaluate("input => input.removeAttribute('minlength')")
    page.get_by_label("Password").fill("short")
    page.get_by_role("button", name="Sign up").click()
    expect(page.locator(".field-error")).to_contain_text("10")


def test_an_expired_access_token_is_refreshed_silently(page: Page, gateway: str) -> None:
    tokens = open_logged_in(page, gateway, f"refresh-{uuid.uuid4().hex[:8]}@example.com", "bots")
    expect(page.get_by_role("heading", name="Your bots")).to_be_visible()
    # The stored access token goes bad (as an expired one would): the next call gets a 401,
    # the page refreshes the pair with the refresh token and carries on.
    page.evaluate(
        "key => { const s = JSON.parse(localStorage.getItem(key));"
        " s.accessToken = 'expired.token.value'; localStorage.setItem(key, JSON.stringify(s)); }",
        "tradebot.session",
    )
    page.reload()
    expect(page.get_by_role("heading", name="Your bots")).to_be_visible()
    expect(page.get_by_text("No bot yet.")).to_be_visible()
    rotated = stored_session(page)
    assert rotated is not None
    assert rotated["refreshToken"] != tokens["refresh_token"]
    assert rotated["accessToken"] not in ("expired.token.value", tokens["access_token"])


def test_a_revoked_session_goes_back_to_the_login_page(page: Page, gateway: str) -> None:
    open_logged_in(page, gateway, f"revoked-{uuid.uuid4().hex[:8]}@example.com", "trading")
    expect(page.get_by_role("heading", name="Paper wallet")).to_be_visible()
    session = stored_session(page)
    assert session is not None
    # Logged out everywhere from elsewhere (another device): every token of the session ends.
    ended = httpx.post(
        f"{gateway}/user/auth/logout",
        json={"all_sessions": True},
        headers={"Authorization": f"Bearer {session['accessToken']}"},
    )
    assert ended.status_code == 204, ended.text
    page.get_by_role("link", name="Bots").click()
    expect(page.get_by_role("heading", name="Log in to TradeBot")).to_be_visible()
    expect(page.get_by_text("Your session has ended; log in again.")).to_be_visible()
    assert stored_session(page) is None

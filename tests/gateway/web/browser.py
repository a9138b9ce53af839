"""Headless Debian Chromium for the browser tests and bench/dashboard.py: launched through
Playwright from /usr/bin/chromium (scripts/install-chromium puts it there; Playwright's own
browser download is not used), and the dashboard's build the gateway serves."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Browser, Page, Playwright

from gateway.dashboard import DEFAULT_DIST

CHROMIUM = os.environ.get("TRADEBOT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
AXE = Path(DEFAULT_DIST).parent / "node_modules" / "axe-core" / "axe.min.js"
PASSWORD = "correct horse battery 9"
SESSION_KEY = "tradebot.session"  # gateway/web/src/api/session.ts


def launch(playwright: Playwright) -> Browser:
    """Chromium, headless, as the README says; a clear failure when it is not installed."""
    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} is missing: run ./scripts/install-chromium (as root)")
    if not (DEFAULT_DIST / "index.html").exists():
        raise RuntimeError("the dashboard is not built: run ./scripts/build-web")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def sign_up(gateway: str, email: str) -> dict[str, Any]:
    """A new account through the API; its token pair."""
    with httpx.Client(base_url=gateway, timeout=30) as client:
        created = client.post("/user/auth/register", json={"email": email, "password": PASSWORD})
        assert created.status_code == 201, created.text
        pair = client.post("/user/auth/login", json={"email": email, "password": PASSWORD})
        assert pair.status_code == 200, pair.text
        tokens: dict[str, Any] = pair.json()
        return tokens


def open_logged_in(page: Page, gateway: str, email: str, route: str = "markets") -> dict[str, Any]:
    """The dashboard at ``route`` with a session of a new user stored as the login page
    stores it (the login form itself is exercised by its own test)."""
    tokens = sign_up(gateway, email)
    session = {
        "accessToken": tokens["access_token"],
        "refreshToken": tokens["refresh_token"],
        "email": email,
    }
    page.goto(f"{gateway}/")
    page.evaluate(
        "([key, value, ttl]) => localStorage.setItem(key, "
        "JSON.stringify({...value, expiresAt: Date.now() + ttl}))",
        [SESSION_KEY, session, int(tokens["expires_in"]) * 1000],
    )
    page.goto(f"{gateway}/#/{route}")
    page.reload()
    return tokens


def seed_account(gateway: str, token: str) -> dict[str, str]:
    """What the main pages show, for the user of ``token``: a saved rule strategy, a paper
    bot on it that has traded (and so a notification), and a backtest; their ids."""
    with httpx.Client(
        base_url=gateway, timeout=30, headers={"Authorization": f"Bearer {token}"}
    ) as client:
        strategy = client.post(
            "/trading/strategies",
            json={"name": "at once", "strategy": "rules", "parameters": {"entry": "close > 0"}},
        ).json()
        bot = client.post(
            "/trading/bots",
            json={
                "strategy_id": strategy["id"],
                "name": "seeded bot",
                "exchange": "sim",
                "symbol": "BTC/USDT",
                "timeframe": "1m",
                "mode": "paper",
                "capital": "1000",
            },
        ).json()
        client.post(f"/trading/bots/{bot['id']}/start").raise_for_status()
        candles = client.get(
            "/market/ohlcv", params={"symbol": "BTC/USDT", "timeframe": "1h", "limit": 400}
        ).json()["candles"]
        backtest = client.post(
            "/analysis/backtests",
            json={
                "strategy": "ma_crossover",
                "parameters": {"fast": 5, "slow": 20},
                "candles": candles,
                "initial_capital": "10000",
            },
        )
        assert backtest.status_code == 202, backtest.text
    return {"bot": bot["id"], "backtest": backtest.json()["id"]}


def stored_session(page: Page) -> dict[str, Any] | None:
    raw = page.evaluate(f"localStorage.getItem({json.dumps(SESSION_KEY)})")
    return json.loads(raw) if raw else None


def axe_violations(page: Page, impacts: tuple[str, ...] = ("serious", "critical")) -> list[str]:
    """axe-core run in the page (from npm, injected): the violations of those impacts."""
    page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".map(v => ({id: v.id, impact: v.impact, help: v.help,"
        " nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))"
    )
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {v['nodes']}"
        for v in result
        if v["impact"] in impacts
    ]

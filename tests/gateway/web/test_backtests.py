"""Backtests from the browser: the form from the catalog's schemas, a refused rule shown
where it is, the progress, the result's charts and trades, and a comparison."""

from __future__ import annotations

import uuid

from playwright.sync_api import Page, expect

from tests.gateway.web.browser import open_logged_in


def test_a_backtest_runs_and_shows_its_metrics_charts_and_trades(page: Page, gateway: str) -> None:
    open_logged_in(page, gateway, f"bt-{uuid.uuid4().hex[:8]}@example.com", "backtests")
    form = page.locator("form.backtest-form")
    # The parameters come from the catalog's JSON schema, with their defaults and bounds.
    expect(form.get_by_label("Fast")).to_have_value("10")
    expect(form.get_by_label("Slow")).to_have_value("30")
    assert form.get_by_label("Fast").get_attribute("min") == "1"

    # A rule with a mistake: the parser's message is shown under the expression.
    form.get_by_label("Strategy", exact=True).select_option("rules")
    form.get_by_label("Entry").fill("rsi(14) < 30 andd close > sma(50)")
    form.get_by_role("button", name="Run backtest").click()
    entry_error = form.locator(".field.invalid .field-error")
    expect(entry_error).to_contain_text("unexpected 'andd' at column 14")

    form.get_by_label("Strategy", exact=True).select_option("ma_crossover")
    form.get_by_label("Fast").fill("5")
    form.get_by_label("Slow").fill("20")
    form.get_by_role("button", name="Run backtest").click()

    result = page.locator("section.result")
    expect(result.locator(".badge")).to_have_text("done", timeout=60_000)
    expect(result.get_by_text("Total return")).to_be_visible()
    expect(result.get_by_role("img", name="Equity curve")).to_be_visible()
    expect(result.get_by_role("img", name="Drawdown curve")).to_be_visible()
    expect(result.get_by_role("img", name="BTC/USDT 1h candlestick chart on sim")).to_be_visible()
    trades = result.locator("table.trades tbody tr")
    expect(trades.first).to_be_visible()
    assert trades.count() >= 1

    # A second run, then both compared side by side.
    page.get_by_role("link", name="← New backtest").click()
    page.locator("form.backtest-form").get_by_role("button", name="Run backtest").click()
    expect(page.locator("section.result .badge")).to_have_text("done", timeout=60_000)
    past = page.get_by_role("table").filter(has=page.get_by_role("columnheader", name="Return"))
    expect(past.locator("tbody tr")).to_have_count(2)
    for box in past.get_by_role("checkbox").all():
        box.check()
    page.get_by_role("button", name="Compare 2 side by side").click()
    compare = page.get_by_role("region", name="Side by side")
    expect(compare.get_by_role("row", name="Total return")).to_be_visible()
    expect(compare.get_by_role("img", name="Equity curves compared")).to_be_visible()

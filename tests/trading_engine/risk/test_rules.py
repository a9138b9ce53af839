"""Every risk rule of docs/trading.md triggers (and stays quiet when it should)."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from trading_engine.risk.rules import (
    EntryContext,
    PositionView,
    RiskKind,
    RiskLimitExceeded,
    RiskSettings,
    check_entry,
    exit_rule,
)
from trading_engine.user_client import TradingLimits

POSITION = PositionView(quantity=D(1), average_entry_price=D(100), highest_price=D(100))


def candle(low: str, high: str, close: str) -> dict[str, D]:
    return {"low": D(low), "high": D(high), "close": D(close)}


def test_a_stop_loss_closes_when_the_low_reaches_it() -> None:
    risk = RiskSettings(stop_loss=D("0.05"))
    assert exit_rule(risk, POSITION, **candle("95.01", "101", "96")).kind is RiskKind.NONE
    action = exit_rule(risk, POSITION, **candle("94.9", "101", "96"))
    assert (action.kind, action.rule) == (RiskKind.CLOSE, "stop_loss")


def test_a_take_profit_closes_when_the_high_reaches_it() -> None:
    risk = RiskSettings(take_profit=D("0.1"))
    assert exit_rule(risk, POSITION, **candle("99", "109.9", "105")).kind is RiskKind.NONE
    assert exit_rule(risk, POSITION, **candle("99", "110", "105")).rule == "take_profit"


def test_a_trailing_stop_follows_the_peak() -> None:
    risk = RiskSettings(trailing_stop=D("0.1"))
    risen = PositionView(quantity=D(1), average_entry_price=D(100), highest_price=D(150))
    assert exit_rule(risk, risen, **candle("136", "140", "138")).kind is RiskKind.NONE
    assert exit_rule(risk, risen, **candle("134", "140", "135")).rule == "trailing_stop"
    # Below the entry the trailing stop has nothing to protect; the stop loss does that.
    assert exit_rule(risk, POSITION, **candle("80", "100", "85")).kind is RiskKind.NONE


def context(**overrides: object) -> EntryContext:
    values: dict[str, object] = {
        "side": "buy",
        "order_value": D(100),
        "position_value_after": D(100),
        "opens_new_position": True,
        "open_positions": 0,
        "realized_today": D(0),
        "bot_realized_today": D(0),
    }
    values.update(overrides)
    return EntryContext(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("limits", "risk", "ctx", "rule"),
    [
        (TradingLimits(max_order_value=D(99)), None, {}, "max_order_value"),
        (
            TradingLimits(max_position_value=D(150)),
            None,
            {"position_value_after": D(151)},
            "max_position_value",
        ),
        (TradingLimits(), RiskSettings(max_position_value=D(50)), {}, "max_position_value"),
        (TradingLimits(max_open_positions=2), None, {"open_positions": 2}, "max_open_positions"),
        (
            TradingLimits(),
            RiskSettings(max_open_positions=1),
            {"open_positions": 1},
            "max_open_positions",
        ),
        (
            TradingLimits(daily_loss_limit=D(50)),
            None,
            {"realized_today": D(-50)},
            "daily_loss_limit",
        ),
        (
            TradingLimits(),
            RiskSettings(daily_loss_limit=D(10)),
            {"bot_realized_today": D(-11)},
            "daily_loss_limit",
        ),
    ],
)
def test_each_entry_limit_blocks_a_buy(
    limits: TradingLimits, risk: RiskSettings | None, ctx: dict[str, object], rule: str
) -> None:
    with pytest.raises(RiskLimitExceeded) as caught:
        check_entry(context(**ctx), limits, risk)
    assert caught.value.rule == rule
    assert caught.value.status == 422


def test_limits_that_are_not_reached_let_the_order_through() -> None:
    limits = TradingLimits(
        max_order_value=D(100),
        max_position_value=D(100),
        max_open_positions=1,
        daily_loss_limit=D(50),
    )
    check_entry(context(realized_today=D("-49.99")), limits, RiskSettings(max_open_positions=1))
    # Adding to an open position does not open a new one.
    check_entry(
        context(opens_new_position=False, open_positions=5), TradingLimits(max_open_positions=1)
    )


def test_sells_only_reduce_risk_and_are_never_blocked() -> None:
    check_entry(context(side="sell", realized_today=D(-1000)), TradingLimits(daily_loss_limit=D(1)))

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


def candle(open_: str, high: str, low: str) -> dict[str, D]:
    return {"open_": D(open_), "high": D(high), "low": D(low)}


def test_a_stop_loss_fills_at_its_level_when_the_low_reaches_it() -> None:
    risk = RiskSettings(stop_loss=D("0.05"))
    assert exit_rule(risk, POSITION, **candle("100", "101", "95.01")).kind is RiskKind.NONE
    action = exit_rule(risk, POSITION, **candle("100", "101", "94.9"))
    assert (action.kind, action.rule, action.price) == (RiskKind.CLOSE, "stop_loss", D("95.00"))


def test_a_gap_through_the_stop_fills_at_the_open() -> None:
    action = exit_rule(RiskSettings(stop_loss=D("0.05")), POSITION, **candle("90", "91", "89"))
    assert (action.rule, action.price) == ("stop_loss", D("90"))


def test_a_take_profit_fills_at_its_target_or_the_open_above_it() -> None:
    risk = RiskSettings(take_profit=D("0.1"))
    assert exit_rule(risk, POSITION, **candle("101", "109.9", "99")).kind is RiskKind.NONE
    action = exit_rule(risk, POSITION, **candle("101", "110", "99"))
    assert (action.rule, action.price) == ("take_profit", D("110.0"))
    assert exit_rule(risk, POSITION, **candle("112", "115", "111")).price == D("112")


def test_a_candle_touching_stop_and_target_is_read_as_the_stop_first() -> None:
    risk = RiskSettings(stop_loss=D("0.05"), take_profit=D("0.05"))
    action = exit_rule(risk, POSITION, **candle("100", "106", "94"))
    assert (action.rule, action.price) == ("stop_loss", D("95.00"))


def test_a_trailing_stop_follows_the_peak_before_the_candle() -> None:
    risk = RiskSettings(trailing_stop=D("0.1"))
    risen = PositionView(quantity=D(1), average_entry_price=D(100), highest_price=D(150))
    assert exit_rule(risk, risen, **candle("140", "160", "136")).kind is RiskKind.NONE
    action = exit_rule(risk, risen, **candle("140", "160", "134"))
    # This candle's own high (160) does not raise the level: the peak is 150.
    assert (action.rule, action.price) == ("trailing_stop", D("135.0"))
    # From the entry on it acts as a stop 10 % below the entry, like the backtest's.
    assert exit_rule(risk, POSITION, **candle("95", "100", "89")).price == D("90.0")


def test_the_higher_of_stop_loss_and_trailing_level_wins() -> None:
    risk = RiskSettings(stop_loss=D("0.05"), trailing_stop=D("0.1"))
    assert exit_rule(risk, POSITION, **candle("99", "99", "94")).rule == "stop_loss"
    risen = PositionView(quantity=D(1), average_entry_price=D(100), highest_price=D(120))
    assert exit_rule(risk, risen, **candle("110", "112", "107")).rule == "trailing_stop"


def test_the_rule_matches_the_backtest_kernel_on_random_candles() -> None:
    """The Decimal path of the bots and the compiled path of the kernel are one rule."""
    import random

    from shared.exits import protective_exit, protective_exit_compiled

    rng = random.Random(7)
    for _ in range(500):
        entry = rng.uniform(50, 150)
        peak = entry * rng.uniform(1, 1.3)
        open_ = rng.uniform(40, 170)
        high = open_ * rng.uniform(1, 1.1)
        low = open_ * rng.uniform(0.9, 1)
        levels = (rng.choice([0, 0.02, 0.1]), rng.choice([0, 0.05]), rng.choice([0, 0.08]))
        compiled = protective_exit_compiled(open_, high, low, entry, peak, *levels)
        exact = protective_exit(
            *(D(repr(v)) for v in (open_, high, low, entry, peak)),
            *(D(repr(v)) for v in levels),
        )
        assert compiled[0] == exact[0]
        assert compiled[1] == pytest.approx(float(exact[1]), rel=1e-12)


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

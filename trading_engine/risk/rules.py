"""Risk rules (docs/trading.md): stop loss, take profit, trailing stop (on an open position),
and the entry limits (max order value, max position value, max open positions, daily
loss limit) from a bot's risk settings and the user's trading limits."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.errors import ValidationFailed
from shared.exits import NO_EXIT, REASONS, TAKE_PROFIT, TRAILING_STOP, protective_exit
from shared.validation import Amount, Fraction
from trading_engine.user_client import TradingLimits

ZERO = Decimal(0)


class RiskSettings(BaseModel):
    """A bot's ``risk`` object; fractions of the entry price, amounts in the quote asset."""

    model_config = ConfigDict(extra="forbid")

    stop_loss: Fraction | None = None
    take_profit: Decimal | None = Field(default=None, gt=0, le=100, decimal_places=8)
    trailing_stop: Fraction | None = None
    max_position_value: Amount | None = None
    max_open_positions: int | None = Field(default=None, ge=1, le=10_000)
    daily_loss_limit: Amount | None = None


class RiskKind(enum.StrEnum):
    NONE = "none"
    CLOSE = "close"


@dataclass(frozen=True)
class RiskAction:
    """What ``Adapter.manage_risk(position)`` decides: keep, or close with a reason at
    ``price`` (the exit rule's fill price before slippage)."""

    kind: RiskKind
    rule: str = ""
    detail: str = ""
    price: Decimal | None = None

    @classmethod
    def keep(cls) -> RiskAction:
        return cls(RiskKind.NONE)


@dataclass(frozen=True)
class PositionView:
    quantity: Decimal
    average_entry_price: Decimal
    highest_price: Decimal | None


def peak_of(position: PositionView) -> Decimal:
    """The trailing stop's peak before the current candle: the entry price raised to the
    highs of the candles closed since (the position's ``highest_price``)."""
    entry = position.average_entry_price
    return max(entry, position.highest_price or entry)


def exit_rule(
    risk: RiskSettings,
    position: PositionView,
    *,
    open_: Decimal,
    high: Decimal,
    low: Decimal,
) -> RiskAction:
    """The protective exit a closed candle triggers, by the rule backtests follow
    (:func:`shared.exits.protective_exit`): levels from the position before the candle,
    judged against its open, high and low, filled at the level (the open on a gap)."""
    if position.quantity <= 0 or position.average_entry_price <= 0:
        return RiskAction.keep()
    entry = position.average_entry_price
    peak = peak_of(position)
    reason, price = protective_exit(
        open_,
        high,
        low,
        entry,
        peak,
        risk.stop_loss or ZERO,
        risk.take_profit or ZERO,
        risk.trailing_stop or ZERO,
    )
    if reason == NO_EXIT:
        return RiskAction.keep()
    rule = REASONS[reason]
    if reason == TAKE_PROFIT:
        target = entry * (1 + (risk.take_profit or ZERO))
        detail = f"the high {high} reached the target {target:.8f}"
    elif reason == TRAILING_STOP:
        detail = f"the low {low} fell {risk.trailing_stop} below the peak {peak}"
    else:
        stop = entry * (1 - (risk.stop_loss or ZERO))
        detail = f"the low {low} reached the stop {stop:.8f}"
    return RiskAction(RiskKind.CLOSE, rule, f"{detail}; sold at {price:.8f}", price)


class RiskLimitExceeded(ValidationFailed):
    """An order a risk limit refuses; the body names the rule."""

    title = "Risk Limit Exceeded"

    def __init__(self, rule: str, detail: str) -> None:
        super().__init__(detail, extra={"rule": rule})
        self.rule = rule


@dataclass(frozen=True)
class EntryContext:
    side: str
    order_value: Decimal
    position_value_after: Decimal
    opens_new_position: bool
    open_positions: int
    realized_today: Decimal
    bot_realized_today: Decimal | None = None


def check_entry(
    context: EntryContext, limits: TradingLimits, risk: RiskSettings | None = None
) -> None:
    """Raise :class:`RiskLimitExceeded` for the first limit an order would break.

    Sells only reduce risk and pass; buys are checked against the user's limits and the
    bot's own settings.
    """
    if context.side != "buy":
        return
    checks: list[tuple[str, Any, bool, str]] = []
    if limits.max_order_value is not None:
        checks.append(
            (
                "max_order_value",
                limits.max_order_value,
                context.order_value > limits.max_order_value,
                f"order value {context.order_value:.8f} exceeds the limit {limits.max_order_value}",
            )
        )
    for source, cap in (
        ("user", limits.max_position_value),
        ("bot", risk.max_position_value if risk else None),
    ):
        if cap is not None:
            checks.append(
                (
                    "max_position_value",
                    cap,
                    context.position_value_after > cap,
                    f"position value {context.position_value_after:.8f} would exceed the "
                    f"{source} limit {cap}",
                )
            )
    for source, cap_count in (
        ("user", limits.max_open_positions),
        ("bot", risk.max_open_positions if risk else None),
    ):
        if cap_count is not None:
            checks.append(
                (
                    "max_open_positions",
                    cap_count,
                    context.opens_new_position and context.open_positions >= cap_count,
                    f"{context.open_positions} positions are open; the {source} limit is "
                    f"{cap_count}",
                )
            )
    if limits.daily_loss_limit is not None:
        checks.append(
            (
                "daily_loss_limit",
                limits.daily_loss_limit,
                -context.realized_today >= limits.daily_loss_limit,
                f"today's realised loss {-context.realized_today:.8f} reached the user "
                f"limit {limits.daily_loss_limit}",
            )
        )
    if risk is not None and risk.daily_loss_limit is not None:
        realised = context.bot_realized_today or Decimal(0)
        checks.append(
            (
                "daily_loss_limit",
                risk.daily_loss_limit,
                -realised >= risk.daily_loss_limit,
                f"the bot's realised loss today {-realised:.8f} reached its limit "
                f"{risk.daily_loss_limit}",
            )
        )
    for rule, _cap, breached, detail in checks:
        if breached:
            raise RiskLimitExceeded(rule, f"Blocked by {rule}: {detail}.")

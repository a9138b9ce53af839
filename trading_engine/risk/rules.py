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
from shared.validation import Amount, Fraction
from trading_engine.user_client import TradingLimits


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
    """What ``Adapter.manage_risk(position)`` decides: keep, or close with a reason."""

    kind: RiskKind
    rule: str = ""
    detail: str = ""

    @classmethod
    def keep(cls) -> RiskAction:
        return cls(RiskKind.NONE)


@dataclass(frozen=True)
class PositionView:
    quantity: Decimal
    average_entry_price: Decimal
    highest_price: Decimal | None


def exit_rule(
    risk: RiskSettings,
    position: PositionView,
    *,
    low: Decimal,
    high: Decimal,
    close: Decimal,
) -> RiskAction:
    """Stop loss, trailing stop and take profit against a closed candle."""
    if position.quantity <= 0 or position.average_entry_price <= 0:
        return RiskAction.keep()
    entry = position.average_entry_price
    if risk.stop_loss is not None:
        stop = entry * (1 - risk.stop_loss)
        if low <= stop:
            return RiskAction(
                RiskKind.CLOSE, "stop_loss", f"price {close} reached the stop {stop:.8f}"
            )
    if risk.trailing_stop is not None:
        peak = max(position.highest_price or entry, high)
        trail = peak * (1 - risk.trailing_stop)
        if low <= trail and peak > entry:
            return RiskAction(
                RiskKind.CLOSE,
                "trailing_stop",
                f"price {close} fell {risk.trailing_stop} below the peak {peak}",
            )
    if risk.take_profit is not None:
        target = entry * (1 + risk.take_profit)
        if high >= target:
            return RiskAction(
                RiskKind.CLOSE, "take_profit", f"price {close} reached the target {target:.8f}"
            )
    return RiskAction.keep()


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

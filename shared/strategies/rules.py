"""User rule strategies: entry and exit conditions written in the rule language."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from shared.candles import Candles
from shared.rules import Node, evaluate, higher_lookbacks, lookback, parse_rule
from shared.strategies.base import ENTER_LONG, EXIT_LONG, SignalArray, TradingStrategy


def _check_rule(value: str | None) -> str | None:
    if value is not None:
        parse_rule(value)  # RuleSyntaxError is a ValueError: pydantic reports it
    return value


class RuleParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entry: str = Field(
        min_length=1,
        max_length=2000,
        description="Condition to go long, e.g. `rsi(14) < 30 and close > sma(200)`.",
    )
    exit: str | None = Field(
        default=None,
        max_length=2000,
        description="Condition to close the position, e.g. `rsi(14) > 70`.",
    )
    stop_loss: float | None = Field(
        default=None, gt=0, lt=1, description="Stop loss as a fraction below the entry price."
    )
    take_profit: float | None = Field(
        default=None, gt=0, le=100, description="Take profit as a fraction above the entry."
    )
    trailing_stop: float | None = Field(
        default=None, gt=0, lt=1, description="Trailing stop as a fraction below the high."
    )

    _entry_tree: Node | None = PrivateAttr(default=None)
    _exit_tree: Node | None = PrivateAttr(default=None)

    _entry_ok = field_validator("entry")(_check_rule)
    _exit_ok = field_validator("exit")(_check_rule)


class RuleStrategy(TradingStrategy):
    """Long when ``entry`` holds on a close; flat when ``exit`` holds (exit wins a tie)."""

    name = "rules"
    description = (
        "Your own rules in a small expression language: candle fields (open, high, low, close, "
        "volume), indicators (sma, ema, rsi, macd, bb_upper, atr, obv, stoch_k, ...), "
        "arithmetic, comparisons, and/or/not, crosses_above/crosses_below, higher "
        'timeframes (rsi(14, tf="4h"), close(tf="1d")); optional stop loss, take profit '
        "and trailing stop."
    )
    Params = RuleParams
    params: RuleParams

    def __init__(self, params: object = None) -> None:
        super().__init__(params)  # type: ignore[arg-type]
        self.entry_tree = parse_rule(self.params.entry)
        self.exit_tree = parse_rule(self.params.exit) if self.params.exit else None

    @property
    def warmup(self) -> int:
        return max(lookback(t) for t in self._trees()) + 1

    def higher_timeframes(self) -> dict[str, int]:
        needs: dict[str, int] = {}
        for tree in self._trees():
            for timeframe, count in higher_lookbacks(tree).items():
                needs[timeframe] = max(needs.get(timeframe, 0), count + 1)
        return needs

    def _trees(self) -> list[Node]:
        return [t for t in (self.entry_tree, self.exit_tree) if t is not None]

    def signals(self, candles: Candles) -> SignalArray:
        out = np.zeros(len(candles), dtype=np.int8)
        out[evaluate(self.entry_tree, candles)] = ENTER_LONG
        if self.exit_tree is not None:
            out[evaluate(self.exit_tree, candles)] = EXIT_LONG
        return out

    def stop_loss(self) -> float | None:
        return self.params.stop_loss

    def take_profit(self) -> float | None:
        return self.params.take_profit

    def trailing_stop(self) -> float | None:
        return self.params.trailing_stop

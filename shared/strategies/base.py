"""The strategy interface, shared by backtests and live bots (docs/trading.md).

A strategy is vectorised first: :meth:`TradingStrategy.signals` maps candles to one
action per candle, computed on that candle's close and never looking at later candles.
The live path (:meth:`generate_signal`) is the same computation read at the last candle,
so a bot and a backtest over the same candles act identically.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ValidationError

from shared.candles import Candles
from shared.timeframes import TIMEFRAME_MS

# Values of the signal array: act at the next candle's open.
HOLD, ENTER_LONG, EXIT_LONG = 0, 1, -1
SignalArray = npt.NDArray[np.int8]


class SignalAction(enum.StrEnum):
    BUY = "buy"
    SELL = "sell"
    HOLD = "hold"


@dataclass(frozen=True)
class TradingSignal:
    action: SignalAction
    timestamp: int  # epoch ms of the closed candle the signal was computed on
    price: float  # that candle's close
    strategy: str
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)


class StrategyParamsError(ValueError):
    """Parameters that do not fit a strategy's schema; the message says what to fix."""


def _describe(strategy: str, exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "parameters"
        problems.append(f"{where}: {error['msg']}")
    return f"invalid parameters for {strategy}: " + "; ".join(problems)


class TradingStrategy(ABC):
    """Subclass, set ``name``, ``description`` and ``Params``, implement ``signals``."""

    name: ClassVar[str]
    description: ClassVar[str]
    Params: ClassVar[type[BaseModel]]

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        try:
            self.params = self.Params.model_validate(dict(params or {}))
        except ValidationError as exc:
            raise StrategyParamsError(_describe(self.name, exc)) from exc

    @classmethod
    def parameter_schema(cls) -> dict[str, Any]:
        """JSON schema of the parameters (served by the catalog)."""
        return cls.Params.model_json_schema()

    @property
    @abstractmethod
    def warmup(self) -> int:
        """Candles needed before the first signal can be trusted."""

    @abstractmethod
    def signals(self, candles: Candles) -> SignalArray:
        """One of HOLD / ENTER_LONG / EXIT_LONG per candle, from data up to that candle."""

    def higher_timeframes(self) -> dict[str, int]:
        """The higher timeframes the strategy reads (docs/trading.md, several timeframes),
        each with the closed candles of it needed before its first signal. Read them in
        :meth:`signals` with :func:`shared.resample.higher_candles`."""
        return {}

    def warmup_candles(self, frame_ms: int) -> int:
        """Candles of a ``frame_ms`` timeframe that hold the whole warm-up, the higher
        timeframes' included (the history a replay or a window without them needs)."""
        needs = [self.warmup]
        for timeframe, count in self.higher_timeframes().items():
            higher_ms = TIMEFRAME_MS.get(timeframe, frame_ms)
            needs.append(-(-(count + 1) * higher_ms // frame_ms))
        return max(needs)

    def stop_loss(self) -> float | None:
        """Fractional stop below the entry price, if the strategy sets one."""
        return None

    def take_profit(self) -> float | None:
        """Fractional take-profit above the entry price, if the strategy sets one."""
        return None

    def trailing_stop(self) -> float | None:
        """Fractional trailing stop below the highest price since entry, if set."""
        return None

    def generate_signal(self, market_data: Candles) -> TradingSignal:
        """The signal on the last closed candle of ``market_data``."""
        if len(market_data) == 0:
            raise ValueError("no candles")
        value = int(self.signals(market_data)[-1])
        action = {ENTER_LONG: SignalAction.BUY, EXIT_LONG: SignalAction.SELL}.get(
            value, SignalAction.HOLD
        )
        return TradingSignal(
            action=action,
            timestamp=int(market_data.timestamp[-1]),
            price=float(market_data.close[-1]),
            strategy=self.name,
        )

    def calculate_position_size(self, signal: TradingSignal, size: float = 1.0) -> float:
        """Fraction of equity to commit on an entry (docs/trading.md; default 1.0)."""
        return size if signal.action is SignalAction.BUY else 0.0

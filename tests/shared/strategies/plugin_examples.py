"""Strategy classes a test publishes through a fake entry point (as an operator's plugin)."""

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from shared.strategies import ENTER_LONG, EXIT_LONG, TradingStrategy


class DipParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    drop: float = Field(default=0.01, gt=0)


class BuyTheDip(TradingStrategy):
    """Buys after a candle that fell more than ``drop``; sells after one that rose."""

    name = "buy_the_dip"
    description = "Buy after a red candle, sell after a green one."
    Params = DipParams
    params: DipParams

    @property
    def warmup(self) -> int:
        return 1

    def signals(self, candles):
        change = candles.close / candles.open - 1
        out = np.zeros(len(candles), dtype=np.int8)
        out[change < -self.params.drop] = ENTER_LONG
        out[change > self.params.drop] = EXIT_LONG
        return out


class Clairvoyant(TradingStrategy):
    """Cheats: buys when the NEXT close is higher (what the look-ahead check must catch)."""

    name = "clairvoyant"
    description = "Peeks at the next candle."
    Params = DipParams

    @property
    def warmup(self) -> int:
        return 1

    def signals(self, candles):
        out = np.zeros(len(candles), dtype=np.int8)
        up = candles.close[1:] > candles.close[:-1]
        out[:-1][up] = ENTER_LONG
        out[:-1][~up] = EXIT_LONG
        return out


NotAStrategy = object

"""Bodies of the indicator routes."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from shared.validation import SINGLE_LINE, UtcDatetime

Spec = Annotated[str, StringConstraints(min_length=1, max_length=40, pattern=SINGLE_LINE)]


class CandleSource(BaseModel):
    """Candles in the body, or the market coordinates to load them from."""

    model_config = ConfigDict(extra="forbid")

    candles: list[list[float]] | None = Field(
        default=None,
        max_length=200_000,
        description="ccxt rows [ts_ms, open, high, low, close, volume], oldest first.",
    )
    exchange: str | None = Field(default=None, max_length=50, pattern=SINGLE_LINE)
    symbol: str | None = Field(default=None, max_length=20, pattern=r"^[A-Z0-9]+/[A-Z0-9]+$")
    timeframe: str = Field(default="1h", max_length=5, pattern=SINGLE_LINE)
    start: UtcDatetime | None = None
    end: UtcDatetime | None = None
    limit: int | None = Field(default=None, ge=1, le=50_000)

    @model_validator(mode="after")
    def _one_source(self) -> CandleSource:
        if (self.candles is None) == (self.symbol is None):
            raise ValueError("send either candles or a symbol (with timeframe) to load them")
        if self.start and self.end and self.start >= self.end:
            raise ValueError("start must be before end")
        return self


class IndicatorsRequest(CandleSource):
    indicators: list[Spec] = Field(
        min_length=1,
        max_length=20,
        description="Specs such as sma:20, ema:50, rsi:14, macd:12:26:9, stoch:14:3:3, "
        "bbands:20:2, atr:14, obv, vp:50:24:0.7 (volume profile: window, bins, value area).",
    )


class IndicatorsRead(BaseModel):
    exchange: str | None
    symbol: str | None
    timeframe: str | None
    timestamps: list[int]
    indicators: dict[str, list[float | None] | dict[str, list[float | None]]]
    volume_profile: dict[str, Any] | None = None

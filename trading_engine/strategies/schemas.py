"""Shapes of the strategies API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from shared.validation import SINGLE_LINE, JsonObject, Name

# A catalog name (ma_crossover, rules, a plugin's name); unknown ones are a 422 on save.
StrategyName = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=SINGLE_LINE)]


class CatalogEntry(BaseModel):
    name: str
    description: str
    parameters: dict[str, Any]
    warmup: int | None = None
    # The timeframe a DataFrame strategy was written for, and the higher timeframes the
    # strategy reads with its default parameters (docs/trading.md, several timeframes).
    timeframe: str | None = None
    higher_timeframes: list[str] = Field(default_factory=list)
    builtin: bool = True


class StrategyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    strategy: StrategyName
    parameters: JsonObject = Field(default_factory=dict)
    active: bool = False


class StrategyUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    parameters: JsonObject | None = None
    active: bool | None = None


class StrategyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    strategy: str
    parameters: dict[str, Any]
    active: bool
    warmup: int | None = None
    created_at: datetime
    updated_at: datetime

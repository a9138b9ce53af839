"""Shapes of the strategies API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class CatalogEntry(BaseModel):
    name: str
    description: str
    parameters: dict[str, Any]
    warmup: int | None = None
    builtin: bool = True


class StrategyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    strategy: str = Field(min_length=1, max_length=100)
    parameters: dict[str, Any] = Field(default_factory=dict)
    active: bool = False


class StrategyUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=100)
    parameters: dict[str, Any] | None = None
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

"""Saved strategy configurations: validated by the shared registry on every save (rule
strategies are parsed then), so a bot never starts on parameters that cannot run."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from shared.errors import Conflict
from shared.strategies import (
    StrategyParamsError,
    TradingStrategy,
    UnknownStrategyError,
    create_strategy,
)
from shared.validation import invalid_input
from trading_engine.models import Strategy
from trading_engine.strategies import repository
from trading_engine.strategies.schemas import StrategyCreate, StrategyRead, StrategyUpdate


def build(name: str, parameters: dict[str, Any]) -> TradingStrategy:
    """A runnable strategy, or a 422 that says what is wrong with the parameters."""
    try:
        return create_strategy(name, parameters)
    except UnknownStrategyError as exc:
        raise invalid_input(["body", "strategy"], str(exc)) from exc
    except StrategyParamsError as exc:
        # Its message already reads "invalid parameters for <strategy>: ...".
        message = str(exc)
        raise invalid_input(["body", "parameters"], message[:1].upper() + message[1:]) from exc
    except ValueError as exc:
        raise invalid_input(
            ["body", "parameters"], f"Invalid parameters for {name}: {exc}"
        ) from exc


def to_read(strategy: Strategy) -> StrategyRead:
    read = StrategyRead.model_validate(strategy)
    try:
        read.warmup = create_strategy(strategy.strategy, strategy.parameters).warmup
    except (UnknownStrategyError, StrategyParamsError, ValueError):
        read.warmup = None
    return read


async def create(session: AsyncSession, user_id: uuid.UUID, body: StrategyCreate) -> Strategy:
    """Save a configuration after the registry accepted it."""
    built = build(body.strategy, body.parameters)
    parameters = built.params.model_dump(mode="json")
    return await repository.add(
        session,
        Strategy(
            user_id=user_id,
            name=body.name,
            strategy=body.strategy,
            parameters=parameters,
            active=body.active,
        ),
    )


async def update(session: AsyncSession, strategy: Strategy, body: StrategyUpdate) -> Strategy:
    if body.parameters is not None:
        built = build(strategy.strategy, body.parameters)
        strategy.parameters = built.params.model_dump(mode="json")
    if body.name is not None:
        strategy.name = body.name
    if body.active is not None:
        strategy.active = body.active
    strategy.updated_at = datetime.now(UTC)
    await session.flush()
    return strategy


async def delete(session: AsyncSession, strategy: Strategy) -> None:
    if await repository.bots_using(session, strategy.id):
        raise Conflict("Bots use this strategy; delete them first.")
    await repository.delete(session, strategy)

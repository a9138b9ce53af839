"""Dependencies of the trading engine's routes, as ``Annotated`` aliases."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Request

from shared.deps import CurrentUser, SessionDep
from shared.errors import NotFound
from trading_engine.analysis_client import AnalysisClient
from trading_engine.bots import repository as bot_repository
from trading_engine.models import Bot, Strategy
from trading_engine.orders.service import OrderService
from trading_engine.strategies import repository as strategy_repository


async def get_order_service(request: Request) -> OrderService:
    service: OrderService = request.app.state.order_service
    return service


OrderServiceDep = Annotated[OrderService, Depends(get_order_service)]


async def get_analysis(request: Request) -> AnalysisClient:
    analysis: AnalysisClient = request.app.state.analysis
    return analysis


AnalysisDep = Annotated[AnalysisClient, Depends(get_analysis)]


async def valid_strategy_id(
    strategy_id: uuid.UUID, user: CurrentUser, session: SessionDep
) -> Strategy:
    """The caller's saved strategy, or 404 (another user's id is just as unknown)."""
    strategy = await strategy_repository.get(session, user.user_id, strategy_id)
    if strategy is None:
        raise NotFound("No such strategy.")
    return strategy


async def valid_bot_id(bot_id: uuid.UUID, user: CurrentUser, session: SessionDep) -> Bot:
    """The caller's bot, or 404."""
    bot = await bot_repository.get(session, user.user_id, bot_id)
    if bot is None:
        raise NotFound("No such bot.")
    return bot


ValidStrategy = Annotated[Strategy, Depends(valid_strategy_id)]
ValidBot = Annotated[Bot, Depends(valid_bot_id)]

"""``GET /analysis/performance``: the caller's realised results, overall and per bot."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query

from analysis_service.deps import CurrentUser, SessionDep
from analysis_service.performance.service import performance
from shared.strict_query import StrictQueryRoute
from shared.validation import UtcDatetime

router = APIRouter(route_class=StrictQueryRoute, prefix="/analysis", tags=["performance"])


@router.get("/performance")
async def get_performance(
    user: CurrentUser,
    session: SessionDep,
    bot_id: uuid.UUID | None = None,
    since: Annotated[UtcDatetime | None, Query()] = None,
) -> dict[str, Any]:
    """Realised PnL, fees, win rate and drawdown of the caller's trades, per bot too."""
    return await performance(session, user.user_id, bot_id=bot_id, since=since)

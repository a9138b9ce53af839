"""``POST /analysis/backtests`` (queue a job) and ``GET /analysis/backtests[/{id}]``."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Response, status

from analysis_service.backtests.schemas import (
    BacktestAccepted,
    BacktestCreate,
    BacktestRead,
    BacktestSummary,
)
from analysis_service.backtests.service import BacktestService, backtest_summary
from analysis_service.deps import AnalysisSettingsDep, CurrentUser, SessionDep
from shared.paging import Page, PageParams, page_of, paging
from shared.strategies import catalog
from shared.strict_query import StrictQueryRoute

router = APIRouter(route_class=StrictQueryRoute, prefix="/analysis", tags=["backtests"])


@router.post("/backtests", status_code=status.HTTP_202_ACCEPTED, response_model=BacktestAccepted)
async def create_backtest(
    body: BacktestCreate, user: CurrentUser, session: SessionDep, settings: AnalysisSettingsDep
) -> dict[str, Any]:
    """Queue a backtest; poll ``GET /analysis/backtests/{id}`` for progress and result."""
    row = await BacktestService(session, settings).create(user.user_id, body)
    return {"id": row.id, "status": row.status}


Paging = Annotated[PageParams, paging(50, 200)]


@router.get("/backtests", response_model=Page[BacktestSummary])
async def list_backtests(
    user: CurrentUser, session: SessionDep, settings: AnalysisSettingsDep, page: Paging
) -> dict[str, Any]:
    """The caller's backtests, newest first (metrics only)."""
    rows, total = await BacktestService(session, settings).page(user.user_id, page)
    return {
        "items": [backtest_summary(row) for row in rows],
        "total": total,
        "limit": page.limit,
        "offset": page.offset,
    }


@router.get("/backtests/strategies", response_model=Page[dict[str, Any]])
async def backtest_strategies(user: CurrentUser, page: Paging) -> dict[str, Any]:
    """The strategy catalog (the same list as ``GET /trading/strategies/catalog``)."""
    return page_of(catalog(), page)


@router.get("/backtests/{backtest_id}", response_model=BacktestRead)
async def get_backtest(
    backtest_id: uuid.UUID, user: CurrentUser, session: SessionDep, settings: AnalysisSettingsDep
) -> Response:
    """Status, progress (0..1), error and, when done, metrics, trades and equity curve."""
    body = await BacktestService(session, settings).read_json(user.user_id, backtest_id)
    return Response(body, media_type="application/json")

"""``/analysis/optimisations``: start, follow, cancel and read strategy optimisations."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response, status

from analysis_service.deps import AnalysisSettingsDep, CurrentUser, RedisDep, SessionDep
from analysis_service.optimisations.report import render_report
from analysis_service.optimisations.schemas import (
    BestParameters,
    OptimisationAccepted,
    OptimisationCreate,
    OptimisationRead,
    OptimisationSummary,
    TrialRead,
)
from analysis_service.optimisations.service import (
    OptimisationService,
    optimisation_read,
    optimisation_summary,
)
from shared.deps import InternalCaller
from shared.paging import Page, PageParams, paging
from shared.strict_query import StrictQueryRoute

router = APIRouter(route_class=StrictQueryRoute, prefix="/analysis", tags=["optimisations"])

Paging = Annotated[PageParams, paging(50, 200)]
TrialPaging = Annotated[PageParams, paging(100, 1000)]


@router.post(
    "/optimisations", status_code=status.HTTP_202_ACCEPTED, response_model=OptimisationAccepted
)
async def create_optimisation(
    body: OptimisationCreate, user: CurrentUser, session: SessionDep, settings: AnalysisSettingsDep
) -> dict[str, Any]:
    """Start an optimisation; poll ``GET /analysis/optimisations/{id}`` for its progress."""
    row = await OptimisationService(session, settings).create(user.user_id, body)
    return {"id": row.id, "status": row.status}


@router.get("/optimisations", response_model=Page[OptimisationSummary])
async def list_optimisations(
    user: CurrentUser, session: SessionDep, settings: AnalysisSettingsDep, page: Paging
) -> dict[str, Any]:
    """The caller's optimisations, newest first, with progress and best so far."""
    rows, total = await OptimisationService(session, settings).page(user.user_id, page)
    return {
        "items": [optimisation_summary(row) for row in rows],
        "total": total,
        "limit": page.limit,
        "offset": page.offset,
    }


@router.get("/optimisations/{optimisation_id}", response_model=OptimisationRead)
async def get_optimisation(
    optimisation_id: uuid.UUID,
    user: CurrentUser,
    session: SessionDep,
    settings: AnalysisSettingsDep,
) -> Response:
    """Progress (trials done, best so far), then the best parameters, the best trials,
    parameter importances, the walk-forward folds and the best parameters' backtest."""
    body = await OptimisationService(session, settings).read_json(user.user_id, optimisation_id)
    return Response(body, media_type="application/json")


@router.get("/optimisations/{optimisation_id}/trials", response_model=Page[TrialRead])
async def list_trials(
    optimisation_id: uuid.UUID,
    user: CurrentUser,
    session: SessionDep,
    settings: AnalysisSettingsDep,
    page: TrialPaging,
    fold: Annotated[int | None, Query(ge=0, le=100)] = None,
    state: Annotated[Literal["complete", "failed", "error", "lost"] | None, Query()] = None,
    order: Annotated[Literal["value", "number"], Query()] = "value",
) -> dict[str, Any]:
    """The trial table of a finished optimisation (best first, or in trial order)."""
    rows, total = await OptimisationService(session, settings).trials(
        user.user_id, optimisation_id, page, fold=fold, state=state, order=order
    )
    return {
        "items": [TrialRead.model_validate(row, from_attributes=True) for row in rows],
        "total": total,
        "limit": page.limit,
        "offset": page.offset,
    }


@router.get("/optimisations/{optimisation_id}/report", response_class=Response)
async def optimisation_report(
    optimisation_id: uuid.UUID,
    user: CurrentUser,
    session: SessionDep,
    settings: AnalysisSettingsDep,
) -> Response:
    """The optimisation as one self-contained HTML page (history, importances, folds)."""
    service = OptimisationService(session, settings)
    row = await service.get(user.user_id, optimisation_id)
    trials, _ = await service.trials(
        user.user_id, optimisation_id, PageParams(100_000, 0), fold=None, state=None,
        order="number",
    )  # fmt: skip
    html = render_report(
        optimisation_read(row, row.result),
        [TrialRead.model_validate(t, from_attributes=True).model_dump() for t in trials],
    )
    return Response(html, media_type="text/html; charset=utf-8")


@router.delete(
    "/optimisations/{optimisation_id}",
    response_model=OptimisationRead,
    responses={204: {"description": "A finished optimisation was deleted."}},
)
async def cancel_optimisation(
    optimisation_id: uuid.UUID,
    user: CurrentUser,
    session: SessionDep,
    settings: AnalysisSettingsDep,
    redis: RedisDep,
) -> Any:
    """Cancel a queued or running optimisation (it keeps what it had done); delete one
    that is over (204)."""
    row = await OptimisationService(session, settings).cancel_or_delete(
        user.user_id, optimisation_id, redis
    )
    if row is None:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    return optimisation_read(row, row.result)


internal = APIRouter(
    route_class=StrictQueryRoute,
    prefix="/analysis/internal",
    tags=["internal"],
    dependencies=[InternalCaller],
)


@internal.get(
    "/users/{user_id}/optimisations/{optimisation_id}/best", response_model=BestParameters
)
async def best_parameters(
    user_id: uuid.UUID,
    optimisation_id: uuid.UUID,
    session: SessionDep,
    settings: AnalysisSettingsDep,
) -> dict[str, Any]:
    """A finished optimisation's recommended parameters (the trading engine creates a bot
    from them); 404 when the user has no such optimisation, 409 when it is not done."""
    return await OptimisationService(session, settings).best(user_id, optimisation_id)

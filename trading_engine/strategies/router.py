"""`/trading/strategies`: the catalog and the caller's saved configurations."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Response, status

from shared.deps import CurrentUser, SessionDep
from shared.paging import Page, PageParams, fetch_page, page_of, paging
from shared.strategies import catalog
from shared.strict_query import StrictQueryRoute
from trading_engine.deps import ValidStrategy
from trading_engine.strategies import repository, service
from trading_engine.strategies.schemas import (
    CatalogEntry,
    StrategyCreate,
    StrategyRead,
    StrategyUpdate,
)

router = APIRouter(route_class=StrictQueryRoute, prefix="/trading/strategies", tags=["strategies"])


Paging = Annotated[PageParams, paging(100, 1000)]


@router.get("/catalog", response_model=Page[CatalogEntry])
async def strategy_catalog(user: CurrentUser, page: Paging) -> dict[str, Any]:
    """Every strategy the engine can run, with the JSON schema of its parameters."""
    return page_of(catalog(), page)


@router.get("", response_model=Page[StrategyRead])
async def list_strategies(
    user: CurrentUser, session: SessionDep, page: Paging
) -> Page[StrategyRead]:
    """The caller's saved strategies, oldest first."""
    rows, total = await fetch_page(session, repository.strategies_query(user.user_id), page)
    items = [service.to_read(s) for s in rows]
    return Page(items=items, total=total, limit=page.limit, offset=page.offset)


@router.post("", response_model=StrategyRead, status_code=status.HTTP_201_CREATED)
async def create_strategy(
    body: StrategyCreate, user: CurrentUser, session: SessionDep
) -> StrategyRead:
    """Save a strategy configuration (validated against the strategy's schema)."""
    return service.to_read(await service.create(session, user.user_id, body))


@router.get("/{strategy_id}", response_model=StrategyRead)
async def read_strategy(strategy: ValidStrategy) -> StrategyRead:
    """One saved strategy."""
    return service.to_read(strategy)


@router.patch("/{strategy_id}", response_model=StrategyRead)
@router.put("/{strategy_id}", response_model=StrategyRead, include_in_schema=False)
async def update_strategy(
    body: StrategyUpdate, strategy: ValidStrategy, session: SessionDep
) -> StrategyRead:
    """Rename, re-parameterise (validated again) or (de)activate a saved strategy."""
    return service.to_read(await service.update(session, strategy, body))


@router.delete("/{strategy_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_strategy(strategy: ValidStrategy, session: SessionDep) -> Response:
    """Delete a saved strategy no bot uses."""
    await service.delete(session, strategy)
    return Response(status_code=status.HTTP_204_NO_CONTENT)

"""`/trading/balances`: the paper wallet and each bot's balance; the wallet reset."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from shared.db import unit_of_work
from shared.deps import CurrentUser
from shared.responses import model_response
from shared.strict_query import StrictQueryRoute
from trading_engine.deps import OrderServiceDep
from trading_engine.orders.schemas import Money
from trading_engine.portfolio import service
from trading_engine.portfolio.mirror import refresh_mirror

router = APIRouter(route_class=StrictQueryRoute, prefix="/trading", tags=["balances"])


class AssetBalance(BaseModel):
    asset: str
    free: Money
    locked: Money
    total: Money


class BotBalances(BaseModel):
    bot_id: str
    name: str | None
    status: str
    assets: list[AssetBalance]


class Balances(BaseModel):
    wallet: list[AssetBalance]
    bots: list[BotBalances]


@router.get("/balances", response_model=Balances)
async def read_balances(user: CurrentUser, orders: OrderServiceDep) -> Response:
    """The paper wallet (created with its starting amount on first use) and every bot's."""
    async with unit_of_work(orders.sessionmaker) as session:
        await orders.ensure_wallet(session, user.user_id)
        wallet, bots = await service.balances(session, user.user_id)
    return model_response(Balances.model_validate({"wallet": wallet, "bots": bots}))


@router.post("/balances/reset", response_model=Balances)
async def reset_wallet(request: Request, user: CurrentUser, orders: OrderServiceDep) -> Balances:
    """Reset the paper wallet to its starting amount: wallet orders canceled, wallet
    positions closed (bots keep their own balances)."""
    async with unit_of_work(orders.sessionmaker) as session:
        await service.reset_wallet(session, user.user_id, orders)
    await refresh_mirror(orders.sessionmaker, orders.redis, user.user_id)
    async with unit_of_work(orders.sessionmaker) as session:
        wallet, bots = await service.balances(session, user.user_id)
    return Balances.model_validate({"wallet": wallet, "bots": bots})

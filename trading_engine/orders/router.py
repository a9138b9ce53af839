"""`/trading/orders`, `/trading/trades`, `/trading/positions`."""

from __future__ import annotations

import uuid
from typing import Literal

from fastapi import APIRouter, Query, Response, status
from pydantic import TypeAdapter

from shared.deps import CurrentUser, ReadSessionDep
from shared.errors import NotFound
from shared.responses import json_response
from trading_engine.deps import OrderServiceDep
from trading_engine.orders import repository
from trading_engine.orders.schemas import OrderCreate, OrderRead, PositionRead, TradeRead

router = APIRouter(prefix="/trading", tags=["orders"])

Limit = Query(default=100, ge=1, le=1000)
Offset = Query(default=0, ge=0)


@router.post(
    "/orders",
    response_model=OrderRead,
    status_code=status.HTTP_201_CREATED,
    responses={200: {"description": "A repeated client_order_id: the first order"}},
)
async def place_order(
    body: OrderCreate, user: CurrentUser, orders: OrderServiceDep, response: Response
) -> OrderRead:
    """Place a manual order; a repeated ``client_order_id`` returns the first order (200)."""
    order, created = await orders.place(user.user_id, user.permissions, body)
    if not created:
        response.status_code = status.HTTP_200_OK
    return OrderRead.model_validate(order)


ORDER_LIST = TypeAdapter(list[OrderRead])


@router.get("/orders", response_model=list[OrderRead])
async def list_orders(
    user: CurrentUser,
    session: ReadSessionDep,
    status_filter: str | None = Query(default=None, alias="status"),
    bot_id: uuid.UUID | None = None,
    symbol: str | None = None,
    limit: int = Limit,
    offset: int = Offset,
) -> Response:
    """The caller's orders, newest first (``status=open`` for the open ones)."""
    rows = await repository.list_orders(
        session,
        user.user_id,
        status=status_filter,
        bot_id=bot_id,
        symbol=symbol,
        limit=limit,
        offset=offset,
    )
    return json_response(ORDER_LIST, ORDER_LIST.validate_python(rows, from_attributes=True))


@router.get("/orders/{order_id}", response_model=OrderRead)
async def read_order(order_id: uuid.UUID, user: CurrentUser, session: ReadSessionDep) -> OrderRead:
    """One of the caller's orders."""
    order = await repository.order_of_user(session, user.user_id, order_id)
    if order is None:
        raise NotFound("No such order.")
    return OrderRead.model_validate(order)


@router.delete("/orders/{order_id}", response_model=OrderRead)
async def cancel_order(
    order_id: uuid.UUID, user: CurrentUser, orders: OrderServiceDep
) -> OrderRead:
    """Cancel an open order (a paper limit order's locked funds are released)."""
    return OrderRead.model_validate(await orders.cancel(user.user_id, order_id))


@router.get("/trades", response_model=list[TradeRead])
async def list_trades(
    user: CurrentUser,
    session: ReadSessionDep,
    bot_id: uuid.UUID | None = None,
    symbol: str | None = None,
    limit: int = Limit,
    offset: int = Offset,
) -> list[TradeRead]:
    """The caller's fills, newest first, with fee and realised PnL."""
    rows = await repository.list_trades(
        session, user.user_id, bot_id=bot_id, symbol=symbol, limit=limit, offset=offset
    )
    return [TradeRead.model_validate(t) for t in rows]


@router.get("/positions", response_model=list[PositionRead])
async def list_positions(
    user: CurrentUser,
    session: ReadSessionDep,
    status_filter: Literal["open", "closed", "all"] = Query(default="open", alias="status"),
    bot_id: uuid.UUID | None = None,
) -> list[PositionRead]:
    """The caller's positions (open by default), with unrealised PnL at the last close."""
    rows = await repository.list_positions(
        session,
        user.user_id,
        status=None if status_filter == "all" else status_filter,
        bot_id=bot_id,
    )
    return [PositionRead.model_validate(p) for p in rows]

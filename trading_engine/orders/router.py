"""`/trading/orders`, `/trading/trades`, `/trading/positions`."""

from __future__ import annotations

import uuid
from collections import defaultdict
from decimal import Decimal
from typing import Annotated, Literal

import structlog
from fastapi import APIRouter, Query, Response, status
from pydantic import TypeAdapter

from shared.deps import CurrentUser, ReadSessionDep
from shared.errors import BadRequest, DependencyUnavailable, NotFound
from shared.paging import Page, PageParams, fetch_page, fetch_row_page, paging
from shared.responses import model_response, page_response
from shared.strict_query import StrictQueryRoute
from trading_engine.deps import OrderServiceDep
from trading_engine.market_client import MarketClient
from trading_engine.models import Position
from trading_engine.money import money
from trading_engine.orders import repository
from trading_engine.orders.schemas import (
    OrderCreate,
    OrderRead,
    OrderStatus,
    PositionRead,
    Symbol,
    TradeRead,
)

router = APIRouter(route_class=StrictQueryRoute, prefix="/trading", tags=["orders"])
log = structlog.get_logger("orders")

Paging = Annotated[PageParams, paging(100, 1000)]
SymbolFilter = Annotated[Symbol | None, Query()]


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


ORDER_PAGE = TypeAdapter(Page[OrderRead])
TRADE_PAGE = TypeAdapter(Page[TradeRead])


@router.get("/orders", response_model=Page[OrderRead])
async def list_orders(
    user: CurrentUser,
    session: ReadSessionDep,
    page: Paging,
    status_filter: Annotated[OrderStatus | None, Query(alias="status")] = None,
    bot_id: uuid.UUID | None = None,
    symbol: SymbolFilter = None,
) -> Response:
    """The caller's orders, newest first (``status=open`` for the open ones)."""
    query = repository.orders_query(
        user.user_id, status=status_filter, bot_id=bot_id, symbol=symbol
    )
    rows, total = await fetch_row_page(session, query, page)
    return page_response(ORDER_PAGE, rows, total, page)


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


@router.get("/trades", response_model=Page[TradeRead])
async def list_trades(
    user: CurrentUser,
    session: ReadSessionDep,
    page: Paging,
    bot_id: uuid.UUID | None = None,
    symbol: SymbolFilter = None,
) -> Response:
    """The caller's fills, newest first, with fee and realised PnL."""
    query = repository.trades_query(user.user_id, bot_id=bot_id, symbol=symbol)
    rows, total = await fetch_row_page(session, query, page)
    return page_response(TRADE_PAGE, rows, total, page)


@router.get("/positions", response_model=Page[PositionRead])
async def list_positions(
    user: CurrentUser,
    session: ReadSessionDep,
    orders: OrderServiceDep,
    page: Paging,
    status_filter: Annotated[Literal["open", "closed", "all"], Query(alias="status")] = "open",
    bot_id: uuid.UUID | None = None,
) -> Response:
    """The caller's positions (open by default); open ones marked at the last price."""
    query = repository.positions_query(
        user.user_id, status=None if status_filter == "all" else status_filter, bot_id=bot_id
    )
    rows, total = await fetch_page(session, query, page)
    items = await _marked(rows, orders.market)
    # Each item validated once in _marked; the envelope is dumped without a second pass.
    return model_response(Page(items=items, total=total, limit=page.limit, offset=page.offset))


async def _marked(positions: list[Position], market: MarketClient) -> list[PositionRead]:
    """Open positions with ``mark_price`` (the market service's last price) and
    ``unrealized_pnl``; both stay null when the price is unavailable."""
    wanted: dict[str, set[str]] = defaultdict(set)
    for p in positions:
        if p.status == "open":
            wanted[p.exchange].add(p.symbol)
    prices: dict[tuple[str, str], Decimal] = {}
    for exchange, symbols in wanted.items():
        try:
            found = await market.last_prices(exchange, sorted(symbols))
        except (DependencyUnavailable, NotFound, BadRequest) as exc:
            log.info("mark_price_unavailable", exchange=exchange, error=exc.detail)
            continue
        prices.update({(exchange, symbol): price for symbol, price in found.items()})
    reads = []
    for p in positions:
        read = PositionRead.model_validate(p)
        mark = prices.get((p.exchange, p.symbol)) if p.status == "open" else None
        if mark is not None:
            read.mark_price = money(mark)
            read.unrealized_pnl = money(p.quantity * mark) - p.cost_basis
        reads.append(read)
    return reads

"""`/trading/bots`: CRUD, start, stop, close the position."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Response, status

from shared.db import unit_of_work
from shared.deps import CurrentUser, RedisDep, SessionDep
from shared.errors import Conflict, NotFound
from shared.paging import Page, PageParams, fetch_page, paging
from shared.strict_query import StrictQueryRoute
from trading_engine.bots import from_optimisation, repository, service
from trading_engine.bots.replay import ReplayRead, replay
from trading_engine.bots.schemas import BotCreate, BotRead, BotUpdate
from trading_engine.deps import AnalysisDep, OrderServiceDep, ValidBot
from trading_engine.ledger import repository as ledger_repository
from trading_engine.orders import repository as order_repository
from trading_engine.portfolio.mirror import refresh_mirror

router = APIRouter(route_class=StrictQueryRoute, prefix="/trading/bots", tags=["bots"])


@router.get("", response_model=Page[BotRead])
async def list_bots(
    user: CurrentUser, session: SessionDep, page: Annotated[PageParams, paging(100, 1000)]
) -> Page[BotRead]:
    """The caller's bots, oldest first, with status, last signal, position, equity and PnL."""
    bots, total = await fetch_page(session, repository.bots_query(user.user_id), page)
    items = [await service.to_read(session, bot) for bot in bots]
    return Page(items=items, total=total, limit=page.limit, offset=page.offset)


@router.post("", response_model=BotRead, status_code=status.HTTP_201_CREATED)
async def create_bot(
    body: BotCreate,
    user: CurrentUser,
    orders: OrderServiceDep,
    analysis: AnalysisDep,
    redis: RedisDep,
) -> BotRead:
    """Create a stopped bot; a paper bot's capital moves from the wallet (no overdraft).
    With ``optimisation_id``, on a finished optimisation's recommended parameters."""
    async with unit_of_work(orders.sessionmaker) as session:
        if body.optimisation_id is not None:
            body = await from_optimisation.resolve(
                session, user.user_id, body.optimisation_id, body, analysis
            )
        bot = await service.create(session, user, body, orders, orders.market)
        read = await service.to_read(session, bot)
    return read


@router.get("/{bot_id}", response_model=BotRead)
async def read_bot(bot: ValidBot, session: SessionDep) -> BotRead:
    """One bot."""
    return await service.to_read(session, bot)


@router.get("/{bot_id}/replay", response_model=ReplayRead)
async def replay_bot(bot: ValidBot, session: SessionDep, orders: OrderServiceDep) -> ReplayRead:
    """The bot's candles through the backtest with its settings: every fill that differs
    (an empty list when the bot traded exactly like its backtest)."""
    return await replay(session, bot, orders)


@router.patch("/{bot_id}", response_model=BotRead)
@router.put("/{bot_id}", response_model=BotRead, include_in_schema=False)
async def update_bot(
    body: BotUpdate, bot: ValidBot, user: CurrentUser, session: SessionDep
) -> BotRead:
    """Rename, change risk settings or position size (strategy only while stopped)."""
    updated = await service.update(session, user, bot, body)
    return await service.to_read(session, updated)


@router.delete("/{bot_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_bot(
    bot_id: uuid.UUID, user: CurrentUser, orders: OrderServiceDep, redis: RedisDep
) -> Response:
    """Delete a stopped bot without an open position; its balance returns to the wallet."""
    async with unit_of_work(orders.sessionmaker) as session:
        bot = await repository.get(session, user.user_id, bot_id)
        if bot is None:
            raise NotFound("No such bot.")
        await service.delete(session, user, bot, redis)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{bot_id}/start", response_model=BotRead)
async def start_bot(
    bot_id: uuid.UUID, user: CurrentUser, orders: OrderServiceDep, redis: RedisDep
) -> BotRead:
    """Run the bot: the engine takes it within a few seconds and acts on closed candles."""
    return await _set_running(bot_id, user, orders, redis, running=True)


@router.post("/{bot_id}/stop", response_model=BotRead)
async def stop_bot(
    bot_id: uuid.UUID, user: CurrentUser, orders: OrderServiceDep, redis: RedisDep
) -> BotRead:
    """Stop the bot (its position and balance stay as they are)."""
    return await _set_running(bot_id, user, orders, redis, running=False)


async def _set_running(
    bot_id: uuid.UUID, user: CurrentUser, orders: OrderServiceDep, redis: RedisDep, *, running: bool
) -> BotRead:
    async with unit_of_work(orders.sessionmaker) as session:
        bot = await repository.get(session, user.user_id, bot_id)
        if bot is None:
            raise NotFound("No such bot.")
        latest = await service.latest_candle_at(redis, bot) if running else None
        bot = await service.set_running(
            session, user, bot, running=running, latest_candle_at=latest
        )
    async with orders.sessionmaker() as session:
        await service.update_watch(redis, session, bot)
        return await service.to_read(session, bot)


@router.post("/{bot_id}/close", response_model=BotRead)
async def close_position(bot_id: uuid.UUID, user: CurrentUser, orders: OrderServiceDep) -> BotRead:
    """Sell a stopped paper bot's open position (a portfolio bot's every one) at market."""
    async with unit_of_work(orders.sessionmaker) as session:
        bot = await repository.get(session, user.user_id, bot_id, lock=True)
        if bot is None:
            raise NotFound("No such bot.")
        if bot.status == "running":
            raise Conflict("Stop the bot before closing its position by hand.")
        if bot.mode != "paper":
            raise Conflict("Close a live position with a live order.")
        held = [p for p in await repository.open_positions(session, bot) if p.quantity > 0]
        if not held:
            raise Conflict("The bot has no open position.")
        for position in held:  # a portfolio bot's every pair
            venue = await orders.paper_venue(bot.exchange, position.symbol)
            base = await ledger_repository.lock_balance(
                session, user.user_id, bot.id, venue.rules.base
            )
            order = await order_repository.insert_order(
                session,
                {
                    "user_id": user.user_id,
                    "bot_id": bot.id,
                    "client_order_id": f"close-{uuid.uuid4().hex}",
                    "exchange": bot.exchange,
                    "symbol": position.symbol,
                    "side": "sell",
                    "type": "market",
                    "mode": "paper",
                    "quantity": min(position.quantity, base.free),
                    "price": None,
                    "status": "open",
                },
            )
            assert order is not None  # noqa: S101 - a fresh client order id
            await orders.submit_paper(session, order, venue)
    await refresh_mirror(orders.sessionmaker, orders.redis, user.user_id)
    async with orders.sessionmaker() as session:
        fresh = await repository.get(session, user.user_id, bot_id)
        assert fresh is not None  # noqa: S101
        return await service.to_read(session, fresh)

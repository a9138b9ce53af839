"""Balances of the paper wallet and the bots; the wallet reset."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from trading_engine.orders.service import OrderService
from trading_engine.portfolio import repository


def _asset(row: Any) -> dict[str, Any]:
    return {
        "asset": row.asset,
        "free": row.free,
        "locked": row.locked,
        "total": row.free + row.locked,
    }


async def balances(
    session: AsyncSession, user_id: uuid.UUID
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rows = await repository.all_balances(session, user_id)
    bots = {bot.id: bot for bot in await repository.bots_of(session, user_id)}
    wallet = [_asset(r) for r in rows if r.bot_id is None]
    per_bot: dict[uuid.UUID, list[dict[str, Any]]] = {bot_id: [] for bot_id in bots}
    for row in rows:
        if row.bot_id is not None and row.bot_id in per_bot:
            per_bot[row.bot_id].append(_asset(row))
    return wallet, [
        {
            "bot_id": str(bot_id),
            "name": bots[bot_id].name,
            "status": bots[bot_id].status,
            "assets": assets,
        }
        for bot_id, assets in per_bot.items()
    ]


async def reset_wallet(session: AsyncSession, user_id: uuid.UUID, orders: OrderService) -> None:
    now = datetime.now(UTC)
    await repository.cancel_wallet_orders(session, user_id, now)
    await repository.close_wallet_positions(session, user_id, now)
    await repository.delete_wallet(session, user_id)
    await orders.ensure_wallet(session, user_id)

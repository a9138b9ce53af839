"""SQL for `trading_pairs`."""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from market_service.models import TradingPair


async def upsert_pairs(
    session: AsyncSession, exchange: str, pairs: list[tuple[str, str, str]]
) -> None:
    """Mark ``pairs`` (symbol, base, quote) active and every other pair of ``exchange`` not."""
    if pairs:
        stmt = insert(TradingPair).values(
            [
                {"symbol": s, "base": b, "quote": q, "exchange": exchange, "active": True}
                for s, b, q in pairs
            ]
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["symbol", "base", "exchange"],
            set_={"active": True, "quote": stmt.excluded.quote, "updated_at": func.now()},
        )
        await session.execute(stmt)
    listed = [s for s, _, _ in pairs]
    await session.execute(
        update(TradingPair)
        .where(
            TradingPair.exchange == exchange,
            TradingPair.active.is_(True),
            TradingPair.symbol.not_in(listed) if listed else TradingPair.symbol.is_not(None),
        )
        .values(active=False, updated_at=func.now())
    )


async def list_pairs(
    session: AsyncSession, *, exchange: str | None, active_only: bool
) -> list[TradingPair]:
    query = select(TradingPair).order_by(TradingPair.exchange, TradingPair.symbol)
    if exchange:
        query = query.where(TradingPair.exchange == exchange)
    if active_only:
        query = query.where(TradingPair.active.is_(True))
    return list((await session.scalars(query)).all())

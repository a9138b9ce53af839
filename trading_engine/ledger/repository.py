"""SQL of the ledger: balances, positions and trades, locked in a fixed order."""

from __future__ import annotations

import hashlib
import itertools
import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from trading_engine.models import Balance, Order, Position, Trade


async def ensure_balance(
    session: AsyncSession,
    user_id: uuid.UUID,
    bot_id: uuid.UUID | None,
    asset: str,
    initial: Decimal = Decimal(0),
) -> None:
    """Create the balance row if it does not exist yet (a concurrent creator wins)."""
    await session.execute(
        insert(Balance)
        .values(user_id=user_id, bot_id=bot_id, asset=asset, free=initial, locked=0)
        .on_conflict_do_nothing()
    )


def _locked(session: AsyncSession) -> dict[tuple[object, ...], object]:
    """Rows this transaction already locked FOR UPDATE (they cannot change under it), so
    a fill does not select its balances and position again."""
    transaction = session.sync_session.get_transaction()
    cache: dict[tuple[object, ...], object] = session.info.setdefault("locked_rows", {})
    if cache.get(("transaction",)) is not transaction:
        cache.clear()
        cache[("transaction",)] = transaction
    return cache


async def lock_balance(
    session: AsyncSession, user_id: uuid.UUID, bot_id: uuid.UUID | None, asset: str
) -> Balance:
    """The balance row, locked for this transaction (created at zero when missing)."""
    cache = _locked(session)
    key = ("balance", user_id, bot_id, asset)
    known = cache.get(key)
    if isinstance(known, Balance):
        return known
    owner = Balance.bot_id.is_(None) if bot_id is None else Balance.bot_id == bot_id
    query = (
        select(Balance)
        .where(Balance.user_id == user_id, owner, Balance.asset == asset)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    row = await session.scalar(query)
    if row is None:
        await ensure_balance(session, user_id, bot_id, asset)
        row = await session.scalar(query)
    assert row is not None  # noqa: S101 - ensured just above
    cache[key] = row
    return row


async def lock_bot_balances(
    session: AsyncSession, owners: list[tuple[uuid.UUID, uuid.UUID]], assets: list[str]
) -> None:
    """Lock the ``assets`` balances of these (user, bot) owners in one query (in id order)
    and remember them, so their fills select nothing again; missing rows (a bot's first
    trade in an asset) are created at zero first."""
    if not owners:
        return
    cache = _locked(session)
    query = (
        select(Balance)
        .where(Balance.bot_id.in_([bot_id for _, bot_id in owners]), Balance.asset.in_(assets))
        .order_by(Balance.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    rows = list(await session.scalars(query))
    missing = set(itertools.product(owners, assets)) - {
        ((row.user_id, row.bot_id), row.asset) for row in rows if row.bot_id is not None
    }
    if missing:
        await session.execute(
            insert(Balance).on_conflict_do_nothing(),
            [
                {"user_id": user_id, "bot_id": bot_id, "asset": asset, "free": 0, "locked": 0}
                for (user_id, bot_id), asset in sorted(missing, key=str)
            ],
        )
        rows = list(await session.scalars(query))
    for row in rows:
        cache[("balance", row.user_id, row.bot_id, row.asset)] = row


async def balances_of(
    session: AsyncSession, user_id: uuid.UUID, bot_id: uuid.UUID | None = None
) -> list[Balance]:
    owner = Balance.bot_id.is_(None) if bot_id is None else Balance.bot_id == bot_id
    rows = await session.scalars(
        select(Balance).where(Balance.user_id == user_id, owner).order_by(Balance.asset)
    )
    return list(rows)


async def lock_open_position(
    session: AsyncSession,
    user_id: uuid.UUID,
    bot_id: uuid.UUID | None,
    exchange: str,
    symbol: str,
    mode: str,
    *,
    lock: bool = True,
) -> Position | None:
    cache = _locked(session)
    key = ("position", user_id, bot_id, exchange, symbol, mode)
    if lock and key in cache:
        known = cache[key]
        return known if isinstance(known, Position) and known.status == "open" else None
    owner = Position.bot_id.is_(None) if bot_id is None else Position.bot_id == bot_id
    query = select(Position).where(
        Position.user_id == user_id,
        owner,
        Position.exchange == exchange,
        Position.symbol == symbol,
        Position.mode == mode,
        Position.status == "open",
    )
    if not lock:
        return await session.scalar(query)
    locking = query.with_for_update().execution_options(populate_existing=True)
    position = await session.scalar(locking)
    if position is None:
        # No open row to lock: two orders could each see none and both open one (the
        # second then hits uq_positions_open). The owner's position key is locked instead,
        # and looked up again once held: a position opened meanwhile is visible now.
        await session.execute(
            text("SELECT pg_advisory_xact_lock(:key)"),
            {"key": position_lock_key(user_id, bot_id, exchange, symbol, mode)},
        )
        position = await session.scalar(locking)
    cache[key] = position
    return position


def position_lock_key(
    user_id: uuid.UUID, bot_id: uuid.UUID | None, exchange: str, symbol: str, mode: str
) -> int:
    """The advisory lock (a signed 64-bit key) of one owner's position in one market."""
    owner = f"position|{user_id}|{bot_id or ''}|{exchange}|{symbol}|{mode}".encode()
    return int.from_bytes(hashlib.blake2b(owner, digest_size=8).digest(), "big", signed=True)


def remember_position(session: AsyncSession, position: Position) -> None:
    """A position this transaction created (and so holds) is known as locked."""
    remember_open_position(
        session,
        position.user_id,
        position.bot_id,
        position.exchange,
        position.symbol,
        position.mode,
        position,
    )


def remember_open_position(
    session: AsyncSession,
    user_id: uuid.UUID,
    bot_id: uuid.UUID | None,
    exchange: str,
    symbol: str,
    mode: str,
    position: Position | None,
) -> None:
    """The open position (or None) of an owner whose row this transaction locked."""
    _locked(session)[("position", user_id, bot_id, exchange, symbol, mode)] = position


async def add(session: AsyncSession, row: Trade | Position | Order) -> None:
    session.add(row)
    await session.flush()


async def count_open_positions(session: AsyncSession, user_id: uuid.UUID) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(Position)
        .where(Position.user_id == user_id, Position.status == "open")
    )
    return int(count or 0)


async def realized_since(
    session: AsyncSession,
    user_id: uuid.UUID,
    since: datetime,
    bot_id: uuid.UUID | None = None,
) -> Decimal:
    """Sum of realised PnL of the user's (or one bot's) fills since ``since``."""
    query = select(func.coalesce(func.sum(Trade.pnl), 0)).where(
        Trade.user_id == user_id, Trade.timestamp >= since
    )
    if bot_id is not None:
        query = query.where(Trade.bot_id == bot_id)
    total = await session.scalar(query)
    return Decimal(total or 0)


async def touch_order(session: AsyncSession, order_id: uuid.UUID) -> None:
    await session.execute(update(Order).where(Order.id == order_id).values(updated_at=func.now()))

"""A passing fault of PostgreSQL is a 503 with Retry-After that books nothing, never a
500: an exhausted pool, a backend terminated mid-order, a server shutting down."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from tests.servers import app_client
from tests.trading_engine.stubs import MarketStub
from tests.waiting import eventually
from trading_engine.main import create_app
from trading_engine.models import Order, Trade
from trading_engine.settings import TradingSettings

BUY = {"symbol": "BTC/USDT", "side": "buy", "type": "market", "quantity": "0.1"}


async def test_an_exhausted_connection_pool_is_a_503_with_retry_after(
    engine_settings: Callable[..., TradingSettings],
    market: MarketStub,
    new_user,
    session: AsyncSession,
) -> None:
    user = await new_user()
    app = create_app(
        engine_settings(run_bots=False, database_pool_size=1, database_pool_timeout_seconds=0.3)
    )
    async with app_client(app) as client:
        pool_engine: AsyncEngine = app.state.engine
        # Pool of one plus one overflow: both held, as by requests that never finish.
        held = [await pool_engine.connect() for _ in range(2)]
        try:
            listed = await client.get("/trading/orders", headers=user.headers)
            placed = await client.post("/trading/orders", json=BUY, headers=user.headers)
        finally:
            for conn in held:
                await conn.close()
        after = await client.post("/trading/orders", json=BUY, headers=user.headers)

    for response in (listed, placed):
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "1"
        assert response.json()["detail"] == "The database is busy; retry shortly."
    assert after.status_code == 201, after.text
    assert await session.scalar(select(func.count()).select_from(Order)) == 1


async def test_a_backend_terminated_mid_order_is_a_503_that_books_nothing(
    client: httpx.AsyncClient, market: MarketStub, new_user, engine: AsyncEngine
) -> None:
    user = await new_user()
    first = await client.post("/trading/orders", json=BUY, headers=user.headers)
    assert first.status_code == 201, first.text

    async with engine.connect() as blocker:
        # Hold the wallet's rows so the next order waits inside its transaction.
        await blocker.execute(
            text("SELECT * FROM balances WHERE user_id = :u FOR UPDATE"), {"u": user.id}
        )
        placing = asyncio.create_task(
            client.post("/trading/orders", json=BUY, headers=user.headers)
        )

        async def waiting_backend() -> Any:
            return await blocker.scalar(
                text(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
                )
            )

        pid = await eventually(waiting_backend)
        await blocker.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        response = await placing
        await blocker.rollback()

    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "5"
    async with engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(Order)) == 1
        assert await conn.scalar(select(func.count()).select_from(Trade)) == 1
    # The engine's pool dropped the dead connection: the next order is booked.
    again = await client.post("/trading/orders", json=BUY, headers=user.headers)
    assert again.status_code == 201, again.text


@asynccontextmanager
async def shutting_down_postgres() -> AsyncIterator[int]:
    """A server speaking just enough of PostgreSQL's protocol to refuse every connection
    as a server that is shutting down does (FATAL 57P03)."""

    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                length, code = struct.unpack("!ii", await reader.readexactly(8))
                await reader.readexactly(length - 8)
                if code == 80877103:  # SSLRequest: no TLS here
                    writer.write(b"N")
                    continue
                break
            fields = b"".join(
                key + value + b"\0"
                for key, value in (
                    (b"S", b"FATAL"),
                    (b"V", b"FATAL"),
                    (b"C", b"57P03"),
                    (b"M", b"the database system is shutting down"),
                )
            )
            writer.write(b"E" + struct.pack("!i", len(fields) + 5) + fields + b"\0")
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(refuse, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1]


async def test_a_database_that_is_shutting_down_is_a_503(
    engine_settings: Callable[..., TradingSettings], market: MarketStub, new_user
) -> None:
    user = await new_user()
    async with shutting_down_postgres() as port:
        app = create_app(
            engine_settings(
                run_bots=False, database_url=f"postgresql+asyncpg://postgres@127.0.0.1:{port}/x"
            )
        )
        async with app_client(app) as client:
            listed = await client.get("/trading/orders", headers=user.headers)
            placed = await client.post("/trading/orders", json=BUY, headers=user.headers)

    for response in (listed, placed):
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "5"
        assert response.json()["detail"] == "The database is unavailable; retry later."

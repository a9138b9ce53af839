"""The reference of bench/services.py: a minimal FastAPI app doing each route's I/O and no
more: the same Redis reads, the same SQL through asyncpg (one pool, prepared statements),
the same token check (HS256 signature, then the session hash), the JSON built with orjson.
No middleware, no logging, no metrics, no validation beyond what the I/O needs.

    uvicorn --factory bench.service_reference:create_app   (env REF_DATABASE_URL, REF_REDIS_URL,
    REF_JWT_SECRET, set by bench/services.py)
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import jwt
import orjson
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import Response

from shared.redis import create_redis

ORDER_COLUMNS = (
    "id, client_order_id, exchange_order_id, bot_id, exchange, symbol, side, type, mode, "
    "quantity, price, status, filled_quantity, average_price, fee, fee_currency, reason, "
    "created_at, updated_at"
)
NOTIFICATION_COLUMNS = "id, event_id, kind, title, body, data, read_at, created_at"
USER_COLUMNS = "id, email, permissions, preferences, trading_limits, created_at, last_login_at"


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)  # asyncpg's own UUID type


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_default)


def json(body: Any, status: int = 200) -> Response:
    return Response(dumps(body), status_code=status, media_type="application/json")


def _record(row: asyncpg.Record) -> dict[str, Any]:
    return dict(row.items())


def create_app() -> FastAPI:
    database_url = os.environ["REF_DATABASE_URL"].replace("postgresql+asyncpg://", "postgresql://")
    secret = os.environ["REF_JWT_SECRET"]

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.redis = create_redis(os.environ["REF_REDIS_URL"])
        app.state.indicator_field = os.environ.get("REF_INDICATOR_FIELD", "")

        async def init(conn: asyncpg.Connection) -> None:
            for kind in ("json", "jsonb"):
                await conn.set_type_codec(
                    kind,
                    encoder=lambda v: orjson.dumps(v).decode(),
                    decoder=orjson.loads,
                    schema="pg_catalog",
                )

        app.state.pool = await asyncpg.create_pool(database_url, min_size=2, max_size=10, init=init)
        yield
        await app.state.pool.close()
        await app.state.redis.aclose()

    app = FastAPI(lifespan=lifespan)

    async def caller(request: Request) -> uuid.UUID:
        """The token's signature and claims, then its session in Redis (as shared.auth)."""
        token = request.headers.get("authorization", "").partition(" ")[2]
        try:
            claims = jwt.decode(token, secret, algorithms=["HS256"])
        except jwt.PyJWTError as exc:
            raise HTTPException(401) from exc
        owner = await request.app.state.redis.hget(f"user:session:{claims['sid']}", "userId")
        if owner != claims["sub"]:
            raise HTTPException(401)
        return uuid.UUID(owner)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "healthy"}

    @app.get("/market/ticker")
    async def ticker(request: Request, symbol: str, exchange: str) -> Response:
        raw = await request.app.state.redis.hgetall(f"market:tickers:{exchange}:{symbol}")

        def num(name: str) -> float | None:
            return float(raw[name]) if raw.get(name) else None

        stamp = datetime.fromtimestamp(int(raw["timestamp_ms"]) / 1000, UTC)
        return json(
            {
                "exchange": exchange,
                "symbol": symbol,
                "price": float(raw["price"]),
                "bid": num("bid"),
                "ask": num("ask"),
                "volume": num("volume"),
                "change": num("change"),
                "timestamp": stamp.isoformat().replace("+00:00", "Z"),
            }
        )

    @app.get("/market/ohlcv")
    async def ohlcv(
        request: Request, symbol: str, exchange: str, timeframe: str, limit: int
    ) -> Response:
        key = f"market:ohlcv:{exchange}:{symbol}:{timeframe}"
        async with request.app.state.redis.pipeline(transaction=False) as pipe:
            pipe.llen(key)
            pipe.lrange(key, -limit, -1)
            _length, rows = await pipe.execute()
        head = dumps({"exchange": exchange, "symbol": symbol, "timeframe": timeframe})
        body = head[:-1] + b',"candles":[' + ",".join(rows).encode() + b"]}"
        return Response(body, media_type="application/json")

    @app.get("/user/me")
    async def me(request: Request) -> Response:
        user_id = await caller(request)
        row = await request.app.state.pool.fetchrow(
            f"SELECT {USER_COLUMNS} FROM users WHERE id = $1",  # noqa: S608
            user_id,
        )
        return json(_record(row))

    @app.get("/trading/orders")
    async def orders(request: Request, limit: int = 100, offset: int = 0) -> Response:
        user_id = await caller(request)
        async with request.app.state.pool.acquire() as conn:
            total = await conn.fetchval("SELECT count(*) FROM orders WHERE user_id = $1", user_id)
            rows = await conn.fetch(
                f"SELECT {ORDER_COLUMNS} FROM orders WHERE user_id = $1 "  # noqa: S608
                "ORDER BY created_at DESC, id LIMIT $2 OFFSET $3",
                user_id,
                limit,
                offset,
            )
        # The paging envelope, as every list route answers (docs/api.md, "Paging").
        return json(
            {"items": [_record(r) for r in rows], "total": total, "limit": limit, "offset": offset}
        )

    @app.get("/trading/balances")
    async def balances(request: Request) -> Response:
        user_id = await caller(request)
        async with request.app.state.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO balances (id, user_id, bot_id, asset, free, locked) "
                "VALUES (gen_random_uuid(), $1, NULL, 'USDT', 10000, 0) ON CONFLICT DO NOTHING",
                user_id,
            )
            rows = await conn.fetch(
                "SELECT asset, free, locked, bot_id FROM balances WHERE user_id = $1 "
                "ORDER BY asset",
                user_id,
            )
            bots = await conn.fetch(
                "SELECT id, name, status FROM bots WHERE user_id = $1 ORDER BY created_at",
                user_id,
            )
        wallet = [
            {
                "asset": r["asset"],
                "free": r["free"],
                "locked": r["locked"],
                "total": r["free"] + r["locked"],
            }
            for r in rows
            if r["bot_id"] is None
        ]
        return json({"wallet": wallet, "bots": [_record(b) for b in bots]})

    @app.get("/notifications")
    async def notifications(request: Request, limit: int = 50, offset: int = 0) -> Response:
        user_id = await caller(request)
        async with request.app.state.pool.acquire() as conn:
            rows = await conn.fetch(
                f"SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE user_id = $1 "  # noqa: S608
                "ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3",
                user_id,
                limit,
                offset,
            )
            counts = await conn.fetchrow(
                "SELECT count(*), count(*) FILTER (WHERE read_at IS NULL) FROM notifications "
                "WHERE user_id = $1",
                user_id,
            )
        return json(
            {
                "items": [_record(r) for r in rows],
                "total": counts[0],
                "unread": counts[1],
                "limit": limit,
                "offset": offset,
            }
        )

    @app.get("/analysis/indicators")
    async def indicators(request: Request, symbol: str, indicators: str, exchange: str) -> Response:
        await caller(request)
        key = f"analysis:indicators:{exchange}:{symbol}:1h"
        field = request.app.state.indicator_field  # the hash field, as the service names it
        cached = await request.app.state.redis.hget(key, field)
        return Response(cached.encode(), media_type="application/json")

    @app.post("/trading/orders", status_code=201)
    async def place(request: Request) -> Response:
        user_id = await caller(request)
        body = orjson.loads(await request.body())
        return json(
            await place_paper_market(
                request.app.state.pool, request.app.state.redis, user_id, body
            ),
            201,
        )

    return app


async def place_paper_market(
    pool: asyncpg.Pool, redis: Any, user_id: uuid.UUID, body: dict[str, Any]
) -> dict[str, Any]:
    """A paper market order as the engine writes it (statement for statement, as its SQL
    log shows): the repeat check; one transaction inserting the order, locking and updating
    the position and both balances, the outbox rows and the trade; the events published and
    their outbox rows deleted; the Redis mirror of open positions and orders rewritten.
    Priced at the cached ticker (the engine prices on its cached order book)."""
    client_order_id = uuid.uuid4().hex
    exchange, symbol, side = body["exchange"], body["symbol"], body["side"]
    quantity = Decimal(body["quantity"])
    base, quote = symbol.split("/")
    buying = side == "buy"
    price = Decimal(await redis.hget(f"market:tickers:{exchange}:{symbol}", "price"))
    fee = (quantity * price * Decimal("0.001")).quantize(Decimal("0.00000001"))
    cost = (quantity * price).quantize(Decimal("0.00000001"))
    now = datetime.now(UTC)
    repeat = await pool.fetchrow(
        f"SELECT {ORDER_COLUMNS} FROM orders WHERE user_id = $1 AND client_order_id = $2",  # noqa: S608
        user_id,
        client_order_id,
    )
    assert repeat is None
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO balances (user_id, bot_id, asset, free, locked) "
            "VALUES ($1, NULL, $2, 1000000000, 0) ON CONFLICT DO NOTHING",
            user_id,
            quote,
        )
        order = await conn.fetchrow(
            "INSERT INTO orders (user_id, bot_id, client_order_id, exchange, symbol, side, type,"  # noqa: S608
            " mode, quantity, price, status) VALUES ($1, NULL, $2, $3, $4, $5, 'market', 'paper',"
            " $6, NULL, 'open') ON CONFLICT ON CONSTRAINT uq_orders_user_client_order_id "
            f"DO NOTHING RETURNING {ORDER_COLUMNS}",
            user_id,
            client_order_id,
            exchange,
            symbol,
            side,
            quantity,
        )
        position = await conn.fetchrow(
            "SELECT id, quantity, fees, cost_basis FROM positions WHERE user_id = $1 AND "
            "bot_id IS NULL AND exchange = $2 AND symbol = $3 AND mode = 'paper' AND "
            "status = 'open' FOR UPDATE",
            user_id,
            exchange,
            symbol,
        )
        balances = {}
        for asset in (quote, base):
            balances[asset] = await conn.fetchrow(
                "SELECT id, free FROM balances WHERE user_id = $1 AND bot_id IS NULL AND "
                "asset = $2 FOR UPDATE",
                user_id,
                asset,
            )
        event = dumps(
            {
                "orderId": str(order["id"]),
                "userId": str(user_id),
                "price": price,
                "quantity": quantity,
                "side": side,
                "symbol": symbol,
            }
        ).decode()
        seqs = await conn.fetch(
            "INSERT INTO event_outbox (stream, fields) VALUES ($1, $2::jsonb), ($3, $4::jsonb) "
            "RETURNING seq",
            "events:order.filled",
            event,
            "events:trade.executed",
            event,
        )
        signed = quantity if buying else -quantity
        await conn.execute(
            "UPDATE balances SET free = $1 WHERE id = $2",
            balances[quote]["free"] - (cost + fee if buying else fee - cost),
            balances[quote]["id"],
        )
        if balances[base] is not None:
            await conn.execute(
                "UPDATE balances SET free = $1 WHERE id = $2",
                balances[base]["free"] + signed,
                balances[base]["id"],
            )
        else:
            await conn.execute(
                "INSERT INTO balances (user_id, bot_id, asset, free, locked) "
                "VALUES ($1, NULL, $2, $3, 0)",
                user_id,
                base,
                signed,
            )
        await conn.execute(
            "UPDATE orders SET status = 'filled', filled_quantity = $1, average_price = $2, "
            "fee = $3, fee_currency = $4, updated_at = $5 WHERE id = $6",
            quantity,
            price,
            fee,
            quote,
            now,
            order["id"],
        )
        if position is None:
            await conn.execute(
                "INSERT INTO positions (user_id, bot_id, exchange, symbol, mode, quantity, "
                "average_entry_price, fees, cost_basis) VALUES ($1, NULL, $2, $3, 'paper', $4,"
                " $5, $6, $7)",
                user_id,
                exchange,
                symbol,
                signed,
                price,
                fee,
                cost,
            )
        else:
            await conn.execute(
                "UPDATE positions SET quantity = $1, fees = $2, cost_basis = $3, updated_at = $4"
                " WHERE id = $5",
                position["quantity"] + signed,
                position["fees"] + fee,
                position["cost_basis"] + (cost if buying else -cost),
                now,
                position["id"],
            )
        await conn.execute(
            "INSERT INTO trades (id, user_id, symbol, side, price, quantity, timestamp, "
            "strategy_name, pnl, order_id, bot_id, exchange, mode, fee, fee_currency, liquidity)"
            " VALUES (gen_random_uuid(), $1, $2, $3, $4, $5, $6, NULL, NULL, $7, NULL, $8, "
            "'paper', $9, $10, 'taker')",
            user_id,
            symbol,
            side.upper(),  # trades keep the engine's upper-case side (CHECK "side")
            price,
            quantity,
            now,
            order["id"],
            exchange,
            fee,
            quote,
        )
    async with redis.pipeline(transaction=False) as pipe:
        pipe.xadd("events:order.filled", {"payload": event}, maxlen=10000, approximate=True)
        pipe.xadd("events:trade.executed", {"payload": event}, maxlen=10000, approximate=True)
        await pipe.execute()
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL synchronous_commit TO OFF")
        await conn.execute(
            "DELETE FROM event_outbox WHERE seq = ANY($1::bigint[])", [r["seq"] for r in seqs]
        )
    async with pool.acquire() as conn:
        positions = await conn.fetch(
            "SELECT * FROM positions WHERE user_id = $1 AND status = 'open' "
            "ORDER BY opened_at DESC, id",
            user_id,
        )
        open_orders = await conn.fetch(
            f"SELECT {ORDER_COLUMNS} FROM orders WHERE user_id = $1 AND status IN "  # noqa: S608
            "('open', 'partially_filled') ORDER BY created_at",
            user_id,
        )
    async with redis.pipeline(transaction=True) as pipe:
        pipe.delete(f"trading:positions:{user_id}", f"trading:orders:{user_id}")
        if positions:
            pipe.hset(
                f"trading:positions:{user_id}",
                mapping={str(r["id"]): dumps(_record(r)) for r in positions},
            )
        if open_orders:
            pipe.hset(
                f"trading:orders:{user_id}",
                mapping={str(r["id"]): dumps(_record(r)) for r in open_orders},
            )
        await pipe.execute()
    result = _record(order)
    result.update(
        status="filled",
        filled_quantity=quantity,
        average_price=price,
        fee=fee,
        fee_currency=quote,
        updated_at=now,
    )
    return result

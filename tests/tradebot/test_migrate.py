"""Alembic migrations go up to head and back down to base on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import json

from sqlalchemy import text

from shared.db import create_engine
from tests.stores import create_database, drop_database
from tradebot.migrate import at_head, downgrade, upgrade, wait_for_head

ORIGINAL_TABLES = {"users", "trading_pairs", "ohlcv_data", "trades", "strategies"}


async def _tables(url: str) -> set[str]:
    engine = create_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            )
            return {row[0] for row in rows}
    finally:
        await engine.dispose()


async def _primary_key(url: str, table: str) -> list[str]:
    engine = create_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT a.attname FROM pg_index i JOIN pg_attribute a "
                    "ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
                    "WHERE i.indrelid = CAST(:t AS regclass) AND i.indisprimary"
                ),
                {"t": table},
            )
            return sorted(row[0] for row in rows)
    finally:
        await engine.dispose()


def test_migrations_upgrade_to_head_and_downgrade_to_base() -> None:
    url = create_database("tradebot_migr", migrate=False)
    try:
        upgrade(url)
        tables = asyncio.run(_tables(url))
        assert tables >= ORIGINAL_TABLES | {
            "orders",
            "bots",
            "positions",
            "exchange_keys",
            "backtests",
            "notifications",
            "webhooks",
            "processed_events",
        }
        assert asyncio.run(_primary_key(url, "ohlcv_data")) == sorted(
            ["timestamp", "symbol", "timeframe", "exchange"]
        )
        downgrade(url)
        assert asyncio.run(_tables(url)) == {"alembic_version"}
        upgrade(url)  # and up again: downgrade left nothing behind
        assert asyncio.run(_tables(url)) >= ORIGINAL_TABLES
    finally:
        drop_database(url)


def test_waiting_for_the_schema_ends_once_the_migration_has_reached_head() -> None:
    url = create_database("tradebot_wait", migrate=False)
    try:
        # What a service's init container does while the migration Job has not run yet.
        assert not at_head(url)
        assert not wait_for_head(url, timeout_s=0.2, interval_s=0.1)
        upgrade(url)
        assert wait_for_head(url, timeout_s=5)
        downgrade(url, "0001")  # an older schema is not head either
        assert not at_head(url)
    finally:
        drop_database(url)


def test_waiting_for_an_unreachable_database_times_out_instead_of_failing() -> None:
    assert not wait_for_head(
        "postgresql+asyncpg://postgres@127.0.0.1:1/none", timeout_s=0.3, interval_s=0.1
    )


async def _scalar(url: str, sql: str, **params: object) -> object:
    engine = create_engine(url, pool_size=1)
    try:
        async with engine.begin() as conn:
            return await conn.scalar(text(sql), params)
    finally:
        await engine.dispose()


def test_backtest_results_keep_their_content_across_0007() -> None:
    url = create_database("tradebot_migr", migrate=False)
    result = '{"metrics": {"n_trades": 2}, "trades": [], "equity_curve": [[1, 10.5]]}'
    try:
        upgrade(url, "0003")
        asyncio.run(
            _scalar(
                url,
                "INSERT INTO backtests (status, strategy, parameters, request, result) "
                "VALUES ('done', 'ma_crossover', '{}', '{}', CAST(:result AS jsonb)) RETURNING id",
                result=result,
            )
        )
        upgrade(url, "0007")
        text_, metrics = str(
            asyncio.run(_scalar(url, "SELECT result || '|' || metrics::text FROM backtests"))
        ).split("|")
        assert (json.loads(text_), json.loads(metrics)) == (json.loads(result), {"n_trades": 2})
        downgrade(url, "0003")
        back = asyncio.run(_scalar(url, "SELECT result -> 'equity_curve' FROM backtests"))
        assert back == [[1, 10.5]]
    finally:
        drop_database(url)

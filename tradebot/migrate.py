"""Run the Alembic migrations in ``migrations/`` (used by the CLI, the stack and tests)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import create_async_engine

import migrations
from shared.settings import normalise_database_url


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(database_url), revision)


def at_head(database_url: str) -> bool:
    """Is the database at this code's head revision? (False while it cannot be reached.)"""
    heads = set(ScriptDirectory.from_config(alembic_config(database_url)).get_heads())
    try:
        return asyncio.run(_current_heads(database_url)) == heads
    except (OSError, SQLAlchemyError):
        return False  # not reachable (yet): the caller asks again


async def _current_heads(database_url: str) -> set[str]:
    def read(connection: Connection) -> set[str]:
        return set(MigrationContext.configure(connection).get_current_heads())

    engine = create_async_engine(normalise_database_url(database_url), connect_args={"timeout": 5})
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(read)
    finally:
        await engine.dispose()


def wait_for_head(database_url: str, *, timeout_s: float, interval_s: float = 2.0) -> bool:
    """Wait until another process (the migration Job) has brought the database to head;
    migrates nothing. False if that took longer than ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not at_head(database_url):
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)
    return True

"""ohlcv_blocks: sealed weeks of candle history, one Arrow record batch each, for the bulk
route; backtests: the result as the JSON text it is served as, its metrics on their own,
a heartbeat of the worker running the job, and an index of the unfinished jobs.

Revision ID: 0007
Revises: 0004
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision = "0007"
down_revision = "0004"
branch_labels = None
depends_on = None


def _cheap_compression(table: str, column: str) -> None:
    """lz4 for a large column where the server has it, else no compression at all: the
    default (pglz) costs more CPU than the write itself (docs/operations.md)."""
    op.execute(
        f"""
        DO $$
        BEGIN
            ALTER TABLE {table} ALTER COLUMN {column} SET COMPRESSION lz4;
        EXCEPTION WHEN feature_not_supported THEN
            ALTER TABLE {table} ALTER COLUMN {column} SET STORAGE EXTERNAL;
        END
        $$
        """
    )


def upgrade() -> None:
    op.create_table(
        "ohlcv_blocks",
        sa.Column("exchange", sa.String(50), nullable=False),
        sa.Column("symbol", sa.String(20), nullable=False),
        sa.Column("timeframe", sa.String(10), nullable=False),
        # Monday 00:00 UTC: the block holds the candles opening in [week, week + 7 days).
        sa.Column("week", sa.DateTime(timezone=True), nullable=False),
        sa.Column("candles", sa.Integer, nullable=False),
        # One Arrow IPC record-batch message (shared/candle_arrow.py CANDLE_SCHEMA).
        sa.Column("batch", sa.LargeBinary, nullable=False),
        sa.Column("sealed_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("exchange", "symbol", "timeframe", "week", name="pk_ohlcv_blocks"),
    )
    _cheap_compression("ohlcv_blocks", "batch")

    op.add_column("backtests", sa.Column("metrics", pg.JSONB, nullable=True))
    op.add_column("backtests", sa.Column("heartbeat_at", sa.DateTime(timezone=True)))
    # The recovery sweep's look for lost jobs: only the unfinished ones, however many done.
    op.create_index(
        "ix_backtests_unfinished",
        "backtests",
        ["created_at"],
        postgresql_where=sa.text("status IN ('queued', 'running')"),
    )
    op.execute("UPDATE backtests SET metrics = result -> 'metrics' WHERE result IS NOT NULL")
    op.alter_column(
        "backtests", "result", type_=sa.Text, postgresql_using="result::text", nullable=True
    )
    _cheap_compression("backtests", "result")


def downgrade() -> None:
    op.alter_column(
        "backtests", "result", type_=pg.JSONB, postgresql_using="result::jsonb", nullable=True
    )
    op.execute("ALTER TABLE backtests ALTER COLUMN result SET STORAGE EXTENDED")
    op.execute("ALTER TABLE backtests ALTER COLUMN result SET COMPRESSION DEFAULT")
    op.drop_index("ix_backtests_unfinished", table_name="backtests")
    op.drop_column("backtests", "heartbeat_at")
    op.drop_column("backtests", "metrics")
    op.drop_table("ohlcv_blocks")

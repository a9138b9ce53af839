"""Portfolios (docs/trading.md, portfolio backtests): backtests.pairs, the pairs of a
portfolio backtest in their priority order (null for one pair), so the list of a user's
backtests shows them without reading the stored request.

Revision ID: 0009
Revises: 0003
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0009"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("backtests", sa.Column("pairs", JSONB, nullable=True))


def downgrade() -> None:
    op.drop_column("backtests", "pairs")

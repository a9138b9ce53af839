"""Portfolios (docs/trading.md, portfolio backtests and portfolio bots):

- backtests.pairs: the pairs of a portfolio backtest in their priority order (null for
  one pair), so the list of a user's backtests shows them without reading the request;
- bots.pairs, bots.max_open_positions, bots.stake_amount: a bot over a list of pairs from
  one capital (null for a bot of one symbol, which ``bots.symbol`` names; a portfolio
  bot's ``symbol`` is its first pair).

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
    op.add_column("bots", sa.Column("pairs", JSONB, nullable=True))
    op.add_column("bots", sa.Column("max_open_positions", sa.Integer, nullable=True))
    op.add_column("bots", sa.Column("stake_amount", sa.Numeric(20, 8), nullable=True))
    op.create_check_constraint(
        "portfolio_settings",
        "bots",
        "(pairs IS NULL AND max_open_positions IS NULL AND stake_amount IS NULL)"
        " OR (pairs IS NOT NULL AND max_open_positions >= 1)",
    )


def downgrade() -> None:
    op.drop_constraint("portfolio_settings", "bots", type_="check")
    op.drop_column("bots", "stake_amount")
    op.drop_column("bots", "max_open_positions")
    op.drop_column("bots", "pairs")
    op.drop_column("backtests", "pairs")

"""bots.paused_until: a bot paused by its daily loss limit resumes at the next UTC day;
orders.type 'stop': a live bot's stop order resting on the venue.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("bots", sa.Column("paused_until", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_bots_paused_until",
        "bots",
        ["paused_until"],
        postgresql_where=sa.text("status = 'paused' AND paused_until IS NOT NULL"),
    )
    op.drop_constraint("type", "orders", type_="check")
    op.create_check_constraint("type", "orders", "type IN ('market', 'limit', 'stop')")


def downgrade() -> None:
    op.execute("UPDATE orders SET type = 'market' WHERE type = 'stop'")
    op.drop_constraint("type", "orders", type_="check")
    op.create_check_constraint("type", "orders", "type IN ('market', 'limit')")
    op.drop_index("ix_bots_paused_until", table_name="bots")
    op.drop_column("bots", "paused_until")

"""optimisations and optimisation_trials: strategy optimisation runs (analysis service).

The Optuna studies themselves live in a journal on Redis while they run (docs/trading.md,
optimisation); these tables keep what the API shows: each run's request, progress, result
and, once it is over, its trial table.

Revision ID: 0004
Revises: 0009
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision = "0004"
down_revision = "0009"
branch_labels = None
depends_on = None

UUID = pg.UUID(as_uuid=True)


def upgrade() -> None:
    op.create_table(
        "optimisations",
        sa.Column("id", UUID, primary_key=True, server_default=sa.text("gen_random_uuid()")),
        sa.Column(
            "user_id", UUID, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False,
            index=True,
        ),
        sa.Column("status", sa.String(10), nullable=False, server_default="queued"),
        sa.Column("strategy", sa.String(100), nullable=False),
        sa.Column("objective", sa.String(20), nullable=False),
        sa.Column("sampler", sa.String(10), nullable=False),
        sa.Column("request", pg.JSONB, nullable=False),
        sa.Column("space", pg.JSONB, nullable=False),
        sa.Column("exchange", sa.String(50), nullable=True),
        sa.Column("symbol", sa.String(20), nullable=True),
        sa.Column("timeframe", sa.String(10), nullable=True),
        sa.Column("start_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("trials_total", sa.Integer, nullable=True),
        sa.Column("trials_done", sa.Integer, nullable=False, server_default="0"),
        sa.Column("progress", sa.Float, nullable=False, server_default="0"),
        sa.Column("fold", sa.Integer, nullable=True),
        sa.Column("best_value", sa.Float, nullable=True),
        sa.Column("best_params", pg.JSONB, nullable=True),
        sa.Column("result", pg.JSONB, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'done', 'failed', 'cancelled')", name="status"
        ),
    )
    # What every replica's worker loop polls: the runs still to be worked on.
    op.create_index(
        "ix_optimisations_active",
        "optimisations",
        ["created_at"],
        postgresql_where=sa.text("status IN ('queued', 'running')"),
    )
    op.create_table(
        "optimisation_trials",
        sa.Column(
            "optimisation_id", UUID, sa.ForeignKey("optimisations.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("fold", sa.Integer, primary_key=True),
        sa.Column("number", sa.Integer, primary_key=True),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("value", sa.Float, nullable=True),
        sa.Column("params", pg.JSONB, nullable=False),
        sa.Column("metrics", pg.JSONB, nullable=True),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("duration_s", sa.Float, nullable=True),
        sa.CheckConstraint("state IN ('complete', 'failed', 'error', 'lost')", name="state"),
    )


def downgrade() -> None:
    op.drop_table("optimisation_trials")
    op.drop_index("ix_optimisations_active", table_name="optimisations")
    op.drop_table("optimisations")

"""Initial schema: the original design's five tables plus what the features need.

Sections by owning service; each service's ORM models mirror its section. Times are
``timestamptz`` (UTC) rather than the original ``timestamp``; money is NUMERIC(20,8).

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

MONEY = sa.Numeric(20, 8)
UUID = pg.UUID(as_uuid=True)


def _id() -> sa.Column:
    return sa.Column("id", UUID, primary_key=True, server_default=sa.text("gen_random_uuid()"))


def _ts(name: str, *, nullable: bool = False, default: bool = True) -> sa.Column:
    return sa.Column(
        name, sa.DateTime(timezone=True), nullable=nullable,
        server_default=sa.func.now() if default else None,
    )


def _user_fk() -> sa.Column:
    return sa.Column(
        "user_id", UUID, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )


def upgrade() -> None:
    # gen_random_uuid() is built in from PostgreSQL 13 on; no extension needed.

    # --- shared: event outbox and consumer idempotency -----------------------------------
    op.create_table(
        "event_outbox",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("stream", sa.String(200), nullable=False),
        sa.Column("fields", pg.JSONB, nullable=False),
        _ts("created_at"),
    )
    op.create_index("ix_event_outbox_created_at", "event_outbox", ["created_at"])
    op.create_table(
        "processed_events",
        sa.Column("consumer", sa.String(100), primary_key=True),
        sa.Column("event_id", UUID, primary_key=True),
        _ts("processed_at"),
    )

    # --- user service --------------------------------------------------------------------
    op.create_table(
        "users",
        _id(),
        sa.Column("email", sa.String(255), nullable=False, unique=True),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("preferences", pg.JSONB, nullable=True, server_default=sa.text("'{}'::jsonb")),
        sa.Column("trading_limits", pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column(
            "permissions", pg.JSONB, nullable=False,
            server_default=sa.text("""'["trade:paper"]'::jsonb"""),
        ),
        sa.Column("is_active", sa.Boolean, nullable=False, server_default=sa.true()),
        _ts("created_at", nullable=True),
        _ts("updated_at"),
        _ts("last_login_at", nullable=True, default=False),
    )
    op.create_table(
        "exchange_keys",
        _id(),
        _user_fk(),
        sa.Column("exchange", sa.String(50), nullable=False),
        sa.Column("label", sa.String(100), nullable=False, server_default="default"),
        sa.Column("api_key_encrypted", sa.Text, nullable=False),
        sa.Column("api_secret_encrypted", sa.Text, nullable=False),
        sa.Column("passphrase_encrypted", sa.Text, nullable=True),
        sa.Column("api_key_last4", sa.String(4), nullable=False),
        _ts("created_at"),
        sa.UniqueConstraint("user_id", "exchange", "label", name="uq_exchange_keys_user_exchange_label"),
    )

    # --- market service --------------------------------------------------------------------
    op.create_table(
        "trading_pairs",
        sa.Column("symbol", sa.String(20), nullable=False),
        sa.Column("base", sa.String(10), nullable=False),
        sa.Column("exchange", sa.String(50), nullable=False),
        sa.Column("quote", sa.String(10), nullable=True),
        sa.Column("active", sa.Boolean, server_default=sa.true()),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("symbol", "base", "exchange", name="pk_trading_pairs"),
    )
    op.create_index("ix_trading_pairs_exchange", "trading_pairs", ["exchange", "active"])
    op.create_table(
        "ohlcv_data",
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("exchange", sa.String(50), nullable=False),
        sa.Column("symbol", sa.String(20), nullable=False),
        sa.Column("timeframe", sa.String(10), nullable=False),
        sa.Column("open", MONEY, nullable=False),
        sa.Column("high", MONEY, nullable=False),
        sa.Column("low", MONEY, nullable=False),
        sa.Column("close", MONEY, nullable=False),
        sa.Column("volume", MONEY, nullable=False),
        # Key leads with the lookup prefix so range scans by (exchange, symbol, timeframe) use it.
        sa.PrimaryKeyConstraint("exchange", "symbol", "timeframe", "timestamp", name="pk_ohlcv_data"),
    )

    # --- trading engine ------------------------------------------------------------------
    op.create_table(
        "strategies",
        _id(),
        _user_fk(),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("strategy", sa.String(100), nullable=False, server_default="ma_crossover"),
        sa.Column("parameters", pg.JSONB, nullable=False),
        sa.Column("active", sa.Boolean, server_default=sa.false()),
        _ts("created_at", nullable=True),
        _ts("updated_at"),
    )
    op.create_table(
        "bots",
        _id(),
        _user_fk(),
        sa.Column(
            "strategy_id", UUID, sa.ForeignKey("strategies.id", ondelete="RESTRICT"),
            nullable=False, index=True,
        ),
        sa.Column("name", sa.String(100), nullable=True),
        sa.Column("exchange", sa.String(50), nullable=False),
        sa.Column("symbol", sa.String(20), nullable=False),
        sa.Column("timeframe", sa.String(10), nullable=False),
        sa.Column("mode", sa.String(5), nullable=False, server_default="paper"),
        sa.Column("status", sa.String(10), nullable=False, server_default="stopped"),
        sa.Column("capital", MONEY, nullable=False),
        sa.Column("risk", pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("last_signal", pg.JSONB, nullable=True),
        sa.Column("last_candle_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        # Fraction of the bot's equity committed on an entry (docs/trading.md, bots; default 1).
        sa.Column("position_size", MONEY, nullable=False, server_default="1"),
        _ts("created_at"),
        _ts("updated_at"),
        sa.CheckConstraint("mode IN ('paper', 'live')", name="mode"),
        sa.CheckConstraint("status IN ('stopped', 'running', 'paused', 'error')", name="status"),
    )
    op.create_index("ix_bots_status", "bots", ["status"])
    op.create_table(
        "balances",
        _id(),
        _user_fk(),
        # NULL bot_id is the user's paper wallet; a bot's rows hold the capital allotted to it.
        sa.Column("bot_id", UUID, sa.ForeignKey("bots.id", ondelete="CASCADE"), nullable=True),
        sa.Column("asset", sa.String(20), nullable=False),
        sa.Column("free", MONEY, nullable=False, server_default="0"),
        sa.Column("locked", MONEY, nullable=False, server_default="0"),
        _ts("updated_at"),
        sa.CheckConstraint("free >= 0 AND locked >= 0", name="no_overdraft"),
    )
    op.create_index(
        "uq_balances_owner_asset", "balances",
        ["user_id", sa.text("coalesce(bot_id, '00000000-0000-0000-0000-000000000000'::uuid)"), "asset"],
        unique=True,
    )
    op.create_table(
        "orders",
        _id(),
        _user_fk(),
        sa.Column("bot_id", UUID, sa.ForeignKey("bots.id", ondelete="SET NULL"), nullable=True, index=True),
        sa.Column("client_order_id", sa.String(64), nullable=False),
        sa.Column("exchange_order_id", sa.String(100), nullable=True),
        sa.Column("exchange", sa.String(50), nullable=False),
        sa.Column("symbol", sa.String(20), nullable=False),
        sa.Column("side", sa.String(4), nullable=False),
        sa.Column("type", sa.String(10), nullable=False),
        sa.Column("mode", sa.String(5), nullable=False),
        sa.Column("quantity", MONEY, nullable=False),
        sa.Column("price", MONEY, nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("filled_quantity", MONEY, nullable=False, server_default="0"),
        sa.Column("average_price", MONEY, nullable=True),
        sa.Column("fee", MONEY, nullable=False, server_default="0"),
        sa.Column("fee_currency", sa.String(20), nullable=True),
        # The fee rate a resting paper order reserved funds with (and pays when it fills).
        sa.Column("fee_rate", MONEY, nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        sa.UniqueConstraint("user_id", "client_order_id", name="uq_orders_user_client_order_id"),
        sa.CheckConstraint("side IN ('buy', 'sell')", name="side"),
        sa.CheckConstraint("type IN ('market', 'limit')", name="type"),
        sa.CheckConstraint(
            "status IN ('open', 'filled', 'partially_filled', 'canceled', 'rejected')", name="status"
        ),
    )
    op.create_index("ix_orders_open", "orders", ["status", "mode"], postgresql_where=sa.text("status IN ('open', 'partially_filled')"))
    op.create_table(
        "trades",
        _id(),
        _user_fk(),
        sa.Column("symbol", sa.String(20), nullable=False),
        sa.Column("side", sa.String(4), nullable=False),
        sa.Column("price", MONEY, nullable=False),
        sa.Column("quantity", MONEY, nullable=False),
        _ts("timestamp"),
        sa.Column("strategy_name", sa.String(100), nullable=True),
        sa.Column("pnl", MONEY, nullable=True),
        sa.Column("order_id", UUID, sa.ForeignKey("orders.id", ondelete="CASCADE"), nullable=True, index=True),
        sa.Column("bot_id", UUID, sa.ForeignKey("bots.id", ondelete="SET NULL"), nullable=True, index=True),
        sa.Column("exchange", sa.String(50), nullable=False, server_default="sim"),
        sa.Column("mode", sa.String(5), nullable=False, server_default="paper"),
        sa.Column("fee", MONEY, nullable=False, server_default="0"),
        sa.Column("fee_currency", sa.String(20), nullable=True),
        sa.Column("liquidity", sa.String(5), nullable=True),
        sa.CheckConstraint("side IN ('BUY', 'SELL')", name="side"),
    )
    op.create_index("ix_trades_user_timestamp", "trades", ["user_id", "timestamp"])
    op.create_table(
        "positions",
        _id(),
        _user_fk(),
        sa.Column("bot_id", UUID, sa.ForeignKey("bots.id", ondelete="SET NULL"), nullable=True, index=True),
        sa.Column("exchange", sa.String(50), nullable=False),
        sa.Column("symbol", sa.String(20), nullable=False),
        sa.Column("mode", sa.String(5), nullable=False),
        sa.Column("quantity", MONEY, nullable=False, server_default="0"),
        sa.Column("average_entry_price", MONEY, nullable=False, server_default="0"),
        sa.Column("realized_pnl", MONEY, nullable=False, server_default="0"),
        sa.Column("fees", MONEY, nullable=False, server_default="0"),
        sa.Column("highest_price", MONEY, nullable=True),
        # Quote spent on the open quantity, entry fees included: realised PnL of a reducing
        # fill is its proceeds minus its share of this, so balances and PnL add up exactly.
        sa.Column("cost_basis", MONEY, nullable=False, server_default="0"),
        sa.Column("status", sa.String(6), nullable=False, server_default="open"),
        _ts("opened_at"),
        _ts("updated_at"),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index(
        "uq_positions_open", "positions",
        ["user_id", sa.text("coalesce(bot_id, '00000000-0000-0000-0000-000000000000'::uuid)"),
         "exchange", "symbol", "mode"],
        unique=True, postgresql_where=sa.text("status = 'open'"),
    )

    # --- analysis service ----------------------------------------------------------------
    op.create_table(
        "backtests",
        _id(),
        sa.Column("user_id", UUID, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=True, index=True),
        sa.Column("status", sa.String(10), nullable=False, server_default="queued"),
        sa.Column("progress", sa.Float, nullable=False, server_default="0"),
        sa.Column("strategy", sa.String(100), nullable=False),
        sa.Column("parameters", pg.JSONB, nullable=False),
        sa.Column("request", pg.JSONB, nullable=False),
        sa.Column("exchange", sa.String(50), nullable=True),
        sa.Column("symbol", sa.String(20), nullable=True),
        sa.Column("timeframe", sa.String(10), nullable=True),
        sa.Column("start_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("result", pg.JSONB, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        _ts("created_at"),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('queued', 'running', 'done', 'failed')", name="status"),
    )
    op.create_table(
        "performance_trades",
        # The analysis service's own copy of trade.executed events (it never reads `trades`).
        sa.Column("event_id", UUID, primary_key=True),
        sa.Column("trade_id", UUID, nullable=False, unique=True),
        sa.Column("user_id", UUID, nullable=False, index=True),
        sa.Column("bot_id", UUID, nullable=True, index=True),
        sa.Column("exchange", sa.String(50), nullable=False),
        sa.Column("symbol", sa.String(20), nullable=False),
        sa.Column("side", sa.String(4), nullable=False),
        sa.Column("price", MONEY, nullable=False),
        sa.Column("quantity", MONEY, nullable=False),
        sa.Column("fee", MONEY, nullable=False),
        sa.Column("pnl", MONEY, nullable=True),
        sa.Column("executed_at", sa.DateTime(timezone=True), nullable=False),
    )

    # --- notification service -----------------------------------------------------------
    op.create_table(
        "notifications",
        _id(),
        _user_fk(),
        sa.Column("event_id", UUID, nullable=False),
        sa.Column("kind", sa.String(50), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("data", pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
        _ts("created_at"),
        sa.UniqueConstraint("user_id", "event_id", name="uq_notifications_user_event"),
    )
    op.create_index("ix_notifications_user_created", "notifications", ["user_id", "created_at"])
    op.create_index(
        "ix_notifications_user_unread", "notifications", ["user_id", "created_at"],
        postgresql_where=sa.text("read_at IS NULL"),
    )
    op.create_table(
        "webhooks",
        _id(),
        _user_fk(),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("secret", sa.String(200), nullable=False),
        sa.Column("kinds", pg.JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
        _ts("created_at"),
    )
    op.create_table(
        "webhook_deliveries",
        _id(),
        sa.Column("webhook_id", UUID, sa.ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column(
            "notification_id", UUID, sa.ForeignKey("notifications.id", ondelete="CASCADE"),
            nullable=False, index=True,
        ),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("status_code", sa.Integer, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("succeeded", sa.Boolean, nullable=False),
        sa.Column("duration_ms", sa.Integer, nullable=True),
        _ts("attempted_at"),
    )
    # One row per (webhook, notification) still to deliver: the durable retry state, so a
    # restart never loses a pending delivery (webhook_deliveries logs every attempt).
    op.create_table(
        "webhook_dispatches",
        _id(),
        sa.Column("webhook_id", UUID, sa.ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False),
        sa.Column(
            "notification_id", UUID, sa.ForeignKey("notifications.id", ondelete="CASCADE"),
            nullable=False, index=True,
        ),
        sa.Column("state", sa.String(20), nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("last_error", sa.Text, nullable=True),
        _ts("created_at"),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("webhook_id", "notification_id", name="uq_webhook_dispatches_webhook_notification"),
        sa.CheckConstraint(
            "state IN ('pending', 'delivered', 'failed', 'canceled')", name="ck_webhook_dispatches_state"
        ),
    )
    op.create_index(
        "ix_webhook_dispatches_due", "webhook_dispatches", ["next_attempt_at"],
        postgresql_where=sa.text("state = 'pending'"),
    )


def downgrade() -> None:
    for table in (
        "webhook_dispatches", "webhook_deliveries", "webhooks", "notifications",
        "performance_trades", "backtests",
        "positions", "trades", "orders", "balances", "bots", "strategies",
        "ohlcv_data", "trading_pairs",
        "exchange_keys", "users",
        "processed_events", "event_outbox",
    ):
        op.drop_table(table)

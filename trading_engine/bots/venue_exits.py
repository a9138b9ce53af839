"""A live bot's stop resting on the venue (docs/trading.md, live bots), at each closed
candle: the venue's fill booked, the watched take profit, the stop moved to the level for
the next candle. Exchanges are chosen by :mod:`trading_engine.brokers.exit_support`."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from shared.exits import REASONS, stop_level
from trading_engine.models import Bot, Order, Position
from trading_engine.money import ZERO, money
from trading_engine.orders import exit_orders
from trading_engine.orders.venue import normalise_price, normalise_quantity
from trading_engine.risk.events import stage_risk_event
from trading_engine.risk.rules import PositionView, RiskKind, exit_rule, peak_of

if TYPE_CHECKING:
    from trading_engine.bots.adapter import Adapter, TradeResult


async def on_candle(
    adapter: Adapter,
    session: AsyncSession,
    bot: Bot,
    position: Position | None,
    candle: list[float],
) -> TradeResult | None:
    """A live bot whose stop rests on the venue, at a closed candle: book the stop if
    the venue filled it; else the take profit (watched) or move the stop to the level
    for the next candle (the peak now includes this candle's high)."""
    if position is None or position.status != "open" or position.quantity <= 0:
        return None
    credentials = await adapter.orders.users.credentials(adapter.user_id, adapter.exchange)
    rules = await adapter.orders.live.rules(credentials, adapter.symbol)
    resting = await exit_orders.resting_stop(adapter.orders, adapter.bot_id)
    if resting is not None:
        resting = await exit_orders.refresh(
            adapter.orders, resting, credentials, rules, adapter.strategy.name
        )
    await session.refresh(position)  # the stop's fill is booked in its own transaction
    if position.status != "open" or position.quantity <= 0:
        stop = resting or await exit_orders.last_filled_stop(adapter.orders, adapter.bot_id)
        reason = (stop.reason if stop is not None else None) or "stop_loss"
        detail = f"the venue's stop order filled at {stop.average_price if stop else '?'}"
        stage_risk_event(session, adapter.user_id, adapter.bot_id, reason, detail, "closed")
        return adapter.result_of(stop, reason)
    view = PositionView(position.quantity, position.average_entry_price, position.highest_price)
    _, open_, high, low, _, _ = candle
    watched = adapter.risk.model_copy(update={"stop_loss": None, "trailing_stop": None})
    action = exit_rule(
        watched,
        view,
        open_=Decimal(str(open_)),
        high=Decimal(str(high)),
        low=Decimal(str(low)),
    )
    if action.kind is RiskKind.CLOSE:
        if resting is not None:
            await exit_orders.cancel(adapter.orders, resting, credentials)
        result = await adapter.close_by_rule(session, bot, action, candle)
        stage_risk_event(
            session, adapter.user_id, adapter.bot_id, action.rule, action.detail, "closed"
        )
        return result
    peak = max(peak_of(view), Decimal(str(high)))
    position.highest_price = money(peak)
    await move_stop(
        adapter,
        bot,
        resting,
        credentials,
        rules,
        position.quantity,
        view.average_entry_price,
        peak,
        candle,
    )
    return None


async def move_stop(
    adapter: Adapter,
    bot: Bot,
    resting: Order | None,
    credentials: Any,
    rules: Any,
    quantity: Decimal,
    entry: Decimal,
    peak: Decimal,
    candle: list[float],
) -> None:
    """Rest the stop at the level the rule gives for the next candle."""
    reason, level = stop_level(
        entry, peak, adapter.risk.stop_loss or ZERO, adapter.risk.trailing_stop or ZERO
    )
    level = normalise_price(level, rules)
    quantity = normalise_quantity(quantity, rules)
    if resting is not None and resting.price == level and resting.quantity == quantity:
        return
    if resting is not None:
        await exit_orders.cancel(adapter.orders, resting, credentials)
    await exit_orders.place(
        adapter.orders,
        credentials,
        user_id=adapter.user_id,
        bot_id=adapter.bot_id,
        exchange=adapter.exchange,
        symbol=adapter.symbol,
        quantity=quantity,
        level=level,
        reason=REASONS[reason],
        client_order_id=f"bot-{bot.id.hex[:16]}-{int(candle[0])}-stop",
    )


async def rest_entry_stop(
    adapter: Adapter, bot: Bot, bought: TradeResult, candle: list[float]
) -> None:
    """Right after a live entry fills, its stop rests on the venue (the backtest
    checks the entry candle too)."""
    if bought.filled_quantity <= 0 or bought.average_price is None:
        return
    credentials = await adapter.orders.users.credentials(adapter.user_id, adapter.exchange)
    rules = await adapter.orders.live.rules(credentials, adapter.symbol)
    entry = bought.average_price
    await move_stop(
        adapter, bot, None, credentials, rules, bought.filled_quantity, entry, entry, candle
    )

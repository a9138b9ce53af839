"""Bots: create (capital moved from the paper wallet, no overdraft), update, delete
(capital back), start, stop. Running them is :mod:`trading_engine.bots.runner`'s job."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from shared.auth import Principal
from shared.errors import Conflict, Forbidden, NotFound
from shared.resample import TimeframeError, check_higher
from shared.strategies import create_strategy
from shared.timeframes import TIMEFRAME_MS
from shared.validation import invalid_input
from trading_engine.bots import repository
from trading_engine.bots.schemas import BotCreate, BotRead, BotUpdate
from trading_engine.ledger import repository as ledger_repository
from trading_engine.ledger.service import InsufficientFunds
from trading_engine.market_client import MarketClient
from trading_engine.models import Bot, Strategy
from trading_engine.money import ZERO, as_text, money
from trading_engine.orders.schemas import PositionRead
from trading_engine.orders.service import OrderService
from trading_engine.strategies import repository as strategy_repository
from trading_engine.strategies.service import build

SUBSCRIPTIONS_KEY = "subscriptions:candles"  # the candle watch registry (docs/events.md)
# The latest closed candle of each market, as the engines' intake recorded it.
LATEST_CANDLES_KEY = "trading:candles:latest"


def watch_member(bot: Bot) -> str:
    return f"{bot.exchange}|{bot.symbol}|{bot.timeframe}"


async def latest_candle_at(redis: Redis, bot: Bot) -> datetime | None:
    """When the latest closed candle of the bot's market seen by the engines opened."""
    raw = await redis.hget(LATEST_CANDLES_KEY, watch_member(bot))
    if raw is None:
        return None
    return datetime.fromtimestamp(json.loads(raw)["candle"][0] / 1000, UTC)


async def create(
    session: AsyncSession,
    principal: Principal,
    body: BotCreate,
    orders: OrderService,
    market: MarketClient,
) -> Bot:
    """A stopped bot; a paper bot's capital leaves the wallet for the bot's own balance."""
    strategy = (
        None
        if body.strategy_id is None  # an optimisation's: bots/from_optimisation.py saved it
        else await strategy_repository.get(session, principal.user_id, body.strategy_id)
    )
    if strategy is None:
        raise NotFound("No such strategy.")
    built = build(strategy.strategy, strategy.parameters)
    for timeframe in built.higher_timeframes():
        try:
            check_higher(TIMEFRAME_MS.get(body.timeframe, 60_000), timeframe)
        except TimeframeError as exc:
            raise invalid_input(
                ["body", "timeframe"], f"The strategy cannot run on {body.timeframe}: {exc}."
            ) from exc
    if body.pairs and built.higher_timeframes():
        # Portfolio bots load one timeframe per pair (docs/trading.md, portfolio bots).
        raise invalid_input(
            ["body", "pairs"],
            "A bot over a pair list cannot run a strategy that reads higher timeframes "
            f"({', '.join(built.higher_timeframes())}); run one bot per pair.",
        )
    if body.mode == "live" and not principal.can("trade:live"):
        raise Forbidden("Live bots need the 'trade:live' permission.")
    assert body.symbol is not None  # noqa: S101 - the schema sets it (a portfolio's first pair)
    rules = await market.rules(body.exchange, body.symbol) if body.mode == "paper" else None
    bases = [] if rules is None else [rules.base]
    for pair in (body.pairs or [])[1:]:  # every pair must trade on the exchange
        bases.append((await market.rules(body.exchange, pair)).base)
    bot = await repository.add(
        session,
        Bot(
            user_id=principal.user_id,
            strategy_id=strategy.id,
            name=body.name,
            exchange=body.exchange,
            symbol=body.symbol,
            timeframe=body.timeframe,
            mode=body.mode,
            status="stopped",
            capital=body.capital,
            position_size=body.position_size or Decimal(1),  # ignored with stake_amount
            risk=body.risk.model_dump(mode="json", exclude_none=True),
            pairs=body.pairs,
            max_open_positions=body.max_open_positions,
            stake_amount=body.stake_amount,
        ),
    )
    if rules is not None:
        await orders.ensure_wallet(session, principal.user_id)
        wallet = await ledger_repository.lock_balance(session, principal.user_id, None, rules.quote)
        if wallet.free < body.capital:
            raise InsufficientFunds(
                f"The paper wallet has {as_text(wallet.free)} {rules.quote} free; the bot "
                f"needs {as_text(body.capital)}."
            )
        wallet.free -= body.capital
        own = await ledger_repository.lock_balance(session, principal.user_id, bot.id, rules.quote)
        own.free += body.capital
        # The base assets' rows too, so the bot's first fill finds its rows to lock.
        for base in bases:
            await ledger_repository.ensure_balance(session, principal.user_id, bot.id, base)
    await session.flush()
    return bot


async def update(session: AsyncSession, principal: Principal, bot: Bot, body: BotUpdate) -> Bot:
    locked = await repository.get(session, principal.user_id, bot.id, lock=True)
    assert locked is not None  # noqa: S101 - the route resolved it
    if body.strategy_id is not None:
        if locked.status == "running":
            raise Conflict("Stop the bot before changing its strategy.")
        strategy = await strategy_repository.get(session, principal.user_id, body.strategy_id)
        if strategy is None:
            raise NotFound("No such strategy.")
        build(strategy.strategy, strategy.parameters)
        locked.strategy_id = strategy.id
    if body.name is not None:
        locked.name = body.name
    if body.risk is not None:
        locked.risk = body.risk.model_dump(mode="json", exclude_none=True)
    if body.position_size is not None:
        locked.position_size = body.position_size
    locked.updated_at = datetime.now(UTC)
    await session.flush()
    return locked


async def delete(session: AsyncSession, principal: Principal, bot: Bot, redis: Redis) -> None:
    """Delete a stopped bot; its quote balance goes back to the paper wallet."""
    locked = await repository.get(session, principal.user_id, bot.id, lock=True)
    assert locked is not None  # noqa: S101
    if locked.status == "running":
        raise Conflict("Stop the bot before deleting it.")
    held = [p for p in await repository.open_positions(session, locked) if p.quantity > 0]
    if held:
        raise Conflict(
            "The bot holds an open position; close it first "
            f"(POST /trading/bots/{locked.id}/close)."
        )
    for balance in await ledger_repository.balances_of(session, principal.user_id, locked.id):
        amount = balance.free + balance.locked
        if amount > 0:
            wallet = await ledger_repository.lock_balance(
                session, principal.user_id, None, balance.asset
            )
            wallet.free += amount
    await repository.delete(session, locked)


async def set_running(
    session: AsyncSession,
    principal: Principal,
    bot: Bot,
    *,
    running: bool,
    latest_candle_at: datetime | None = None,
) -> Bot:
    """Start or stop: the row is locked, so a candle being processed either commits first
    or sees the new status (a stop mid-candle never leaves half a trade).

    A started bot acts on the candles that close from then on: ``last_candle_at`` moves
    up to the market's latest closed candle, so the candles of the time it was stopped
    are not taken for missed ones and replayed."""
    locked = await repository.get(session, principal.user_id, bot.id, lock=True)
    assert locked is not None  # noqa: S101
    if running:
        strategy = await session.get(Strategy, locked.strategy_id)
        assert strategy is not None  # noqa: S101 - foreign key
        build(strategy.strategy, strategy.parameters)
        if locked.mode == "live" and not principal.can("trade:live"):
            raise Forbidden("Live bots need the 'trade:live' permission.")
        locked.status = "running"
        locked.error = None
        locked.paused_until = None
        if latest_candle_at is not None and (
            locked.last_candle_at is None or locked.last_candle_at < latest_candle_at
        ):
            locked.last_candle_at = latest_candle_at
    else:
        locked.status = "stopped"
    locked.updated_at = datetime.now(UTC)
    await session.flush()
    return locked


def _reads(strategy: str, parameters: dict[str, Any]) -> set[str]:
    """The higher timeframes a saved strategy reads (none if it cannot be built)."""
    try:
        return set(create_strategy(strategy, parameters).higher_timeframes())
    except Exception:  # a plugin gone or parameters no longer valid: the bot fails on its own
        return set()


async def update_watch(redis: Redis, session: AsyncSession, bot: Bot) -> None:
    """SADD the bot's markets (a portfolio bot's every pair), and the higher timeframes its
    strategy reads, while a running bot needs them; SREM after the last (docs/events.md)."""
    strategy = await session.get(Strategy, bot.strategy_id)
    mine = {bot.timeframe} | (_reads(strategy.strategy, strategy.parameters) if strategy else set())
    for symbol in bot.pairs or [bot.symbol]:
        needed: set[str] = set()
        for timeframe, name, parameters in await repository.running_strategies_on(
            session, bot.exchange, symbol
        ):
            needed |= {timeframe, *_reads(name, parameters)}
        for timeframe in sorted(mine):
            member = f"{bot.exchange}|{symbol}|{timeframe}"
            if timeframe in needed:
                await redis.sadd(SUBSCRIPTIONS_KEY, member)
            else:
                await redis.srem(SUBSCRIPTIONS_KEY, member)


async def to_read(session: AsyncSession, bot: Bot) -> BotRead:
    """The bot with its open position, balances, equity and PnL (marked at the last close)."""
    read = BotRead.model_validate(bot)
    strategy = await session.get(Strategy, bot.strategy_id)
    read.strategy = strategy.strategy if strategy else None
    if bot.pairs is not None:
        return await _portfolio_read(session, bot, read)
    position = await repository.open_position(session, bot)
    balances = await ledger_repository.balances_of(session, bot.user_id, bot.id)
    read.balances = {b.asset: b.free + b.locked for b in balances}
    realized = await repository.realized_pnl(session, bot.id)
    read.realized_pnl = realized
    mark = _last_close(bot)
    if position is not None:
        position_read = PositionRead.model_validate(position)
        if mark is not None:
            position_read.mark_price = mark
            position_read.unrealized_pnl = money(position.quantity * mark) - position.cost_basis
        read.position = position_read
    if bot.mode == "paper":
        base = bot.symbol.split("/")[0]
        quote_total = sum(
            (b.free + b.locked for b in balances if b.asset != base), start=Decimal(0)
        )
        held = position.quantity if position is not None else ZERO
        value = (
            money(held * mark)
            if mark is not None
            else (position.cost_basis if position is not None else ZERO)
        )
        read.equity = quote_total + value
    else:
        unrealized = (
            read.position.unrealized_pnl
            if read.position is not None and read.position.unrealized_pnl is not None
            else ZERO
        )
        read.equity = bot.capital + realized + unrealized
    read.pnl = read.equity - bot.capital
    return read


def _last_close(bot: Bot) -> Decimal | None:
    price = (bot.last_signal or {}).get("price")
    return None if price is None else Decimal(str(price))


async def _portfolio_read(session: AsyncSession, bot: Bot, read: BotRead) -> BotRead:
    """A portfolio bot: its open positions (pair order), each marked at its pair's last
    close; equity is its quote balance plus their value."""
    if bot.stake_amount is not None:
        read.position_size = None  # the fixed stake sizes its entries
    held = {p.symbol: p for p in await repository.open_positions(session, bot)}
    balances = await ledger_repository.balances_of(session, bot.user_id, bot.id)
    read.balances = {b.asset: b.free + b.locked for b in balances}
    read.realized_pnl = await repository.realized_pnl(session, bot.id)
    marks = (bot.last_signal or {}).get("pairs", {})
    bases = {pair.split("/")[0] for pair in bot.pairs or []}
    equity = sum((b.free + b.locked for b in balances if b.asset not in bases), start=ZERO)
    read.positions = []
    for pair in bot.pairs or []:
        position = held.get(pair)
        if position is None:
            continue
        position_read = PositionRead.model_validate(position)
        price = (marks.get(pair) or {}).get("price")
        if price is not None:
            mark = Decimal(str(price))
            position_read.mark_price = mark
            position_read.unrealized_pnl = money(position.quantity * mark) - position.cost_basis
            equity += money(position.quantity * mark)
        else:
            equity += position.cost_basis
        read.positions.append(position_read)
    read.equity = equity
    read.pnl = equity - bot.capital
    return read

"""`tradebot backfill`: store a symbol/timeframe range of candles in `ohlcv_data`.

The range is fetched window by window (the sim builds a window in whole arrays, a ccxt
exchange pages) and each window goes in with one binary COPY, as the bulk route writes
history; candles already stored take the exchange's values.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

console = Console()


def _parse_time(value: str) -> int:
    if value.isdigit():
        return int(value)
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def backfill(
    symbol: Annotated[str, typer.Argument(help="Unified symbol, e.g. BTC/USDT.")],
    since: Annotated[str, typer.Option(help="First candle: ISO-8601 (UTC) or epoch ms.")],
    until: Annotated[
        str | None, typer.Option(help="End (exclusive): ISO-8601 or epoch ms; default now.")
    ] = None,
    timeframe: Annotated[str, typer.Option(help="Candle timeframe, e.g. 1m, 1h, 1d.")] = "1h",
    exchange: Annotated[
        str | None, typer.Option(help="ccxt id or sim (default: first of MARKET_EXCHANGES).")
    ] = None,
) -> None:
    """Backfill candle history from an exchange into PostgreSQL (DATABASE_URL)."""
    try:
        start, end = _parse_time(since), (_parse_time(until) if until else None)
    except ValueError as exc:
        console.print(f"[red]Bad time: {exc}[/]")
        raise typer.Exit(2) from exc
    raise typer.Exit(asyncio.run(_backfill(symbol.upper(), timeframe, start, end, exchange)))


async def _backfill(
    symbol: str, timeframe: str, start: int, end: int | None, exchange_id: str | None
) -> int:
    from market_service.exchanges import TIMEFRAME_MS, ExchangeError, build_exchange
    from market_service.main import SIM_ANCHOR_KEY
    from market_service.ohlcv.bulk_repository import driver_connection, insert_new
    from market_service.ohlcv.bulk_service import fetch_columns
    from market_service.ohlcv.service import bucket_ceil, bucket_floor
    from market_service.settings import MarketSettings
    from shared.db import create_engine, create_sessionmaker
    from shared.redis import create_redis

    settings = MarketSettings()
    exchange_id = (exchange_id or settings.exchange_ids[0]).lower()
    if exchange_id not in settings.exchange_ids and exchange_id != "sim":
        console.print(f"[red]Exchange {exchange_id!r} is not in MARKET_EXCHANGES.[/]")
        return 2
    anchor: int | None = None
    if exchange_id == "sim" and settings.sim_speed != 1:
        redis = create_redis(settings.redis_url)
        try:
            stored = await redis.get(SIM_ANCHOR_KEY)
            anchor = int(stored) if stored else None
        finally:
            await redis.aclose()
    exchange = build_exchange(exchange_id, settings, sim_anchor_ms=anchor)
    engine = create_engine(settings.database_url, pool_size=2)
    sessionmaker = create_sessionmaker(engine)
    stored_total = 0
    try:
        if timeframe not in exchange.timeframes or timeframe not in TIMEFRAME_MS:
            console.print(f"[red]Timeframe {timeframe!r} is not offered by {exchange_id}.[/]")
            return 2
        await exchange.market(symbol)
        tf = TIMEFRAME_MS[timeframe]
        closed_end = bucket_floor(exchange.now_ms(), timeframe)
        end = min(end or closed_end, closed_end)
        first = bucket_ceil(start, timeframe)
        total = max(0, -(-(end - first) // tf))
        # A window a COPY: the sim's are built at once, a ccxt exchange's take a page a call
        # (kept to ten pages, so the progress moves and a failure loses little).
        whole = getattr(exchange, "closed_ohlcv_rows", None) is not None
        step = (settings.ohlcv_bulk_window if whole else 10 * exchange.ohlcv_page_limit) * tf
        columns = (
            TextColumn(f"{exchange_id} {symbol} {timeframe}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=console) as progress:
            task = progress.add_task("backfill", total=total)
            for lo in range(first, end, step):
                hi = min(lo + step, end)
                window = await fetch_columns(exchange, symbol, timeframe, lo, hi)
                async with sessionmaker() as session:
                    driver = await driver_connection(session)
                    async with driver.transaction():
                        await insert_new(
                            driver,
                            (exchange_id, symbol, timeframe),
                            window,
                            update_existing=True,
                            timeout_s=settings.ohlcv_copy_timeout_s,
                        )
                stored_total += len(window[0])
                progress.update(task, completed=(hi - first) // tf)
    except ExchangeError as exc:
        console.print(f"[red]{exc.detail}[/]")
        return 1
    finally:
        await exchange.close()
        await engine.dispose()
    console.print(f"[green]Stored {stored_total} candles of {symbol} {timeframe}.[/]")
    return 0

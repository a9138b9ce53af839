"""How a stored backtest request runs on the engine: one pair (``run_backtest``) or a
portfolio (``run_portfolio``, docs/trading.md), and where a portfolio's candles come from
(the request body's object of pair -> rows, or the market service, pair by pair)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from analysis_service.candle_input import candles_from_rows, to_ms
from analysis_service.market import MarketClient
from shared.backtest import BacktestInputError, BacktestResult, run_backtest, run_portfolio
from shared.candles import Candles
from shared.strategies import TradingStrategy

PairCandles = dict[str, Candles]


def is_portfolio(request: dict[str, Any]) -> bool:
    return bool(request.get("pairs"))


async def load_pairs(
    market: MarketClient,
    request: dict[str, Any],
    *,
    max_candles: int,
    progress: Callable[[float], Awaitable[None]],
) -> PairCandles:
    """A portfolio's candles, in the order of its pairs: from the body, or one bulk request
    per pair to the market service (``progress`` gets the share of pairs loaded)."""
    pairs: list[str] = list(request["pairs"])
    rows = request.get("candles")
    if isinstance(rows, dict):  # parsed off the event loop, as one pair's rows are
        body: dict[str, Any] = rows
        return await asyncio.to_thread(
            lambda: {pair: candles_from_rows(body[pair]) for pair in pairs}
        )
    start_ms = to_ms(datetime.fromisoformat(request["start"]))
    end_ms = to_ms(datetime.fromisoformat(request["end"]))
    out: PairCandles = {}
    for done, pair in enumerate(pairs, 1):
        candles = await market.fetch_bulk(
            exchange=request.get("exchange"),
            symbol=pair,
            timeframe=request["timeframe"],
            start_ms=start_ms,
            end_ms=end_ms,
            max_candles=max_candles,
        )
        if len(candles) < 2:
            raise BacktestInputError(
                f"the market service has {len(candles)} {request['timeframe']} candles of "
                f"{pair} in that range; a backtest needs at least 2 (leave the pair out or "
                "change the range)"
            )
        out[pair] = candles
        await progress(done / len(pairs))
    return out


def run_request(
    strategy: TradingStrategy,
    candles: Candles | PairCandles,
    request: dict[str, Any],
    progress: Callable[[float], None],
) -> BacktestResult:
    """The engine on a stored request's settings (blocking: run it on a worker thread)."""
    costs: dict[str, Any] = {
        "stop_loss": request.get("stop_loss"),
        "take_profit": request.get("take_profit"),
        "trailing_stop": request.get("trailing_stop"),
        "progress": progress,
    }
    capital = request.get("initial_capital", "10000")
    fee = float(request.get("fee", 0.001))
    slippage = float(request.get("slippage", 0.0))
    if isinstance(candles, dict):
        size = request.get("position_size")
        return run_portfolio(
            strategy,
            candles,
            capital,
            fee,
            slippage,
            max_open_positions=request.get("max_open_positions"),
            position_size=None if size is None else float(size),
            stake_amount=request.get("stake_amount"),
            **costs,
        )
    return run_backtest(
        strategy,
        candles,
        capital,
        fee,
        slippage,
        float(request.get("position_size", 1.0)),
        **costs,
    )

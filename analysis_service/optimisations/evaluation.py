"""One point of the space on one window: signals, the backtest kernel, the score.

The engine is :mod:`shared.backtest` with its exact semantics; a trial only skips what
does not change per trial (the candles were validated once when they were loaded). The
objectives are the backtest's metrics, maximised; Calmar is CAGR over maximum drawdown.
"""

from __future__ import annotations

from typing import Any

from analysis_service.optimisations.plan import Costs
from shared.backtest import BacktestResult, simulate_signals
from shared.candles import Candles
from shared.strategies import TradingStrategy

OBJECTIVES = ("sharpe", "sortino", "total_return", "calmar", "profit_factor")
# The metrics kept per trial (the trial table); the equity curve and trades are not.
TRIAL_METRICS = (
    "total_return",
    "sharpe",
    "sortino",
    "calmar",
    "max_drawdown",
    "profit_factor",
    "win_rate",
    "n_trades",
    "exposure",
)


def backtest(
    strategy: TradingStrategy,
    candles: Candles,
    costs: Costs,
    stops: dict[str, float | None],
    *,
    trade_from: int = 0,
) -> BacktestResult:
    """Backtest on ``candles[trade_from:]``, signals computed on all of ``candles`` (the
    candles before ``trade_from`` only warm the indicators up)."""
    signals = strategy.signals(candles)
    if trade_from:
        candles = Candles(
            candles.timestamp[trade_from:],
            candles.open[trade_from:],
            candles.high[trade_from:],
            candles.low[trade_from:],
            candles.close[trade_from:],
            candles.volume[trade_from:],
        )
        signals = signals[trade_from:]

    def stop(name: str, own: float | None) -> float | None:
        value = stops.get(name)
        return value if value is not None else own

    result = simulate_signals(
        candles,
        signals,
        initial_capital=costs.initial_capital,
        fee=costs.fee,
        slippage=costs.slippage,
        position_size=costs.position_size,
        stop_loss=stop("stop_loss", strategy.stop_loss()),
        take_profit=stop("take_profit", strategy.take_profit()),
        trailing_stop=stop("trailing_stop", strategy.trailing_stop()),
    )
    result.metrics["calmar"] = calmar(result.metrics)
    result.settings["strategy"] = strategy.name
    result.settings["params"] = strategy.params.model_dump(mode="json")
    return result


def calmar(metrics: dict[str, Any]) -> float | None:
    cagr, drawdown = metrics.get("cagr"), metrics.get("max_drawdown")
    if cagr is None or not drawdown:
        return None
    return float(cagr) / float(drawdown)


def trial_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    return {name: metrics.get(name) for name in TRIAL_METRICS}


def score(metrics: dict[str, Any], objective: str) -> tuple[float | None, str]:
    """The objective's value, or None and why it has none."""
    value = metrics.get(objective)
    if value is not None:
        return float(value), ""
    why = {
        "sharpe": "the returns do not vary",
        "sortino": "there is no losing candle",
        "calmar": "there is no drawdown",
        "profit_factor": "there is no losing trade",
    }.get(objective, "undefined")
    return None, f"{objective} is undefined ({why})"

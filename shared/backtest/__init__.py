"""Backtests: :func:`run_backtest` (the original design's ``BacktestEngine.run_backtest``)
over one pair, :func:`run_portfolio` over a list of pairs sharing one capital.

The semantics (fills, fees, stops, metrics) are spelled out in
:mod:`shared.backtest.engine` and :mod:`shared.backtest.portfolio`; the fill loops are
compiled with numba and cached on disk.
"""

from shared.backtest.engine import (
    EXIT_REASONS,
    BacktestEngine,
    BacktestInputError,
    BacktestResult,
    Trade,
    TradeArrays,
    compute_metrics,
    run_backtest,
    simulate_signals,
    timeframe_ms,
    validate_candles,
)
from shared.backtest.lookahead import LookaheadReport, check_lookahead
from shared.backtest.portfolio import (
    PortfolioResult,
    PortfolioTrade,
    portfolio_signals,
    run_portfolio,
    simulate_portfolio,
)

__all__ = [
    "EXIT_REASONS",
    "BacktestEngine",
    "BacktestInputError",
    "BacktestResult",
    "LookaheadReport",
    "PortfolioResult",
    "PortfolioTrade",
    "Trade",
    "TradeArrays",
    "check_lookahead",
    "compute_metrics",
    "portfolio_signals",
    "run_backtest",
    "run_portfolio",
    "simulate_portfolio",
    "simulate_signals",
    "timeframe_ms",
    "validate_candles",
]

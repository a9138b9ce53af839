"""Backtests: :func:`run_backtest` (the original design's ``BacktestEngine.run_backtest``).

The semantics (fills, fees, stops, metrics) are spelled out in
:mod:`shared.backtest.engine`; the fill loop is compiled with numba and cached on disk.
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

__all__ = [
    "EXIT_REASONS",
    "BacktestEngine",
    "BacktestInputError",
    "BacktestResult",
    "LookaheadReport",
    "Trade",
    "TradeArrays",
    "check_lookahead",
    "compute_metrics",
    "run_backtest",
    "simulate_signals",
    "timeframe_ms",
    "validate_candles",
]

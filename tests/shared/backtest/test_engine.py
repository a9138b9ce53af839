import math

import numpy as np
import pytest

from shared.backtest import BacktestInputError, run_backtest, simulate_signals
from shared.candles import Candles
from shared.strategies import create_strategy
from tests.shared.sample_candles import random_candles

HOUR = 3_600_000


def candles(rows):
    """rows of (open, high, low, close), one hour apart."""
    a = np.array(rows, dtype=float)
    n = a.shape[0]
    return Candles(
        np.arange(n, dtype=np.int64) * HOUR, a[:, 0], a[:, 1], a[:, 2], a[:, 3], np.ones(n)
    )


def sig(n, **at):
    out = np.zeros(n, dtype=np.int8)
    for key, value in at.items():
        out[int(key[1:])] = value
    return out


def test_one_trade_fee_and_slippage_arithmetic_to_the_cent():
    c = candles(
        [
            (100, 101, 99, 100),
            (100, 102, 99, 101),
            (105, 111, 104, 110),
            (110, 112, 109, 111),
            (111, 112, 110, 111),
        ]
    )
    r = simulate_signals(c, sig(5, t0=1, t2=-1), initial_capital=10_000, fee=0.001, slippage=0.001)
    # entry at candle 1's open: 100 * 1.001 = 100.1; qty = 10000 / (100.1 * 1.001)
    qty = 10_000 / (100.1 * 1.001)
    assert qty == pytest.approx(99.8003, abs=1e-4)
    #   cost = 99.80029960 * 100.1 = 9990.00999, entry fee = 9.99001
    # exit at candle 3's open: 110 * 0.999 = 109.89
    #   proceeds = 99.80029960 * 109.89 = 10967.05492, exit fee = 10.96705
    #   cash = 10967.05492 - 10.96705 = 10956.08787; pnl = 10956.08787 - 10000
    [t] = r.trades
    assert t.entry_price == pytest.approx(100.1)
    assert t.exit_price == pytest.approx(109.89)
    assert round(t.fee, 2) == 20.96  # 9.99 on entry + 10.97 on exit
    assert round(t.pnl, 2) == 956.09
    assert round(r.final_equity, 2) == 10_956.09
    assert t.exit_reason == "signal"
    assert t.entry_at.isoformat() == "1970-01-01T01:00:00+00:00"
    # marked to close: candle 1 holds qty at close 101 after paying the entry fee
    assert r.equity[0] == 10_000
    assert r.equity[1] == pytest.approx(qty * 101)
    assert r.equity[2] == pytest.approx(qty * 110)
    assert r.equity[3] == r.equity[4] == pytest.approx(10_956.08787, abs=1e-5)
    assert r.metrics["n_trades"] == 1
    assert r.metrics["win_rate"] == 1.0
    assert r.metrics["exposure"] == pytest.approx(2 / 5)


def test_stop_loss_wins_when_one_candle_touches_both_stop_and_take_profit():
    c = candles(
        [(100, 100, 100, 100), (100, 100, 100, 100), (100, 111, 89, 100), (100, 100, 100, 100)]
    )
    r = simulate_signals(
        c,
        sig(4, t0=1),
        initial_capital=1000,
        fee=0.0,
        slippage=0.0,
        stop_loss=0.05,
        take_profit=0.10,
    )
    [t] = r.trades
    assert t.exit_reason == "stop_loss"
    assert t.exit_price == pytest.approx(95.0)
    assert r.final_equity == pytest.approx(950.0)
    assert t.exit_at == r.trades[0].exit_at
    assert r.equity[2] == pytest.approx(950.0)


def test_take_profit_fills_at_the_target_and_a_gap_fills_at_the_open():
    c = candles(
        [
            (100, 100, 100, 100),
            (100, 104, 99, 103),
            (103, 111, 102, 108),
            (108, 108, 108, 108),
            (80, 81, 79, 80),
            (80, 80, 80, 80),
        ]
    )
    r = simulate_signals(
        c,
        sig(6, t0=1, t3=1),
        initial_capital=1000,
        fee=0.001,
        slippage=0.0,
        stop_loss=0.05,
        take_profit=0.10,
    )
    first, second = r.trades
    assert first.exit_reason == "take_profit"
    assert first.exit_price == pytest.approx(110.0)
    # re-entered at 80 (candle 4's open): 80 is above the stop of that trade, no gap
    assert second.entry_price == 80
    assert second.exit_reason == "end"
    # a gap through the stop fills at the open, not at the stop level
    gap = candles([(100, 100, 100, 100), (100, 101, 99, 100), (90, 91, 89, 90), (90, 90, 90, 90)])
    r = simulate_signals(gap, sig(4, t0=1), fee=0.0, stop_loss=0.05)
    assert (r.trades[0].exit_reason, r.trades[0].exit_price) == ("stop_loss", 90.0)


def test_trailing_stop_follows_the_highest_high_of_earlier_candles():
    c = candles(
        [
            (100, 100, 100, 100),
            (100, 110, 99, 109),
            (109, 120, 108, 119),
            (119, 119, 107.5, 110),
            (110, 110, 110, 110),
        ]
    )
    r = simulate_signals(c, sig(5, t0=1), fee=0.0, trailing_stop=0.10)
    [t] = r.trades
    # peak through candle 2 is 120 -> trail at 108 -> candle 3's low 107.5 hits it
    assert t.exit_reason == "trailing_stop"
    assert t.exit_price == pytest.approx(108.0)


def test_a_position_open_at_the_end_is_closed_at_the_last_close_with_fee():
    c = candles([(100, 100, 100, 100), (100, 101, 99, 100), (120, 121, 119, 120)])
    r = simulate_signals(c, sig(3, t0=1, t2=-1), initial_capital=1000, fee=0.01, slippage=0.0)
    [t] = r.trades
    qty = 1000 / (100 * 1.01)
    assert t.exit_reason == "end"
    assert t.exit_price == 120
    assert r.final_equity == pytest.approx(qty * 120 * 0.99)
    assert r.equity[-1] == r.final_equity  # the last point is the realised value
    assert t.pnl == pytest.approx(r.final_equity - 1000)


def reference(c, signals, capital, fee, slip, size, sl, tp, trail):
    """An independent, plain-Python reading of docs/trading.md (see shared.backtest.engine)."""
    cash, qty = capital, 0.0
    equity: list[float] = []
    trades: list[tuple[int, int, float, float, float, float, str]] = []
    pos = None
    for t in range(len(c)):
        o, h, lo, cl = (float(c.open[t]), float(c.high[t]), float(c.low[t]), float(c.close[t]))
        if t > 0 and signals[t - 1] == 1 and pos is None:
            fill = o * (1 + slip)
            qty = cash * size / (fill * (1 + fee))
            pos = {"fill": fill, "fee": qty * fill * fee, "peak": fill, "t": t}
            cash -= qty * fill + pos["fee"]
        elif t > 0 and signals[t - 1] == -1 and pos is not None:
            cash, pos = close(trades, cash, qty, pos, t, o * (1 - slip), fee, "signal"), None
        if pos is not None:
            levels = []
            if sl:
                levels.append((pos["fill"] * (1 - sl), "stop_loss"))
            if trail:
                levels.append((pos["peak"] * (1 - trail), "trailing_stop"))
            stop = max(levels, key=lambda x: x[0]) if levels else None
            if stop and stop[1] == "trailing_stop" and sl and stop[0] == pos["fill"] * (1 - sl):
                stop = (stop[0], "stop_loss")
            target = pos["fill"] * (1 + tp) if tp else math.inf
            if stop and lo <= stop[0]:
                price = min(o, stop[0]) * (1 - slip)
                cash, pos = close(trades, cash, qty, pos, t, price, fee, stop[1]), None
            elif h >= target:
                price = max(o, target) * (1 - slip)
                cash, pos = close(trades, cash, qty, pos, t, price, fee, "take_profit"), None
            else:
                pos["peak"] = max(pos["peak"], h)
        equity.append(cash + qty * cl if pos is not None else cash)
    if pos is not None:
        cash = close(
            trades, cash, qty, pos, len(c) - 1, float(c.close[-1]) * (1 - slip), fee, "end"
        )
        equity[-1] = cash
    return equity, trades


def close(trades, cash, qty, pos, t, fill, fee, reason):
    proceeds = qty * fill
    trades.append(
        (
            pos["t"],
            t,
            pos["fill"],
            fill,
            qty,
            proceeds - proceeds * fee - qty * pos["fill"] - pos["fee"],
            reason,
        )
    )
    return cash + proceeds - proceeds * fee


@pytest.mark.parametrize("seed", range(8))
def test_equity_curve_equals_an_independent_python_implementation(seed):
    rng = np.random.default_rng(seed)
    c = random_candles(400, seed=100 + seed)
    signals = rng.choice([0, 0, 0, 0, 1, -1], size=400).astype(np.int8)
    fee, slip, size = [0.0, 0.001, 0.0025][seed % 3], [0.0, 0.0005][seed % 2], [1.0, 0.5][seed % 2]
    sl, tp, trail = [
        (None, None, None),
        (0.004, 0.006, None),
        (None, None, 0.003),
        (0.003, 0.01, 0.002),
    ][seed % 4]
    ours = simulate_signals(
        c,
        signals,
        initial_capital=10_000,
        fee=fee,
        slippage=slip,
        position_size=size,
        stop_loss=sl,
        take_profit=tp,
        trailing_stop=trail,
    )
    equity, trades = reference(c, signals, 10_000.0, fee, slip, size, sl or 0, tp or 0, trail or 0)
    np.testing.assert_allclose(ours.equity, equity, rtol=1e-9, atol=0)
    ta = ours.trade_arrays
    assert len(ta) == len(trades) > 5
    assert [t.exit_reason for t in ours.trades] == [t[6] for t in trades]
    np.testing.assert_array_equal(ta.entry_index, [t[0] for t in trades])
    np.testing.assert_array_equal(ta.exit_index, [t[1] for t in trades])
    np.testing.assert_allclose(ta.pnl, [t[5] for t in trades], rtol=1e-9, atol=1e-9)
    if sl or trail:
        assert {"stop_loss", "trailing_stop", "take_profit"} & {t[6] for t in trades}


def test_metrics_follow_their_definitions():
    c = random_candles(2000, seed=9, frame_ms=HOUR)
    r = run_backtest(
        create_strategy("ma_crossover", {"fast": 5, "slow": 20}), c, "10000", fee=0.001
    )
    eq = np.r_[10_000.0, r.equity]
    returns = eq[1:] / eq[:-1] - 1
    per_year = 365.25 * 24
    m = r.metrics
    assert m["final_equity"] == r.equity[-1]
    assert m["total_return"] == pytest.approx(r.equity[-1] / 10_000 - 1)
    assert m["max_drawdown"] == pytest.approx(np.max(1 - eq / np.maximum.accumulate(eq)))
    assert m["sharpe"] == pytest.approx(returns.mean() / returns.std(ddof=1) * math.sqrt(per_year))
    downside = math.sqrt(np.mean(np.minimum(returns, 0) ** 2))
    assert m["sortino"] == pytest.approx(returns.mean() / downside * math.sqrt(per_year))
    years = 2000 / per_year
    assert m["cagr"] == pytest.approx((r.equity[-1] / 10_000) ** (1 / years) - 1)
    pnl = r.trade_arrays.pnl
    assert m["n_trades"] == pnl.size > 10
    assert m["win_rate"] == pytest.approx((pnl > 0).mean())
    assert m["profit_factor"] == pytest.approx(pnl[pnl > 0].sum() / -pnl[pnl < 0].sum())
    assert set(m) == {
        "final_equity",
        "total_return",
        "cagr",
        "max_drawdown",
        "sharpe",
        "sortino",
        "win_rate",
        "profit_factor",
        "n_trades",
        "exposure",
    }


def test_no_trades_gives_null_ratios_not_infinities():
    c = random_candles(100)
    r = simulate_signals(c, np.zeros(100, dtype=np.int8))
    assert r.final_equity == 10_000
    assert r.metrics["n_trades"] == 0
    assert r.metrics["win_rate"] is None
    assert r.metrics["profit_factor"] is None
    assert r.metrics["sharpe"] is None


def test_rule_strategy_stops_are_used_by_the_engine():
    c = random_candles(1500, seed=4)
    strategy = create_strategy(
        "rules", {"entry": "close > open", "stop_loss": 0.002, "take_profit": 0.003}
    )
    reasons = {t.exit_reason for t in run_backtest(strategy, c, 1000).trades}
    assert {"stop_loss", "take_profit"} <= reasons


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda c: c.close.__setitem__(5, np.nan), "close has NaN"),
        (lambda c: c.open.__setitem__(5, np.inf), "open has NaN or infinite"),
        (lambda c: c.timestamp.__setitem__(5, c.timestamp[4]), "strictly increasing"),
        (lambda c: c.low.__setitem__(5, -1.0), "low must be positive"),
    ],
)
def test_bad_candles_are_refused_with_a_clear_message(mutate, message):
    c = random_candles(50)
    mutate(c)
    with pytest.raises(BacktestInputError, match=message):
        run_backtest(create_strategy("ma_crossover", {"fast": 2, "slow": 5}), c)


def test_bad_settings_are_refused_and_progress_reaches_one():
    c = random_candles(600_000 // 1000)
    s = create_strategy("ma_crossover", {"fast": 2, "slow": 5})
    with pytest.raises(BacktestInputError, match="position_size"):
        run_backtest(s, c, position_size=1.5)
    with pytest.raises(BacktestInputError, match="fee"):
        run_backtest(s, c, fee=-0.1)
    seen: list[float] = []
    run_backtest(s, c, progress=seen.append)
    assert seen[0] == 0.0
    assert seen[-1] == 1.0
    assert seen == sorted(seen)

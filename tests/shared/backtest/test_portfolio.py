"""Portfolio backtests: one capital over several pairs (docs/trading.md, portfolio backtests)."""

import numpy as np
import orjson
import pytest

from shared.backtest import (
    BacktestInputError,
    run_backtest,
    run_portfolio,
    simulate_portfolio,
    simulate_signals,
)
from shared.backtest.report import result_json
from shared.candles import Candles
from shared.exits import NO_EXIT, REASONS, next_peak, protective_exit
from shared.strategies import create_strategy
from tests.shared.sample_candles import random_candles

HOUR = 3_600_000


def flat(n, *, start=0, price=100.0, opens=None):
    """``n`` hourly candles at ``price`` (opens may differ per candle)."""
    o = np.full(n, price) if opens is None else np.asarray(opens, dtype=float)
    ts = start + np.arange(n, dtype=np.int64) * HOUR
    return Candles(ts, o.copy(), np.maximum(o, price), np.minimum(o, price), np.full(n, price),
                   np.ones(n))  # fmt: skip


def sig(n, **at):
    out = np.zeros(n, dtype=np.int8)
    for key, value in at.items():
        out[int(key[1:])] = value
    return out


def drop(c, indices):
    keep = np.ones(len(c), dtype=bool)
    keep[list(indices)] = False
    return Candles(*(np.ascontiguousarray(getattr(c, f)[keep]) for f in
                     ("timestamp", "open", "high", "low", "close", "volume")))  # fmt: skip


def assert_same_trades(ours, theirs, rel=1e-9):
    """Times and reasons equal, prices, quantities, pnl and fees to ``rel``."""
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        assert (a.entry_at, a.exit_at, a.exit_reason) == (b.entry_at, b.exit_at, b.exit_reason)
        for name in ("entry_price", "exit_price", "quantity", "pnl", "fee"):
            assert getattr(a, name) == pytest.approx(getattr(b, name), rel=rel), name


SETTINGS = [
    {"fee": 0.001, "slippage": 0.0, "position_size": 1.0},
    {"fee": 0.0025, "slippage": 0.0005, "position_size": 0.5},
    {"fee": 0.001, "slippage": 0.001, "position_size": 0.8, "stop_loss": 0.004,
     "take_profit": 0.006},
    {"fee": 0.0, "slippage": 0.0, "position_size": 1.0, "trailing_stop": 0.003},
    {"fee": 0.001, "slippage": 0.0002, "position_size": 0.3, "stop_loss": 0.003,
     "take_profit": 0.01, "trailing_stop": 0.002},
]  # fmt: skip


@pytest.mark.parametrize("settings", SETTINGS)
def test_a_one_pair_portfolio_equals_the_single_pair_backtest(settings):
    c = random_candles(3000, seed=11)
    strategy = create_strategy("ma_crossover", {"fast": 5, "slow": 20})
    single = run_backtest(strategy, c, "10000", **settings)
    size = settings["position_size"]
    rest = {k: v for k, v in settings.items() if k != "position_size"}
    one = run_portfolio(strategy, {"BTC/USDT": c}, "10000", position_size=size, **rest)
    np.testing.assert_allclose(one.equity, single.equity, rtol=1e-9, atol=0)
    assert np.array_equal(one.timestamps, single.timestamps)
    assert len(single.trades) > 20
    assert_same_trades(one.trades, single.trades)
    assert {t.pair for t in one.trades} == {"BTC/USDT"}
    for name, value in single.metrics.items():
        assert one.metrics[name] == pytest.approx(value, rel=1e-9, abs=1e-12), name
    pair = one.pair_metrics["BTC/USDT"]
    assert pair["n_trades"] == single.metrics["n_trades"]
    assert pair["exposure"] == single.metrics["exposure"]
    assert pair["pnl"] == pytest.approx(single.final_equity - 10_000, rel=1e-9)


def test_more_signals_than_slots_enter_in_pair_list_order():
    names = ["AAA/USDT", "BBB/USDT", "CCC/USDT", "DDD/USDT"]
    candles = {name: flat(6) for name in names}
    signals = {name: sig(6, t1=1) for name in names}  # all four signal on candle 1
    signals["DDD/USDT"] = sig(6, t0=1)  # DDD signals a candle earlier: it is in first
    result = simulate_portfolio(candles, signals, max_open_positions=3, position_size=0.25, fee=0.0)
    entered = [(t.pair, t.entry_at.hour) for t in result.trades]
    assert sorted(entered) == [("AAA/USDT", 2), ("BBB/USDT", 2), ("DDD/USDT", 1)]
    assert result.pair_metrics["CCC/USDT"]["entries_skipped"] == 1
    assert result.pair_metrics["CCC/USDT"]["n_trades"] == 0
    assert result.metrics["entries_skipped"] == 1
    # the list is the ranking: put CCC first and it takes the slot BBB had
    ranked = {name: candles[name] for name in ["CCC/USDT", "DDD/USDT", "AAA/USDT", "BBB/USDT"]}
    again = simulate_portfolio(ranked, signals, max_open_positions=3, position_size=0.25, fee=0)
    assert sorted(t.pair for t in again.trades) == ["AAA/USDT", "CCC/USDT", "DDD/USDT"]
    assert again.pair_metrics["BBB/USDT"]["entries_skipped"] == 1


def test_exits_at_an_open_free_their_slot_for_that_opens_entries():
    candles = {"AAA/USDT": flat(5), "BBB/USDT": flat(5)}
    # AAA enters at candle 1 and exits at candle 3's open, where BBB enters
    signals = {"AAA/USDT": sig(5, t0=1, t2=-1), "BBB/USDT": sig(5, t2=1)}
    result = simulate_portfolio(candles, signals, max_open_positions=1, position_size=1.0, fee=0)
    a, b = sorted(result.trades, key=lambda t: t.pair)
    assert (a.exit_at, a.exit_reason) == (b.entry_at, "signal")
    assert b.entry_at.hour == 3
    assert result.metrics["entries_skipped"] == 0


def test_a_pair_cannot_spend_what_another_holds():
    candles = {"AAA/USDT": flat(8), "BBB/USDT": flat(8, price=50.0)}
    signals = {"AAA/USDT": sig(8, t0=1, t4=-1), "BBB/USDT": sig(8, t2=1, t5=1)}
    result = simulate_portfolio(
        candles, signals, initial_capital=1000, max_open_positions=2, position_size=1.0, fee=0.01
    )
    # AAA took all of the cash at candle 1; BBB's entry at candle 3 finds none: skipped;
    # after AAA's exit at candle 5 BBB's next signal enters at candle 6 with all of it
    a, b = sorted(result.trades, key=lambda t: t.pair)
    assert a.quantity == pytest.approx(1000 / (100 * 1.01))
    assert b.entry_at.hour == 6
    assert result.pair_metrics["BBB/USDT"]["entries_skipped"] == 1
    cash_after_a = a.quantity * 100 * 0.99
    assert b.quantity == pytest.approx(cash_after_a / (50 * 1.01))
    # a fixed stake larger than the free cash buys with what is left
    fixed = simulate_portfolio(
        candles,
        {"AAA/USDT": sig(8, t0=1), "BBB/USDT": sig(8, t2=1)},
        initial_capital=1000,
        stake_amount=700,
        fee=0.0,
    )
    a, b = sorted(fixed.trades, key=lambda t: t.pair)
    assert a.quantity * a.entry_price == pytest.approx(700)
    assert b.quantity * b.entry_price == pytest.approx(300)


def test_the_stakes_of_one_open_share_the_equity_taken_before_it():
    candles = {name: flat(4) for name in ("AAA/USDT", "BBB/USDT", "CCC/USDT")}
    signals = {name: sig(4, t0=1) for name in candles}
    result = simulate_portfolio(candles, signals, initial_capital=900, fee=0.001)
    # no position_size: 1 / max_open_positions (3) of the equity each, fee included
    assert [t.quantity for t in result.trades] == pytest.approx([300 / (100 * 1.001)] * 3)
    assert result.settings["position_size"] == pytest.approx(1 / 3)


def test_missing_candles_and_a_later_start_trade_a_pair_on_its_own_candles():
    base = random_candles(400, seed=5, frame_ms=HOUR)
    late = drop(random_candles(400, seed=6, frame_ms=HOUR), [*range(0, 50), 120, 121, 300])
    rng = np.random.default_rng(1)
    late_signals = rng.choice([0, 0, 0, 1, -1], size=len(late)).astype(np.int8)
    result = simulate_portfolio(
        {"AAA/USDT": base, "BBB/USDT": late},
        {"AAA/USDT": np.zeros(400, np.int8), "BBB/USDT": late_signals},
        position_size=1.0,
        fee=0.001,
        stop_loss=0.01,
        take_profit=0.02,
    )
    alone = simulate_signals(late, late_signals, fee=0.001, stop_loss=0.01, take_profit=0.02)
    # the same trades as the pair alone on its own candles, at the same times
    assert len(alone.trades) > 10
    assert_same_trades(result.trades, alone.trades, rel=1e-12)
    # on the common index: the pair's missing hours hold the equity of its last close
    assert np.array_equal(result.timestamps, base.timestamp)
    on_its_candles = np.searchsorted(base.timestamp, late.timestamp)
    np.testing.assert_allclose(result.equity[on_its_candles], alone.equity, rtol=1e-12)
    assert (result.equity[:50] == 10_000).all()
    for gap in (120, 121, 300):
        assert result.equity[gap] == result.equity[gap - 1 if gap != 121 else 119]


def test_a_position_in_a_pair_whose_candles_end_early_is_closed_at_its_last_close():
    long_ = flat(10)
    short = flat(6, price=20.0)
    result = simulate_portfolio(
        {"AAA/USDT": long_, "BBB/USDT": short},
        {"AAA/USDT": np.zeros(10, np.int8), "BBB/USDT": sig(6, t1=1)},
        initial_capital=1000,
        position_size=0.5,
        fee=0.0,
    )
    [trade] = result.trades
    assert (trade.pair, trade.exit_reason, trade.exit_at.hour) == ("BBB/USDT", "end", 5)
    assert result.equity[-1] == pytest.approx(1000)
    assert result.pair_metrics["BBB/USDT"]["exposure"] == pytest.approx(4 / 10)


def reference(candles, signals, capital, fee, slip, size, stake, max_open, sl, tp, trail):
    """A plain-Python reading of docs/trading.md (portfolio backtests), independent of the
    kernel's event list: walk every pair at every time."""
    names = list(candles)
    steps = sorted({int(ts) for c in candles.values() for ts in c.timestamp})
    where = {n: {int(ts): i for i, ts in enumerate(candles[n].timestamp)} for n in names}
    cash, held, order, trades, equity = capital, {}, [], [], []

    def sell(name, t, price, reason):
        nonlocal cash
        pos = held.pop(name)
        order.remove(name)
        proceeds = pos["qty"] * price
        cash += proceeds - proceeds * fee
        pnl = proceeds - proceeds * fee - pos["qty"] * pos["fill"] - pos["fee"]
        trades.append((name, pos["t"], t, pos["fill"], price, pos["qty"], pnl, reason))

    for t, ts in enumerate(steps):
        here = {n: where[n].get(ts) for n in names}
        acting = {n: (int(signals[n][i - 1]) if i else 0) for n, i in here.items() if i is not None}
        for n in names:
            if acting.get(n) == -1 and n in held:
                sell(n, t, candles[n].open[here[n]] * (1 - slip), "signal")
        value = cash + sum(held[n]["qty"] * held[n]["last"] for n in order)
        for n in names:
            if acting.get(n) != 1 or n in held:
                continue
            want = stake if stake else value * size
            spend = min(want, cash)
            if len(held) >= max_open or spend <= 1e-9 * capital:
                continue
            fill = candles[n].open[here[n]] * (1 + slip)
            qty = spend / (fill * (1 + fee))
            cash -= qty * fill + qty * fill * fee
            held[n] = {"qty": qty, "fill": fill, "fee": qty * fill * fee, "peak": fill, "t": t,
                       "last": None}  # fmt: skip
            order.append(n)
        for n in list(order):
            i = here[n]
            if i is None:
                continue
            c, pos = candles[n], held[n]
            reason, price = protective_exit(
                float(c.open[i]), float(c.high[i]), float(c.low[i]), pos["fill"], pos["peak"],
                sl, tp, trail,
            )  # fmt: skip
            if reason != NO_EXIT:
                sell(n, t, price * (1 - slip), REASONS[reason])
            else:
                pos["peak"] = next_peak(pos["peak"], float(c.high[i]))
        for n in list(order):
            i = here[n]
            if i is not None:
                held[n]["last"] = float(candles[n].close[i])
                if i == len(candles[n]) - 1:
                    sell(n, t, held[n]["last"] * (1 - slip), "end")
        equity.append(cash + sum(held[n]["qty"] * held[n]["last"] for n in order))
    return equity, trades


@pytest.mark.parametrize("seed", range(6))
def test_equity_and_trades_equal_an_independent_python_implementation(seed):
    rng = np.random.default_rng(seed)
    names = [f"P{i}/USDT" for i in range(5)]
    candles, signals = {}, {}
    for k, name in enumerate(names):
        c = random_candles(300, seed=200 + 10 * seed + k, frame_ms=HOUR)
        if k in (1, 3):  # one starts late, one ends early; both miss a few hours
            cut = slice(40, None) if k == 1 else slice(None, 250)
            c = drop(c, [*range(300)[cut.stop or 300 :], *range(cut.start or 0), 77, 78, 190])
        candles[name] = c
        signals[name] = rng.choice([0] * 6 + [1, -1], size=len(c)).astype(np.int8)
    fee, slip = [0.0, 0.001, 0.002][seed % 3], [0.0, 0.0005][seed % 2]
    stake, size = [(0.0, 0.4), (2500.0, None), (0.0, 1.0)][seed % 3]
    max_open = [2, 3, 5][seed % 3]
    sl, tp, trail = [(0, 0, 0), (0.004, 0.006, 0), (0, 0, 0.003), (0.003, 0.01, 0.002)][seed % 4]
    ours = simulate_portfolio(
        candles,
        signals,
        fee=fee,
        slippage=slip,
        position_size=size,
        stake_amount=stake or None,
        max_open_positions=max_open,
        stop_loss=sl or None,
        take_profit=tp or None,
        trailing_stop=trail or None,
    )
    equity, trades = reference(
        candles, signals, 10_000.0, fee, slip, size or 0, stake, max_open, sl, tp, trail
    )
    np.testing.assert_allclose(ours.equity, equity, rtol=1e-9, atol=0)
    ta = ours.trade_arrays
    assert len(ta) == len(trades) > 15
    assert [t.pair for t in ours.trades] == [t[0] for t in trades]
    assert [t.exit_reason for t in ours.trades] == [t[7] for t in trades]
    np.testing.assert_array_equal(ta.entry_index, [t[1] for t in trades])
    np.testing.assert_array_equal(ta.exit_index, [t[2] for t in trades])
    np.testing.assert_allclose(ta.quantity, [t[5] for t in trades], rtol=1e-9)
    np.testing.assert_allclose(ta.pnl, [t[6] for t in trades], rtol=1e-9, atol=1e-9)
    assert ours.metrics["entries_skipped"] > 0
    pnl = sum(m["pnl"] for m in ours.pair_metrics.values())
    assert pnl == pytest.approx(ours.final_equity - 10_000, rel=1e-9)


def test_a_portfolio_result_serialises_portfolio_and_pair_metrics_and_trade_pairs():
    candles = {"AAA/USDT": random_candles(500, seed=1), "BBB/USDT": random_candles(500, seed=2)}
    result = run_portfolio(
        create_strategy("ma_crossover", {"fast": 3, "slow": 12}), candles, max_open_positions=1
    )
    body = orjson.loads(result_json(result, max_points=50))
    assert set(body) == {"metrics", "pair_metrics", "trades", "equity_curve"}
    assert list(body["pair_metrics"]) == ["AAA/USDT", "BBB/USDT"]
    assert {t["pair"] for t in body["trades"]} == {"AAA/USDT", "BBB/USDT"}
    assert body["metrics"]["n_trades"] == sum(m["n_trades"] for m in body["pair_metrics"].values())
    assert result.settings["pairs"] == ["AAA/USDT", "BBB/USDT"]
    assert result.settings["strategy"] == "ma_crossover"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"max_open_positions": 3}, "max_open_positions must be from 1 to the number of pairs"),
        ({"max_open_positions": 0}, "max_open_positions"),
        ({"stake_amount": 100, "position_size": 0.5}, "not both"),
        ({"stake_amount": -1}, "stake_amount must be a positive amount"),
        ({"position_size": 1.5}, "position_size"),
        ({"fee": 0.7}, "fee"),
    ],
)
def test_bad_portfolio_settings_are_refused_with_a_clear_message(change, message):
    candles = {"AAA/USDT": flat(5), "BBB/USDT": flat(5)}
    signals = {name: np.zeros(5, np.int8) for name in candles}
    with pytest.raises(BacktestInputError, match=message):
        simulate_portfolio(candles, signals, **change)


def test_pairs_of_different_timeframes_or_bad_candles_are_refused_by_name():
    hourly, minutely = flat(50), random_candles(50)
    signals = {"AAA/USDT": np.zeros(50, np.int8), "BBB/USDT": np.zeros(50, np.int8)}
    with pytest.raises(BacktestInputError, match="share one timeframe"):
        simulate_portfolio({"AAA/USDT": hourly, "BBB/USDT": minutely}, signals)
    broken = flat(50)
    broken.close[7] = np.nan
    with pytest.raises(BacktestInputError, match=r"BBB/USDT: close has NaN"):
        simulate_portfolio({"AAA/USDT": hourly, "BBB/USDT": broken}, signals)
    with pytest.raises(BacktestInputError, match="at least one pair"):
        simulate_portfolio({}, {})


def test_progress_reaches_one_and_chunks_and_threads_give_the_same_result(monkeypatch):
    from shared.backtest import portfolio

    monkeypatch.setattr(portfolio, "STEP_CHUNK", 97)  # the loop resumes from its state
    candles = {f"P{i}/USDT": random_candles(2000, seed=i) for i in range(6)}
    strategy = create_strategy("ma_crossover", {"fast": 4, "slow": 16})
    seen: list[float] = []
    threaded = run_portfolio(strategy, candles, max_open_positions=2, workers=3,
                             stop_loss=0.003, progress=seen.append)  # fmt: skip
    serial = run_portfolio(strategy, candles, max_open_positions=2, workers=1, stop_loss=0.003)
    assert len(seen) > 20
    assert seen[0] == 0.0
    assert seen[-1] == 1.0
    assert seen == sorted(seen)
    assert np.array_equal(threaded.equity, serial.equity)
    assert threaded.metrics == serial.metrics
    assert threaded.metrics["n_trades"] > 50

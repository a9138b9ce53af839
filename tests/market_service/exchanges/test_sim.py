"""The sim exchange: deterministic, consistent across timeframes and with its ticks."""

from __future__ import annotations

import numpy as np

from market_service.exchanges.sim import EPOCH_MS, SIM_PAIRS, SimClock, SimExchange, SimPath

SINCE = 1_735_689_600_000  # 2025-01-01


def test_history_is_a_pure_function_of_seed_symbol_and_time() -> None:
    a = SimExchange(seed=7).ohlcv("BTC/USDT", "15m", SINCE, 50)
    b = SimExchange(seed=7, clock=SimClock(speed=60)).ohlcv("BTC/USDT", "15m", SINCE, 50)
    c = SimExchange(seed=8).ohlcv("BTC/USDT", "15m", SINCE, 50)
    assert a == b
    assert a != c


def test_a_day_candle_is_the_aggregate_of_its_hours() -> None:
    sim = SimExchange()
    (day,) = sim.ohlcv("ETH/USDT", "1d", SINCE, 1)
    hours = sim.ohlcv("ETH/USDT", "1h", SINCE, 24)
    assert day[1] == hours[0][1]
    assert day[4] == hours[-1][4]
    assert day[2] == max(h[2] for h in hours)
    assert day[3] == min(h[3] for h in hours)


def test_ticks_of_a_minute_build_its_candle() -> None:
    path = SimPath(42, SIM_PAIRS["BTC/USDT"])
    minute = (SINCE - EPOCH_MS) // 60_000 + 123
    (_ts, o, h, lo, c, _v) = path.minutes(minute, minute)[0]
    ticks = path.ticks(minute)
    assert ticks[0] == o
    assert ticks[-1] == c
    assert ticks.max() == h
    assert ticks.min() == lo


def test_prices_sit_on_the_tick_size_and_volatility_clusters() -> None:
    sim = SimExchange()
    candles = sim.ohlcv("SOL/USDT", "1m", SINCE, 1000)
    prices = np.array([c[4] for c in candles])
    assert np.allclose(np.round(prices / 0.01) * 0.01, prices)
    returns = np.abs(np.diff(np.log(prices)))
    # Clustering: absolute returns are positively autocorrelated.
    assert np.corrcoef(returns[:-1], returns[1:])[0, 1] > 0.05


async def test_the_clock_runs_at_the_configured_speed() -> None:
    clock = SimClock(speed=60, anchor_ms=0)
    fast = clock.now_ms()
    assert fast > SimClock(speed=1, anchor_ms=0).now_ms() * 59


async def test_order_book_straddles_the_ticker() -> None:
    sim = SimExchange()
    book = await sim.fetch_order_book("XRP/USDT", 10)
    assert book.bids[0][0] < book.asks[0][0]
    assert [p for p, _ in book.bids] == sorted((p for p, _ in book.bids), reverse=True)

"""The sim exchange: deterministic, consistent across timeframes and with its ticks."""

from __future__ import annotations

import numpy as np

from market_service.exchanges.sim import (
    DAY_MINUTES,
    EPOCH_MS,
    REF_DAY,
    SIM_PAIRS,
    SimClock,
    SimExchange,
    SimPath,
)

SINCE = 1_735_689_600_000  # 2025-01-01


def test_history_is_a_pure_function_of_seed_symbol_and_time() -> None:
    a = SimExchange(seed=7).ohlcv("BTC/USDT", "15m", SINCE, 50)
    b = SimExchange(seed=7, clock=SimClock(speed=60)).ohlcv("BTC/USDT", "15m", SINCE, 50)
    c = SimExchange(seed=8).ohlcv("BTC/USDT", "15m", SINCE, 50)
    assert a == b
    assert a != c


def test_the_history_is_the_one_it_always_was() -> None:
    # BTC/USDT minutes of the week from 2025-01-01 under seed 42, as the sim has made them
    # since it was written: candles stored anywhere stay the ones the sim would make again.
    path = SimPath(42, SIM_PAIRS["BTC/USDT"])
    first = REF_DAY * DAY_MINUTES
    week = path.minutes(first, first + 7 * DAY_MINUTES - 1)
    assert [week[i].tolist() for i in (0, 1, 5000, 10079)] == [
        [1735689600000.0, 60000.0, 60010.25, 59993.58, 60007.52, 9.9527],
        [1735689660000.0, 60007.52, 60039.47, 59996.9, 60029.93, 23.37157],
        [1735989600000.0, 58546.67, 58585.74, 58531.68, 58568.2, 7.66238],
        [1736294340000.0, 58381.57, 58388.79, 58372.68, 58384.49, 3.0112],
    ]


def test_days_built_together_equal_the_same_days_one_by_one() -> None:
    path = SimPath(42, SIM_PAIRS["ETH/BTC"])
    together = path.days(REF_DAY - 1, 3)
    alone = np.concatenate([SimPath(42, SIM_PAIRS["ETH/BTC"]).day(REF_DAY + k) for k in (-1, 0, 1)])
    assert np.array_equal(together, alone)


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

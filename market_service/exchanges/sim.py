"""The offline ``sim`` exchange: seeded, deterministic, moving in (scaled) real time.

Every price is a pure function of ``(seed, symbol, time)``, so the history a backtest reads
is the very path a live bot saw, on any machine and in any process:

* **Days.** A daily log-return series from a per-symbol seeded generator, with a slowly
  varying volatility regime (volatility clustering at the daily scale), pinned so that each
  pair trades near its reference price on 2025-01-01.
* **Minutes.** Inside a day, 1 440 one-minute returns with a latent, autocorrelated
  volatility (clustering at the minute scale), bridged so the day ends exactly on the next
  day's level. Wicks and volume grow with the size of the move. Coarser timeframes are
  aggregates of this 1 m path (a 5 m candle is its five 1 m candles).
* **Ticks.** Inside a minute, a 100 ms grid passing through open, high, low and close with
  clipped jitter: the live feed and the forming candle read it, so a closed candle equals
  the ticks that built it.

Spreads, order books and trades are derived from the same path.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt

from market_service.exchanges.base import TIMEFRAME_MS, Candle, OrderBook, Ticker, Trade
from market_service.exchanges.errors import BadSymbol, BadTimeframe

FloatArray = npt.NDArray[np.float64]

MINUTE_MS = 60_000
DAY_MINUTES = 1440
EPOCH_MS = int(datetime(2017, 1, 1, tzinfo=UTC).timestamp() * 1000)  # first sim candle
N_DAYS = 366 * 30  # history until 2047
REF_DAY = (int(datetime(2025, 1, 1, tzinfo=UTC).timestamp() * 1000) - EPOCH_MS) // 86_400_000
TICKS_PER_MINUTE = 600  # the 100 ms grid
FEE = 0.001


@dataclass(frozen=True)
class SimPair:
    symbol: str
    price: float  # reference price on 2025-01-01
    daily_vol: float
    price_tick: float
    amount_step: float
    min_cost: float
    volume_per_minute: float  # base currency
    spread_bps: float

    @property
    def base(self) -> str:
        return self.symbol.split("/")[0]

    @property
    def quote(self) -> str:
        return self.symbol.split("/")[1]


SIM_PAIRS: dict[str, SimPair] = {
    p.symbol: p
    for p in (
        SimPair("BTC/USDT", 60_000.0, 0.025, 0.01, 0.00001, 5.0, 12.0, 0.5),
        SimPair("ETH/USDT", 3_000.0, 0.040, 0.01, 0.0001, 5.0, 150.0, 1.0),
        SimPair("SOL/USDT", 150.0, 0.050, 0.01, 0.001, 5.0, 2_500.0, 2.0),
        SimPair("BNB/USDT", 550.0, 0.035, 0.01, 0.001, 5.0, 400.0, 2.0),
        SimPair("XRP/USDT", 0.6, 0.050, 0.0001, 0.1, 5.0, 600_000.0, 3.0),
        SimPair("ETH/BTC", 0.05, 0.025, 0.00001, 0.0001, 0.0001, 80.0, 2.0),
    )
}


def _round_to(values: FloatArray, step: float) -> FloatArray:
    decimals = max(0, -int(np.floor(np.log10(step))))
    return np.round(np.round(values / step) * step, decimals)


def _ewm_kernel(halflife: float, length: int) -> FloatArray:
    kernel = 0.5 ** (np.arange(length) / halflife)
    normalised: FloatArray = kernel / np.sqrt(np.sum(kernel**2))  # unit variance output
    return normalised


_MINUTE_KERNEL = _ewm_kernel(45, 240)  # the minute-scale volatility's memory
_SEASON = 1.0 + 0.35 * np.sin(2 * np.pi * (np.arange(DAY_MINUTES) / DAY_MINUTES - 0.3))
DAYS_PER_CHUNK = 64  # days a range is built with at once (about 40 MB of work arrays)


class SimPath:
    """The deterministic price path of one pair under one seed."""

    def __init__(self, seed: int, pair: SimPair) -> None:
        self.pair = pair
        self.seed = seed
        self.key = zlib.crc32(pair.symbol.encode())
        rng = np.random.default_rng([seed, self.key])
        regime = np.convolve(rng.standard_normal(N_DAYS + 60), _ewm_kernel(12, 60), "valid")
        self.daily_sigma: FloatArray = pair.daily_vol * np.exp(0.35 * regime[:N_DAYS] - 0.06)
        z = np.clip(rng.standard_normal(N_DAYS), -5, 5)
        returns = self.daily_sigma * z - 0.5 * self.daily_sigma**2
        levels = np.concatenate([[0.0], np.cumsum(returns)])
        # log price at the start of each day, pinned to the reference price on REF_DAY.
        self.levels: FloatArray = levels - levels[REF_DAY] + np.log(pair.price)
        self._day = lru_cache(maxsize=64)(self._make_day)
        self._day_summary = lru_cache(maxsize=8192)(self._make_day_summary)
        self._ticks = lru_cache(maxsize=256)(self._make_ticks)

    # -- days of 1 m candles ---------------------------------------------------------------

    def day(self, day: int) -> FloatArray:
        """The 1 440 one-minute candles of ``day`` as rows [ts, o, h, l, c, v]."""
        return self._day(day)

    def _make_day(self, day: int) -> FloatArray:
        return self.days(day, 1)

    def days(self, first: int, count: int) -> FloatArray:
        """The one-minute candles of ``count`` days from ``first``, as rows (the same
        values day by day: each day's random draws come from that day's own generator,
        and the arithmetic on them is done for all the days at once)."""
        pair = self.pair
        index = np.arange(first, first + count)
        noise = np.empty((count, DAY_MINUTES + 240))
        t_draws, wick_hi_draws, wick_lo_draws, volume_draws = (
            np.empty((count, DAY_MINUTES)) for _ in range(4)
        )
        for i, day in enumerate(index.tolist()):
            rng = np.random.default_rng([self.seed, self.key, day])
            noise[i] = rng.standard_normal(DAY_MINUTES + 240)
            t_draws[i] = rng.standard_t(5, DAY_MINUTES)
            wick_hi_draws[i] = rng.standard_normal(DAY_MINUTES)
            wick_lo_draws[i] = rng.standard_normal(DAY_MINUTES)
            volume_draws[i] = rng.lognormal(0, 0.5, DAY_MINUTES)
        kernel = _MINUTE_KERNEL
        latent = np.stack([np.convolve(row, kernel, "valid")[:DAY_MINUTES] for row in noise])
        h = np.exp(0.45 * latent)
        sigma_day = self.daily_sigma[index][:, None]
        sigma_min = sigma_day * h / np.sqrt(np.sum(h**2, axis=1, keepdims=True))
        z = np.clip(t_draws / np.sqrt(5 / 3), -8, 8)
        r = sigma_min * z
        cum = np.cumsum(r, axis=1)
        start_level = self.levels[index][:, None]
        target = self.levels[index + 1][:, None] - start_level
        bridge = cum - (np.arange(1, DAY_MINUTES + 1) / DAY_MINUTES) * (cum[:, -1:] - target)
        close = np.exp(start_level + bridge)
        open_ = np.concatenate([np.exp(start_level), close[:, :-1]], axis=1)
        wick_hi = np.abs(wick_hi_draws) * sigma_min * 0.6
        wick_lo = np.abs(wick_lo_draws) * sigma_min * 0.6
        tick = pair.price_tick
        open_r = _round_to(open_, tick)
        close_r = _round_to(close, tick)
        high = np.maximum(_round_to(np.maximum(open_, close) * np.exp(wick_hi), tick), 0)
        high = np.maximum(high, np.maximum(open_r, close_r))
        low = _round_to(np.minimum(open_, close) * np.exp(-wick_lo), tick)
        low = np.maximum(np.minimum(low, np.minimum(open_r, close_r)), tick)
        activity = 0.4 + np.abs(r) / np.maximum(sigma_min, 1e-12)
        volume = pair.volume_per_minute * _SEASON * activity * volume_draws
        volume = np.maximum(_round_to(volume, pair.amount_step), pair.amount_step)
        minutes = index[:, None] * DAY_MINUTES + np.arange(DAY_MINUTES)
        ts = (EPOCH_MS + minutes * MINUTE_MS).astype(np.float64)
        rows = np.stack([ts, open_r, high, low, close_r, volume], axis=-1)
        return rows.reshape(count * DAY_MINUTES, 6)

    def _make_day_summary(self, day: int) -> tuple[float, float, float, float, float]:
        rows = self.day(day)
        return (
            float(rows[0, 1]),
            float(rows[:, 2].max()),
            float(rows[:, 3].min()),
            float(rows[-1, 4]),
            float(rows[:, 5].sum()),
        )

    def minutes(self, first: int, last: int) -> FloatArray:
        """1 m candles for minute indexes ``first..last`` inclusive (closed minutes)."""
        if last < first:
            return np.empty((0, 6))
        first_day, last_day = first // DAY_MINUTES, last // DAY_MINUTES
        if first_day == last_day:  # the live paths: one day, kept in the cache
            rows = self.day(first_day)
        else:  # a range: built in whole arrays, a chunk of days at a time
            rows = np.concatenate(
                [
                    self.days(day, min(DAYS_PER_CHUNK, last_day + 1 - day))
                    for day in range(first_day, last_day + 1, DAYS_PER_CHUNK)
                ]
            )
        offset = first_day * DAY_MINUTES
        return rows[first - offset : last - offset + 1]

    # -- ticks inside one minute ----------------------------------------------------------

    def ticks(self, minute: int) -> FloatArray:
        """Prices on the 100 ms grid of ``minute``: starts at open, ends at close, touches
        the candle's high and low, never leaves them."""
        return self._ticks(minute)

    def _make_ticks(self, minute: int) -> FloatArray:
        row = self.minutes(minute, minute)[0]
        o, h, lo, c = row[1], row[2], row[3], row[4]
        rng = np.random.default_rng([self.seed, self.key, minute, 1])
        t1, t2 = np.sort(rng.uniform(30, TICKS_PER_MINUTE - 30, 2))
        up_close = c >= o
        first, second = (lo, h) if (up_close ^ (rng.random() < 0.3)) else (h, lo)
        grid = np.arange(TICKS_PER_MINUTE)
        path = np.interp(grid, [0, t1, t2, TICKS_PER_MINUTE - 1], [o, first, second, c])
        jitter = rng.standard_normal(TICKS_PER_MINUTE) * (h - lo) * 0.08
        jitter[[0, -1]] = 0.0
        path = np.clip(_round_to(path + jitter, self.pair.price_tick), lo, h)
        path[round(t1)] = first
        path[round(t2)] = second
        path[0], path[-1] = o, c
        return path

    # -- candles at an instant ------------------------------------------------------------

    def candle_at(self, now_ms: int) -> Candle:
        """The forming 1 m candle at ``now_ms`` (what its ticks so far make)."""
        minute = (now_ms - EPOCH_MS) // MINUTE_MS
        k = min(TICKS_PER_MINUTE - 1, ((now_ms - EPOCH_MS) % MINUTE_MS) // 100)
        row = self.minutes(minute, minute)[0]
        seen = self.ticks(minute)[: k + 1]
        frac = (k + 1) / TICKS_PER_MINUTE
        volume = float(_round_to(np.array([row[5] * frac]), self.pair.amount_step)[0])
        return [row[0], row[1], float(seen.max()), float(seen.min()), float(seen[-1]), volume]

    def price_at(self, now_ms: int) -> float:
        minute = (now_ms - EPOCH_MS) // MINUTE_MS
        k = min(TICKS_PER_MINUTE - 1, ((now_ms - EPOCH_MS) % MINUTE_MS) // 100)
        return float(self.ticks(minute)[k])

    def ohlcv(self, timeframe: str, since: int, limit: int, now_ms: int) -> list[Candle]:
        """Up to ``limit`` candles opening at or after ``since`` and no later than now;
        the last one is still forming when it contains ``now_ms``."""
        tf = TIMEFRAME_MS[timeframe]
        since, limit, now_ms = int(since), int(limit), int(now_ms)
        # Buckets are aligned on the epoch in UTC (weeks start on Monday, as on exchanges).
        align = 4 * 86_400_000 if timeframe == "1w" else 0
        start = max(since, EPOCH_MS + (tf if align else 0))
        first_bucket = -(-(start - align) // tf) * tf + align
        now_bucket = (now_ms - align) // tf * tf + align
        last_bucket = min(now_bucket, first_bucket + (limit - 1) * tf)
        if last_bucket < first_bucket:
            return []
        per = tf // MINUTE_MS
        candles: list[Candle] = []
        if per >= DAY_MINUTES:
            days_per = per // DAY_MINUTES
            bucket = first_bucket
            while bucket <= last_bucket:
                candles.append(self._aggregate_days(bucket, days_per, now_ms))
                bucket += tf
            return candles
        first_min = (first_bucket - EPOCH_MS) // MINUTE_MS
        now_min = (now_ms - EPOCH_MS) // MINUTE_MS
        last_min = min((last_bucket - EPOCH_MS) // MINUTE_MS + per - 1, now_min - 1)
        rows = self.minutes(first_min, last_min)
        if last_bucket == now_bucket:
            rows = (
                np.vstack([rows, np.array([self.candle_at(now_ms)])])
                if len(rows)
                else (np.array([self.candle_at(now_ms)]))
            )
        n = len(rows)
        for i in range(0, n, per):
            chunk = rows[i : i + per]
            candles.append(
                [
                    float(chunk[0, 0]),
                    float(chunk[0, 1]),
                    float(chunk[:, 2].max()),
                    float(chunk[:, 3].min()),
                    float(chunk[-1, 4]),
                    self._volume(chunk[:, 5].sum()),
                ]
            )
        return candles

    def _aggregate_days(self, bucket: int, days_per: int, now_ms: int) -> Candle:
        first_day = (bucket - EPOCH_MS) // 86_400_000
        now_day = (now_ms - EPOCH_MS) // 86_400_000
        parts = [self._day_summary(d) for d in range(first_day, min(first_day + days_per, now_day))]
        if first_day + days_per > now_day:  # the bucket holds today, still forming
            today = self.ohlcv("1m", now_day * 86_400_000 + EPOCH_MS, DAY_MINUTES, now_ms)
            if today:
                parts.append(
                    (
                        today[0][1],
                        max(c[2] for c in today),
                        min(c[3] for c in today),
                        today[-1][4],
                        sum(c[5] for c in today),
                    )
                )
        return [
            float(bucket),
            parts[0][0],
            max(p[1] for p in parts),
            min(p[2] for p in parts),
            parts[-1][3],
            self._volume(sum(p[4] for p in parts)),
        ]

    def _volume(self, value: float) -> float:
        return float(_round_to(np.array([value]), self.pair.amount_step)[0])

    def closed_rows(self, timeframe: str, start_ms: int, end_ms: int, now_ms: int) -> FloatArray:
        """Closed candles opening in ``[start_ms, end_ms)`` as rows [ts, o, h, l, c, v],
        built from the 1 m path in whole arrays (the same values :meth:`ohlcv` gives one by
        one): what the bulk history and ``tradebot backtest`` read."""
        frame = TIMEFRAME_MS[timeframe]
        align = 4 * 86_400_000 if timeframe == "1w" else 0  # weeks start on Monday
        start = max(start_ms, EPOCH_MS)
        first_bucket = -(-(start - align) // frame) * frame + align
        last_end = (min(end_ms, now_ms) - align) // frame * frame + align  # closed only
        if last_end <= first_bucket:
            return np.empty((0, 6))
        first_min = (first_bucket - EPOCH_MS) // MINUTE_MS
        last_min = (last_end - EPOCH_MS) // MINUTE_MS - 1
        rows = self.minutes(first_min, last_min)
        per = frame // MINUTE_MS
        if per == 1:
            return rows
        n = rows.shape[0] // per
        blocks = rows[: n * per].reshape(n, per, 6)
        return np.column_stack(
            [
                blocks[:, 0, 0],
                blocks[:, 0, 1],
                blocks[:, :, 2].max(axis=1),
                blocks[:, :, 3].min(axis=1),
                blocks[:, -1, 4],
                # rounded to the amount step, as :meth:`ohlcv` rounds aggregated volume
                _round_to(blocks[:, :, 5].sum(axis=1), self.pair.amount_step),
            ]
        )


class SimClock:
    """Sim time: runs ``speed`` times faster than the wall from a shared anchor."""

    def __init__(self, speed: float = 1.0, anchor_ms: int | None = None) -> None:
        self.speed = speed
        self.anchor_ms = anchor_ms if anchor_ms is not None else int(time.time() * 1000)

    def now_ms(self) -> int:
        wall = time.time() * 1000
        return int(self.anchor_ms + (wall - self.anchor_ms) * self.speed)


class SimExchange:
    """The sim exchange behind the same interface as the ccxt adapters."""

    def __init__(self, seed: int = 42, clock: SimClock | None = None) -> None:
        self.id = "sim"
        self.timeframes = list(TIMEFRAME_MS)
        self.ohlcv_page_limit = 1000
        self.seed = seed
        self.clock = clock or SimClock()
        self._paths: dict[str, SimPath] = {}
        self._markets = {symbol: _market(pair) for symbol, pair in SIM_PAIRS.items()}

    def now_ms(self) -> int:
        return self.clock.now_ms()

    def clock_rate(self) -> tuple[float, int] | None:
        return None if self.clock.speed == 1 else (self.clock.speed, self.clock.anchor_ms)

    def is_available(self) -> bool:
        return True

    def path(self, symbol: str) -> SimPath:
        if symbol not in SIM_PAIRS:
            raise BadSymbol(f"Unknown symbol {symbol!r} on exchange 'sim'.")
        found = self._paths.get(symbol)
        if found is None:
            found = self._paths[symbol] = SimPath(self.seed, SIM_PAIRS[symbol])
        return found

    async def load_markets(self, *, reload: bool = False) -> dict[str, dict[str, Any]]:
        return self._markets

    async def market(self, symbol: str) -> dict[str, Any]:
        self.path(symbol)
        return self._markets[symbol]

    def ticker_at(self, symbol: str, now_ms: int) -> Ticker:
        path = self.path(symbol)
        pair = path.pair
        price = path.price_at(now_ms)
        minute = (now_ms - EPOCH_MS) // MINUTE_MS
        k = ((now_ms - EPOCH_MS) % MINUTE_MS) // 100
        noise = abs(np.sin(minute * 12.9898 + k * 78.233 + path.key)) * 0.8
        half = max(pair.price_tick, price * pair.spread_bps * 1e-4 * (1 + noise) / 2)
        tick = pair.price_tick
        bid = float(_round_to(np.array([np.floor((price - half) / tick) * tick]), tick)[0])
        ask = float(_round_to(np.array([np.ceil((price + half) / tick) * tick]), tick)[0])
        if ask <= bid:
            ask = float(_round_to(np.array([bid + tick]), tick)[0])
        day_ago = path.minutes(minute - DAY_MINUTES, minute - 1)
        volume = path._volume(float(day_ago[:, 5].sum())) if len(day_ago) else 0.0
        open_24h = float(day_ago[0, 1]) if len(day_ago) else price
        change = round((price / open_24h - 1) * 100, 4)
        return Ticker("sim", symbol, price, bid, ask, volume, change, now_ms)

    async def fetch_ticker(self, symbol: str) -> Ticker:
        return self.ticker_at(symbol, self.now_ms())

    def ohlcv(self, symbol: str, timeframe: str, since: int | None, limit: int) -> list[Candle]:
        """Synchronous OHLCV (the CLI and backtests may call it directly)."""
        if timeframe not in TIMEFRAME_MS:
            raise BadTimeframe(
                f"Timeframe {timeframe!r} is not offered by 'sim'; use one of "
                f"{', '.join(self.timeframes)}."
            )
        path = self.path(symbol)
        now = self.now_ms()
        tf = TIMEFRAME_MS[timeframe]
        if since is None:
            since = (now // tf - (limit - 1)) * tf
        return path.ohlcv(timeframe, since, limit, now)

    async def fetch_ohlcv(
        self, symbol: str, timeframe: str, since: int | None, limit: int
    ) -> list[Candle]:
        return self.ohlcv(symbol, timeframe, since, min(limit, self.ohlcv_page_limit))

    def closed_ohlcv_rows(
        self, symbol: str, timeframe: str, start_ms: int, end_ms: int
    ) -> FloatArray:
        """Closed candles opening in ``[start_ms, end_ms)``, no page limit, as an (n, 6)
        array (CPU work: the bulk history calls it on a worker thread)."""
        return self.path(symbol).closed_rows(timeframe, start_ms, end_ms, self.now_ms())

    async def fetch_order_book(self, symbol: str, depth: int) -> OrderBook:
        now = self.now_ms()
        ticker = self.ticker_at(symbol, now)
        pair = SIM_PAIRS[symbol]
        rng = np.random.default_rng([self.seed, zlib.crc32(symbol.encode()), now // 100, 2])
        steps = np.cumsum(rng.exponential(pair.spread_bps * 1e-4 * ticker.price, depth))
        offsets = np.concatenate([[0.0], steps[:-1]])
        base_size = pair.volume_per_minute / 20
        bid_px = _round_to(ticker.bid - offsets if ticker.bid else offsets, pair.price_tick)
        ask_px = _round_to(ticker.ask + offsets if ticker.ask else offsets, pair.price_tick)
        sizes = [
            np.maximum(
                _round_to(
                    base_size * rng.lognormal(0, 0.8, depth) * (1 + np.arange(depth) / 5),
                    pair.amount_step,
                ),
                pair.amount_step,
            )
            for _side in range(2)
        ]
        bids = _dedupe_levels(bid_px, sizes[0], descending=True)
        asks = _dedupe_levels(ask_px, sizes[1], descending=False)
        return OrderBook("sim", symbol, bids, asks, now)

    async def fetch_trades(self, symbol: str, limit: int) -> list[Trade]:
        now = self.now_ms()
        path = self.path(symbol)
        pair = path.pair
        trades: list[Trade] = []
        start = now - (limit - 1) * 100
        previous = path.price_at(start - 100)
        for i in range(limit):
            at = start + i * 100
            price = path.price_at(at)
            rng = np.random.default_rng([self.seed, path.key, at // 100, 3])
            amount = float(
                _round_to(
                    np.array([pair.volume_per_minute / 600 * rng.lognormal(0, 1)]), pair.amount_step
                )[0]
            )
            side = (
                "buy" if price > previous or (price == previous and rng.random() < 0.5) else "sell"
            )
            trades.append(Trade(f"{at // 100}", at, side, price, max(amount, pair.amount_step)))
            previous = price
        return trades

    async def close(self) -> None:
        return None


def _dedupe_levels(prices: FloatArray, sizes: FloatArray, *, descending: bool) -> list[list[float]]:
    levels: dict[float, float] = {}
    for price, size in zip(prices.tolist(), sizes.tolist(), strict=True):
        if price > 0:
            levels[price] = levels.get(price, 0.0) + size
    ordered = sorted(levels.items(), reverse=descending)
    return [[p, s] for p, s in ordered]


def _market(pair: SimPair) -> dict[str, Any]:
    """A ccxt-shaped market (precision as tick sizes, limits, fees)."""
    return {
        "id": pair.symbol.replace("/", ""),
        "symbol": pair.symbol,
        "base": pair.base,
        "quote": pair.quote,
        "type": "spot",
        "spot": True,
        "active": True,
        "precision": {"amount": pair.amount_step, "price": pair.price_tick},
        "limits": {
            "amount": {"min": pair.amount_step, "max": 1e7},
            "price": {"min": pair.price_tick, "max": None},
            "cost": {"min": pair.min_cost, "max": None},
        },
        "taker": FEE,
        "maker": FEE,
    }

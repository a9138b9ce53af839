"""Current signals of the built-in strategies on a symbol's latest closed candles.

Cached per (exchange, symbol) in the Redis hash ``analysis:signals:{exchange}:{symbol}``,
one field per timeframe, for ``signals_cache_ttl_s``.
"""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
from redis.asyncio import Redis

from analysis_service.candle_input import candles_from_rows
from analysis_service.market import TIMEFRAME_MS, MarketClient
from analysis_service.settings import AnalysisSettings
from shared.candles import Candles
from shared.errors import ValidationFailed
from shared.indicators import compute, parse_spec
from shared.strategies import ENTER_LONG, EXIT_LONG, StrategyParamsError, strategy_classes

SNAPSHOT = ("sma:20", "sma:50", "ema:20", "rsi:14", "macd:12:26:9", "bbands:20:2", "atr:14")
ACTIONS = {ENTER_LONG: "buy", EXIT_LONG: "sell"}


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z")


def _value(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def strategy_signals(candles: Candles) -> list[dict[str, Any]]:
    """Every strategy that runs on default parameters, read at the last candle."""
    out: list[dict[str, Any]] = []
    for name, cls in strategy_classes().items():
        try:
            strategy = cls({})
        except (StrategyParamsError, ValueError):
            continue  # needs parameters (the rule strategy)
        signals = strategy.signals(candles)
        fired = np.nonzero(signals)[0]
        last = int(fired[-1]) if fired.size else None
        out.append(
            {
                "strategy": name,
                "params": strategy.params.model_dump(mode="json"),
                "action": ACTIONS.get(int(signals[-1]), "hold"),
                "last_signal": None
                if last is None
                else {
                    "action": ACTIONS[int(signals[last])],
                    "candle_at": _iso(int(candles.timestamp[last])),
                    "price": float(candles.close[last]),
                },
                "warmed_up": len(candles) > strategy.warmup,
            }
        )
    return out


def indicator_snapshot(candles: Candles) -> dict[str, Any]:
    snapshot: dict[str, Any] = {}
    for text in SNAPSHOT:
        spec = parse_spec(text)
        series = compute(spec, candles)
        values = {name: _value(v[-1]) for name, v in series.items()}
        snapshot[spec.text] = values["value"] if list(values) == ["value"] else values
    return snapshot


class SignalService:
    def __init__(self, market: MarketClient, redis: Redis, settings: AnalysisSettings) -> None:
        self.market = market
        self.redis = redis
        self.settings = settings

    async def signals(self, *, exchange: str | None, symbol: str, timeframe: str) -> dict[str, Any]:
        if timeframe not in TIMEFRAME_MS:
            raise ValidationFailed(
                f"unknown timeframe {timeframe!r}; use one of {', '.join(TIMEFRAME_MS)}"
            )
        key = f"analysis:signals:{exchange or 'default'}:{symbol}"
        cached = await self.redis.hget(key, timeframe)
        if cached is not None:
            body: dict[str, Any] = orjson.loads(cached)
            return body
        rows = await self.market.latest(
            exchange=exchange, symbol=symbol, timeframe=timeframe,
            limit=self.settings.signals_candles + 1,
        )  # fmt: skip
        closed = rows[:-1]  # the newest candle is still forming: signals use closed ones
        if len(closed) < 2:
            raise ValidationFailed(f"not enough {timeframe} candles of {symbol} for signals")
        candles = candles_from_rows(closed)
        body = {
            "exchange": exchange,
            "symbol": symbol,
            "timeframe": timeframe,
            "candle_at": _iso(int(candles.timestamp[-1])),
            "price": float(candles.close[-1]),
            "signals": await asyncio.to_thread(strategy_signals, candles),
            "indicators": await asyncio.to_thread(indicator_snapshot, candles),
            "generated_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        }
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, timeframe, orjson.dumps(body))
            pipe.expire(key, self.settings.signals_cache_ttl_s)
            await pipe.execute()
        return body

"""Indicator series for candles, cached in Redis for candles loaded from the market."""

from __future__ import annotations

import asyncio
import hashlib
import math
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
from redis.asyncio import Redis

from analysis_service.candle_input import candles_from_rows, to_ms
from analysis_service.indicators.schemas import IndicatorsRequest
from analysis_service.market import TIMEFRAME_MS, MarketClient
from analysis_service.settings import AnalysisSettings
from shared.candles import Candles, FloatArray
from shared.errors import ValidationFailed
from shared.indicators import IndicatorSpec, IndicatorSpecError, compute, parse_spec
from shared.indicators import volume_profile as profile_of
from shared.validation import invalid_input


def as_json(values: FloatArray) -> list[float | None]:
    """A float series with ``null`` where it is undefined."""
    return [None if math.isnan(x) else x for x in values.tolist()]


def parse_specs(texts: list[str]) -> list[IndicatorSpec]:
    specs = []
    for text in texts:
        try:
            specs.append(parse_spec(text))
        except IndicatorSpecError as exc:
            raise invalid_input(["body", "indicators"], str(exc)) from None
    return specs


def indicator_series(candles: Candles, specs: list[IndicatorSpec]) -> dict[str, Any]:
    """``{spec: [...]}`` for one-series indicators, ``{spec: {part: [...]}}`` for others."""
    n = len(candles)
    short = [s for s in specs if n <= s.lookback]
    if short:
        need = max(s.lookback + 1 for s in short)
        names = ", ".join(s.text for s in short)
        raise ValidationFailed(
            f"too few candles: {names} needs at least {need} candles, got {n}; send more "
            "candles or use shorter periods"
        )
    out: dict[str, Any] = {}
    for spec in specs:
        series = compute(spec, candles)
        if list(series) == ["value"]:
            out[spec.text] = as_json(series["value"])
        else:
            out[spec.text] = {name: as_json(values) for name, values in series.items()}
    return out


def last_window_profile(candles: Candles, specs: list[IndicatorSpec]) -> dict[str, Any] | None:
    """The volume per price bin of the last window of the first ``vp`` spec."""
    vp = next((s for s in specs if s.name == "vp"), None)
    if vp is None:
        return None
    window, bins, area = int(vp.params[0]), int(vp.params[1]), vp.params[2]
    s = slice(len(candles) - window, len(candles))
    p = profile_of(candles.high[s], candles.low[s], candles.close[s], candles.volume[s], bins, area)
    return {
        "spec": vp.text,
        "bin_edges": p.bin_edges.tolist(),
        "volumes": p.volumes.tolist(),
        "poc": p.poc,
        "value_area_low": p.value_area_low,
        "value_area_high": p.value_area_high,
    }


class IndicatorService:
    def __init__(self, market: MarketClient, redis: Redis, settings: AnalysisSettings) -> None:
        self.market = market
        self.redis = redis
        self.settings = settings

    async def calculate(self, request: IndicatorsRequest) -> dict[str, Any]:
        """Series aligned to the candles (body candles, or loaded and cached)."""
        body: dict[str, Any] = orjson.loads(await self.calculate_json(request))
        return body

    async def calculate_json(self, request: IndicatorsRequest) -> bytes:
        """The same as JSON (IndicatorsRead's wire form): a cache hit is the cached bytes
        as stored, neither parsed nor validated again."""
        if len(request.indicators) > self.settings.indicators_max_specs:
            raise ValidationFailed(
                f"at most {self.settings.indicators_max_specs} indicators per request"
            )
        specs = parse_specs(request.indicators)
        if request.candles is not None:
            if len(request.candles) > self.settings.indicators_max_candles:
                raise ValidationFailed(
                    f"at most {self.settings.indicators_max_candles} candles per request"
                )
            candles = candles_from_rows(request.candles)
            # CPU-bound: off the event loop, so other requests keep flowing
            body = await asyncio.to_thread(self._body, None, None, None, candles, specs)
            return orjson.dumps(body)
        if request.symbol is None:  # the schema requires one source
            raise ValidationFailed("send candles or a symbol")
        if request.timeframe not in TIMEFRAME_MS:
            raise ValidationFailed(
                f"unknown timeframe {request.timeframe!r}; use one of {', '.join(TIMEFRAME_MS)}"
            )
        exchange = request.exchange or "default"
        key = f"analysis:indicators:{exchange}:{request.symbol}:{request.timeframe}"
        field = self._field(request, specs)
        cached = await self.redis.hget(key, field)
        if cached is not None:
            return cached if isinstance(cached, bytes) else cached.encode()
        candles = await self._load(request, request.symbol, specs)
        body = await asyncio.to_thread(
            self._body, request.exchange, request.symbol, request.timeframe, candles, specs
        )
        encoded = orjson.dumps(body)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, field, encoded)
            pipe.expire(key, self._ttl(request))
            await pipe.execute()
        return encoded

    def _body(
        self,
        exchange: str | None,
        symbol: str | None,
        timeframe: str | None,
        candles: Candles,
        specs: list[IndicatorSpec],
    ) -> dict[str, Any]:
        return {
            "exchange": exchange,
            "symbol": symbol,
            "timeframe": timeframe,
            "timestamps": candles.timestamp.tolist(),
            "indicators": indicator_series(candles, specs),
            "volume_profile": last_window_profile(candles, specs),
        }

    async def _load(
        self, request: IndicatorsRequest, symbol: str, specs: list[IndicatorSpec]
    ) -> Candles:
        if request.start is not None:
            start_ms = to_ms(request.start)
            end_ms = to_ms(request.end) if request.end else to_ms(datetime.now(UTC))
            candles = await self.market.fetch_range(
                exchange=request.exchange,
                symbol=symbol,
                timeframe=request.timeframe,
                start_ms=start_ms,
                end_ms=end_ms,
                max_candles=self.settings.indicators_max_candles,
            )
            if request.limit is not None and len(candles) > request.limit:
                candles = _tail(candles, request.limit)
            return candles
        if request.end is not None:
            raise ValidationFailed("end needs a start; or send limit alone for the latest candles")
        needed = max(s.lookback + 1 for s in specs)
        limit = request.limit or max(self.settings.indicators_default_limit, needed)
        rows = await self.market.latest(
            exchange=request.exchange,
            symbol=symbol,
            timeframe=request.timeframe,
            limit=min(limit, 5000),  # the market route's own ceiling
        )
        return candles_from_rows(rows)

    @staticmethod
    def _field(request: IndicatorsRequest, specs: list[IndicatorSpec]) -> str:
        canonical = orjson.dumps(
            {
                "specs": [s.text for s in specs],
                "start": request.start.isoformat() if request.start else None,
                "end": request.end.isoformat() if request.end else None,
                "limit": request.limit,
            }
        )
        return hashlib.sha256(canonical).hexdigest()[:32]

    def _ttl(self, request: IndicatorsRequest) -> int:
        if request.end is not None and to_ms(request.end) < to_ms(datetime.now(UTC)):
            return 3600  # a closed range of history does not change
        return self.settings.indicators_cache_ttl_s


def _tail(candles: Candles, n: int) -> Candles:
    s = slice(len(candles) - n, len(candles))
    return Candles(
        np.ascontiguousarray(candles.timestamp[s]),
        np.ascontiguousarray(candles.open[s]),
        np.ascontiguousarray(candles.high[s]),
        np.ascontiguousarray(candles.low[s]),
        np.ascontiguousarray(candles.close[s]),
        np.ascontiguousarray(candles.volume[s]),
    )

"""Candles from the market service over HTTP: ``GET /market/ohlcv`` for recent candles and
short ranges (JSON, paged), ``GET /market/ohlcv/bulk`` for a backtest's whole range (one
Arrow IPC stream, decoded on a worker thread).

Calls go through the shared :class:`~shared.service_client.ServiceClient` (every replica in
``MARKET_SERVICE_URLS``, failover, a breaker per replica). The market service's refusals
(unknown symbol, exchange or timeframe: 400/404/422) become :class:`MarketRejected` (422)
here; its absence becomes :class:`~shared.errors.ServiceUnavailable` (503 with Retry-After).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from shared.candle_arrow import CandleStreamError, read_candles
from shared.candles import Candles
from shared.errors import ServiceUnavailable, ValidationFailed
from shared.service_client import ServiceClient, StatusErrors
from shared.timeframes import TIMEFRAME_MS as TIMEFRAME_MS  # re-exported for this package


class MarketRejected(ValidationFailed):
    """The market service refused the request (unknown symbol, exchange or timeframe)."""


_REJECTED: StatusErrors = dict.fromkeys((400, 404, 422), MarketRejected)


class MarketClient:
    def __init__(
        self, http: ServiceClient, *, page_limit: int = 1000, bulk_timeout_s: float = 120.0
    ) -> None:
        self._http = http
        self.page_limit = page_limit
        self.bulk_timeout_s = bulk_timeout_s

    async def _get(self, path: str, params: dict[str, Any]) -> Any:
        return await self._http.get(path, params=params, errors=_REJECTED)

    async def latest(
        self, *, exchange: str | None, symbol: str, timeframe: str, limit: int
    ) -> list[list[float]]:
        """The latest ``limit`` candles (the last one may still be forming)."""
        params: dict[str, Any] = {"symbol": symbol, "timeframe": timeframe, "limit": limit}
        if exchange:
            params["exchange"] = exchange
        body = await self._get("/market/ohlcv", params)
        rows: list[list[float]] = body["candles"]
        return rows

    async def fetch_range(
        self,
        *,
        exchange: str | None,
        symbol: str,
        timeframe: str,
        start_ms: int,
        end_ms: int,
        max_candles: int,
        on_page: Callable[[int], None] | None = None,
    ) -> Candles:
        """Candles opening in ``[start_ms, end_ms)``, page by page, oldest first."""
        frame = TIMEFRAME_MS[timeframe]
        expected = (end_ms - start_ms) // frame
        if expected > max_candles:
            raise ValidationFailed(
                f"the range holds about {expected} {timeframe} candles; at most {max_candles} "
                "are allowed, shorten it or use a longer timeframe"
            )
        pages: list[np.ndarray] = []
        since = start_ms
        total = 0
        while since < end_ms:
            params: dict[str, Any] = {
                "symbol": symbol,
                "timeframe": timeframe,
                "since": since,
                "limit": self.page_limit,
            }
            if exchange:
                params["exchange"] = exchange
            body = await self._get("/market/ohlcv", params)
            rows = np.asarray(body.get("candles") or [], dtype=np.float64).reshape(-1, 6)
            rows = rows[(rows[:, 0] >= since) & (rows[:, 0] < end_ms)]
            if rows.shape[0] == 0:
                break
            pages.append(rows)
            total += rows.shape[0]
            if on_page is not None:
                on_page(total)
            since = int(rows[-1, 0]) + frame
        if not pages:
            return Candles.from_rows([])
        return Candles.from_rows(np.concatenate(pages))  # type: ignore[arg-type]

    async def fetch_bulk(
        self,
        *,
        exchange: str | None,
        symbol: str,
        timeframe: str,
        start_ms: int,
        end_ms: int,
        max_candles: int,
        timings: dict[str, float] | None = None,
    ) -> Candles:
        """Closed candles opening in ``[start_ms, end_ms)``, oldest first, in one request
        (the market service fills and stores what it lacks first). ``timings`` gets the
        seconds to the stream's last byte (``transfer_s``) and to decode it (``decode_s``)."""
        frame = TIMEFRAME_MS[timeframe]
        expected = (end_ms - start_ms) // frame
        if expected > max_candles:
            raise ValidationFailed(
                f"the range holds about {expected} {timeframe} candles; at most {max_candles} "
                "are allowed, shorten it or use a longer timeframe"
            )
        params: dict[str, Any] = {
            "symbol": symbol,
            "timeframe": timeframe,
            "since": start_ms,
            "until": end_ms,
        }
        if exchange:
            params["exchange"] = exchange
        clock = time.perf_counter()
        response = await self._http.request(
            "GET",
            "/market/ohlcv/bulk",
            params=params,
            errors=_REJECTED,
            timeout_s=self.bulk_timeout_s,
        )
        received = time.perf_counter()
        try:
            candles = await asyncio.to_thread(read_candles, response.content)
        except CandleStreamError as exc:
            raise ServiceUnavailable(
                "market", f"The market service sent an incomplete candle stream ({exc})."
            ) from exc
        if timings is not None:
            timings["transfer_s"] = received - clock
            timings["decode_s"] = time.perf_counter() - received
        return candles

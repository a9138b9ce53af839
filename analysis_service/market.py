"""Candles from the market service (``GET /market/ohlcv``), over HTTP.

Base URLs come from ``MARKET_SERVICE_URLS`` (comma separated); calls go round-robin and
move on to the next URL when one cannot be reached. A circuit breaker stops hammering a
market service that is down. Its refusals (unknown symbol or timeframe) become 422 here;
its absence becomes 503 with Retry-After.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np

from shared.breaker import CircuitBreaker, CircuitOpenError
from shared.candles import Candles
from shared.errors import DependencyUnavailable, ValidationFailed
from shared.timeframes import TIMEFRAME_MS as TIMEFRAME_MS  # re-exported for this package


class MarketRejected(ValidationFailed):
    """The market service refused the request (unknown symbol, exchange or timeframe)."""


class MarketUnavailable(DependencyUnavailable):
    """No market service answered."""


class MarketClient:
    def __init__(
        self,
        client: httpx.AsyncClient,
        urls: list[str],
        *,
        page_limit: int = 1000,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        if not urls:
            raise ValueError("no market service URL configured")
        self.client = client
        self.urls = urls
        self.page_limit = page_limit
        self.breaker = breaker or CircuitBreaker(
            "analysis->market", failure_threshold=5, reset_timeout=10.0
        )
        self._next = itertools.cycle(range(len(urls)))

    async def _get(self, path: str, params: dict[str, Any]) -> Any:
        start = next(self._next)
        last_error: Exception | None = None
        for i in range(len(self.urls)):
            base = self.urls[(start + i) % len(self.urls)]
            try:
                response = await self.breaker.call(
                    lambda base=base: self.client.get(base + path, params=params),  # type: ignore[misc]
                )
            except CircuitOpenError as exc:
                raise MarketUnavailable(
                    "the market service is unavailable", retry_after=int(exc.retry_after) + 1
                ) from exc
            except httpx.HTTPError as exc:
                last_error = exc
                continue
            if response.status_code in (400, 404, 422):
                raise MarketRejected(_detail(response))
            if response.status_code >= 500:
                last_error = httpx.HTTPStatusError(
                    _detail(response), request=response.request, response=response
                )
                self.breaker.record_failure()
                continue
            response.raise_for_status()
            return response.json()
        raise MarketUnavailable(f"the market service is unavailable ({last_error!r})")

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


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"market service answered {response.status_code}"
    if isinstance(body, dict):
        return str(body.get("detail") or body.get("title") or body)
    return str(body)

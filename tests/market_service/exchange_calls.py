"""Counting a running market app's exchange reads, method by method."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI


def count_calls(app: FastAPI, exchange_id: str = "sim") -> Counter[str]:
    """Count the exchange reads of a running app, method by method."""
    exchange = app.state.exchanges.get(exchange_id)
    calls: Counter[str] = Counter()
    for name in ("fetch_ticker", "fetch_ohlcv", "fetch_order_book", "fetch_trades"):
        original: Callable[..., Awaitable[Any]] = getattr(exchange, name)

        def wrap(fn: Callable[..., Awaitable[Any]], label: str) -> Callable[..., Awaitable[Any]]:
            async def counted(*args: Any, **kwargs: Any) -> Any:
                calls[label] += 1
                return await fn(*args, **kwargs)

            return counted

        setattr(exchange, name, wrap(original, name))
    return calls

"""Exchange errors, translated from ccxt at the adapter boundary.

Hierarchy (each is an :class:`shared.errors.AppError`, so the one problem-details handler
renders it)::

    ExchangeError                 500  base
    ├── UnknownExchange           404  not configured in MARKET_EXCHANGES
    ├── BadSymbol                 404  no such market on the exchange
    ├── BadTimeframe              400  timeframe the exchange does not offer
    ├── BadRequestToExchange      400  the exchange refused the parameters
    └── TemporaryError            503  network error, timeout, maintenance (retried)
        ├── RateLimited           503  429 / DDoS protection (retried)
        └── ExchangeUnavailable   503  the circuit breaker is open (not retried)
"""

from __future__ import annotations

from typing import Any

from shared.errors import AppError, BadRequest, DependencyUnavailable, NotFound


class ExchangeError(AppError):
    """Base of every exchange error."""


class UnknownExchange(ExchangeError, NotFound):
    status, title = 404, "Not Found"


class BadSymbol(ExchangeError, NotFound):
    status, title = 404, "Not Found"


class BadTimeframe(ExchangeError, BadRequest):
    status, title = 400, "Bad Request"


class BadRequestToExchange(ExchangeError, BadRequest):
    status, title = 400, "Bad Request"


class TemporaryError(ExchangeError, DependencyUnavailable):
    status, title = 503, "Service Unavailable"

    def __init__(self, detail: str | None = None, *, retry_after: int = 5, **kwargs: Any) -> None:
        DependencyUnavailable.__init__(self, detail, retry_after=retry_after, **kwargs)


class RateLimited(TemporaryError):
    """The exchange throttled us (HTTP 429/418, DDoS protection)."""


class ExchangeUnavailable(TemporaryError):
    """The exchange's circuit breaker is open: answer at once instead of waiting."""

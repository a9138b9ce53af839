"""What an exchange can answer, in one vocabulary for every service that talks to one.

ccxt's errors are translated into these at each adapter boundary (the market service's
venue adapters, the trading engine's live broker), freqtrade style::

    ExchangeError                 500  base: a failure nobody can attribute
    ├── ExchangeUnavailable       503  temporary: network trouble, timeout, maintenance,
    │   │                              or the exchange's circuit breaker is open
    │   └── ExchangeRateLimited   503  the exchange throttled us (429, DDoS protection)
    ├── InvalidOrder              422  the venue's rules refuse the order (minimums,
    │                                  precision, unknown symbol or order)
    ├── ExchangeInsufficientFunds 422  the exchange account cannot pay for the order
    └── ExchangeAuthError         403  the exchange refused the API key

Each is an :class:`shared.errors.AppError`, so the one problem-details handler renders it.
"""

from __future__ import annotations

from shared.errors import AppError, DependencyUnavailable, Forbidden, ValidationFailed

__all__ = [
    "ExchangeAuthError",
    "ExchangeError",
    "ExchangeInsufficientFunds",
    "ExchangeRateLimited",
    "ExchangeUnavailable",
    "InvalidOrder",
]


class ExchangeError(AppError):
    """Base of every exchange error."""


class ExchangeUnavailable(ExchangeError, DependencyUnavailable):
    """The exchange cannot answer now; worth asking again later (Retry-After)."""

    status, title = 503, "Exchange Unavailable"


class ExchangeRateLimited(ExchangeUnavailable):
    """The exchange throttled us (HTTP 429/418, DDoS protection)."""


class InvalidOrder(ExchangeError, ValidationFailed):
    status, title = 422, "Invalid Order"


class ExchangeInsufficientFunds(ExchangeError, ValidationFailed):
    status, title = 422, "Insufficient Funds"


class ExchangeAuthError(ExchangeError, Forbidden):
    status, title = 403, "Exchange Refused The API Key"

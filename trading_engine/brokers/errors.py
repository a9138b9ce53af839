"""Exchange errors, translated at the broker boundary (freqtrade style)::

ExchangeError                 base
├── TemporaryError            503  network trouble, timeouts, rate limits, exchange down
├── InvalidOrder              422  below minimums, bad precision, unknown symbol
├── ExchangeInsufficientFunds 422  the exchange account cannot pay for the order
└── ExchangeAuthError         403  the stored API key was refused
"""

from __future__ import annotations

from shared.errors import DependencyUnavailable, Forbidden, ValidationFailed


class TemporaryError(DependencyUnavailable):
    title = "Exchange Unavailable"


class InvalidOrder(ValidationFailed):
    title = "Invalid Order"


class ExchangeInsufficientFunds(ValidationFailed):
    title = "Insufficient Funds"


class ExchangeAuthError(Forbidden):
    title = "Exchange Refused The API Key"

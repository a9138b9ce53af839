"""The market service's own exchange errors, on the shared vocabulary of
:mod:`shared.exchange_errors` (whose ``ExchangeUnavailable`` and ``ExchangeRateLimited``
the adapters raise for temporary trouble)::

    ExchangeError                 500  shared base
    ├── UnknownExchange           404  not configured in MARKET_EXCHANGES
    ├── BadSymbol                 404  no such market on the exchange
    ├── BadTimeframe              400  timeframe the exchange does not offer
    └── BadRequestToExchange      400  the exchange refused the parameters
"""

from __future__ import annotations

from shared.errors import BadRequest, NotFound
from shared.exchange_errors import ExchangeError


class UnknownExchange(ExchangeError, NotFound):
    status, title = 404, "Not Found"


class BadSymbol(ExchangeError, NotFound):
    status, title = 404, "Not Found"


class BadTimeframe(ExchangeError, BadRequest):
    status, title = 400, "Bad Request"


class BadRequestToExchange(ExchangeError, BadRequest):
    status, title = 400, "Bad Request"

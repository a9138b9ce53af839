"""The exchange errors the brokers raise: the shared vocabulary of
:mod:`shared.exchange_errors`, named here for the engine's modules that already import
them from this package."""

from shared.exchange_errors import (
    ExchangeAuthError,
    ExchangeInsufficientFunds,
    ExchangeUnavailable,
    InvalidOrder,
)

__all__ = ["ExchangeAuthError", "ExchangeInsufficientFunds", "ExchangeUnavailable", "InvalidOrder"]

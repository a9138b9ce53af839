"""The configured exchanges (MARKET_EXCHANGES), built once per process."""

from __future__ import annotations

from collections.abc import Iterator

from market_service.exchanges.base import MarketExchange
from market_service.exchanges.ccxt_exchange import CcxtExchange
from market_service.exchanges.errors import UnknownExchange
from market_service.exchanges.sim import SimClock, SimExchange
from market_service.settings import MarketSettings
from shared.breaker import CircuitBreaker


class ExchangeRegistry:
    """Exchanges by ccxt id; the first configured one is the default."""

    def __init__(self, exchanges: list[MarketExchange]) -> None:
        if not exchanges:
            raise ValueError("at least one exchange is needed")
        self._by_id = {exchange.id: exchange for exchange in exchanges}
        self.default_id = exchanges[0].id

    @property
    def ids(self) -> list[str]:
        return list(self._by_id)

    def __iter__(self) -> Iterator[MarketExchange]:
        return iter(self._by_id.values())

    def get(self, exchange_id: str | None = None) -> MarketExchange:
        """The exchange called ``exchange_id`` (default: the first configured)."""
        key = (exchange_id or self.default_id).strip().lower()
        found = self._by_id.get(key)
        if found is None:
            raise UnknownExchange(
                f"Exchange {exchange_id!r} is not configured; available: {', '.join(self.ids)}."
            )
        return found

    async def close(self) -> None:
        for exchange in self._by_id.values():
            await exchange.close()


def build_exchange(
    exchange_id: str, settings: MarketSettings, *, sim_anchor_ms: int | None = None
) -> MarketExchange:
    """One exchange as the settings describe it."""
    if exchange_id == "sim":
        return SimExchange(settings.sim_seed, SimClock(settings.sim_speed, sim_anchor_ms))
    return CcxtExchange(
        exchange_id,
        timeout_ms=settings.exchange_timeout_ms,
        rate_limit=settings.exchange_rate_limit,
        retry_attempts=settings.exchange_retry_attempts,
        retry_wait_min=settings.exchange_retry_wait_min,
        retry_wait_max=settings.exchange_retry_wait_max,
        breaker=CircuitBreaker(
            f"exchange:{exchange_id}",
            failure_threshold=settings.exchange_breaker_threshold,
            reset_timeout=settings.exchange_breaker_reset_seconds,
        ),
        base_url=settings.exchange_base_urls.get(exchange_id),
        markets_ttl=settings.markets_refresh_seconds,
        use_streams=settings.feed_use_exchange_streams,
    )


def build_registry(
    settings: MarketSettings, *, sim_anchor_ms: int | None = None
) -> ExchangeRegistry:
    return ExchangeRegistry(
        [build_exchange(e, settings, sim_anchor_ms=sim_anchor_ms) for e in settings.exchange_ids]
    )

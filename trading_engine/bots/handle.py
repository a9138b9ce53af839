"""A running bot as the replica that owns it sees it: its adapter, market and place in
the candle stream."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from trading_engine.bots.adapter import Adapter
from trading_engine.bots.candles import CandleKey

if TYPE_CHECKING:
    from trading_engine.bots.portfolio import PortfolioPlan


@dataclass
class BotHandle:
    adapter: Adapter
    key: CandleKey
    warmup: int
    # Higher timeframes the strategy reads -> closed candles of each it needs.
    higher: dict[str, int] = field(default_factory=dict)
    last_ts: int | None = None
    flat: bool | None = None  # known to hold no position (None: not known yet)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    failures: int = 0
    settings: str = ""  # fingerprint of strategy, parameters, risk and size (from SQL)
    # A portfolio bot's pairs and adapters (``adapter`` and ``key`` are its first pair's).
    portfolio: PortfolioPlan | None = None

    def higher_members(self) -> list[str]:
        """Candle watch registry members of the higher timeframes its strategy reads."""
        market = self.key
        return [CandleKey(market.exchange, market.symbol, tf).member for tf in self.higher]

"""A bot's candle window is consecutive candles: a stale recent history (the market
service caches it) is completed from the stored range, and a bot waits for candles the
market does not have yet."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator

import pytest

from shared.service_client import ServiceClient
from tests.trading_engine.bots.driver import STEP_MS, TIMEFRAME, wave_candles
from tests.trading_engine.stubs import MarketStub
from trading_engine.bots.candles import CandleBook, CandleKey, CandlesMissing
from trading_engine.market_client import MarketClient

KEY = CandleKey("sim", "BTC/USDT", TIMEFRAME)
SERIES = (KEY.exchange, KEY.symbol, KEY.timeframe)


@pytest.fixture
async def book(market_stub_server: tuple[MarketStub, str]) -> AsyncIterator[CandleBook]:
    async with ServiceClient("market", market_stub_server[1], caller="test") as http:
        yield CandleBook(MarketClient(http), keep=50)


def consecutive(rows: list[list[float]]) -> bool:
    return all(b[0] - a[0] == STEP_MS for a, b in itertools.pairwise(rows))


async def test_a_stale_recent_history_is_completed_from_the_stored_range(
    market: MarketStub, book: CandleBook
) -> None:
    rows = wave_candles(40)
    market.history[SERIES] = rows
    market.candles[SERIES] = rows[:25]  # the cached recent candles, 14 behind

    window = await book.window(KEY, rows[39], need=30)

    assert window == rows[:40]


async def test_a_candle_after_a_gap_extends_the_book_with_the_missing_range(
    market: MarketStub, book: CandleBook
) -> None:
    rows = wave_candles(60)
    market.history[SERIES] = rows
    market.candles[SERIES] = rows[:30]
    assert await book.window(KEY, rows[29], need=10) == rows[:30]

    window = await book.window(KEY, rows[35], need=10)  # 30..34 never arrived

    assert window[-6:] == rows[30:36]
    assert consecutive(window)


async def test_a_bot_waits_for_candles_the_market_does_not_have_yet(
    market: MarketStub, book: CandleBook
) -> None:
    rows = wave_candles(40)
    market.history[SERIES] = rows[:20]  # 20..38 not stored yet
    market.candles[SERIES] = rows[:20]

    with pytest.raises(CandlesMissing):
        await book.window(KEY, rows[39], need=10)

    market.history[SERIES] = rows
    assert await book.window(KEY, rows[39], need=10) == rows[:40]

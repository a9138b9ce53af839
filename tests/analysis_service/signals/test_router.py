"""`/analysis/signals`: every default strategy on closed market candles, cached."""

import json

from shared.strategies import create_strategy
from tests.analysis_service.fake_market import MARKET_CANDLES
from tests.shared.sample_candles import window


async def test_signals_read_every_default_strategy_on_closed_candles_and_are_cached(
    client, user, market, redis
):
    response = await client.get(
        "/analysis/signals", params={"symbol": "BTC/USDT"}, headers=user.headers
    )
    assert response.status_code == 200, response.text
    body = response.json()
    names = {s["strategy"] for s in body["signals"]}
    assert {"ma_crossover", "rsi_divergence", "bollinger_bands"} <= names
    assert "rules" not in names  # it has no default rule
    closed = MARKET_CANDLES.head(len(MARKET_CANDLES) - 1)  # the newest one is forming
    assert body["price"] == closed.close[-1]
    recent = window(closed, len(closed) - 300, len(closed))
    ma = next(s for s in body["signals"] if s["strategy"] == "ma_crossover")
    signals = create_strategy("ma_crossover", {}).signals(recent)
    expected = {1: "buy", -1: "sell"}.get(int(signals[-1]), "hold")
    assert ma["action"] == expected
    assert body["indicators"]["rsi:14"] is not None
    assert set(body["indicators"]["bbands:20:2"]) == {"upper", "middle", "lower"}
    cached = await redis.hget("analysis:signals:default:BTC/USDT", "1h")
    assert json.loads(cached) == body
    calls = len(market.calls)
    again = await client.get(
        "/analysis/signals", params={"symbol": "BTC/USDT"}, headers=user.headers
    )
    assert again.json() == body
    assert len(market.calls) == calls


async def test_signals_for_an_unknown_symbol_or_timeframe_are_422(client, user):
    response = await client.get(
        "/analysis/signals", params={"symbol": "NOPE/USDT"}, headers=user.headers
    )
    assert response.status_code == 422
    response = await client.get(
        "/analysis/signals", params={"symbol": "BTC/USDT", "timeframe": "9q"}, headers=user.headers
    )
    assert response.status_code == 422

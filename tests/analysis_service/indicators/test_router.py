"""`/analysis/indicators`: TA-Lib's numbers over posted or market candles, cached, and
422s that say what to fix."""

import json
import math

import numpy as np
import pytest
import talib
from talib._ta_lib import MA_Type

from tests.analysis_service.fake_market import MARKET_CANDLES
from tests.shared.sample_candles import random_candles

SMA = MA_Type.SMA
C = random_candles(400, seed=8)
ROWS = C.to_rows()


def as_json(values):
    return [None if math.isnan(x) else float(x) for x in values]


async def test_indicator_json_equals_talib_called_directly_with_nulls_in_the_warm_up(client, user):
    specs = [
        "sma:20",
        "ema:9",
        "rsi:14",
        "macd:12:26:9",
        "bbands:20:2",
        "stoch:14:3:3",
        "atr:14",
        "obv",
    ]
    response = await client.post(
        "/analysis/indicators", json={"candles": ROWS, "indicators": specs}, headers=user.headers
    )
    assert response.status_code == 200, response.text
    body = response.json()
    series = body["indicators"]
    assert body["timestamps"] == [int(t) for t in C.timestamp]
    assert series["sma:20"] == as_json(talib.SMA(C.close, 20))
    assert series["sma:20"][:19] == [None] * 19
    assert series["sma:20"][19] is not None
    assert series["ema:9"] == as_json(talib.EMA(C.close, 9))
    assert series["rsi:14"] == as_json(talib.RSI(C.close, 14))
    line, signal, hist = talib.MACD(C.close, 12, 26, 9)
    assert series["macd:12:26:9"] == {
        "macd": as_json(line),
        "signal": as_json(signal),
        "histogram": as_json(hist),
    }
    upper, middle, lower = talib.BBANDS(C.close, 20, 2, 2, SMA)
    assert series["bbands:20:2"] == {
        "upper": as_json(upper),
        "middle": as_json(middle),
        "lower": as_json(lower),
    }
    k, d = talib.STOCH(C.high, C.low, C.close, 14, 3, SMA, 3, SMA)
    assert series["stoch:14:3:3"] == {"k": as_json(k), "d": as_json(d)}
    assert series["atr:14"] == as_json(talib.ATR(C.high, C.low, C.close, 14))
    assert series["obv"] == as_json(talib.OBV(C.close, C.volume))


async def test_volume_profile_comes_with_the_last_window_profile(client, user):
    response = await client.post(
        "/analysis/indicators",
        json={"candles": ROWS, "indicators": ["vp:100:12:0.7"]},
        headers=user.headers,
    )
    body = response.json()
    vp = body["indicators"]["vp:100:12:0.7"]
    assert set(vp) == {"poc", "value_area_low", "value_area_high"}
    assert vp["poc"][98] is None
    assert vp["poc"][-1] == body["volume_profile"]["poc"]
    assert sum(body["volume_profile"]["volumes"]) == pytest.approx(C.volume[-100:].sum())


async def test_stored_candles_are_loaded_from_the_market_and_cached(client, user, market, redis):
    params = {"symbol": "BTC/USDT", "timeframe": "1h", "indicators": "sma:50,rsi:14", "limit": 300}
    first = await client.get("/analysis/indicators", params=params, headers=user.headers)
    assert first.status_code == 200, first.text
    body = first.json()
    tail = MARKET_CANDLES.close[-300:]
    assert body["indicators"]["sma:50"] == as_json(talib.SMA(tail, 50))
    assert body["symbol"] == "BTC/USDT"
    calls = len(market.calls)
    assert calls == 1
    assert await redis.exists("analysis:indicators:default:BTC/USDT:1h")
    again = await client.get("/analysis/indicators", params=params, headers=user.headers)
    assert again.json() == body
    assert len(market.calls) == calls  # served from the cache


async def test_a_range_is_loaded_page_by_page(client, user, market):
    start = int(MARKET_CANDLES.timestamp[100])
    end = int(MARKET_CANDLES.timestamp[1400])
    response = await client.post(
        "/analysis/indicators",
        json={
            "symbol": "BTC/USDT",
            "timeframe": "1h",
            "indicators": ["ema:20"],
            "start": start / 1000,
            "end": end / 1000,
        },
        headers=user.headers,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["timestamps"] == [int(t) for t in MARKET_CANDLES.timestamp[100:1400]]
    assert len(market.calls) == 3  # pages of 500


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"candles": ROWS, "indicators": ["sma:abc"]}, "must be a number"),
        ({"candles": ROWS, "indicators": ["zigzag:3"]}, "unknown indicator"),
        ({"candles": ROWS[:30], "indicators": ["sma:50"]}, "needs at least 50 candles, got 30"),
        (
            {"candles": [*ROWS[:5], ROWS[3], *ROWS[6:]], "indicators": ["sma:2"]},
            "strictly increasing",
        ),
        ({"candles": [[1, 2, 3]], "indicators": ["sma:2"]}, "expected [ts, o, h, l, c, v]"),
        ({"candles": ROWS, "symbol": "BTC/USDT", "indicators": ["sma:2"]}, "either candles"),
        ({"indicators": ["sma:2"]}, "either candles"),
        ({"candles": ROWS, "indicators": []}, "at least 1"),
    ],
)
async def test_bad_input_is_a_422_that_says_what_to_fix(client, user, payload, message):
    response = await client.post("/analysis/indicators", json=payload, headers=user.headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert message in json.dumps(response.json())


async def test_non_finite_candles_are_refused(client, user):
    rows = [list(r) for r in ROWS]
    rows[7][4] = float("nan")
    content = json.dumps({"candles": rows, "indicators": ["sma:5"]})  # NaN literal in JSON
    response = await client.post(
        "/analysis/indicators",
        content=content,
        headers={**user.headers, "content-type": "application/json"},
    )
    assert response.status_code == 422
    assert "candle 7 has a non-finite close" in response.json()["detail"]


async def test_unknown_symbols_are_422_and_a_dead_market_is_503(client, user, market):
    response = await client.get(
        "/analysis/indicators",
        params={"symbol": "NOPE/USDT", "indicators": "sma:5"},
        headers=user.headers,
    )
    assert response.status_code == 422
    assert "Unknown symbol" in response.json()["detail"]
    market.down = True
    response = await client.get(
        "/analysis/indicators",
        params={"symbol": "BTC/USDT", "indicators": "sma:5"},
        headers=user.headers,
    )
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) >= 1


async def test_indicators_need_a_token(client):
    response = await client.post(
        "/analysis/indicators", json={"candles": ROWS, "indicators": ["sma:5"]}
    )
    assert response.status_code == 401


def test_the_fixture_candles_are_sane():
    assert np.all(np.diff(MARKET_CANDLES.timestamp) == 3_600_000)

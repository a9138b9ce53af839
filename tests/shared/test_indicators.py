import numpy as np
import pytest
import talib
from talib._ta_lib import MA_Type

from shared import indicators
from shared.indicators import IndicatorSpecError, compute, parse_spec, volume_profile
from tests.shared.sample_candles import random_candles

SMA = MA_Type.SMA
C = random_candles(1500, seed=11)


def same(a, b):
    np.testing.assert_allclose(a, b, rtol=0, atol=0, equal_nan=True)


def test_trend_indicators_equal_talib_called_directly():
    same(indicators.sma(C.close, 20), talib.SMA(C.close, timeperiod=20))
    same(indicators.ema(C.close, 50), talib.EMA(C.close, timeperiod=50))
    for ours, theirs in zip(
        indicators.macd(C.close, 12, 26, 9),
        talib.MACD(C.close, fastperiod=12, slowperiod=26, signalperiod=9),
        strict=True,
    ):
        same(ours, theirs)


def test_momentum_volatility_and_volume_indicators_equal_talib():
    same(indicators.rsi(C.close, 14), talib.RSI(C.close, timeperiod=14))
    for ours, theirs in zip(
        indicators.stoch(C.high, C.low, C.close, 14, 3, 3),
        talib.STOCH(
            C.high,
            C.low,
            C.close,
            fastk_period=14,
            slowk_period=3,
            slowk_matype=SMA,
            slowd_period=3,
            slowd_matype=SMA,
        ),
        strict=True,
    ):
        same(ours, theirs)
    for ours, theirs in zip(
        indicators.bbands(C.close, 20, 2.5),
        talib.BBANDS(C.close, timeperiod=20, nbdevup=2.5, nbdevdn=2.5, matype=SMA),
        strict=True,
    ):
        same(ours, theirs)
    same(indicators.atr(C.high, C.low, C.close, 14), talib.ATR(C.high, C.low, C.close, 14))
    same(indicators.obv(C.close, C.volume), talib.OBV(C.close, C.volume))


def test_spec_lookback_matches_the_leading_nans_of_every_indicator():
    for text in [
        "sma:20",
        "ema:9",
        "rsi:14",
        "macd:12:26:9",
        "stoch:14:3:3",
        "bbands:20:2",
        "atr:14",
        "obv",
        "vp:30:12:0.7",
    ]:
        spec = parse_spec(text)
        series = compute(spec, C)
        for values in series.values():
            first_defined = int(np.argmax(~np.isnan(values)))
            assert first_defined == spec.lookback, text


def test_volume_profile_matches_a_plain_python_count():
    window = C.head(200)
    profile = volume_profile(
        window.high, window.low, window.close, window.volume, bins=10, value_area=0.7
    )
    lo, hi = window.low.min(), window.high.max()
    volumes = [0.0] * 10
    for h, low, c, v in zip(window.high, window.low, window.close, window.volume, strict=True):
        b = min(int(((h + low + c) / 3 - lo) / (hi - lo) * 10), 9)
        volumes[b] += v
    np.testing.assert_allclose(profile.volumes, volumes, rtol=1e-12)
    poc = volumes.index(max(volumes))
    assert profile.poc == pytest.approx(lo + (poc + 0.5) * (hi - lo) / 10)
    inside = sum(
        v
        for v, e in zip(volumes, profile.bin_edges[:-1], strict=True)
        if profile.value_area_low - 1e-9 <= e < profile.value_area_high - 1e-9
    )
    assert inside >= 0.7 * sum(volumes)
    assert profile.value_area_low <= profile.poc <= profile.value_area_high


def test_rolling_volume_profile_equals_the_profile_of_each_trailing_window():
    poc, val, vah = indicators.volume_profile_series(C.high, C.low, C.close, C.volume, 40, 16)
    for t in range(39, len(C), 7):
        s = slice(t - 39, t + 1)
        direct = volume_profile(C.high[s], C.low[s], C.close[s], C.volume[s], bins=16)
        assert (poc[t], val[t], vah[t]) == (
            direct.poc,
            direct.value_area_low,
            direct.value_area_high,
        ), t
    assert np.isnan(poc[:39]).all()
    assert not np.isnan(poc[39:]).any()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("foo:3", "unknown indicator"),
        ("sma:abc", "must be a number"),
        ("sma:2.5", "whole number"),
        ("sma:0", "between 1"),
        ("sma:20:3", "too many parameters"),
        ("macd:26:12:9", "fast period must be below"),
        ("bbands:20:-1", "K must be above 0"),
        ("sma:nan", "finite"),
    ],
)
def test_bad_specs_say_what_to_fix(text, message):
    with pytest.raises(IndicatorSpecError, match=message):
        parse_spec(text)


def test_spec_defaults_and_aliases_are_normalised():
    assert parse_spec("MACD").text == "macd:12:26:9"
    assert parse_spec("bb:20").text == "bbands:20:2"
    assert parse_spec("bbands:20:2.5").params == (20, 2.5)

"""Higher timeframes from lower candles agree with the market's own candles, and a higher
candle is visible only from the close of the candle it closed on."""

import numpy as np
import pytest

from market_service.exchanges.sim import SIM_PAIRS, SimPath
from shared.candles import Candles
from shared.resample import TimeframeError, aggregate, attach, higher_candles
from tests.shared.sample_candles import random_candles

DAY_MS = 86_400_000
START = 1_735_689_600_000  # 2025-01-01T00:00Z, a Wednesday
NOW = START + 40 * DAY_MS


def sim_rows(timeframe: str, start: int, end: int) -> np.ndarray:
    return SimPath(42, SIM_PAIRS["ETH/USDT"]).closed_rows(timeframe, start, end, NOW)


def as_candles(rows: np.ndarray) -> Candles:
    return Candles(
        rows[:, 0].astype(np.int64), *(np.ascontiguousarray(rows[:, i]) for i in (1, 2, 3, 4, 5))
    )


@pytest.mark.parametrize(
    ("lower", "higher"), [("1m", "1h"), ("1m", "4h"), ("5m", "1d"), ("1h", "1w"), ("1h", "3d")]
)
def test_aggregated_candles_equal_the_market_services_candles_of_that_timeframe(lower, higher):
    # Starting 90 minutes into a bucket: that first, partial bucket is left out.
    start = START + 90 * 60_000
    end = START + 30 * DAY_MS
    built = aggregate(as_candles(sim_rows(lower, start, end)), higher)
    market = sim_rows(higher, start, end)
    assert len(built.candles) == market.shape[0] >= 3
    theirs = as_candles(market)
    np.testing.assert_array_equal(built.candles.timestamp, theirs.timestamp)
    for column in ("open", "high", "low", "close"):
        np.testing.assert_array_equal(built.candles.field(column), theirs.field(column))
    # The market rounds an aggregated volume to the amount step: equal to that step.
    step = SIM_PAIRS["ETH/USDT"].amount_step
    np.testing.assert_allclose(built.candles.volume, theirs.volume, atol=step)


def test_a_higher_candle_is_visible_from_the_close_of_its_last_lower_candle():
    c = random_candles(24, start_ms=START, frame_ms=3_600_000)
    four_hours = aggregate(c, "4h")
    # Candles 0-2 close before the first 4 h candle does; candle 3 closes at 04:00.
    assert list(four_hours.visible[:9]) == [0, 0, 0, 1, 1, 1, 1, 2, 2]
    assert four_hours.candles.close[0] == c.close[3]
    assert four_hours.candles.high[0] == c.high[:4].max()
    aligned = four_hours.align(four_hours.candles.close)
    assert np.isnan(aligned[:3]).all()
    assert aligned[3] == aligned[6] == c.close[3]
    assert aligned[7] == c.close[7]


def test_loaded_higher_candles_skip_the_one_still_forming_and_a_prefix_sees_only_the_closed():
    c = random_candles(10, start_ms=START + 8 * 3_600_000, frame_ms=3_600_000)  # 08:00-17:00
    # The market's answer: history from midnight, and the 16:00 candle still forming.
    loaded = random_candles(5, start_ms=START, frame_ms=4 * 3_600_000)
    with_higher = attach(c, {"4h": loaded}, 3_600_000)
    seen = higher_candles(with_higher, "4h")
    assert len(seen.candles) == 4  # 00:00, 04:00, 08:00, 12:00: 16:00 closes at 20:00
    assert list(seen.visible) == [2, 2, 2, 3, 3, 3, 3, 4, 4, 4]
    prefix = higher_candles(with_higher.head(5), "4h")
    assert len(prefix.candles) == 3
    assert list(prefix.visible) == [2, 2, 2, 3, 3]


def test_a_lower_or_uneven_higher_timeframe_is_refused():
    c = random_candles(50, frame_ms=3_600_000)
    with pytest.raises(TimeframeError, match="not a whole multiple"):
        aggregate(c, "30m")
    with pytest.raises(TimeframeError, match="unknown timeframe"):
        aggregate(c, "7h")
    with pytest.raises(TimeframeError, match="not a whole multiple"):
        attach(random_candles(5, frame_ms=3 * 3_600_000), {"4h": c}, 3 * 3_600_000)

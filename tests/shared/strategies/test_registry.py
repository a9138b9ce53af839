from importlib.metadata import EntryPoint
from typing import Any

import numpy as np
import pytest
import talib
from talib._ta_lib import MA_Type

import shared.strategies as registry
from shared.backtest import check_lookahead
from shared.strategies import (
    ENTER_LONG,
    EXIT_LONG,
    SignalAction,
    StrategyParamsError,
    UnknownStrategyError,
    catalog,
    create_strategy,
)
from tests.shared.sample_candles import random_candles

SMA = MA_Type.SMA
C = random_candles(3000, seed=5)
BUILTINS: dict[str, list[dict[str, Any]]] = {
    "ma_crossover": [{"fast": 10, "slow": 30}, {"fast": 5, "slow": 21, "ma": "ema"}],
    "rsi_divergence": [{}, {"pivot_window": 2, "lookback": 60, "oversold": 40}],
    "bollinger_bands": [{}, {"period": 10, "k": 1.5}],
    "rules": [
        {"entry": "rsi(14) < 35 and close > sma(100)", "exit": "rsi(14) > 60"},
        {
            "entry": "macd() crosses_above macd_signal()",
            "exit": "close < lowest(10, low) * 1.001",
            "stop_loss": 0.02,
        },
    ],
}


@pytest.fixture
def plugins(monkeypatch):
    module = "tests.shared.strategies.plugin_examples"
    eps = [
        EntryPoint("buy_the_dip", f"{module}:BuyTheDip", registry.PLUGIN_GROUP),
        EntryPoint("clairvoyant", f"{module}:Clairvoyant", registry.PLUGIN_GROUP),
        EntryPoint("broken", f"{module}:DoesNotExist", registry.PLUGIN_GROUP),
        EntryPoint("not_a_strategy", f"{module}:NotAStrategy", registry.PLUGIN_GROUP),
        EntryPoint("ma_crossover", f"{module}:BuyTheDip", registry.PLUGIN_GROUP),
    ]
    monkeypatch.setattr(
        registry, "entry_points", lambda group: eps if group == registry.PLUGIN_GROUP else []
    )
    registry.reload_plugins()
    yield
    registry.reload_plugins()


def test_catalog_lists_every_builtin_with_a_json_schema_of_its_parameters():
    entries = {e["name"]: e for e in catalog()}
    assert set(BUILTINS) <= set(entries)
    for entry in entries.values():
        assert entry["description"]
        assert entry["parameters"]["type"] == "object"
    assert entries["ma_crossover"]["parameters"]["properties"]["ma"]["enum"] == ["sma", "ema"]
    assert entries["ma_crossover"]["warmup"] == 30
    assert "entry" in entries["rules"]["parameters"]["required"]


@pytest.mark.parametrize(("name", "params"), [(n, p) for n, ps in BUILTINS.items() for p in ps])
def test_builtin_signals_never_look_ahead(name, params):
    strategy = create_strategy(name, params)
    signals = strategy.signals(C)
    assert (signals == ENTER_LONG).any(), "the check is only meaningful if the strategy trades"
    report = check_lookahead(strategy, C, cuts=40)
    assert report.ok, report.mismatches


@pytest.mark.parametrize("name", list(BUILTINS))
def test_generate_signal_is_the_vectorised_signal_on_the_last_candle(name):
    strategy = create_strategy(name, BUILTINS[name][0])
    signals = strategy.signals(C)
    t = int(np.nonzero(signals == ENTER_LONG)[0][0])
    live = strategy.generate_signal(C.head(t + 1))
    assert live.action is SignalAction.BUY
    assert live.timestamp == C.timestamp[t]
    assert live.price == C.close[t]
    assert strategy.calculate_position_size(live, 0.5) == 0.5


def test_ma_crossover_crosses_exactly_as_the_docs_define_them():
    fast, slow = talib.SMA(C.close, 10), talib.SMA(C.close, 30)
    signals = create_strategy("ma_crossover", {"fast": 10, "slow": 30}).signals(C)
    for t in range(1, len(C)):
        up = fast[t] > slow[t] and fast[t - 1] <= slow[t - 1]
        down = fast[t] < slow[t] and fast[t - 1] >= slow[t - 1]
        assert signals[t] == (ENTER_LONG if up else EXIT_LONG if down else 0)


def test_bollinger_enters_when_the_close_comes_back_above_the_lower_band():
    upper, _, lower = talib.BBANDS(C.close, 20, 2, 2, SMA)
    signals = create_strategy("bollinger_bands", {}).signals(C)
    for t in range(1, len(C)):
        enter = C.close[t - 1] < lower[t - 1] and C.close[t] >= lower[t]
        leave = C.close[t - 1] > upper[t - 1] and C.close[t] <= upper[t]
        assert signals[t] == (ENTER_LONG if enter else EXIT_LONG if leave else 0)


def test_rsi_divergence_fires_on_a_lower_low_with_a_higher_rsi_low():
    # A fall to a low at 100, a bounce, a quicker fall to a lower low at 99 (RSI higher).
    closes = [130 - i for i in range(30)] + [
        100,
        101,
        102,
        103,
        104,
        103.5,
        103,
        102.5,
        101,
        99,
        100.5,
        102,
        103,
        104,
    ]
    c = np.array(closes, dtype=float)
    from shared.candles import Candles

    candles = Candles(
        np.arange(c.size, dtype=np.int64) * 60_000, c, c + 0.1, c - 0.1, c, np.ones(c.size)
    )
    strategy = create_strategy(
        "rsi_divergence", {"period": 5, "pivot_window": 2, "lookback": 20, "oversold": 30}
    )
    rsi = talib.RSI(c, 5)
    assert rsi[39] > rsi[30]
    assert rsi[30] < 30
    signals = strategy.signals(candles)
    assert list(np.nonzero(signals == ENTER_LONG)[0]) == [39 + 2]  # confirmed 2 candles later


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("ma_crossover", {"fast": 30, "slow": 10}, "fast must be smaller than slow"),
        ("ma_crossover", {"ma": "wma"}, "ma:"),
        ("ma_crossover", {"fats": 3}, "fats: Extra inputs"),
        ("rules", {}, "entry: Field required"),
        ("rules", {"entry": "close.x > 1"}, "attribute access is not allowed"),
        ("bollinger_bands", {"k": -1}, "k: Input should be greater than 0"),
    ],
)
def test_bad_parameters_raise_a_clear_strategy_params_error(name, params, message):
    with pytest.raises(StrategyParamsError, match=message):
        create_strategy(name, params)


def test_an_unknown_name_lists_the_available_strategies():
    with pytest.raises(UnknownStrategyError, match="available: bollinger_bands, ma_crossover"):
        create_strategy("nope", {})


def test_plugins_come_from_the_entry_point_group_and_never_shadow_builtins(plugins):
    names = [e["name"] for e in catalog()]
    assert "buy_the_dip" in names
    assert "clairvoyant" in names
    assert "broken" not in names
    assert "not_a_strategy" not in names
    assert type(create_strategy("ma_crossover", {})).__name__ == "MACrossover"
    dip = create_strategy("buy_the_dip", {"drop": 0.002})
    assert (dip.signals(C) == ENTER_LONG).any()
    assert check_lookahead(dip, C).ok


def test_the_lookahead_check_catches_a_strategy_that_peeks(plugins):
    report = check_lookahead(create_strategy("clairvoyant", {}), C)
    assert not report.ok
    _index, prefix_value, full_value = report.mismatches[0]
    assert prefix_value == 0
    assert full_value in (ENTER_LONG, EXIT_LONG)

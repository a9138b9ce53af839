"""`tradebot lookahead` and `tradebot backtest` run the strategies of STRATEGIES_DIR."""

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

import shared.strategies as registry
from tradebot.cli import app

EXAMPLES = Path(registry.__file__).parent / "examples"
PEEKING = '''
from shared.strategies.dataframe import DataFrameStrategy


class Peeking(DataFrameStrategy):
    """Buys before a rise it can only know from the next candle."""

    def populate_entry_trend(self, dataframe, metadata):
        dataframe.loc[dataframe["close"].shift(-1) > dataframe["close"], "enter_long"] = 1
        return dataframe
'''
runner = CliRunner()


@pytest.fixture
def folder(tmp_path, monkeypatch):
    shutil.copy(EXAMPLES / "rsi_trend_pullback.py", tmp_path)
    (tmp_path / "peeking.py").write_text(PEEKING)
    monkeypatch.setenv("STRATEGIES_DIR", str(tmp_path))
    registry.reload_plugins()
    yield tmp_path
    monkeypatch.delenv("STRATEGIES_DIR")
    registry.reload_plugins()


def test_lookahead_passes_the_ported_example_and_catches_a_peeking_dataframe_strategy(folder):
    ok = runner.invoke(app, ["lookahead", "RsiTrendPullback", "--candles", "600", "--cuts", "15"])
    assert ok.exit_code == 0, ok.output
    assert "no look-ahead found" in ok.output
    bad = runner.invoke(app, ["lookahead", "Peeking", "--candles", "300", "--cuts", "10"])
    assert bad.exit_code == 1, bad.output
    assert "LOOK-AHEAD" in bad.output


def test_backtest_runs_a_folder_strategy_and_refuses_a_timeframe_above_its_own(folder):
    result = runner.invoke(
        app,
        ["backtest", "--strategy", "RsiTrendPullback", "--param", "buy_rsi=50",
         "--from", "2025-01-01", "--to", "2025-03-01", "--json", "--no-report"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["n_trades"] > 0
    refused = runner.invoke(
        app,
        ["backtest", "--strategy", "RsiTrendPullback", "--timeframe", "1d",
         "--from", "2025-01-01", "--to", "2025-03-01", "--no-report"],
    )  # fmt: skip
    assert refused.exit_code == 2
    assert "not a whole multiple" in refused.output

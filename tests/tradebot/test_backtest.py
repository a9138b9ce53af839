"""`tradebot backtest` and `tradebot lookahead`, run in-process through typer."""

import json
from importlib.metadata import EntryPoint

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import shared.strategies as registry
from shared.backtest import run_backtest
from shared.strategies import create_strategy
from tests.shared.sample_candles import random_candles
from tradebot.backtest import sim_candles
from tradebot.cli import app

runner = CliRunner()
C = random_candles(2000, seed=31)


def write_csv(path, candles):
    lines = ["timestamp,open,high,low,close,volume"]
    lines += [
        ",".join(repr(float(v)) if i else str(int(v)) for i, v in enumerate(row))
        for row in candles.to_rows()
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_backtest_on_a_csv_prints_the_engines_metrics_as_json(tmp_path):
    data = write_csv(tmp_path / "candles.csv", C)
    result = runner.invoke(
        app,
        [
            "backtest",
            "--strategy",
            "ma_crossover",
            "--data",
            str(data),
            "--param",
            "fast=5",
            "--param",
            "slow=25",
            "--param",
            "ma=ema",
            "--fee",
            "0.002",
            "--slippage",
            "0.001",
            "--capital",
            "2500",
            "--json",
            "--no-report",
        ],
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout.strip().splitlines()[-1])
    expected = run_backtest(
        create_strategy("ma_crossover", {"fast": 5, "slow": 25, "ma": "ema"}), C, 2500, 0.002, 0.001
    )
    assert metrics == pytest.approx(expected.metrics, rel=1e-12)


def test_backtest_on_parquet_writes_an_html_report_with_the_curves(tmp_path):
    table = pa.table(
        {
            "timestamp": C.timestamp,
            "open": C.open,
            "high": C.high,
            "low": C.low,
            "close": C.close,
            "volume": C.volume,
        }
    )
    pq.write_table(table, tmp_path / "candles.parquet")
    report = tmp_path / "report.html"
    result = runner.invoke(
        app,
        [
            "backtest",
            "--strategy",
            "rules",
            "--data",
            str(tmp_path / "candles.parquet"),
            "--param",
            "entry=rsi(14) < 35",
            "--param",
            "exit=rsi(14) > 65",
            "--stop-loss",
            "0.01",
            "--report",
            str(report),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "final_equity" in result.stdout
    assert "n_trades" in result.stdout
    page = report.read_text()
    assert page.count("<svg") == 2  # equity and drawdown
    assert "exit reason" in page
    assert "<script" not in page


def test_sim_candles_equal_what_the_market_service_serves():
    from market_service.exchanges.sim import SimClock, SimExchange

    start = 1_735_689_600_000  # 2025-01-01
    ours = sim_candles("ETH/USDT", "15m", start, start + 200 * 900_000)
    theirs = SimExchange(42, SimClock(1.0)).ohlcv("ETH/USDT", "15m", start, 200)
    assert len(ours) == 200
    np.testing.assert_allclose(np.array(ours.to_rows()), np.array(theirs), rtol=1e-12)


def test_bad_strategy_parameters_exit_with_a_message(tmp_path):
    data = write_csv(tmp_path / "c.csv", C.head(100))
    result = runner.invoke(
        app,
        [
            "backtest",
            "--strategy",
            "ma_crossover",
            "--data",
            str(data),
            "--param",
            "fast=40",
            "--param",
            "slow=10",
            "--no-report",
        ],
    )
    assert result.exit_code == 2
    assert "fast must be smaller than slow" in result.output
    missing = runner.invoke(
        app,
        [
            "backtest",
            "--strategy",
            "ma_crossover",
            "--data",
            str(tmp_path / "nope.csv"),
            "--no-report",
        ],
    )
    assert missing.exit_code == 1
    assert "no such file" in missing.output


def test_lookahead_passes_builtins_and_catches_a_cheating_plugin(tmp_path, monkeypatch):
    data = write_csv(tmp_path / "c.csv", C)
    ok = runner.invoke(app, ["lookahead", "bollinger_bands", "--data", str(data)])
    assert ok.exit_code == 0, ok.output
    assert "no look-ahead found" in ok.output
    eps = [
        EntryPoint(
            "clairvoyant",
            "tests.shared.strategies.plugin_examples:Clairvoyant",
            registry.PLUGIN_GROUP,
        )
    ]
    monkeypatch.setattr(registry, "entry_points", lambda group: eps)
    registry.reload_plugins()
    try:
        bad = runner.invoke(app, ["lookahead", "clairvoyant", "--data", str(data)])
    finally:
        registry.reload_plugins()
    assert bad.exit_code == 1
    assert "LOOK-AHEAD" in bad.output


def test_a_portfolio_over_a_folder_of_pair_files_prints_portfolio_and_pair_metrics(tmp_path):
    from shared.backtest import run_portfolio

    folder = tmp_path / "data"
    folder.mkdir()
    series = {
        "BTC/USDT": random_candles(1500, seed=41),
        "ETH/USDT": random_candles(1500, seed=42, price=2000.0),
        "SOL/USDT": random_candles(1500, seed=43, price=100.0),
    }
    for pair, candles in series.items():
        write_csv(folder / f"{pair.replace('/', '_')}-1m.csv", candles)
    result = runner.invoke(
        app,
        ["backtest", "--strategy", "ma_crossover", "--data", str(folder), "--pairs",
         "sol/usdt,BTC/USDT", "--max-open", "1", "--param", "fast=5", "--param", "slow=20",
         "--json", "--no-report"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout.strip().splitlines()[-1])
    expected = run_portfolio(
        create_strategy("ma_crossover", {"fast": 5, "slow": 20}),
        {"SOL/USDT": series["SOL/USDT"], "BTC/USDT": series["BTC/USDT"]},
        max_open_positions=1,
    )
    assert list(body["pair_metrics"]) == ["SOL/USDT", "BTC/USDT"]
    assert body["metrics"] == pytest.approx(expected.metrics, rel=1e-12)
    assert body["pair_metrics"]["BTC/USDT"] == pytest.approx(
        expected.pair_metrics["BTC/USDT"], rel=1e-12
    )
    assert body["metrics"]["entries_skipped"] > 0  # one slot for two pairs
    missing = runner.invoke(
        app,
        ["backtest", "--strategy", "ma_crossover", "--data", str(folder), "--pairs",
         "BTC/USDT,XRP/USDT", "--no-report"],
    )  # fmt: skip
    assert missing.exit_code == 1
    assert "no data file for XRP/USDT" in missing.output


def test_a_portfolio_on_sim_candles_writes_a_report_with_each_pair(tmp_path):
    report = tmp_path / "portfolio.html"
    result = runner.invoke(
        app,
        ["backtest", "--strategy", "ma_crossover", "--pairs", "BTC/USDT,ETH/USDT,SOL/USDT",
         "--max-open", "2", "--stake", "3000", "--timeframe", "15m", "--from", "2024-01-01",
         "--to", "2024-01-15", "--report", str(report)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Per pair" in result.stdout
    assert "SOL/USDT" in result.stdout
    page = report.read_text()
    assert "Pairs (3)" in page
    assert "<th>pair</th>" in page
    assert page.count("ETH/USDT") > 2  # the pair table, the title and its trades
    alone = runner.invoke(
        app, ["backtest", "--strategy", "ma_crossover", "--max-open", "2", "--no-report"]
    )
    assert alone.exit_code == 2
    assert "need a portfolio" in alone.output

"""`tradebot optimise`, run in-process through typer with real worker processes."""

import json

from typer.testing import CliRunner

from tests.analysis_service.optimisations.synthetic import two_cycles
from tests.tradebot.test_backtest import write_csv
from tradebot.cli import app

runner = CliRunner()


async def test_two_workers_print_the_best_trials_and_write_the_report(tmp_path, redis):
    data = write_csv(tmp_path / "candles.csv", two_cycles())
    report = tmp_path / "report.html"
    result = runner.invoke(
        app,
        [
            "optimise",
            "--strategy", "ma_crossover",
            "--space", "fast=3:30:3",
            "--space", "slow=12:72:6",
            "--trials", "40",
            "--seed", "1",
            "--workers", "2",
            "--data", str(data),
            "--report", str(report),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Best trials by sharpe" in result.stdout
    assert "Recommended (the best trial): fast=12, slow=18" in result.stdout
    page = report.read_text()
    for section in ("Optimisation history", "Parameter importances", "Best trials"):
        assert section in page
    assert "<script" not in page
    assert await redis.keys("analysis:optimisation:cli-*") == []  # the run cleans up


def test_walk_forward_prints_in_and_out_of_sample_per_fold_as_json(tmp_path):
    data = write_csv(tmp_path / "candles.csv", two_cycles())
    result = runner.invoke(
        app,
        [
            "optimise",
            "--strategy", "ma_crossover",
            "--space", "fast=3:30:3",
            "--space", "slow=12:72:6",
            "--trials", "10",
            "--walk-forward", "3",
            "--data", str(data),
            "--json",
            "--no-report",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout.strip().splitlines()[-1])
    folds = body["result"]["folds"]
    assert [f["fold"] for f in folds] == [0, 1, 2]
    assert all("out_of_sample" in f["best"] for f in folds)
    assert body["result"]["trials"]["requested"] == 30


def test_a_space_the_strategy_does_not_have_exits_2_saying_what_to_fix(tmp_path):
    data = write_csv(tmp_path / "candles.csv", two_cycles(300))
    result = runner.invoke(
        app,
        ["optimise", "--strategy", "ma_crossover", "--space", "fats=1:5", "--data", str(data)],
    )
    assert result.exit_code == 2
    assert "ma_crossover has no parameter 'fats'" in result.output

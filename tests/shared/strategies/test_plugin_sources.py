"""Operator strategies come from an installed package's entry points or from the folder
named by STRATEGIES_DIR; a broken file is skipped, built-ins are never replaced."""

import shutil
import sys
from pathlib import Path

import pytest

import shared.strategies as registry
from shared.strategies import catalog, create_strategy
from tests.shared.sample_candles import random_candles

EXAMPLES = Path(registry.__file__).parent / "examples"


@pytest.fixture
def fresh_registry(monkeypatch):
    monkeypatch.delenv("STRATEGIES_DIR", raising=False)
    registry.reload_plugins()
    yield monkeypatch
    registry.reload_plugins()


def test_the_strategies_folder_registers_every_strategy_class_in_its_files(
    fresh_registry, tmp_path
):
    for example in EXAMPLES.glob("[!_]*.py"):
        shutil.copy(example, tmp_path / example.name)
    (tmp_path / "broken.py").write_text("import no_such_module\n")
    (tmp_path / "_private.py").write_text("raise SystemExit('never imported')\n")
    (tmp_path / "shadow.py").write_text(
        "from shared.strategies.examples.sma_crossover_frame import SmaCrossoverFrame\n\n"
        "class MaCrossover(SmaCrossoverFrame):\n    name = 'ma_crossover'\n"
    )
    fresh_registry.setenv("STRATEGIES_DIR", str(tmp_path))
    registry.reload_plugins()

    entries = {entry["name"]: entry for entry in catalog()}
    assert {"sma_crossover_frame", "RsiTrendPullback"} <= set(entries)
    assert entries["RsiTrendPullback"]["builtin"] is False
    assert entries["RsiTrendPullback"]["higher_timeframes"] == ["4h"]
    assert entries["RsiTrendPullback"]["timeframe"] == "1h"
    assert type(create_strategy("ma_crossover", {})).__name__ == "MACrossover"
    candles = random_candles(300, frame_ms=3_600_000)
    assert create_strategy("sma_crossover_frame", {"fast": 3, "slow": 9}).signals(candles).any()


def test_a_missing_folder_leaves_the_builtins(fresh_registry, tmp_path):
    fresh_registry.setenv("STRATEGIES_DIR", str(tmp_path / "nowhere"))
    registry.reload_plugins()
    assert {entry["name"] for entry in catalog()} >= {"ma_crossover", "rules"}
    assert not [entry for entry in catalog() if not entry["builtin"]]


def test_an_installed_package_publishes_strategies_through_its_entry_points(
    fresh_registry, tmp_path
):
    # A package installed the usual way: its module and its dist-info on the path.
    (tmp_path / "acme_strategies.py").write_text((EXAMPLES / "sma_crossover_frame.py").read_text())
    info = tmp_path / "acme_strategies-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-strategies\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        f"[{registry.PLUGIN_GROUP}]\nacme_cross = acme_strategies:SmaCrossoverFrame\n"
    )
    fresh_registry.syspath_prepend(str(tmp_path))
    registry.reload_plugins()
    try:
        entries = {entry["name"]: entry for entry in catalog()}
        assert "acme_cross" in entries
        assert entries["acme_cross"]["parameters"]["properties"]["slow"]["maximum"] == 400
        assert create_strategy("acme_cross", {"fast": 4}).params.model_dump()["fast"] == 4
    finally:
        sys.modules.pop("acme_strategies", None)

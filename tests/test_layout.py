"""The layout contracts in pyproject.toml ([tool.importlinter]) hold, and they catch a wrong
import: run by `lint-imports` on the repository and on a copy with three wrong imports."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "pyproject.toml"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
LAYERS = "tradebot above the services and migrations, above shared"
INDEPENDENCE = "the services and migrations import none of each other"
CONFTESTS = "nobody imports a conftest"


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """The contracts of the repository's pyproject.toml, checked on the packages under root."""
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", str(CONFIG)],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _all_but_python_sources(folder: str, names: list[str]) -> set[str]:
    """What `copytree` leaves out: caches and every file that is not Python source."""
    return {
        name
        for name in names
        if name == "__pycache__" or ((Path(folder) / name).is_file() and not name.endswith(".py"))
    }


def test_the_repository_keeps_every_layout_contract() -> None:
    result = _lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " 0 broken" in result.stdout


def test_a_wrong_import_across_the_floors_or_of_a_conftest_breaks_the_contracts(
    tmp_path: Path,
) -> None:
    config = tomllib.loads(CONFIG.read_text())["tool"]["importlinter"]
    for package in config["root_packages"]:
        shutil.copytree(REPO / package, tmp_path / package, ignore=_all_but_python_sources)
    with (tmp_path / "shared" / "errors.py").open("a") as module:
        module.write("\nimport market_service\n")
    with (tmp_path / "gateway" / "proxy.py").open("a") as module:
        module.write("\nimport trading_engine\n")
    with (tmp_path / "bench" / "stores.py").open("a") as module:
        module.write("\nimport tests.gateway.conftest\n")

    result = _lint_imports(tmp_path)

    assert result.returncode == 1, result.stdout + result.stderr
    report = result.stdout
    assert f"{LAYERS} BROKEN" in report
    assert f"{INDEPENDENCE} BROKEN" in report
    assert f"{CONFTESTS} BROKEN" in report
    assert f"Contracts: {len(config['contracts']) - 3} kept, 3 broken." in report
    assert "shared.errors -> market_service" in report
    assert "gateway.proxy -> trading_engine" in report
    assert "bench.stores -> tests.gateway.conftest" in report

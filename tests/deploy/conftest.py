"""deploy/ tests: the manifests, rules and dashboard need no clean stores between tests,
and the running stack (tests/deploy/stack.py) keeps its data for the whole package."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def clean_state() -> None:
    """Overrides the suite's per-test truncate-and-flush (tests/conftest.py)."""

"""deploy/ tests: the manifests, rules and dashboard need no clean stores between tests,
and the running stack (tests/deploy/stack.py) keeps its data for the whole package."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.deploy.stack import Stack, running_stack


@pytest.fixture(autouse=True)
def clean_state() -> None:
    """Overrides the suite's per-test truncate-and-flush (tests/conftest.py)."""


@pytest.fixture(scope="package")
def stack(service_env: dict[str, str]) -> Iterator[Stack]:
    with running_stack(service_env) as running:
        yield running

"""Safe defaults of the operator's command: `tradebot up` generates its secrets, and a
service served beyond loopback refuses to start on placeholders."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.servers import free_port
from tradebot.stack import local_env, service_env


def test_a_local_run_generates_random_secrets_and_keeps_them_across_runs(
    tmp_path: Path,
) -> None:
    first = local_env({}, tmp_path)
    second = local_env({}, tmp_path)
    other = local_env({}, tmp_path / "elsewhere")

    assert first == second
    for name in ("JWT_SECRET", "INTERNAL_API_TOKEN"):
        assert len(first[name]) >= 32
        assert first[name] != other[name]
    assert (tmp_path / "jwt.secret").stat().st_mode & 0o777 == 0o600
    # The operator's own values win.
    assert local_env({"JWT_SECRET": "mine"}, tmp_path)["JWT_SECRET"] == "mine"


def test_only_the_services_behind_the_gateway_believe_it_forwarded_addresses() -> None:
    env = {"TRUSTED_PROXIES": "203.0.113.7"}
    assert service_env("gateway", env)["TRUSTED_PROXIES"] == "203.0.113.7"
    assert service_env("user", env)["TRUSTED_PROXIES"] == "203.0.113.7,127.0.0.1"
    assert service_env("user", {})["TRUSTED_PROXIES"] == "127.0.0.1"


def test_a_service_served_beyond_loopback_refuses_to_start_on_the_placeholder_secret() -> None:
    env = {**os.environ, "JWT_SECRET": "change-me-in-production", "INTERNAL_API_TOKEN": ""}
    served = subprocess.run(
        [
            *(sys.executable, "-m", "tradebot", "serve", "user"),
            *("--host", "0.0.0.0", "--port", str(free_port())),  # noqa: S104 - the case under test
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert served.returncode != 0
    assert "JWT_SECRET must be set to a real secret" in served.stderr

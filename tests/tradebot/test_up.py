"""`tradebot up` on embedded PostgreSQL and Redis: all six healthy, then a clean SIGINT."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import psutil
import pytest

from shared.settings import SERVICE_PORTS
from tradebot.stack import port_in_use

pytestmark = pytest.mark.e2e


def _env_without_servers() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "JWT_SECRET", "INTERNAL_API_TOKEN"}
        and not k.endswith("_SERVICE_URLS")
    }
    env["LOG_LEVEL"] = "WARNING"
    return env


def _all_healthy() -> bool:
    for port in SERVICE_PORTS.values():
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code != 200:
                return False
        except httpx.HTTPError:
            return False
    return True


@pytest.mark.timeout(240)
def test_up_brings_all_six_services_to_healthy_and_stops_them_all_on_sigint(
    tmp_path: Path,
) -> None:
    busy = [port for port in SERVICE_PORTS.values() if port_in_use(port)]
    if busy:
        pytest.skip(f"service ports already in use on this machine: {busy}")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tradebot", "up", "--data-dir", str(tmp_path / "data")],
        env=_env_without_servers(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    parent = psutil.Process(proc.pid)
    try:
        deadline = time.monotonic() + 150
        while not _all_healthy():
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "services did not become healthy"
            time.sleep(1)
        health = httpx.get(f"http://127.0.0.1:{SERVICE_PORTS['market']}/health").json()
        assert health["services"]["database"] == "up"
        assert health["services"]["redis"] == "up"
        # The internal token was generated for this run: the internal routes take it, and
        # nothing else.
        token = (tmp_path / "data" / "internal.token").read_text().strip()
        internal = f"http://127.0.0.1:{SERVICE_PORTS['user']}/user/internal/users/{uuid.uuid4()}"
        assert httpx.get(internal, headers={"X-Internal-Token": token}).status_code == 404
        for guess in ("", "change-me-internal"):
            refused = httpx.get(internal, headers={"X-Internal-Token": guess})
            assert refused.status_code == 401
        descendants = parent.children(recursive=True)
        assert len(descendants) >= 6
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            output, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            parent.kill()
            raise
    assert proc.returncode == 0, output[-3000:]
    assert "stopped" in output
    _gone, alive = psutil.wait_procs(descendants, timeout=20)
    assert not alive, f"left behind: {[p.pid for p in alive]}"
    assert not any(port_in_use(port) for port in SERVICE_PORTS.values())


def test_up_refuses_a_taken_port_with_a_clear_message(tmp_path: Path) -> None:
    import socket

    port = SERVICE_PORTS["analysis"]
    if port_in_use(port):
        pytest.skip("port already in use on this machine")
    with socket.socket() as sock:
        # The previous test's servers may leave the port in TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen()
        result = subprocess.run(
            [sys.executable, "-m", "tradebot", "up", "--data-dir", str(tmp_path)],
            env=_env_without_servers(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 2
    assert "already in use" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr

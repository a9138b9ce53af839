"""Running apps for tests: in-process ASGI clients, real uvicorn servers in a thread,
and services as separate processes (for kill/restart scenarios)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from tradebot.stack import serve_command


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@asynccontextmanager
async def app_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on the app itself, its lifespan run around the test."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


class UvicornThread:
    """A real uvicorn server for one app, on its own event loop in a thread."""

    def __init__(self, app: FastAPI, port: int | None = None, **options: Any) -> None:
        """``options``: more uvicorn.Config arguments (``http``, ``ws``, ping intervals)."""
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            **{"ws_per_message_deflate": False, **options},
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> UvicornThread:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"uvicorn did not start on port {self.port}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)

    async def __aenter__(self) -> UvicornThread:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)


class ServiceProcess:
    """One service as its own process (`python -m uvicorn --factory ...`)."""

    def __init__(
        self, service: str, *, port: int | None = None, env: dict[str, str] | None = None
    ) -> None:
        self.service = service
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self._log = tempfile.TemporaryFile()

    def start(self, *, wait: bool = True) -> ServiceProcess:
        self.proc = subprocess.Popen(
            serve_command(self.service, self.port),  # exactly as `tradebot up` runs it
            env=self.env,
            stdout=subprocess.DEVNULL,
            # A file, not a pipe: an unread pipe fills up and freezes the service.
            stderr=self._log,
        )
        if wait:
            self.wait_listening()
        return self

    def wait_listening(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.service} exited: {self.stderr_tail(2000)}")
            try:
                httpx.get(self.url + "/health", timeout=2)
                return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError(f"{self.service} did not listen on {self.port}")

    def stderr_tail(self, size: int = 5000) -> str:
        """The last ``size`` characters the service wrote to stderr."""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-size:]

    def kill(self) -> None:
        """SIGKILL: a crash, nothing cleaned up."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    async def __aenter__(self) -> ServiceProcess:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)


# The services each one calls, by the settings that name their addresses.
SERVICE_URL_SETTINGS = {
    "market": "MARKET_SERVICE_URLS",
    "user": "USER_SERVICE_URLS",
    "trading": "TRADING_SERVICE_URLS",
    "analysis": "ANALYSIS_SERVICE_URLS",
    "notification": "NOTIFICATION_SERVICE_URLS",
}


@contextmanager
def running_services(names: list[str], env: dict[str, str]) -> Iterator[dict[str, str]]:
    """The named services as processes wired to each other, started together; yields
    each one's URL and stops them all on exit."""
    ports = {name: free_port() for name in names}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    wired = {**env, **{SERVICE_URL_SETTINGS[n]: urls[n] for n in names if n != "gateway"}}
    processes = [ServiceProcess(name, port=ports[name], env=wired) for name in names]
    try:
        for process in processes:
            process.start(wait=False)
        for process in processes:
            process.wait_listening(60)
        yield urls
    finally:
        for process in processes:
            process.stop()

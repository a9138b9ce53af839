"""redis-py asyncio client with timeouts, so a hung Redis fails fast instead of hanging."""

from __future__ import annotations

from redis.asyncio import Redis


def create_redis(url: str, *, timeout: float = 2.0, max_connections: int = 200) -> Redis:
    return Redis.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        health_check_interval=30,
        max_connections=max_connections,
    )

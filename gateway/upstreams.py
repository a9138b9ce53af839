"""Upstreams: one pooled aiohttp session and one circuit breaker per base URL, and
round-robin over the instances whose breaker lets a call through."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import aiohttp

from gateway.http_client import UpstreamClient
from gateway.settings import GatewaySettings
from shared.breaker import BreakerState, CircuitBreaker

# First path segment -> upstream service name (docs/api.md, conventions).
PREFIXES: dict[str, str] = {
    "market": "market",
    "user": "user",
    "trading": "trading",
    "analysis": "analysis",
    "notifications": "notification",
}


@dataclass
class Instance:
    """One base URL of an upstream."""

    url: str
    breaker: CircuitBreaker
    session: aiohttp.ClientSession | None = None  # WebSockets and health probes
    http_client: UpstreamClient | None = None  # proxied HTTP requests (the hot path)

    @property
    def http(self) -> UpstreamClient:
        if self.http_client is None:
            raise RuntimeError("upstream clients are opened by the gateway's lifespan")
        return self.http_client

    @property
    def client(self) -> aiohttp.ClientSession:
        if self.session is None:
            raise RuntimeError("upstream sessions are opened by the gateway's lifespan")
        return self.session


@dataclass
class Upstream:
    name: str
    instances: list[Instance]
    # The longest Retry-After of an open breaker: its instance is probed every fraction of
    # a second (gateway.recovery), so a client need not wait out the reset timeout.
    retry_after_cap: int = 60
    _turn: itertools.count[int] = field(default_factory=itertools.count)

    def candidates(self) -> list[Instance]:
        """Instances in round-robin order starting from the next one."""
        n = len(self.instances)
        start = next(self._turn) % n
        return [self.instances[(start + i) % n] for i in range(n)]

    def retry_after(self) -> int:
        waits = [i.breaker.retry_after for i in self.instances]
        return max(1, min(int(min(waits, default=1.0)) + 1, self.retry_after_cap))

    def breaker_states(self) -> list[dict[str, str]]:
        return [{"url": i.url, "breaker": i.breaker.state.value} for i in self.instances]

    def any_closed(self) -> bool:
        return any(i.breaker.state is not BreakerState.OPEN for i in self.instances)


class UpstreamRegistry:
    """Every upstream of the gateway, keyed by service name."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.by_name: dict[str, Upstream] = {}
        for name, urls in settings.upstream_urls().items():
            if not urls:
                continue
            self.by_name[name] = Upstream(
                name,
                [
                    Instance(
                        url,
                        CircuitBreaker(
                            f"gateway:{name}:{url}",
                            failure_threshold=settings.breaker_failure_threshold,
                            reset_timeout=settings.breaker_reset_timeout_seconds,
                        ),
                    )
                    for url in urls
                ],
                retry_after_cap=math.ceil(2 * settings.breaker_probe_interval_seconds),
            )

    def for_prefix(self, segment: str) -> Upstream | None:
        name = PREFIXES.get(segment)
        return self.by_name.get(name) if name is not None else None

    async def open(self) -> None:
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=self.settings.upstream_connect_timeout_seconds,
            sock_read=self.settings.upstream_read_timeout_seconds,
        )
        for upstream in self.by_name.values():
            for instance in upstream.instances:
                instance.http_client = UpstreamClient(
                    instance.url,
                    connect_timeout=self.settings.upstream_connect_timeout_seconds,
                    read_timeout=self.settings.upstream_read_timeout_seconds,
                    max_connections=self.settings.upstream_pool_size,
                )
                instance.session = aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(
                        # WebSockets and health probes only: each proxied socket holds its
                        # connection for its whole life, so a pool cap would cap the number
                        # of live sockets (it did, at 256). Clients bound the count instead.
                        limit=0,
                        keepalive_timeout=30,
                        ttl_dns_cache=300,
                    ),
                    timeout=timeout,
                    # Forward exactly what the client sent: no added encodings or types,
                    # and bodies passed through still compressed.
                    auto_decompress=False,
                    skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept", "Content-Type"),
                    cookie_jar=aiohttp.DummyCookieJar(),
                )

    async def close(self) -> None:
        for upstream in self.by_name.values():
            for instance in upstream.instances:
                if instance.session is not None:
                    await instance.session.close()
                    instance.session = None
                if instance.http_client is not None:
                    await instance.http_client.close()
                    instance.http_client = None

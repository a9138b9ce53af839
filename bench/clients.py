"""The benchmarks' HTTP client: keep-alive connections the services never close under it.

uvicorn closes a kept-alive connection after 5 s without a request (``timeout_keep_alive``)
and httpx reuses one for up to 5 s (``keepalive_expiry``). A request sent on a connection
idle for almost 5 s meets the server's close on its way and fails with "Server
disconnected without sending a response" (taken from the pool at 4.9 s idle and written
0.3 s later, it fails every time). On a loaded machine that is not rare: 50 clients of a
server answering 25 requests/s left connections idle up to 4.87 s before reuse, and a
starved client process paused over a second between taking a connection from its pool
and writing the request. With the client letting go of a connection after 1 s idle, the
server's 5 s never comes into play.
"""

from __future__ import annotations

from typing import Any

import httpx

KEEPALIVE_EXPIRY_S = 1.0  # well below uvicorn's 5 s timeout_keep_alive


def http_client(*, connections: int = 100, **options: Any) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` keeping up to ``connections`` connections alive."""
    limits = httpx.Limits(
        max_connections=connections,
        max_keepalive_connections=connections,
        keepalive_expiry=KEEPALIVE_EXPIRY_S,
    )
    return httpx.AsyncClient(limits=limits, **options)

"""Problem-details responses sent straight on the ASGI channel (no framework in the path)."""

from __future__ import annotations

import orjson
from starlette.types import Send

from shared.errors import status_title

PROBLEM_JSON = b"application/problem+json"


async def send_problem(
    send: Send,
    status: int,
    detail: str,
    instance: str,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """An RFC 9457 body in the same shape as :func:`shared.errors.problem_response`."""
    body = orjson.dumps(
        {
            "type": "about:blank",
            "title": status_title(status),
            "status": status,
            "detail": detail,
            "instance": instance,
        }
    )
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", PROBLEM_JSON),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})

"""Stand-ins for what the notification service talks to: the user service's internal user
lookup and a webhook receiver, each a small FastAPI app the tests serve on a free port."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Header, HTTPException, Request, Response

INTERNAL_TOKEN = "test-internal-token"  # what the fake user service accepts


class FakeUserService:
    """`GET /user/internal/users/{id}` answering the preferences a test sets."""

    def __init__(self) -> None:
        self.preferences: dict[str, dict[str, Any]] = {}
        self.calls = 0
        self.url = ""  # set once it is served
        self.app = FastAPI()

        @self.app.get("/user/internal/users/{user_id}")
        async def internal_user(
            user_id: str, x_internal_token: str | None = Header(default=None)
        ) -> dict[str, Any]:
            self.calls += 1
            if x_internal_token != INTERNAL_TOKEN:
                raise HTTPException(401)
            if user_id not in self.preferences:
                raise HTTPException(404)
            return {
                "id": user_id,
                "email": f"{user_id}@example.com",
                "permissions": ["trade:paper"],
                "trading_limits": {},
                "preferences": self.preferences[user_id],
            }


@dataclass
class ReceivedCall:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


@dataclass
class WebhookReceiver:
    """A local webhook endpoint; ``fail_next[path] = n`` answers 500 to the next n calls."""

    url: str = ""
    calls: list[ReceivedCall] = field(default_factory=list)
    accepted: list[ReceivedCall] = field(default_factory=list)
    fail_next: dict[str, int] = field(default_factory=dict)
    delay_s: dict[str, float] = field(default_factory=dict)

    def reset(self) -> None:
        self.calls.clear()
        self.accepted.clear()
        self.fail_next.clear()
        self.delay_s.clear()

    def build(self) -> FastAPI:
        app = FastAPI()

        @app.post("/hooks/{name}")
        async def hook(name: str, request: Request) -> Response:
            call = ReceivedCall(f"/hooks/{name}", dict(request.headers), await request.body())
            self.calls.append(call)
            await asyncio.sleep(self.delay_s.get(call.path, 0.0))
            if self.fail_next.get(call.path, 0) > 0:
                self.fail_next[call.path] -= 1
                return Response(status_code=500)
            self.accepted.append(call)
            return Response(status_code=204)

        return app

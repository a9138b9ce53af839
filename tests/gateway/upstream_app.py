"""A small upstream of our own for the gateway's end-to-end tests: echoes what it got,
streams, fails on demand and echoes WebSocket frames. It names itself, so tests can see
which instance answered."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse, Response, StreamingResponse

# Close codes of WebSocket clients that went away, as this upstream saw them.
DISCONNECTS: list[int] = []


def create_upstream(name: str) -> FastAPI:
    app = FastAPI()

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "healthy"}

    @app.api_route("/{prefix}/echo", methods=["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"])
    async def echo(prefix: str, request: Request) -> JSONResponse:
        body = await request.body()
        return JSONResponse(
            {
                "instance": name,
                "method": request.method,
                "path": request.url.path,
                "raw_path": request.scope["raw_path"].decode(),
                "query": request.scope["query_string"].decode(),
                "headers": [[k, v] for k, v in request.headers.items()],
                "body": body.decode(errors="replace"),
            },
            headers={"X-Upstream": name, "Set-Cookie": "a=1", "Cache-Control": "no-store"},
            status_code=201 if request.method == "POST" else 200,
        )

    @app.post("/trading/upload")
    async def upload(request: Request) -> dict[str, object]:
        digest = hashlib.sha256()
        size = 0
        chunks = 0
        async for chunk in request.stream():
            digest.update(chunk)
            size += len(chunk)
            chunks += 1
        return {"size": size, "sha256": digest.hexdigest(), "chunks": chunks}

    @app.get("/trading/download")
    async def download(chunks: int = 10, size: int = 65536) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            for i in range(chunks):
                yield bytes([i % 256]) * size

        return StreamingResponse(body(), media_type="application/octet-stream")

    @app.get("/trading/slow")
    async def slow(seconds: float = 1.0) -> dict[str, str]:
        await asyncio.sleep(seconds)
        return {"instance": name}

    @app.delete("/trading/nothing", status_code=204)
    async def nothing() -> Response:
        return Response(status_code=204)

    @app.get("/trading/fail")
    async def fail() -> Response:
        return Response(b"upstream broke", status_code=500)

    @app.websocket("/market/ws")
    @app.websocket("/notifications/ws")
    async def ws(socket: WebSocket) -> None:
        await socket.accept()
        try:
            while True:
                text = await socket.receive_text()
                if text == "close-me":
                    await socket.close(code=4000)
                    return
                await socket.send_text(f"{name}:{text}")
                if text == "push":
                    await socket.send_text(f"{name}:server-push")
        except WebSocketDisconnect as exc:
            DISCONNECTS.append(exc.code)

    return app

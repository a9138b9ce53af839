"""The web dashboard's built files (``gateway/web/dist``), served at ``/`` and ``/assets/*``.

The front end is a single page with hash routes (``/#/markets``), so the only paths it
takes from the gateway are ``/`` (``index.html``) and ``/assets/<name>-<hash>.<ext>``;
the API prefixes (``/market``, ``/user``, ...), ``/health``, ``/metrics`` and ``/docs``
keep their meaning. The files are read into memory once, when the gateway starts (a few
hundred KiB), with the ``.br``/``.gz`` copies the build writes beside each file:

* an asset's name changes with its content, so it is cached for a year as ``immutable``;
* ``index.html`` names the current assets, so browsers revalidate it on every load
  (``no-cache`` with an ``ETag``: a 304 when nothing changed).

These routes go through FastAPI like ``/health``; proxied requests never reach them
(:class:`gateway.main.GatewayApp` and the lean cycle of :mod:`gateway.server` pick the
proxy first), so serving the dashboard costs the proxy path nothing.
"""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass, field
from pathlib import Path

from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.problems import send_problem

# Where `npm run build` writes (gateway/web/vite.config.ts); DASHBOARD_DIR overrides it.
DEFAULT_DIST = Path(__file__).parent / "web" / "dist"
IMMUTABLE = b"public, max-age=31536000, immutable"
REVALIDATE = b"no-cache"
# The page loads only its own scripts and styles and talks only to its own origin (the
# API and the two WebSockets); lightweight-charts sets inline style attributes.
CONTENT_SECURITY_POLICY = (
    b"default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    b"img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; "
    b"object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
PAGE_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]
ENCODINGS = ((b"br", ".br"), (b"gzip", ".gz"))  # preferred first
TYPES = {
    ".js": b"text/javascript; charset=utf-8",
    ".css": b"text/css; charset=utf-8",
    ".html": b"text/html; charset=utf-8",
    ".svg": b"image/svg+xml",
    ".json": b"application/json",
    ".woff2": b"font/woff2",
}


@dataclass(frozen=True)
class BuiltFile:
    """One file of the build, as sent: its bytes and the precompressed copies."""

    body: bytes
    content_type: bytes
    etag: bytes
    encoded: dict[bytes, bytes] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> BuiltFile:
        body = path.read_bytes()
        suffix = path.suffix.lower()
        content_type = (
            TYPES.get(suffix)
            or (mimetypes.guess_type(path.name)[0] or "application/octet-stream").encode()
        )
        encoded = {}
        for encoding, extension in ENCODINGS:
            copy = path.with_name(path.name + extension)
            if copy.is_file():
                encoded[encoding] = copy.read_bytes()
        etag = b'"' + hashlib.blake2b(body, digest_size=12).hexdigest().encode() + b'"'
        return cls(body, content_type, etag, encoded)

    def pick(self, accept_encoding: bytes) -> tuple[bytes, bytes | None]:
        """The body to send and its Content-Encoding (None: identity)."""
        if self.encoded and accept_encoding:
            offered = _accepted_encodings(accept_encoding)
            for encoding, _ in ENCODINGS:
                if encoding in offered and encoding in self.encoded:
                    return self.encoded[encoding], encoding
        return self.body, None


def _accepted_encodings(accept_encoding: bytes) -> set[bytes]:
    """The codings an Accept-Encoding value allows (``q=0`` refuses one)."""
    accepted = set()
    for part in accept_encoding.lower().split(b","):
        name, _, params = part.partition(b";")
        weight = params.strip()
        if weight.startswith(b"q="):
            try:
                if float(weight[2:]) <= 0:
                    continue
            except ValueError:
                continue
        accepted.add(name.strip())
    return accepted


class DashboardFiles:
    """The build in memory: ``index.html`` and the assets by name."""

    def __init__(self, root: Path) -> None:
        self.root = root
        index = root / "index.html"
        self.index = BuiltFile.read(index) if index.is_file() else None
        assets = root / "assets"
        self.assets: dict[str, BuiltFile] = {}
        if assets.is_dir():
            for path in sorted(assets.iterdir()):
                if path.is_file() and path.suffix not in (".br", ".gz"):
                    self.assets[path.name] = BuiltFile.read(path)

    def routes(self) -> list[BaseRoute]:
        """``GET /`` and ``GET /assets/{name}`` (HEAD too), kept out of the OpenAPI schema."""
        return [
            Route("/", _Asgi(self.serve_index), methods=["GET", "HEAD"], include_in_schema=False),
            Mount("/assets", app=_Asgi(self.serve_asset)),
        ]

    async def serve_index(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.index is None:
            await send_problem(
                send,
                404,
                "The web dashboard is not built: run ./scripts/bootstrap (Node 20 and npm), "
                f"or point DASHBOARD_DIR at a build (looked in {self.root}).",
                scope["path"],
            )
            return
        await _send_file(scope, send, self.index, REVALIDATE, PAGE_HEADERS)

    async def serve_asset(self, scope: Scope, receive: Receive, send: Send) -> None:
        name = scope["path"].removeprefix(scope.get("root_path", "")).lstrip("/")
        if scope["type"] != "http":
            return
        if scope["method"] not in ("GET", "HEAD"):
            await send_problem(
                send, 405, "Assets are read with GET.", scope["path"], [(b"allow", b"GET, HEAD")]
            )
            return
        built = self.assets.get(name)
        if built is None:
            await send_problem(send, 404, "No such asset.", scope["path"])
            return
        await _send_file(scope, send, built, IMMUTABLE, [(b"x-content-type-options", b"nosniff")])


class _Asgi:
    """A handler as a plain ASGI app (Starlette wraps a bare function as a request handler)."""

    def __init__(self, handler: ASGIApp) -> None:
        self.handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.handler(scope, receive, send)


def _header(scope: Scope, name: bytes) -> bytes:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return b""


async def _send_file(
    scope: Scope,
    send: Send,
    built: BuiltFile,
    cache_control: bytes,
    extra: list[tuple[bytes, bytes]],
) -> None:
    headers = [
        (b"cache-control", cache_control),
        (b"etag", built.etag),
        (b"vary", b"Accept-Encoding"),
        *extra,
    ]
    if built.etag in _header(scope, b"if-none-match"):
        await send({"type": "http.response.start", "status": 304, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
        return
    body, encoding = built.pick(_header(scope, b"accept-encoding"))
    headers.append((b"content-type", built.content_type))
    headers.append((b"content-length", str(len(body)).encode()))
    if encoding is not None:
        headers.append((b"content-encoding", encoding))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})

"""The gateway serves the web dashboard's build at / and /assets/* with the right caching,
and the API prefixes keep their meaning next to it."""

from __future__ import annotations

import gzip
from pathlib import Path

import httpx
import pytest

from tests.gateway.stack import GatewayFactory, all_upstreams
from tests.servers import UvicornThread

SCRIPT = b"console.log('tradebot');" * 40


@pytest.fixture
def build(tmp_path: Path) -> Path:
    """A build as scripts/build-web leaves it: index.html, hashed assets with .br/.gz copies."""
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_bytes(
        b'<!doctype html><script type="module" src="/assets/index-abc123.js"></script>'
    )
    asset = tmp_path / "assets" / "index-abc123.js"
    asset.write_bytes(SCRIPT)
    (tmp_path / "assets" / "index-abc123.js.gz").write_bytes(gzip.compress(SCRIPT))
    (tmp_path / "assets" / "index-abc123.js.br").write_bytes(b"brotli bytes stand-in")
    return tmp_path


async def test_the_page_is_revalidated_and_assets_are_cached_for_a_year(
    gateway: GatewayFactory, build: Path
) -> None:
    async with gateway(dashboard_dir=str(build)) as gw, httpx.AsyncClient() as client:
        page = await client.get(f"{gw.url}/", headers={"accept-encoding": "identity"})
        again = await client.get(f"{gw.url}/", headers={"if-none-match": page.headers["etag"]})
        head = await client.head(f"{gw.url}/")
        asset = await client.get(
            f"{gw.url}/assets/index-abc123.js", headers={"accept-encoding": "gzip"}
        )
        brotli = await client.get(
            f"{gw.url}/assets/index-abc123.js",
            headers={"accept-encoding": "gzip;q=0.5, br"},
        )
        refused = await client.get(
            f"{gw.url}/assets/index-abc123.js", headers={"accept-encoding": "br;q=0, gzip;q=0"}
        )
        missing = await client.get(f"{gw.url}/assets/index-old999.js")
        posted = await client.post(f"{gw.url}/assets/index-abc123.js")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["cache-control"] == "no-cache"
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert b"/assets/index-abc123.js" in page.content
    assert again.status_code == 304
    assert again.content == b""
    assert head.status_code == 200
    assert head.content == b""
    assert asset.status_code == 200
    assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert asset.headers["content-encoding"] == "gzip"
    assert asset.headers["vary"] == "Accept-Encoding"
    assert asset.content == SCRIPT  # httpx undid the gzip
    assert brotli.headers["content-encoding"] == "br"
    assert "content-encoding" not in refused.headers
    assert refused.content == SCRIPT
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert posted.status_code == 405


async def test_api_prefixes_and_operations_routes_keep_their_meaning(
    gateway: GatewayFactory, upstream: UvicornThread, build: Path
) -> None:
    async with (
        gateway(dashboard_dir=str(build), **all_upstreams(upstream.url)) as gw,
        httpx.AsyncClient() as client,
    ):
        proxied = await client.get(f"{gw.url}/market/echo")
        health = await client.get(f"{gw.url}/health")
        docs = await client.get(f"{gw.url}/openapi.json")
        unknown = await client.get(f"{gw.url}/no-such-page")
    assert proxied.status_code == 200
    assert proxied.json()["path"] == "/market/echo"
    assert health.status_code == 200
    assert "/" not in docs.json()["paths"]
    assert unknown.status_code == 404


async def test_a_missing_build_is_a_404_that_says_how_to_build_it(
    gateway: GatewayFactory, tmp_path: Path
) -> None:
    async with gateway(dashboard_dir=str(tmp_path)) as gw, httpx.AsyncClient() as client:
        page = await client.get(f"{gw.url}/")
    assert page.status_code == 404
    assert "scripts/bootstrap" in page.json()["detail"]

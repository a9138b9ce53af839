"""Routing through a real gateway to a real upstream: exact forwarding, streaming,
authentication, internal paths, request ids, CORS."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import jwt
from redis.asyncio import Redis

from tests.factories import issue_access_token
from tests.gateway.stack import GatewayFactory, all_upstreams
from tests.servers import UvicornThread
from tests.stores import TEST_INTERNAL_TOKEN, TEST_JWT_SECRET


async def bearer(redis: Redis) -> dict[str, str]:
    token, _ = await issue_access_token(redis, uuid.uuid4())
    return {"Authorization": f"Bearer {token}"}


async def test_request_is_forwarded_exactly_and_the_user_id_goes_upstream(
    gateway: GatewayFactory, upstream: UvicornThread, redis: Redis
) -> None:
    headers = await bearer(redis)
    user_id = jwt.decode(headers["Authorization"][7:], options={"verify_signature": False})["sub"]
    async with gateway(**all_upstreams(upstream.url)) as gw, httpx.AsyncClient() as client:
        response = await client.post(
            f"{gw.url}/trading/echo?b=2&a=1&a=%2F",
            content=b'{"hello": "world"}',
            headers={
                **headers,
                "Content-Type": "application/json",
                "X-Custom": "kept",
                "X-User-ID": "spoofed",
                "X-Request-ID": "req-123",
            },
        )
    assert response.status_code == 201
    body = response.json()
    sent = dict(body["headers"])
    assert body["method"] == "POST"
    assert body["query"] == "b=2&a=1&a=%2F"
    assert body["body"] == '{"hello": "world"}'
    assert sent["x-custom"] == "kept"
    assert sent["content-type"] == "application/json"
    assert sent["authorization"] == headers["Authorization"]
    assert sent["x-user-id"] == user_id
    assert sent["x-request-id"] == "req-123"
    assert sent["x-forwarded-for"] == "127.0.0.1"
    assert response.headers["x-request-id"] == "req-123"
    assert response.headers["x-upstream"] == "a"
    assert response.headers["set-cookie"] == "a=1"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-ratelimit-limit"] == "100"


async def test_a_request_id_is_generated_when_absent(
    gateway: GatewayFactory, upstream: UvicornThread
) -> None:
    async with gateway(**all_upstreams(upstream.url)) as gw, httpx.AsyncClient() as client:
        response = await client.get(f"{gw.url}/market/echo")
    generated = response.headers["x-request-id"]
    assert len(generated) >= 16
    assert dict(response.json()["headers"])["x-request-id"] == generated


async def test_large_bodies_stream_both_ways_intact(
    gateway: GatewayFactory, upstream: UvicornThread, redis: Redis
) -> None:
    headers = await bearer(redis)
    payload = bytes(range(256)) * 16 * 1024  # 4 MiB

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(payload), 256 * 1024):
            yield payload[i : i + 256 * 1024]

    async with gateway(**all_upstreams(upstream.url)) as gw, httpx.AsyncClient() as client:
        uploaded = await client.post(f"{gw.url}/trading/upload", content=chunks(), headers=headers)
        sized = await client.post(f"{gw.url}/trading/upload", content=payload, headers=headers)
        async with client.stream(
            "GET", f"{gw.url}/trading/download?chunks=64&size=65536", headers=headers
        ) as download:
            received = 0
            pieces = 0
            async for piece in download.aiter_raw():
                received += len(piece)
                pieces += 1
    digest = hashlib.sha256(payload).hexdigest()
    assert uploaded.json()["sha256"] == digest
    assert sized.json() == {**sized.json(), "size": len(payload), "sha256": digest}
    assert download.status_code == 200
    assert "content-length" not in download.headers  # relayed as it came, chunked
    assert received == 64 * 65536
    assert pieces > 1  # streamed, not delivered as one buffered body


async def test_non_public_routes_need_a_valid_token(
    gateway: GatewayFactory, upstream: UvicornThread, redis: Redis
) -> None:
    good = (await bearer(redis))["Authorization"][7:]
    claims = jwt.decode(good, options={"verify_signature": False})
    now = int(time.time())
    forged = {
        "missing": None,
        "alg none": jwt.encode(claims, key="", algorithm="none"),
        "wrong key": jwt.encode(claims, "not-the-secret-but-long-enough-xx", algorithm="HS256"),
        "refresh type": jwt.encode({**claims, "type": "refresh"}, TEST_JWT_SECRET, "HS256"),
        "expired": jwt.encode({**claims, "exp": now - 5}, TEST_JWT_SECRET, "HS256"),
        "dead session": jwt.encode({**claims, "sid": "gone"}, TEST_JWT_SECRET, "HS256"),
    }
    async with gateway(**all_upstreams(upstream.url)) as gw, httpx.AsyncClient() as client:
        for name, token in forged.items():
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            response = await client.get(f"{gw.url}/trading/echo", headers=headers)
            assert response.status_code == 401, name
            assert response.headers["content-type"] == "application/problem+json", name
            assert response.json()["instance"] == "/trading/echo"
        ok = await client.get(f"{gw.url}/trading/echo", headers={"Authorization": f"Bearer {good}"})
        assert ok.status_code == 200
        public = await client.get(f"{gw.url}/market/echo")
        assert public.status_code == 200
        assert "x-user-id" not in dict(public.json()["headers"])
        write_to_market = await client.post(f"{gw.url}/market/echo")
        assert write_to_market.status_code == 401


async def test_internal_paths_are_404_at_the_gateway(
    gateway: GatewayFactory, upstream: UvicornThread, redis: Redis
) -> None:
    headers = {**await bearer(redis), "X-Internal-Token": TEST_INTERNAL_TOKEN}
    async with gateway(**all_upstreams(upstream.url)) as gw, httpx.AsyncClient() as client:
        for path in (
            "/user/internal/users/x",
            "/trading/internal/",
            "/user/INTERNAL/users/x",
            "/user/%69nternal/users/x",
            "/user/me/../internal/users/x",
        ):
            response = await client.get(f"{gw.url}{path}", headers=headers)
            assert response.status_code == 404, path


async def test_unknown_prefixes_are_404_problems(gateway: GatewayFactory) -> None:
    async with gateway() as gw, httpx.AsyncClient() as client:
        response = await client.get(f"{gw.url}/nowhere")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


async def test_cors_preflight_and_responses_follow_the_configured_origins(
    gateway: GatewayFactory, upstream: UvicornThread
) -> None:
    origins = "https://app.example.com"
    async with (
        gateway(cors_origins=origins, **all_upstreams(upstream.url)) as gw,
        httpx.AsyncClient() as client,
    ):
        preflight = await client.options(
            f"{gw.url}/trading/echo",
            headers={
                "Origin": "https://app.example.com",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization",
            },
        )
        simple = await client.get(
            f"{gw.url}/market/echo", headers={"Origin": "https://app.example.com"}
        )
        foreign = await client.get(
            f"{gw.url}/market/echo", headers={"Origin": "https://evil.example.com"}
        )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://app.example.com"
    assert simple.headers["access-control-allow-origin"] == "https://app.example.com"
    assert "x-ratelimit-remaining" in simple.headers["access-control-expose-headers"].lower()
    assert "access-control-allow-origin" not in foreign.headers


async def test_head_and_204_answers_keep_the_connection_usable(
    gateway: GatewayFactory, upstream: UvicornThread, redis: Redis
) -> None:
    headers = await bearer(redis)
    async with gateway(**all_upstreams(upstream.url)) as gw, httpx.AsyncClient() as client:
        head = await client.head(f"{gw.url}/market/echo")
        empty = await client.delete(f"{gw.url}/trading/nothing", headers=headers)
        after = [await client.get(f"{gw.url}/market/echo") for _ in range(3)]
    assert head.status_code == 200
    assert int(head.headers["content-length"]) > 0  # the GET body's size, none sent
    assert head.content == b""
    assert empty.status_code == 204
    assert empty.content == b""
    assert [r.status_code for r in after] == [200, 200, 200]


async def test_a_slow_upstream_is_a_504_problem(
    gateway: GatewayFactory, upstream: UvicornThread, redis: Redis
) -> None:
    headers = await bearer(redis)
    settings = {"upstream_read_timeout_seconds": 0.3, **all_upstreams(upstream.url)}
    async with gateway(**settings) as gw, httpx.AsyncClient() as client:
        slow = await client.get(f"{gw.url}/trading/slow?seconds=2", headers=headers)
        quick = await client.get(f"{gw.url}/trading/slow?seconds=0", headers=headers)
    assert slow.status_code == 504
    assert slow.headers["content-type"] == "application/problem+json"
    assert quick.status_code == 200


async def test_redis_down_at_the_gateway_is_a_503_with_retry_after(
    gateway: GatewayFactory, upstream: UvicornThread, redis: Redis
) -> None:
    headers = await bearer(redis)
    settings = {"redis_url": "redis://127.0.0.1:1/0", **all_upstreams(upstream.url)}
    async with gateway(**settings) as gw, httpx.AsyncClient() as client:
        response = await client.get(f"{gw.url}/trading/echo", headers=headers)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.headers["content-type"] == "application/problem+json"

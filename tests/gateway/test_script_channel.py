"""The pipelined Redis channel: replies split anywhere, errors, reconnects, script reload."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from gateway.script_channel import ScriptChannel, _Protocol

SCRIPT = "return {tonumber(ARGV[1]) + 1, redis.call('GET', KEYS[1]), false}"


async def test_replies_split_at_every_byte_reach_their_callers_in_order() -> None:
    protocol = _Protocol()
    first = protocol.loop.create_future()
    second = protocol.loop.create_future()
    third = protocol.loop.create_future()
    for future in (first, second, third):
        protocol.pending.append((future, 0.0))
    wire = b"*3\r\n:7\r\n$5\r\nhello\r\n$-1\r\n" + b"-ERR boom\r\n" + b"+OK\r\n"
    for i in range(len(wire)):
        protocol.data_received(wire[i : i + 1])
    assert first.result() == [7, b"hello", None]
    with pytest.raises(ResponseError, match="boom"):
        second.result()
    assert third.result() == b"OK"
    assert protocol.reader.gets() is False  # nothing left over


async def test_a_garbled_reply_fails_the_waiting_callers() -> None:
    protocol = _Protocol()
    waiting = protocol.loop.create_future()
    protocol.pending.append((waiting, 0.0))
    protocol.data_received(b"?what\r\n")
    with pytest.raises(RedisConnectionError, match="bad reply"):
        waiting.result()
    assert protocol.closed


async def test_runs_a_script_loading_it_on_first_use(redis: Redis, redis_url: str) -> None:
    await redis.set("greeting", "hi")
    await redis.script_flush()
    channel = ScriptChannel(redis_url, SCRIPT)
    try:
        results = await asyncio.gather(*(channel.run(["greeting"], [n]) for n in range(50)))
    finally:
        await channel.close()
    assert results == [[n + 1, b"hi", None] for n in range(50)]


async def test_an_unreachable_redis_is_a_connection_error() -> None:
    channel = ScriptChannel("redis://127.0.0.1:1/0", SCRIPT, timeout=0.5)
    with pytest.raises(RedisConnectionError):
        await channel.run(["k"], [1])
    await channel.close()


async def test_a_dropped_connection_is_replaced_on_the_next_call(
    redis: Redis, redis_url: str
) -> None:
    channel = ScriptChannel(redis_url, SCRIPT)
    try:
        assert (await channel.run(["nothing"], [1]))[0] == 2
        assert channel._protocol is not None
        channel._protocol.transport.abort()  # type: ignore[union-attr]
        await asyncio.sleep(0.05)
        assert (await channel.run(["nothing"], [2]))[0] == 3
    finally:
        await channel.close()

"""Where bots belong: every replica computes the same placement, the loads differ by the
rounding alone, and a replica joining or leaving moves about its share of bots."""

from __future__ import annotations

import uuid

from redis.asyncio import Redis

from trading_engine.bots.placement import place
from trading_engine.bots.replicas import ReplicaMembership


def loads(placed: dict[uuid.UUID, str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for replica in placed.values():
        out[replica] = out.get(replica, 0) + 1
    return out


def test_bots_are_spread_evenly_and_every_replica_agrees() -> None:
    bots = [uuid.uuid4() for _ in range(31)]

    placed = place(bots, ["b", "a", "c"])

    assert set(placed) == set(bots)
    assert sorted(loads(placed).values()) == [10, 10, 11]
    assert place(list(reversed(bots)), ["c", "a", "b"]) == placed  # the same everywhere


def test_a_joining_replica_takes_its_share_and_a_leaving_one_gives_back_only_its_own() -> None:
    bots = [uuid.uuid4() for _ in range(300)]
    two = place(bots, ["a", "b"])
    three = place(bots, ["a", "b", "c"])

    assert loads(three) == {"a": 100, "b": 100, "c": 100}
    moved = [b for b in bots if two[b] != three[b]]
    # Each of a and b gives c its share; the bounded load moves a few more around.
    assert 100 <= len(moved) <= 130
    assert place(bots, ["a"]) == dict.fromkeys(bots, "a")
    assert place([], ["a"]) == {}
    assert place(bots, []) == {}


async def test_membership_lists_the_live_replicas_and_forgets_one_that_left(
    redis: Redis,
) -> None:
    a = ReplicaMembership(redis, "replica-a", ttl_ms=5_000)
    b = ReplicaMembership(redis, "replica-b", ttl_ms=5_000)
    assert await a.heartbeat() == ["replica-a"]
    assert await b.heartbeat() == ["replica-a", "replica-b"]

    await b.leave()

    assert await a.heartbeat() == ["replica-a"]
    await redis.pexpire("trading:replica:replica-a", 1)  # a's heartbeat expires
    await redis.delete("trading:replica:replica-a")
    assert await b.heartbeat() == ["replica-b"]

"""Where each running bot belongs: rendezvous (highest random weight) hashing of the bot
over the live replicas, with a bounded load. Every replica computes the same placement
from the same inputs (the running bots in PostgreSQL, the live replicas in Redis).

A bot's replicas are ranked by ``hash(replica, bot)``; bots are placed in id order, each
on the best-ranked replica with room left (``bots // replicas``, one more for the first
``bots % replicas`` replica ids), so the loads differ by one at most, and a replica
joining or leaving moves about its share of bots."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Collection, Sequence


def weight(replica: str, bot_id: uuid.UUID) -> int:
    digest = hashlib.blake2b(f"{replica}|{bot_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def place(bot_ids: Collection[uuid.UUID], replicas: Sequence[str]) -> dict[uuid.UUID, str]:
    """The replica each bot belongs on (empty when no replica is live)."""
    if not replicas or not bot_ids:
        return {}
    share, extra = divmod(len(bot_ids), len(replicas))
    room = {r: share + (i < extra) for i, r in enumerate(sorted(replicas))}
    placed: dict[uuid.UUID, str] = {}
    for bot_id in sorted(bot_ids):
        for replica in sorted(replicas, key=lambda r: weight(r, bot_id), reverse=True):
            if room[replica]:
                room[replica] -= 1
                placed[bot_id] = replica
                break
    return placed


class Placement:
    """:func:`place`, recomputed only when the running bots or the live replicas change."""

    def __init__(self) -> None:
        self._inputs: tuple[frozenset[uuid.UUID], tuple[str, ...]] | None = None
        self._placed: dict[uuid.UUID, str] = {}

    def of(self, bot_ids: Collection[uuid.UUID], replicas: Sequence[str]) -> dict[uuid.UUID, str]:
        inputs = (frozenset(bot_ids), tuple(replicas))
        if inputs != self._inputs:
            self._inputs = inputs
            self._placed = place(inputs[0], inputs[1])
        return self._placed

"""Cancellation that survives client libraries which turn it into other exceptions."""

from __future__ import annotations

import asyncio


def raise_if_cancelling() -> None:
    """Inside ``except Exception``: re-raise if this task is being cancelled.

    redis-py and asyncpg may surface a cancelled call as a connection error; a background
    loop that logs and carries on would then never stop.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError

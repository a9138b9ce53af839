"""Cancellation that survives client libraries which turn it into other exceptions."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import structlog

log = structlog.get_logger("shutdown")


def raise_if_cancelling() -> None:
    """Inside ``except Exception``: re-raise if this task is being cancelled.

    redis-py and asyncpg may surface a cancelled call as a connection error; a background
    loop that logs and carries on would then never stop.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]], *, limit_s: float = 5.0) -> None:
    """Cancel background tasks and wait for them, but never forever.

    A task cancelled while a database connect is being torn down (a dead PostgreSQL) has
    been seen to stay "cancelling"; a service's shutdown must not hang on it.
    """
    pending = [task for task in tasks if not task.done()]
    for task in pending:
        task.cancel()
    if not pending:
        return
    _done, stuck = await asyncio.wait(pending, timeout=limit_s)
    if stuck:
        log.warning("tasks_still_running_at_shutdown", tasks=[t.get_name() for t in stuck])

"""Run side effects only after the transaction that made them true has committed.

The consumer handler stores a notification inside the event's transaction; the live push and
the dispatcher wake-up must not leave before that commit (or happen twice if the transaction
rolls back and the event is retried), so the handler registers them here.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

log = structlog.get_logger("commit_hooks")

_KEY = "notification_after_commit"


def after_commit(session: AsyncSession, callback: Callable[[], None]) -> None:
    """Call ``callback`` (synchronous, quick) once the session's transaction commits."""
    session.info.setdefault(_KEY, []).append(callback)


@event.listens_for(Session, "after_commit")
def _run_callbacks(session: Session) -> None:
    for callback in session.info.pop(_KEY, ()):
        try:
            callback()
        except Exception:
            log.exception("after_commit_callback_failed")


@event.listens_for(Session, "after_rollback")
def _drop_callbacks(session: Session) -> None:
    session.info.pop(_KEY, None)

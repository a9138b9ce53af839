"""The webhook dispatcher: sends pending deliveries, signed, with exponential back-off.

Retry state lives in ``webhook_dispatches`` (committed with the notification), so a restart
loses nothing: a worker leases due rows (``next_attempt_at`` pushed past the attempt's
timeout), posts, then records the attempt in ``webhook_deliveries`` and either marks the
row delivered, schedules the next attempt ``base * 2^(n-1)`` seconds later (capped, with
jitter), or gives up after ``webhook_max_attempts``. A worker killed mid-attempt leaves the
lease to expire and the delivery is retried; receivers de-duplicate on
``X-TradeBot-Delivery``, which is the same on every attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import httpx
import structlog
from prometheus_client import Counter, Histogram
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from notification_service.notifications.service import wire_form
from notification_service.settings import NotificationSettings
from notification_service.webhooks import repository, signing
from notification_service.webhooks.repository import ClaimedDispatch
from notification_service.webhooks.service import address_policy
from notification_service.webhooks.url_guard import UnsafeWebhookUrl, resolve

log = structlog.get_logger("webhooks")

WEBHOOK_ATTEMPTS = Counter(
    "webhook_delivery_attempts_total", "Webhook delivery attempts", ["outcome"]
)
WEBHOOK_LATENCY = Histogram(
    "webhook_delivery_seconds",
    "Time a webhook receiver took to answer",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


class WebhookDispatcher:
    """Background worker; ``wake()`` after a commit that queued deliveries skips the poll."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: NotificationSettings,
        client: httpx.AsyncClient,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.settings = settings
        self.client = client
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Deliver until cancelled, up to ``webhook_concurrency`` attempts in flight; a slow
        receiver holds one slot, not the others. A database outage only pauses it."""
        in_flight: set[asyncio.Task[None]] = set()
        try:
            while True:
                free = self.settings.webhook_concurrency - len(in_flight)
                claimed: list[ClaimedDispatch] = []
                if free > 0:
                    try:
                        claimed = await self.claim(free)
                    except Exception as exc:
                        log.warning("webhook_dispatch_loop_error", error=repr(exc))
                        await asyncio.sleep(1.0)
                for item in claimed:
                    task = asyncio.create_task(self._attempt(item))
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
                if claimed and len(claimed) == free:
                    # Saturated: more may be due; go on as soon as a slot frees up.
                    await asyncio.wait(set(in_flight), return_when=asyncio.FIRST_COMPLETED)
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._wake.wait(), timeout=self.settings.webhook_poll_interval_s
                    )
                self._wake.clear()
        finally:
            # Leases of cancelled attempts run out and those deliveries are retried.
            for task in in_flight:
                task.cancel()

    async def claim(self, limit: int) -> list[ClaimedDispatch]:
        """Lease up to ``limit`` due deliveries (committed before any attempt starts)."""
        # An attempt is cut off at webhook_timeout_s; the lease outlives it and the settle.
        lease_s = self.settings.webhook_timeout_s + 5.0
        async with self.sessionmaker() as session:
            claimed = await repository.claim_due(session, limit=limit, lease_s=lease_s)
            await session.commit()
        return claimed

    async def _attempt(self, claimed: ClaimedDispatch) -> None:
        try:
            if not claimed.active:
                await self._settle(claimed, None, "webhook deactivated", False, None, final=True)
                return
            status_code, error, duration_ms = await self._post(claimed)
            succeeded = status_code is not None and 200 <= status_code < 300
            await self._settle(claimed, status_code, error, succeeded, duration_ms, final=False)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the lease runs out and the delivery is tried again
            log.warning("webhook_attempt_error", dispatch_id=str(claimed.id), error=repr(exc))

    async def _post(self, claimed: ClaimedDispatch) -> tuple[int | None, str | None, int | None]:
        try:
            target = await resolve(claimed.url, address_policy(self.settings))
        except UnsafeWebhookUrl as exc:
            return None, f"refused: {exc}", None
        timestamp = int(time.time())
        body = json.dumps(
            {
                "delivery_id": str(claimed.id),
                "webhook_id": str(claimed.webhook_id),
                "attempt": claimed.attempt,
                "timestamp": timestamp,
                "notification": wire_form(claimed.notification),
            },
            separators=(",", ":"),
        ).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "TradeBot-Webhooks/1",
            "Host": urlsplit(claimed.url).netloc,  # the pinned URL names the address
            signing.SIGNATURE_HEADER: signing.sign(claimed.secret, body),
            signing.TIMESTAMP_HEADER: str(timestamp),
            signing.DELIVERY_HEADER: str(claimed.id),
            signing.EVENT_HEADER: claimed.notification.kind,
        }
        started = time.perf_counter()
        try:
            async with (
                asyncio.timeout(self.settings.webhook_timeout_s),
                # Streamed and never read: a receiver cannot make us hold a huge body.
                self.client.stream(
                    "POST",
                    target.pinned_url,
                    content=body,
                    headers=headers,
                    timeout=self.settings.webhook_timeout_s,
                    extensions={"sni_hostname": target.host},
                ) as response,
            ):
                pass
        except TimeoutError:
            return None, "timed out", _ms_since(started)
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"[:1000], _ms_since(started)
        duration_ms = _ms_since(started)
        WEBHOOK_LATENCY.observe(duration_ms / 1000)
        error = None if response.is_success else f"HTTP {response.status_code}"
        return response.status_code, error, duration_ms

    async def _settle(
        self,
        claimed: ClaimedDispatch,
        status_code: int | None,
        error: str | None,
        succeeded: bool,
        duration_ms: int | None,
        *,
        final: bool,
    ) -> None:
        attempts = claimed.attempt
        if succeeded:
            state, next_at = "delivered", None
        elif final:
            state, next_at = "canceled", None
        elif attempts >= self.settings.webhook_max_attempts:
            state, next_at = "failed", None
        else:
            state, next_at = (
                "pending",
                datetime.now(UTC) + timedelta(seconds=self.backoff(attempts)),
            )
        WEBHOOK_ATTEMPTS.labels("delivered" if succeeded else "failed").inc()
        async with self.sessionmaker() as session:
            if not final:
                await repository.record_attempt(
                    session,
                    claimed,
                    status_code=status_code,
                    error=error,
                    succeeded=succeeded,
                    duration_ms=duration_ms,
                )
            await repository.settle(
                session,
                claimed.id,
                attempts=attempts,
                state=state,
                next_attempt_at=next_at,
                error=error,
            )
            await session.commit()
        if not succeeded:
            log.info(
                "webhook_attempt_failed",
                dispatch_id=str(claimed.id),
                attempt=attempts,
                state=state,
                error=error,
            )

    def backoff(self, attempts: int) -> float:
        """Seconds before the next attempt after ``attempts`` failures (±10 % jitter)."""
        base = self.settings.webhook_retry_base_s * float(2 ** (attempts - 1))
        delay: float = min(self.settings.webhook_retry_max_s, base)
        return delay * random.uniform(0.9, 1.1)


def _ms_since(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)

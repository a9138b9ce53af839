"""Webhook signatures: ``X-TradeBot-Signature: sha256=<hex HMAC-SHA256 of the raw body>``.

The body carries the attempt's ``timestamp`` (also sent as ``X-TradeBot-Timestamp``), so the
signature covers it and a receiver can refuse stale replays; ``X-TradeBot-Delivery`` (also in
the body as ``delivery_id``) is the same on every attempt of one delivery, for de-duplication.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

SIGNATURE_HEADER = "X-TradeBot-Signature"
TIMESTAMP_HEADER = "X-TradeBot-Timestamp"
DELIVERY_HEADER = "X-TradeBot-Delivery"
EVENT_HEADER = "X-TradeBot-Event"


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def sign(secret: str, body: bytes) -> str:
    """The signature header value for ``body``."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(secret: str, body: bytes, header: str) -> bool:
    """What a receiver does: constant-time comparison of the expected signature."""
    return hmac.compare_digest(sign(secret, body), header)

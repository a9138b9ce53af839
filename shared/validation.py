"""Constrained types for everything a client sends: text, numbers, times, free-form JSON.

Every service's request schemas and query parameters are built from these, so the bounds
are stated once and appear in each OpenAPI schema (docs/api.md, "Input"). They exist
because unchecked input used to fail deep inside a repository as a 500: PostgreSQL refuses
NUL in ``text`` and ``jsonb``, ``bigint`` ends at 2**63 - 1, and no timestamp lies beyond
the year 9999. Refusals are 422 problems with ``errors: [{loc, msg, type}]``;
:func:`invalid_input` builds the same shape for checks a schema cannot express.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, Field, StringConstraints

from shared.errors import ValidationFailed

__all__ = [
    "EPOCH_MS_MAX",
    "EPOCH_MS_MIN",
    "INT64_MAX",
    "JSON_MAX_BYTES",
    "SINGLE_LINE",
    "Amount",
    "ExchangeId",
    "Fraction",
    "JsonObject",
    "Label",
    "Name",
    "Price",
    "Quantity",
    "Secret",
    "TimestampMs",
    "Url",
    "UtcDatetime",
    "invalid_input",
]

# No control character at all (C0, DEL, C1): names, labels, ids, query values.
SINGLE_LINE = r"^[^\x00-\x1f\x7f-\x9f]*$"

INT64_MAX = 2**63 - 1
# Times a client may name: 2000-01-01 up to (not including) 2100-01-01 UTC.
EPOCH_MS_MIN = 946_684_800_000
EPOCH_MS_MAX = 4_102_444_800_000
_TIME_MIN = datetime.fromtimestamp(EPOCH_MS_MIN / 1000, UTC)
_TIME_MAX = datetime.fromtimestamp(EPOCH_MS_MAX / 1000, UTC)

Name = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=SINGLE_LINE)]
Label = Annotated[
    str, StringConstraints(min_length=1, max_length=100, strip_whitespace=True, pattern=SINGLE_LINE)
]
Secret = Annotated[str, StringConstraints(min_length=16, max_length=200, pattern=SINGLE_LINE)]
# The scheme and address are checked where a URL is used (the webhook SSRF guard).
Url = Annotated[
    str,
    StringConstraints(
        min_length=8, max_length=2000, strip_whitespace=True, pattern=r"^[^\x00-\x20\x7f-\x9f]+$"
    ),
]
ExchangeId = Annotated[str, StringConstraints(min_length=2, max_length=50, pattern=r"^[a-z0-9_]+$")]

# Money as PostgreSQL's numeric(20, 8) holds it: at most 12 digits before the point.
Quantity = Annotated[Decimal, Field(gt=0, max_digits=20, decimal_places=8)]
Price = Annotated[Decimal, Field(gt=0, max_digits=20, decimal_places=8)]
Amount = Annotated[Decimal, Field(gt=0, max_digits=20, decimal_places=8)]
Fraction = Annotated[Decimal, Field(gt=0, lt=1, max_digits=10, decimal_places=8)]

TimestampMs = Annotated[
    int, Field(ge=EPOCH_MS_MIN, lt=EPOCH_MS_MAX, description="Epoch milliseconds (UTC), 2000-2099.")
]


def _utc_in_range(value: datetime) -> datetime:
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if not _TIME_MIN <= value < _TIME_MAX:
        raise ValueError("must lie between 2000-01-01 and 2100-01-01 UTC")
    return value


# An ISO-8601 time (UTC when it names no offset), 2000-2099.
UtcDatetime = Annotated[datetime, AfterValidator(_utc_in_range)]

JSON_MAX_BYTES = 16_384
JSON_MAX_DEPTH = 8


def _json_size(value: Any, depth: int) -> int:
    """The rough encoded size of ``value``; raises for what PostgreSQL's jsonb refuses."""
    if depth > JSON_MAX_DEPTH:
        raise ValueError(f"nests deeper than {JSON_MAX_DEPTH} levels")
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return len(value) + 2
    if isinstance(value, bool) or value is None:
        return 5
    if isinstance(value, int):
        if not -INT64_MAX <= value <= INT64_MAX:
            raise ValueError("integers must fit in 64 bits")
        return 20
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("numbers must be finite")
        return 24
    if isinstance(value, dict):
        return 2 + sum(_json_size(k, depth) + _json_size(v, depth + 1) for k, v in value.items())
    if isinstance(value, list):
        return 2 + sum(_json_size(v, depth + 1) for v in value)
    return len(str(value))


def _bounded_json(value: dict[str, Any]) -> dict[str, Any]:
    if _json_size(value, 0) > JSON_MAX_BYTES:
        raise ValueError(f"must be at most {JSON_MAX_BYTES} bytes of JSON")
    return value


# A free-form JSON object stored as jsonb: no NUL, finite numbers, at most 16 KiB, 8 levels.
JsonObject = Annotated[dict[str, Any], AfterValidator(_bounded_json)]


def invalid_input(
    loc: Sequence[str | int], message: str, kind: str = "value_error"
) -> ValidationFailed:
    """A 422 in the shape FastAPI's validation errors take (``errors: [{loc, msg, type}]``),
    for checks a schema cannot state (a symbol list, a time in the future)."""
    return ValidationFailed(
        message, extra={"errors": [{"loc": list(loc), "msg": message, "type": kind}]}
    )

"""JSON responses serialised by pydantic-core in one pass, for the busiest read routes.

A route that returns models lets FastAPI validate them again against its response model
before it dumps them: for a page of fifty rows that second pass costs as much as the
first. These routes validate their rows once (``TypeAdapter.validate_python`` with
``from_attributes``, straight from the database rows) and return the dumped bytes; their
``response_model`` stays on the decorator for the OpenAPI document, and the bytes are the
same as FastAPI's own (the same serialiser, no aliases in these models).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi.responses import Response
from pydantic import BaseModel, TypeAdapter

from shared.paging import PageParams


def json_response(adapter: TypeAdapter[Any], value: Any, *, status_code: int = 200) -> Response:
    """``value`` (already of the adapter's type) as a JSON response."""
    return Response(
        adapter.dump_json(value), status_code=status_code, media_type="application/json"
    )


def model_response(model: BaseModel, *, status_code: int = 200) -> Response:
    """A model as a JSON response, without validating it a second time."""
    body = model.__pydantic_serializer__.to_json(model)
    return Response(body, status_code=status_code, media_type="application/json")


def page_response(
    adapter: TypeAdapter[Any], rows: Sequence[Any], total: int, page: PageParams
) -> Response:
    """A page of rows (ORM objects or plain rows) in the paging envelope, validated once
    against ``adapter`` (a ``TypeAdapter(Page[ItemRead])``) and dumped."""
    envelope = {"items": rows, "total": total, "limit": page.limit, "offset": page.offset}
    return json_response(adapter, adapter.validate_python(envelope, from_attributes=True))

"""The one paging envelope of every list route: ``{items, total, limit, offset}``.

A route takes its page as a dependency (``page: Annotated[PageParams, paging(50, 200)]``)
and answers ``Page[ItemRead]`` (docs/api.md, "Paging"). ``offset`` is bounded so that it
always fits PostgreSQL's ``bigint`` (an unbounded one was a 500).
"""

# No ``from __future__ import annotations``: FastAPI reads the dependency's signature, whose
# bounds (``maximum``, ``default``) are locals of :func:`paging`.
from collections.abc import Sequence
from typing import Annotated, Any, Generic, NamedTuple, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel
from sqlalchemy import Row, Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

__all__ = ["MAX_OFFSET", "Page", "PageParams", "fetch_page", "fetch_row_page", "page_of", "paging"]

MAX_OFFSET = 1_000_000_000

T = TypeVar("T")
M = TypeVar("M")


class PageParams(NamedTuple):
    limit: int
    offset: int


class Page(BaseModel, Generic[T]):
    """One page of a list, newest first unless the route says otherwise."""

    items: list[T]
    total: int
    limit: int
    offset: int


def paging(default: int, maximum: int) -> Any:
    """A dependency reading ``limit`` (1..maximum, ``default``) and ``offset`` (0..1e9)."""

    async def page_params(
        limit: Annotated[int, Query(ge=1, le=maximum, description="Items per page.")] = default,
        offset: Annotated[
            int, Query(ge=0, le=MAX_OFFSET, description="Items to skip (newest first).")
        ] = 0,
    ) -> PageParams:
        return PageParams(limit, offset)

    return Depends(page_params)


async def fetch_page(
    session: AsyncSession, query: Select[M], page: PageParams
) -> tuple[list[M], int]:
    """One page of an ordered query's rows, and how many rows the whole query has."""
    total = await _count(session, query)
    rows = await session.scalars(query.limit(page.limit).offset(page.offset))
    return list(rows), total


async def fetch_row_page(
    session: AsyncSession, query: Select[Any], page: PageParams
) -> tuple[Sequence[Row[Any]], int]:
    """The same for a query of columns (``select(*Model.__table__.columns)``): plain rows,
    for a page that is only serialised (no ORM objects built and tracked)."""
    total = await _count(session, query)
    result = await session.execute(query.limit(page.limit).offset(page.offset))
    return result.all(), total


async def _count(session: AsyncSession, query: Select[Any]) -> int:
    total = await session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    return int(total or 0)


def page_of(items: Sequence[T], page: PageParams) -> dict[str, Any]:
    """A page of a list held in memory (a catalog), in the envelope's shape."""
    return {
        "items": list(items[page.offset : page.offset + page.limit]),
        "total": len(items),
        "limit": page.limit,
        "offset": page.offset,
    }

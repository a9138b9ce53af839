"""/user/me/exchange-keys: add, list (masked) and delete the caller's exchange keys."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Response, status

from shared.deps import CurrentUser, SessionDep
from shared.paging import Page, PageParams, paging
from shared.strict_query import StrictQueryRoute
from user_service.deps import KeyVaultDep
from user_service.exchange_keys.schemas import ExchangeKeyCreate, ExchangeKeyRead
from user_service.exchange_keys.service import ExchangeKeyService

router = APIRouter(
    route_class=StrictQueryRoute, prefix="/user/me/exchange-keys", tags=["exchange keys"]
)


async def get_exchange_key_service(session: SessionDep, vault: KeyVaultDep) -> ExchangeKeyService:
    return ExchangeKeyService(session, vault)


ExchangeKeys = Annotated[ExchangeKeyService, Depends(get_exchange_key_service)]


@router.post("", status_code=status.HTTP_201_CREATED)
async def add_key(
    body: ExchangeKeyCreate, principal: CurrentUser, keys: ExchangeKeys
) -> ExchangeKeyRead:
    """Store an exchange API key (encrypted); the answer shows only its last 4 characters."""
    return ExchangeKeyRead.model_validate(await keys.add(principal.user_id, body))


@router.get("")
async def list_keys(
    principal: CurrentUser, keys: ExchangeKeys, page: Annotated[PageParams, paging(50, 200)]
) -> Page[ExchangeKeyRead]:
    """The caller's exchange keys, masked."""
    rows, total = await keys.page(principal.user_id, page)
    items = [ExchangeKeyRead.model_validate(k) for k in rows]
    return Page(items=items, total=total, limit=page.limit, offset=page.offset)


@router.delete("/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_key(key_id: uuid.UUID, principal: CurrentUser, keys: ExchangeKeys) -> Response:
    """Delete one of the caller's keys (another user's id is a 404)."""
    await keys.delete(principal.user_id, key_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)

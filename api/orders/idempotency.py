"""Idempotency-Key: what "same request" means and the stored answers."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.orders.errors import IdempotencyKeyReused
from api.orders.models import IdempotencyKey


def request_hash(payload: dict[str, Any]) -> str:
    """SHA-256 of a canonical JSON body (what "same body" means for Idempotency-Key)."""
    return hashlib.sha256(
        json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode()
    ).hexdigest()


async def stored_response(
    session: AsyncSession, user_id: int, scope: str, key: str, body_hash: str
) -> tuple[int, dict[str, Any]] | None:
    """The answer stored for ``key`` (same body), None if new; IdempotencyKeyReused if not same."""
    row = await session.scalar(
        select(IdempotencyKey).where(
            IdempotencyKey.user_id == user_id,
            IdempotencyKey.scope == scope,
            IdempotencyKey.key == key,
        )
    )
    if row is None:
        return None
    if row.request_hash != body_hash:
        raise IdempotencyKeyReused()
    return row.status_code, row.response


def store_response(
    session: AsyncSession,
    user_id: int,
    scope: str,
    key: str,
    body_hash: str,
    status_code: int,
    response: dict[str, Any],
    now: datetime,
) -> None:
    """Add the answer for ``key`` to the current transaction (unique per user/scope/key)."""
    session.add(
        IdempotencyKey(
            user_id=user_id,
            scope=scope,
            key=key,
            request_hash=body_hash,
            status_code=status_code,
            response=response,
            created_at=now,
        )
    )

"""Order dependencies: the order visible to the caller, idempotency key, booking lock."""

from __future__ import annotations

from typing import Annotated

import anyio
from fastapi import Depends, Header, Request

from api.deps import CurrentUser, IdPath, SessionDep
from api.orders import service
from api.orders.models import Order


async def visible_order(order_id: IdPath, user: CurrentUser, session: SessionDep) -> Order:
    """The order from the path if the caller may see it; 404 otherwise."""
    return await service.visible_order(session, user, order_id)


VisibleOrder = Annotated[Order, Depends(visible_order)]

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=128,
        description="retries with the same key and body get the same answer",
    ),
]


def get_booking_lock(request: Request) -> anyio.Lock | None:
    """On SQLite, one in-process lock serialising booking check+insert (None on PostgreSQL)."""
    lock: anyio.Lock | None = request.app.state.booking_lock
    return lock


BookingLock = Annotated[anyio.Lock | None, Depends(get_booking_lock)]

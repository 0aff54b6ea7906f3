"""Order dependencies: the order visible to the caller, idempotency key, booking env."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth.dependencies import CurrentUser
from api.core.deps import IdPath, SessionDep
from api.orders import service
from api.orders.models import Order
from api.orders.service import BookingEnv


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


async def get_booking_env(request: Request) -> BookingEnv:
    """The process's area lookup, worker rosters, travel model and order store."""
    env: BookingEnv = request.app.state.booking
    return env


BookingEnvDep = Annotated[BookingEnv, Depends(get_booking_env)]


async def booking_session(env: BookingEnvDep, session: SessionDep) -> AsyncIterator[AsyncSession]:
    """The session a booking runs in, as the database's order store says."""
    async with env.store.booking_session(session) as booking:
        yield booking


BookingSession = Annotated[AsyncSession, Depends(booking_session)]

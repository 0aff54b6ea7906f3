"""Dependencies of the worker flow: the live layer, the clock, the caller's worker profile."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import select

from api.auth.models import User
from api.auth.service import InvalidToken
from api.db import utcnow
from api.deps import AccessClaims, CurrentUser, SessionDep
from api.dispatch import service
from api.enterprise.models import Worker
from api.live import LiveBackends


async def get_live(request: Request) -> LiveBackends:
    """The app's live layer (broker, LiveState, leases), made in the lifespan."""
    live: LiveBackends = request.app.state.live
    return live


LiveDep = Annotated[LiveBackends, Depends(get_live)]


async def get_now(request: Request) -> datetime:
    """Now (UTC); tests set ``app.state.dispatch_clock`` to drive time."""
    clock: Callable[[], datetime] = getattr(request.app.state, "dispatch_clock", utcnow)
    return clock()


NowDep = Annotated[datetime, Depends(get_now)]


async def current_worker(session: SessionDep, user: CurrentUser) -> Worker:
    """The caller's active worker profile (403 ``not_a_worker`` otherwise)."""
    return await service.worker_of(session, user)


WorkerDep = Annotated[Worker, Depends(current_worker)]


async def pinging_worker(session: SessionDep, claims: AccessClaims) -> Worker:
    """``current_worker`` in one query, for the ping endpoint (the busiest one).

    The token is verified without reading the user (``AccessClaims``); the user's
    activity is checked in the same query that loads the worker: 401 for a missing or
    inactive user, 403 ``not_a_worker`` as ``current_worker``.
    """
    row = (
        await session.execute(
            select(User.is_active, Worker)
            .outerjoin(Worker, Worker.user_id == User.id)
            .where(User.id == int(claims["uid"]))
        )
    ).first()
    if row is None or not row[0]:
        raise InvalidToken()
    worker = row[1]
    if worker is None or not worker.is_active:
        raise service.NotAWorker()
    return worker


PingingWorkerDep = Annotated[Worker, Depends(pinging_worker)]
__all__ = [
    "CurrentUser",
    "LiveDep",
    "NowDep",
    "PingingWorkerDep",
    "SessionDep",
    "User",
    "WorkerDep",
]

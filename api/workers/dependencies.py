"""Dependencies of the worker flow: the caller's worker profile, the pinging worker, and
``WorkerCallDep`` (what an offer or order action of the worker needs, in one dependency).

The live layer and the clock (``LiveDep``, ``NowDep``) are ``api.core.deps``'.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.auth.dependencies import AccessClaims, CurrentUser
from api.auth.models import User
from api.auth.service import InvalidToken
from api.core.deps import LiveDep, NowDep, SessionDep, SettingsDep
from api.core.live import LiveBackends
from api.core.settings import Settings
from api.tenants.models import Worker
from api.tracking import trips
from api.tracking.service import TrackWriter
from api.tracking.trips import PingContext, TripCache
from api.workers import service


async def current_worker(session: SessionDep, user: CurrentUser) -> Worker:
    """The caller's active worker profile (403 ``not_a_worker`` otherwise)."""
    return await service.worker_of(session, user)


WorkerDep = Annotated[Worker, Depends(current_worker)]


@dataclass(frozen=True, slots=True)
class WorkerCall:
    """The calling worker and what its offer and order actions run with: the worker's user,
    the request's session, the live layer, the settings and now (UTC)."""

    worker: Worker
    user: User
    session: AsyncSession
    live: LiveBackends
    settings: Settings
    now: datetime


async def worker_call(
    worker: WorkerDep,
    user: CurrentUser,
    session: SessionDep,
    live: LiveDep,
    settings: SettingsDep,
    now: NowDep,
) -> WorkerCall:
    """``WorkerCall`` of the request (403 ``not_a_worker`` as ``current_worker``)."""
    return WorkerCall(worker, user, session, live, settings, now)


WorkerCallDep = Annotated[WorkerCall, Depends(worker_call)]


async def ping_context(state: Any, uid: int) -> PingContext:
    """The pinging worker and the orders it travels to: cached per process, else one query.

    ``state`` is the app's state (trip cache, sessionmaker, track writer). A cache miss
    checks the user's and the worker's activity in the same query that loads the trips
    (api.tracking.trips): ``InvalidToken`` (401) for a missing or inactive user,
    ``NotAWorker`` (403) as ``current_worker``.
    """
    cache: TripCache = state.trips
    ctx = cache.get(uid)
    if ctx is not None:
        return ctx
    ticket = cache.ticket()
    maker: async_sessionmaker[AsyncSession] = state.sessionmaker
    async with maker() as session:
        loaded = await trips.load(session, uid)
    if not loaded.user_active:
        raise InvalidToken()
    if loaded.ctx is None:
        raise service.NotAWorker()
    ctx = loaded.ctx
    writer: TrackWriter | None = getattr(state, "track_writer", None)
    if writer is not None:
        # Rows still queued for the database are newer than what the query read.
        for order_id in ctx.eta:
            queued = writer.pending(order_id)
            if queued is not None:
                ctx.eta[order_id] = queued["eta_state"]
    cache.store(ctx, ticket)
    return ctx


async def pinging_worker(request: Request, claims: AccessClaims) -> PingContext:
    """``ping_context`` of the caller, whose token is verified without reading the user."""
    return await ping_context(request.app.state, int(claims["uid"]))


PingingWorkerDep = Annotated[PingContext, Depends(pinging_worker)]
__all__ = [
    "CurrentUser",
    "PingingWorkerDep",
    "SessionDep",
    "User",
    "WorkerCall",
    "WorkerCallDep",
    "WorkerDep",
]

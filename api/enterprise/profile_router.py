"""Worker profiles over HTTP: staff under ``/v1/enterprises/{id}/workers``, the worker
under ``/v1/worker/profile``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from api.auth.dependencies import ManagerUser
from api.core.deps import IdPath, JsonBody, NowDep, SessionDep
from api.core.errors import error_responses
from api.core.geo_edge import CoordType
from api.enterprise import profiles
from api.enterprise.profile_schemas import (
    DecisionIn,
    OwnProfileOut,
    ProfileIn,
    ProfileOut,
    ProfilePatch,
    ScheduleIn,
    ScheduleRequestOut,
)
from api.workers.dependencies import WorkerDep

ERRORS = error_responses(400, 401, 403, 404, 409, 413, 415, 422)
router = APIRouter(tags=["worker profiles"], dependencies=[JsonBody], responses=ERRORS)

STAFF = "/v1/enterprises/{enterprise_id:int}/workers"
OWN = "/v1/worker/profile"
OutCoord = Annotated[
    CoordType, Query(description="coordinate system of the returned home (gcj02 for maps)")
]
StatusQuery = Annotated[
    profiles.RequestStatus | None, Query(description="only requests in this state (any if absent)")
]


@router.get(STAFF, summary="Worker profiles of an enterprise")
async def list_profiles(
    enterprise_id: IdPath,
    actor: ManagerUser,
    session: SessionDep,
    coord_type: OutCoord = CoordType.WGS84,
) -> list[ProfileOut]:
    """Every worker profile of the enterprise, active or not."""
    rows = await profiles.list_profiles(session, actor, enterprise_id)
    return [ProfileOut.of(w, coord_type) for w in rows]


@router.post(STAFF, status_code=status.HTTP_201_CREATED, summary="Create a worker's profile")
async def create_profile(
    enterprise_id: IdPath,
    body: ProfileIn,
    actor: ManagerUser,
    session: SessionDep,
    coord_type: OutCoord = CoordType.WGS84,
) -> ProfileOut:
    """Give a worker account (added through the members API) its dispatch profile."""
    worker = await profiles.create_profile(
        session, actor, enterprise_id, body.user_id, body.change()
    )
    return ProfileOut.of(worker, coord_type)


@router.get(STAFF + "/schedule-requests", summary="Schedule change requests of an enterprise")
async def list_requests(
    enterprise_id: IdPath,
    actor: ManagerUser,
    session: SessionDep,
    status: StatusQuery = profiles.RequestStatus.PENDING,
) -> list[ScheduleRequestOut]:
    """Pending requests by default, oldest first."""
    rows = await profiles.enterprise_requests(session, actor, enterprise_id, status)
    return [ScheduleRequestOut.of(r) for r in rows]


@router.post(
    STAFF + "/schedule-requests/{request_id:int}/{decision}",
    summary="Approve (it becomes the worker's schedule) or reject a schedule change",
)
async def decide_request(
    enterprise_id: IdPath,
    request_id: IdPath,
    decision: profiles.Decision,
    body: DecisionIn,
    actor: ManagerUser,
    session: SessionDep,
    now: NowDep,
) -> ScheduleRequestOut:
    """``approve``: the proposed shifts and breaks replace the worker's; ``reject``: they stay."""
    request = await profiles.decide_request(
        session,
        actor,
        enterprise_id,
        request_id,
        approve=decision is profiles.Decision.APPROVE,
        note=body.note,
        now=now,
    )
    return ScheduleRequestOut.of(request)


@router.get(STAFF + "/{worker_id:int}", summary="One worker's profile")
async def get_profile(
    enterprise_id: IdPath,
    worker_id: IdPath,
    actor: ManagerUser,
    session: SessionDep,
    coord_type: OutCoord = CoordType.WGS84,
) -> ProfileOut:
    """The profile of a worker of the enterprise."""
    worker = await profiles.enterprise_worker(session, actor, enterprise_id, worker_id)
    return ProfileOut.of(worker, coord_type)


@router.patch(STAFF + "/{worker_id:int}", summary="Edit a worker's profile")
async def update_profile(
    enterprise_id: IdPath,
    worker_id: IdPath,
    body: ProfilePatch,
    actor: ManagerUser,
    session: SessionDep,
    coord_type: OutCoord = CoordType.WGS84,
) -> ProfileOut:
    """Change the given fields; nothing changes when one of them is invalid."""
    worker = await profiles.update_profile(session, actor, enterprise_id, worker_id, body.change())
    return ProfileOut.of(worker, coord_type)


@router.get(OWN, summary="My profile and schedule")
async def own_profile(
    worker: WorkerDep, session: SessionDep, coord_type: OutCoord = CoordType.WGS84
) -> OwnProfileOut:
    """My skills, weekly shifts and breaks, home base, and my pending schedule change."""
    pending = await profiles.pending_request(session, worker)
    base = ProfileOut.of(worker, coord_type)
    return OwnProfileOut(
        **base.model_dump(),
        pending_request=None if pending is None else ScheduleRequestOut.of(pending),
    )


@router.get(OWN + "/schedule-requests", summary="My schedule change requests")
async def own_requests(worker: WorkerDep, session: SessionDep) -> list[ScheduleRequestOut]:
    """Newest first."""
    return [ScheduleRequestOut.of(r) for r in await profiles.worker_requests(session, worker)]


@router.post(
    OWN + "/schedule-requests",
    status_code=status.HTTP_201_CREATED,
    summary="Ask staff to change my schedule",
)
async def request_schedule(
    body: ScheduleIn, worker: WorkerDep, session: SessionDep
) -> ScheduleRequestOut:
    """Propose new weekly shifts and breaks; a newer proposal replaces a pending one."""
    request = await profiles.request_schedule(
        session,
        worker,
        [s.slot() for s in body.shifts],
        [b.slot() for b in body.breaks],
        body.note,
    )
    return ScheduleRequestOut.of(request)

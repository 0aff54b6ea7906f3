"""Day plans over HTTP: teams, a team's plan for a day, re-plan, pin, disruption repair; the
worker's own planned day (``GET /v1/worker/day``)."""

from __future__ import annotations

from datetime import date
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, status

from api.core.deps import IdPath, JsonBody, NowDep, SessionDep, SettingsDep
from api.core.errors import error_responses
from api.core.geo_edge import CoordType
from api.plans import service
from api.plans import teams as team_service
from api.plans.dependencies import PlannerUser, PlanningDep
from api.plans.schemas import DisruptionIn, PinIn, PlanIn, PlannedDayOut, PlanOut, TeamIn, TeamOut
from api.workers.dependencies import WorkerDep
from api.workers.views import brief

ERRORS = error_responses(400, 401, 403, 404, 409, 413, 415, 422)
router = APIRouter(
    prefix="/v1/enterprise", tags=["day plans"], dependencies=[JsonBody], responses=ERRORS
)
#: The worker's side: documented like the rest of the worker flow (api.workers.router).
worker_router = APIRouter(
    prefix="/v1/worker",
    tags=["worker"],
    dependencies=[JsonBody],
    responses=error_responses(400, 401, 403, 404, 409, 410, 413, 415, 422, 429),
)
CoordQuery = Annotated[CoordType, Query(description="coordinates of the answer")]
OptId = Annotated[int | None, Query(ge=1, le=2**53 - 1)]


def _req(body: PlanIn) -> service.PlanRequest:
    return service.PlanRequest(body.day, body.team_id, body.enterprise_id, body.stop_s, body.seed)


@router.post("/teams", summary="Create a team", status_code=status.HTTP_201_CREATED)
async def create_team(body: TeamIn, user: PlannerUser, session: SessionDep, now: NowDep) -> TeamOut:
    team = await team_service.save_team(
        session, user, body.name, body.worker_ids, enterprise_id=body.enterprise_id, now=now
    )
    return TeamOut.of(team)


@router.get("/teams", summary="Teams of my enterprise")
async def teams(
    user: PlannerUser, session: SessionDep, enterprise_id: OptId = None
) -> list[TeamOut]:
    return [TeamOut.of(t) for t in await team_service.list_teams(session, user, enterprise_id)]


@router.get("/teams/{team_id}", summary="One team")
async def team(team_id: IdPath, user: PlannerUser, session: SessionDep) -> TeamOut:
    return TeamOut.of(await team_service.get_team(session, user, team_id))


@router.put("/teams/{team_id}", summary="Rename a team and replace its workers")
async def update_team(
    team_id: IdPath, body: TeamIn, user: PlannerUser, session: SessionDep, now: NowDep
) -> TeamOut:
    team = await team_service.save_team(
        session, user, body.name, body.worker_ids, team_id=team_id, now=now
    )
    return TeamOut.of(team)


@router.delete("/teams/{team_id}", summary="Delete a team", status_code=status.HTTP_204_NO_CONTENT)
async def delete_team(team_id: IdPath, user: PlannerUser, session: SessionDep) -> None:
    await team_service.delete_team(session, user, team_id)


@router.get("/plans", summary="A team's newest plan for a day")
async def plan(
    user: PlannerUser,
    session: SessionDep,
    day: date,
    team_id: OptId = None,
    enterprise_id: OptId = None,
    coord_type: CoordQuery = CoordType.GCJ02,
) -> PlanOut:
    """No ``team_id``: the default team of every worker of the enterprise."""
    _, record = await service.get_plan(
        session, user, service.PlanRequest(day, team_id, enterprise_id)
    )
    return PlanOut.of(record, coord_type)


@router.post("/plans", summary="Re-plan a team's day", status_code=status.HTTP_201_CREATED)
async def replan(
    body: PlanIn, ctx: PlanningDep, coord_type: CoordQuery = CoordType.GCJ02
) -> PlanOut:
    """``plan_day`` over the day's bookings (accepted and started visits pinned); the
    plan's worker choices are written and it is stored as the next version."""
    _, record = await service.replan(
        ctx.session, ctx.user, _req(body), tz=ctx.tz, horizon_days=ctx.horizon_days, now=ctx.now
    )
    return PlanOut.of(record, coord_type)


@router.post("/plans/pins", summary="Pin a visit to a worker and/or time, then re-plan",
             status_code=status.HTTP_201_CREATED)  # fmt: skip
async def pin(body: PinIn, ctx: PlanningDep, coord_type: CoordQuery = CoordType.GCJ02) -> PlanOut:
    _, record = await service.replan(
        ctx.session, ctx.user, _req(body), tz=ctx.tz, horizon_days=ctx.horizon_days, now=ctx.now,
        pin=(body.order_id, body.worker_id, body.start),
    )  # fmt: skip
    return PlanOut.of(record, coord_type)


@router.post("/plans/disruptions", summary="Repair the plan after a sick call, a late job or a "
             "cancellation", status_code=status.HTTP_201_CREATED)  # fmt: skip
async def disruption(
    body: DisruptionIn, ctx: PlanningDep, coord_type: CoordQuery = CoordType.GCJ02
) -> PlanOut:
    """``dispatch.repair`` with the least disruption; ``changes`` lists what moved and why."""
    event = service.Disruption(body.kind, body.worker_id, body.order_id, body.at, body.extra_s)
    _, record = await service.repair_day(
        ctx.session, ctx.user, _req(body), event, tz=ctx.tz,
        horizon_days=ctx.horizon_days, now=ctx.now,
    )  # fmt: skip
    return PlanOut.of(record, coord_type)


@worker_router.get("/day", summary="My day")
async def day(
    worker: WorkerDep,
    session: SessionDep,
    settings: SettingsDep,
    now: NowDep,
    on: Annotated[date | None, Query(description="local date; today by default")] = None,
) -> PlannedDayOut:
    """My jobs of one local day: the planned route when staff planned the day, else by slot."""
    the_day = on or now.astimezone(ZoneInfo(settings.service_timezone)).date()
    orders, stops = await service.worker_day(session, worker, the_day, settings)
    return PlannedDayOut(
        day=the_day,
        orders=[brief(o) for o in orders],
        planned=stops is not None,
        route=PlannedDayOut.stops(stops or []),
    )

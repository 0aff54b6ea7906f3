"""Day plans for a team: load the day's booked visits and workers, call the core, persist.

``dispatch.schedule.plan_day`` and ``dispatch.repair.repair`` decide every route; this
module only turns rows into the core's ``Visit``/``WorkerDay``, runs the solver off the
event loop, stores each result as a new ``day_plans`` version and writes the assignments
it decided through ``orders.assign_worker`` (``dispatch.service.commit_worker`` for a
visit a worker takes for the first time). No FastAPI here.

How order states map onto the core's visit states (which visits are pinned):
an unpaid hold or an open offer stays with the worker holding it (CONFIRMED); a paid
booking awaiting dispatch is free (PLANNED); an accepted visit is CONFIRMED to its
worker; a worker on the way, at the door or in service is STARTED; a completed visit is
DONE. Staff pins (worker and/or start inside the booked window) ride along in the plan
JSON and apply to every later version of that day's plan. Times are UTC, durations s.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import anyio
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth.models import User
from api.catalog.models import Service
from api.dispatch.service import commit_worker
from api.enterprise.models import Enterprise, Worker
from api.enterprise.service import NoEnterprise, _scope
from api.errors import Conflict, InvalidInput, NotFound
from api.orders.models import Order, OrderEvent
from api.orders.roster import Roster
from api.orders.service import WorkerBusy, assign_worker, lock_order
from api.orders.state import DispatchStatus, OrderEventType, OrderStatus
from api.plans.models import DayPlanRecord, Team, TeamMember
from dispatch.errors import DispatchError
from dispatch.errors import InvalidInput as CoreInvalid
from dispatch.repair import RepairResult, VisitCancelled, VisitOverran, WorkerAbsent, repair
from dispatch.schedule import (
    Break,
    DayPlan,
    DroppedVisit,
    Route,
    ScheduledVisit,
    Stop,
    Visit,
    VisitOutsideShifts,
    VisitStatus,
    WorkerDay,
    plan_day,
)
from geo.travel import HaversineTravelModel

#: Solver time limits (seconds): the default and the most a request may ask for.
DEFAULT_STOP_S = 2.0
MAX_STOP_S = 10.0

# ------------------------------------------------------------------ errors


class TeamNotFound(NotFound):
    """No such team in the caller's enterprise."""

    code = "team_not_found"
    message = "No such team in your enterprise."


class TeamNameTaken(Conflict):
    """Another team of the enterprise has this name."""

    code = "team_name_taken"
    message = "Your enterprise already has a team with this name."


class UnknownTeamWorker(InvalidInput):
    """A worker id that is not a worker of the team's enterprise."""

    status_code = 422
    code = "unknown_worker"
    message = "Worker {worker_id} is not a worker of your enterprise ({field})."


class EnterpriseRequired(InvalidInput):
    """An admin asked for the default team without saying whose."""

    status_code = 422
    code = "enterprise_required"
    message = "Name the enterprise (enterprise_id) or a team (team_id)."


class DayOutOfRange(InvalidInput):
    """The day is in the past or beyond the booking horizon."""

    status_code = 422
    code = "day_out_of_range"
    message = "The day (day) must be between today and {days} days ahead."


class PlanNotFound(NotFound):
    """No plan has been made for this team and day yet."""

    code = "plan_not_found"
    message = "There is no plan for this team and day yet."


class VisitNotInPlan(NotFound):
    """The order is not a visit of this team's day."""

    code = "visit_not_in_plan"
    message = "Order {order_id} is not a visit of this team's day (order_id)."


class WorkerNotInPlan(InvalidInput):
    """The worker is not in the team or has no shift that day."""

    status_code = 422
    code = "worker_not_in_plan"
    message = "Worker {worker_id} is not in this team or not working that day (worker_id)."


class PinOutsideWindow(InvalidInput):
    """A pinned start outside the visit's booked window."""

    status_code = 422
    code = "pin_outside_window"
    message = (
        "The pinned start (start) must lie within the booked window {window_start} – {window_end}."
    )


class PinEmpty(InvalidInput):
    """A pin that names neither a worker nor a start."""

    status_code = 422
    code = "pin_empty"
    message = "Pin the visit to a worker (worker_id), a start (start) or both."


class VisitFixed(Conflict):
    """The visit is under way or done: nothing about it can change."""

    code = "visit_fixed"
    message = "Order {order_id} is under way or done; it can no longer be pinned."


class BadDisruption(Conflict):
    """The disruption does not fit the plan (e.g. an overrun of a visit not started)."""

    code = "bad_disruption"
    message = "This disruption does not fit the plan: {reason}"


class PlanNotApplicable(Conflict):
    """Writing the plan's assignments hit a reservation it cannot move."""

    code = "plan_not_applicable"
    message = (
        "The plan cannot be applied: order {order_id} cannot move to worker {worker_id} "
        "(it overlaps another of their bookings)."
    )


class PlanInputInvalid(Conflict):
    """The day's bookings do not fit the team's shifts (the core refused the input)."""

    code = "plan_input_invalid"
    message = "The day cannot be planned: {reason}"


# ------------------------------------------------------------------ teams


@dataclass(frozen=True)
class TeamRef:
    """Whose day is planned: an enterprise, a team (None = every worker) and its members."""

    enterprise_id: int
    team_id: int | None
    name: str
    worker_ids: tuple[int, ...]

    @property
    def scope(self) -> str:
        """The ``day_plans.scope`` key."""
        return "all" if self.team_id is None else f"team:{self.team_id}"


async def _enterprise_of(session: AsyncSession, user: User, enterprise_id: int | None) -> int:
    scope = _scope(user)
    if scope is not None:
        if enterprise_id is not None and enterprise_id != scope:
            raise NoEnterprise()
        enterprise_id = scope
    if enterprise_id is None:
        raise EnterpriseRequired(details={"field": "enterprise_id"})
    if await session.get(Enterprise, enterprise_id) is None:
        raise NoEnterprise()
    return enterprise_id


async def _team_row(session: AsyncSession, user: User, team_id: int) -> Team:
    team = await session.get(Team, team_id)
    scope = _scope(user)
    if team is None or (scope is not None and team.enterprise_id != scope):
        raise TeamNotFound(details={"field": "team_id"})
    return team


async def _members(session: AsyncSession, team_id: int) -> tuple[int, ...]:
    rows = await session.scalars(
        select(TeamMember.worker_id).where(TeamMember.team_id == team_id).order_by("worker_id")
    )
    return tuple(int(r) for r in rows)


async def resolve_team(
    session: AsyncSession, user: User, team_id: int | None, enterprise_id: int | None
) -> TeamRef:
    """The team (or the default team of every active worker of the caller's enterprise)."""
    if team_id is not None:
        team = await _team_row(session, user, team_id)
        return TeamRef(team.enterprise_id, team.id, team.name, await _members(session, team.id))
    ent = await _enterprise_of(session, user, enterprise_id)
    rows = await session.scalars(
        select(Worker.id)
        .where(Worker.enterprise_id == ent, Worker.is_active.is_(True))
        .order_by(Worker.id)
    )
    return TeamRef(ent, None, "", tuple(int(r) for r in rows))


async def _check_workers(
    session: AsyncSession, enterprise_id: int, worker_ids: Sequence[int]
) -> None:
    known = set(
        await session.scalars(
            select(Worker.id).where(
                Worker.enterprise_id == enterprise_id, Worker.id.in_(worker_ids)
            )
        )
    )
    for wid in worker_ids:
        if wid not in known:
            raise UnknownTeamWorker(
                worker_id=wid, field="worker_ids", details={"field": "worker_ids"}
            )


async def save_team(
    session: AsyncSession,
    user: User,
    name: str,
    worker_ids: Sequence[int],
    *,
    team_id: int | None = None,
    enterprise_id: int | None = None,
    now: datetime,
) -> TeamRef:
    """Create (``team_id`` None) or replace a team's name and members; commits."""
    ids = sorted(set(worker_ids))
    if team_id is None:
        ent = await _enterprise_of(session, user, enterprise_id)
        await _check_workers(session, ent, ids)
        team = Team(enterprise_id=ent, name=name, created_at=now, updated_at=now)
        session.add(team)
    else:
        team = await _team_row(session, user, team_id)
        await _check_workers(session, team.enterprise_id, ids)
        team.name, team.updated_at = name, now
    try:
        await session.flush()
    except IntegrityError:
        await session.rollback()
        raise TeamNameTaken(details={"field": "name"}) from None
    await session.execute(delete(TeamMember).where(TeamMember.team_id == team.id))
    session.add_all([TeamMember(team_id=team.id, worker_id=w) for w in ids])
    await session.commit()
    return TeamRef(team.enterprise_id, team.id, team.name, tuple(ids))


async def list_teams(session: AsyncSession, user: User, enterprise_id: int | None) -> list[TeamRef]:
    """The enterprise's teams by name."""
    ent = await _enterprise_of(session, user, enterprise_id)
    teams = await session.scalars(select(Team).where(Team.enterprise_id == ent).order_by(Team.name))
    return [TeamRef(t.enterprise_id, t.id, t.name, await _members(session, t.id)) for t in teams]


async def get_team(session: AsyncSession, user: User, team_id: int) -> TeamRef:
    """One team of the caller's enterprise."""
    return await resolve_team(session, user, team_id, None)


async def delete_team(session: AsyncSession, user: User, team_id: int) -> None:
    """Delete a team (its plans go with it); commits."""
    team = await _team_row(session, user, team_id)
    await session.delete(team)
    await session.commit()


# ------------------------------------------------------------------ state -> core


def _day_bounds(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), tzinfo=tz)
    return start, start + timedelta(days=1)


def _ts(value: datetime) -> int:
    return int(value.replace(tzinfo=value.tzinfo or UTC).timestamp())


def check_day(day: date, now: datetime, tz: ZoneInfo, horizon_days: int) -> None:
    """Plans are made for today up to the booking horizon (422 naming ``day`` otherwise)."""
    today = now.astimezone(tz).date()
    if not today <= day <= today + timedelta(days=horizon_days):
        raise DayOutOfRange(days=horizon_days, details={"field": "day"})


def worker_day(worker: Worker, day: date, tz: ZoneInfo, skills: dict[str, int]) -> WorkerDay | None:
    """The worker's shift, breaks, home and transport mode on local ``day`` (None when off)."""
    roster = Roster.from_rows(
        [
            (worker.id, worker.skills, worker.shifts, worker.home_lat, worker.home_lng, "", 0.0,
             worker.transport_mode, worker.breaks)
        ]
    )  # fmt: skip
    window = roster.shift_window(0, day, tz)
    if window is None:
        return None
    return WorkerDay(
        id=worker.id,
        shift_start=_ts(window[0]),
        shift_end=_ts(window[1]),
        start_lat=worker.home_lat,
        start_lng=worker.home_lng,
        skills=_mask(worker.skills or [], skills),
        breaks=tuple(Break(_ts(a), _ts(b)) for a, b in roster.breaks_on(0, day, tz)),
        mode=roster.modes[0],
    )


def _mask(names: Sequence[str], bits: dict[str, int]) -> int:
    mask = 0
    for name in names:
        mask |= 1 << bits.setdefault(name, len(bits))
    return mask


#: Dispatch sub-states whose worker is committed and travelling or at the door.
_UNDER_WAY = (DispatchStatus.EN_ROUTE.value, DispatchStatus.ARRIVED.value)


def visit_of(
    order: Order,
    skills: int,
    started_at: datetime | None,
    pin: dict[str, Any] | None,
) -> Visit:
    """The core's view of one booked order (see the module doc for the state mapping)."""
    status, pinned_worker, pinned_start = VisitStatus.PLANNED, None, None
    if order.status == OrderStatus.COMPLETED.value or order.status == OrderStatus.IN_SERVICE.value:
        status = (
            VisitStatus.DONE if order.status == OrderStatus.COMPLETED.value else VisitStatus.STARTED
        )
        pinned_worker, pinned_start = order.worker_id, _ts(started_at or order.slot_start)
    elif order.dispatch_status in _UNDER_WAY:
        status, pinned_worker, pinned_start = (
            VisitStatus.STARTED,
            order.worker_id,
            _ts(order.slot_start),
        )
    elif order.dispatch_status != DispatchStatus.AWAITING_DISPATCH.value:
        # Unpaid hold, open offer, accepted: stays with the worker holding it.
        status, pinned_worker = VisitStatus.CONFIRMED, order.worker_id
    if pin and status in (VisitStatus.PLANNED, VisitStatus.CONFIRMED):
        if pin.get("worker_id") is not None:
            status, pinned_worker = VisitStatus.CONFIRMED, int(pin["worker_id"])
        if pin.get("start") is not None:
            pinned_start = int(pin["start"])
    return Visit(
        id=order.id,
        lat=order.lat,
        lng=order.lng,
        duration_s=order.duration_min * 60,
        window_start=_ts(order.slot_start),
        window_end=_ts(order.slot_end),
        skills=skills,
        status=status,
        pinned_worker=pinned_worker,
        pinned_start=pinned_start,
    )


@dataclass
class DayState:
    """A team's day as the core sees it, plus the rows it came from."""

    team: TeamRef
    day: date
    visits: list[Visit]
    workers: list[WorkerDay]
    orders: dict[int, Order]
    pins: dict[int, dict[str, Any]]


async def load_day(
    session: AsyncSession,
    team: TeamRef,
    day: date,
    tz: ZoneInfo,
    pins: dict[int, dict[str, Any]],
) -> DayState:
    """The team's active workers on shift and their booked, live orders of local ``day``."""
    workers = list(
        await session.scalars(
            select(Worker)
            .where(Worker.id.in_(team.worker_ids), Worker.is_active.is_(True))
            .order_by(Worker.id)
        )
    )
    start, end = _day_bounds(day, tz)
    rows = (
        await session.execute(
            select(Order, Service.required_skills)
            .join(Service, Service.id == Order.service_id)
            .where(
                Order.worker_id.in_([w.id for w in workers]),
                Order.slot_start >= start,
                Order.slot_start < end,
                Order.status != OrderStatus.CANCELLED.value,
            )
            .order_by(Order.slot_start, Order.id)
        )
    ).all()
    started = dict(
        (
            await session.execute(
                select(OrderEvent.order_id, func.max(OrderEvent.created_at))
                .where(
                    OrderEvent.order_id.in_([o.id for o, _ in rows]),
                    OrderEvent.event == OrderEventType.STARTED.value,
                )
                .group_by(OrderEvent.order_id)
            )
        ).all()
    )
    bits: dict[str, int] = {}
    days = [wd for w in workers if (wd := worker_day(w, day, tz, bits)) is not None]
    on_shift = {wd.id for wd in days}
    visits: list[Visit] = []
    orders: dict[int, Order] = {}
    for order, need in rows:
        v = visit_of(order, _mask(need or [], bits), started.get(order.id), pins.get(order.id))
        if v.fixed and v.pinned_worker not in on_shift:
            continue  # under way with a worker who has no shift today: nothing to plan
        visits.append(v)
        orders[order.id] = order
    return DayState(team, day, visits, days, orders, pins)


# ------------------------------------------------------------------ plan JSON


def _plain(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


def plan_to_json(
    plan: DayPlan, pins: dict[int, dict[str, Any]], changes: Sequence[Any] = ()
) -> dict[str, Any]:
    """Everything needed to show the plan and rebuild it for a repair (plain JSON)."""
    out: dict[str, Any] = _plain(
        {
            "visits": [dataclasses.asdict(v) for v in plan.visits],
            "workers": [dataclasses.asdict(w) for w in plan.workers],
            "routes": [dataclasses.asdict(r) for r in plan.routes],
            "dropped": [dataclasses.asdict(d) for d in plan.dropped],
            "total_travel_s": plan.total_travel_s,
            "total_distance": plan.total_distance,
            "total_lateness_s": plan.total_lateness_s,
            "changed_assignments": plan.changed_assignments,
            "hit_time_limit": plan.hit_time_limit,
            "objective": plan.objective,
            "engine": plan.engine,
            "runtime_s": plan.runtime_s,
            "warnings": list(plan.warnings),
            "changes": [dataclasses.asdict(c) for c in changes],
            "pins": {str(k): v for k, v in sorted(pins.items())},
        }
    )
    return out


def plan_from_json(data: dict[str, Any]) -> DayPlan:
    """The stored plan as a ``DayPlan`` (with the API's travel model) for ``repair``."""
    workers = tuple(
        WorkerDay(**{**w, "breaks": tuple(Break(**b) for b in w["breaks"])})
        for w in data["workers"]
    )
    routes = tuple(
        Route(**{**r, "stops": tuple(ScheduledVisit(**s) for s in r["stops"])})
        for r in data["routes"]
    )
    return DayPlan(
        routes=routes,
        dropped=tuple(DroppedVisit(**d) for d in data["dropped"]),
        total_travel_s=data["total_travel_s"],
        total_distance=data["total_distance"],
        total_lateness_s=data["total_lateness_s"],
        changed_assignments=data["changed_assignments"],
        hit_time_limit=data["hit_time_limit"],
        objective=data["objective"],
        engine=data["engine"],
        runtime_s=data["runtime_s"],
        visits=tuple(Visit(**v) for v in data["visits"]),
        workers=workers,
        warnings=tuple(data["warnings"]),
        travel=HaversineTravelModel(),
    )


def pins_of(data: dict[str, Any] | None) -> dict[int, dict[str, Any]]:
    """Staff pins stored with a plan, by order id."""
    return {int(k): dict(v) for k, v in ((data or {}).get("pins") or {}).items()}


# ------------------------------------------------------------------ solver calls (threads)


def _stop(stop_s: float) -> Stop:
    return Stop(seconds=min(max(stop_s, 0.05), MAX_STOP_S))


def _holders_plan(state: DayState, stop: Stop, seed: int) -> DayPlan:
    """The plan in force: each open visit with the worker holding it now (pinned there)."""
    visits = [
        v
        if v.fixed
        else dataclasses.replace(
            v,
            status=VisitStatus.CONFIRMED,
            pinned_worker=state.orders[v.id].worker_id,
            pinned_start=None,
        )
        for v in state.visits
    ]
    return plan_day(visits, state.workers, travel=HaversineTravelModel(), stop=stop, seed=seed)


def _plan_sync(state: DayState, stop_s: float, seed: int) -> DayPlan:
    """``plan_day`` with today's holders as the current plan (each move pays the change
    penalty), half the time limit for each of the two calls."""
    stop = _stop(stop_s / 2)
    current = _holders_plan(state, stop, seed)
    return plan_day(
        state.visits,
        state.workers,
        travel=HaversineTravelModel(),
        stop=stop,
        seed=seed,
        current=current,
    )


def _repair_sync(plan: DayPlan, event: Any, stop_s: float, seed: int) -> RepairResult:
    return repair(plan, event, travel=HaversineTravelModel(), stop=_stop(stop_s), seed=seed)


async def _off_loop(fn: Any, *args: Any) -> Any:
    """Run a solver call in a worker thread; the core's input errors become 409s."""
    try:
        return await anyio.to_thread.run_sync(fn, *args)
    except VisitOutsideShifts as exc:
        raise PlanInputInvalid(reason=str(exc)) from None
    except (CoreInvalid, DispatchError) as exc:
        raise BadDisruption(reason=str(exc)) from None


# ------------------------------------------------------------------ persistence and apply


async def latest_record(
    session: AsyncSession, enterprise_id: int, scope: str, day: date
) -> DayPlanRecord | None:
    """The newest stored version of a plan, or None."""
    return await session.scalar(
        select(DayPlanRecord)
        .where(
            DayPlanRecord.enterprise_id == enterprise_id,
            DayPlanRecord.scope == scope,
            DayPlanRecord.day == day,
        )
        .order_by(DayPlanRecord.version.desc())
        .limit(1)
    )


async def _apply(
    session: AsyncSession, state: DayState, plan: DayPlan, actor: User, version: int, now: datetime
) -> None:
    """Write the plan's worker choices: a free visit is taken, an accepted one reassigned.

    A move onto a worker who still holds an overlapping booking (that the plan moves away)
    waits for that move; ``assign_worker`` checks before it writes, so a refused move
    changed nothing. Moves that can never go (a swap at the same time) are a 409.
    """
    workers = {w.id: w for w in await session.scalars(select(Worker).where(Worker.id.in_(
        [r.worker_id for r in plan.routes])))}  # fmt: skip
    todo = sorted((o, w) for o, w in plan.assignment().items() if o in state.orders)
    while todo:
        waiting: list[tuple[int, int]] = []
        for order_id, worker_id in todo:
            order = await lock_order(session, order_id)
            try:
                if order.dispatch_status == DispatchStatus.AWAITING_DISPATCH.value:
                    await commit_worker(session, order, workers[worker_id], actor, now)
                elif (
                    order.dispatch_status == DispatchStatus.ACCEPTED.value
                    and order.worker_id != worker_id
                ):
                    await assign_worker(
                        session, order, worker_id, actor_id=actor.id, now=now,
                        data={"plan_version": version}, event=OrderEventType.REASSIGNED,
                    )  # fmt: skip
            except WorkerBusy:
                waiting.append((order_id, worker_id))
        if len(waiting) == len(todo):
            order_id, worker_id = waiting[0]
            raise PlanNotApplicable(order_id=order_id, worker_id=worker_id)
        todo = waiting


async def _persist(
    session: AsyncSession,
    state: DayState,
    plan: DayPlan,
    actor: User,
    reason: str,
    changes: Sequence[Any],
    now: datetime,
) -> DayPlanRecord:
    """Apply the plan's assignments and store it as the next version, in one transaction."""
    team = state.team
    previous = await latest_record(session, team.enterprise_id, team.scope, state.day)
    version = 1 if previous is None else previous.version + 1
    await _apply(session, state, plan, actor, version, now)
    record = DayPlanRecord(
        enterprise_id=team.enterprise_id,
        team_id=team.team_id,
        scope=team.scope,
        day=state.day,
        version=version,
        reason=reason,
        plan=plan_to_json(plan, state.pins, changes),
        created_at=now,
        created_by=actor.id,
    )
    session.add(record)
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        raise Conflict() from None
    return record


# ------------------------------------------------------------------ use cases


@dataclass(frozen=True)
class PlanRequest:
    """Whose day, which day, and the solver knobs (seconds, seed)."""

    day: date
    team_id: int | None = None
    enterprise_id: int | None = None
    stop_s: float = DEFAULT_STOP_S
    seed: int = 0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.stop_s) and 0 < self.stop_s <= MAX_STOP_S):
            raise InvalidInput(details={"field": "stop_s"})


async def get_plan(
    session: AsyncSession, user: User, req: PlanRequest
) -> tuple[TeamRef, DayPlanRecord]:
    """The newest plan of the team's day (PlanNotFound when none was made)."""
    team = await resolve_team(session, user, req.team_id, req.enterprise_id)
    record = await latest_record(session, team.enterprise_id, team.scope, req.day)
    if record is None:
        raise PlanNotFound()
    return team, record


async def replan(
    session: AsyncSession,
    user: User,
    req: PlanRequest,
    *,
    tz: ZoneInfo,
    horizon_days: int,
    now: datetime,
    pin: tuple[int, int | None, datetime | None] | None = None,
) -> tuple[TeamRef, DayPlanRecord]:
    """Plan the team's day anew (``plan_day``), optionally with one more pin; persist, apply."""
    check_day(req.day, now, tz, horizon_days)
    team = await resolve_team(session, user, req.team_id, req.enterprise_id)
    previous = await latest_record(session, team.enterprise_id, team.scope, req.day)
    pins = pins_of(previous.plan if previous else None)
    state = await load_day(session, team, req.day, tz, pins)
    reason = "replan"
    if pin is not None:
        _add_pin(state, *pin)
        state = await load_day(session, team, req.day, tz, state.pins)
        reason = "pin"
    plan: DayPlan = await _off_loop(_plan_sync, state, req.stop_s, req.seed)
    record = await _persist(session, state, plan, user, reason, (), now)
    return team, record


def _add_pin(state: DayState, order_id: int, worker_id: int | None, start: datetime | None) -> None:
    """Check a pin against the day (422/404 naming the field) and add it to ``state.pins``."""
    if worker_id is None and start is None:
        raise PinEmpty(details={"field": "worker_id"})
    visit = next((v for v in state.visits if v.id == order_id), None)
    if visit is None:
        raise VisitNotInPlan(order_id=order_id, details={"field": "order_id"})
    if visit.fixed:
        raise VisitFixed(order_id=order_id, details={"field": "order_id"})
    if worker_id is not None and worker_id not in {w.id for w in state.workers}:
        raise WorkerNotInPlan(worker_id=worker_id, details={"field": "worker_id"})
    pin: dict[str, Any] = {"worker_id": worker_id, "start": None}
    if start is not None:
        at = _ts(start)
        if not visit.window_start <= at <= visit.window_end:
            raise PinOutsideWindow(
                window_start=datetime.fromtimestamp(visit.window_start, UTC).isoformat(),
                window_end=datetime.fromtimestamp(visit.window_end, UTC).isoformat(),
                details={"field": "start"},
            )
        pin["start"] = at
    state.pins = {**state.pins, order_id: pin}


@dataclass(frozen=True)
class Disruption:
    """What happened: ``worker_absent`` (worker_id, at), ``visit_overran`` (order_id,
    extra_s) or ``visit_cancelled`` (order_id)."""

    kind: str
    worker_id: int | None = None
    order_id: int | None = None
    at: datetime | None = None
    extra_s: int | None = None


def _event(d: Disruption, plan: DayPlan, now: datetime) -> Any:
    if d.kind == "worker_absent":
        if d.worker_id is None or d.worker_id not in {w.id for w in plan.workers}:
            raise WorkerNotInPlan(worker_id=d.worker_id, details={"field": "worker_id"})
        return WorkerAbsent(d.worker_id, _ts(d.at or now))
    if d.order_id is None or d.order_id not in {v.id for v in plan.visits}:
        raise VisitNotInPlan(order_id=d.order_id, details={"field": "order_id"})
    if d.kind == "visit_overran":
        if d.extra_s is None or d.extra_s <= 0:
            raise InvalidInput(details={"field": "extra_s"})
        return VisitOverran(d.order_id, d.extra_s)
    return VisitCancelled(d.order_id)


async def repair_day(
    session: AsyncSession,
    user: User,
    req: PlanRequest,
    disruption: Disruption,
    *,
    tz: ZoneInfo,
    horizon_days: int,
    now: datetime,
) -> tuple[TeamRef, DayPlanRecord]:
    """Least-disruption repair (``dispatch.repair``) of the newest plan; persist, apply."""
    check_day(req.day, now, tz, horizon_days)
    team = await resolve_team(session, user, req.team_id, req.enterprise_id)
    previous = await latest_record(session, team.enterprise_id, team.scope, req.day)
    if previous is None:
        raise PlanNotFound()
    stored = plan_from_json(previous.plan)
    state = await load_day(session, team, req.day, tz, pins_of(previous.plan))
    # The plan in force, with each visit's state as it is now (started, accepted...).
    fresh = {v.id: v for v in state.visits}
    plan = dataclasses.replace(stored, visits=tuple(fresh.get(v.id, v) for v in stored.visits))
    event = _event(disruption, plan, now)
    result: RepairResult = await _off_loop(_repair_sync, plan, event, req.stop_s, req.seed)
    if isinstance(event, WorkerAbsent):
        # The absent worker's pins go: the repair has just moved their visits.
        state.pins = {k: v for k, v in state.pins.items() if v.get("worker_id") != event.worker_id}
    record = await _persist(session, state, result.plan, user, disruption.kind, result.changes, now)
    return team, record

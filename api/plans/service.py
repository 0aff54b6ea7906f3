"""Day plans for a team: the use cases (plan anew, pin, repair) around the core.

``dispatch.schedule.plan_day`` and ``dispatch.repair.repair`` decide every route; the
domain's modules only turn rows into the core's ``Visit``/``WorkerDay`` (``day``), run the
solver off the event loop (here), store each result as a new ``day_plans`` version and
write the assignments it decided (``record``); ``teams`` says whose day it is. No FastAPI
here.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import anyio
from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth.models import User
from api.core.errors import InvalidInput
from api.core.settings import Settings
from api.orders.models import Order
from api.orders.state import OrderStatus
from api.plans.day import DayState, check_day, epoch_s, load_day
from api.plans.errors import (
    BadDisruption,
    PinEmpty,
    PinOutsideWindow,
    PlanInputInvalid,
    PlanNotFound,
    VisitFixed,
    VisitNotInPlan,
    WorkerNotInPlan,
)
from api.plans.models import DayPlanRecord
from api.plans.record import latest_record, persist, pins_of, plan_from_json
from api.plans.teams import TeamRef, resolve_team
from api.tenants.models import Worker
from dispatch.errors import DispatchError
from dispatch.errors import InvalidInput as CoreInvalid
from dispatch.repair import RepairResult, VisitCancelled, VisitOverran, WorkerAbsent, repair
from dispatch.schedule import DayPlan, Stop, VisitOutsideShifts, VisitStatus, plan_day
from geo.travel import HaversineTravelModel

#: Solver time limits (seconds): the default and the most a request may ask for.
DEFAULT_STOP_S = 2.0
MAX_STOP_S = 10.0


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
    record = await persist(session, state, plan, user, reason, (), now)
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
        at = epoch_s(start)
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
        return WorkerAbsent(d.worker_id, epoch_s(d.at or now))
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
    record = await persist(session, state, result.plan, user, disruption.kind, result.changes, now)
    return team, record


async def worker_day(
    session: AsyncSession, worker: Worker, day: date, settings: Settings
) -> tuple[list[Order], list[dict[str, Any]] | None]:
    """The worker's orders whose slot starts on ``day`` (local), and their planned stops.

    When a stored day plan of the worker's enterprise covers the worker, the
    orders come in its route order (unplanned ones after, by slot) with the newest such
    plan's stops (epoch seconds); otherwise in slot order and None.
    """
    tz = ZoneInfo(settings.service_timezone)
    start_at = datetime.combine(day, time(0), tzinfo=tz)
    rows = await session.scalars(
        select(Order)
        .where(
            and_(
                Order.worker_id == worker.id,
                Order.slot_start >= start_at,
                Order.slot_start < start_at + timedelta(days=1),
                Order.status != OrderStatus.CANCELLED.value,
            )
        )
        .order_by(Order.slot_start, Order.id)
    )
    orders = list(rows)
    records = await session.scalars(
        select(DayPlanRecord)
        .where(DayPlanRecord.enterprise_id == worker.enterprise_id, DayPlanRecord.day == day)
        .order_by(DayPlanRecord.created_at.desc(), DayPlanRecord.id.desc())
    )
    for record in records:
        if any(w["id"] == worker.id for w in record.plan.get("workers", [])):
            route = next((r for r in record.plan["routes"] if r["worker_id"] == worker.id), None)
            stops = [] if route is None else list(route["stops"])
            rank = {s["visit_id"]: i for i, s in enumerate(stops)}
            orders.sort(key=lambda o: rank.get(o.id, len(rank)))  # stable: slot order after
            return orders, [s for s in stops if s["visit_id"] in {o.id for o in orders}]
    return orders, None

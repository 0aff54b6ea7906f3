"""Stored plans: the plan as JSON and back, and each new version applied and persisted.

Applying writes the assignments the plan decided through ``orders.assign_worker``
(``api.dispatcher.offer_flow.commit_worker`` for a visit a worker takes for the first time).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth.models import User
from api.core.errors import Conflict
from api.dispatcher.offer_flow import commit_worker
from api.orders.service import WorkerBusy, assign_worker, lock_order
from api.orders.state import DispatchStatus, OrderEventType
from api.plans.day import DayState
from api.plans.errors import PlanNotApplicable
from api.plans.models import DayPlanRecord
from api.tenants.models import Worker
from dispatch.schedule import (
    Break,
    DayPlan,
    DroppedVisit,
    Route,
    ScheduledVisit,
    Visit,
    WorkerDay,
)
from geo.travel import HaversineTravelModel


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


async def persist(
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

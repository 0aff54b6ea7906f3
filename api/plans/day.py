"""A team's day as the core sees it: booked orders become ``Visit``s, workers ``WorkerDay``s.

How order states map onto the core's visit states (which visits are pinned):
an unpaid hold or an open offer stays with the worker holding it (CONFIRMED); a paid
booking awaiting dispatch is free (PLANNED); an accepted visit is CONFIRMED to its
worker; a worker on the way, at the door or in service is STARTED; a completed visit is
DONE. Staff pins (worker and/or start inside the booked window) ride along in the plan
JSON and apply to every later version of that day's plan. Times are UTC, durations s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.catalog.models import Service
from api.orders.models import Order, OrderEvent
from api.orders.roster import Roster
from api.orders.state import DispatchStatus, OrderEventType, OrderStatus
from api.plans.errors import DayOutOfRange
from api.plans.teams import TeamRef
from api.tenants.models import Worker
from dispatch.schedule import Break, Visit, VisitStatus, WorkerDay


def _day_bounds(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), tzinfo=tz)
    return start, start + timedelta(days=1)


def epoch_s(value: datetime) -> int:
    """Epoch seconds of ``value`` (naive values are UTC)."""
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
        shift_start=epoch_s(window[0]),
        shift_end=epoch_s(window[1]),
        start_lat=worker.home_lat,
        start_lng=worker.home_lng,
        skills=_mask(worker.skills or [], skills),
        breaks=tuple(Break(epoch_s(a), epoch_s(b)) for a, b in roster.breaks_on(0, day, tz)),
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
        pinned_worker, pinned_start = order.worker_id, epoch_s(started_at or order.slot_start)
    elif order.dispatch_status in _UNDER_WAY:
        status, pinned_worker, pinned_start = (
            VisitStatus.STARTED,
            order.worker_id,
            epoch_s(order.slot_start),
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
        window_start=epoch_s(order.slot_start),
        window_end=epoch_s(order.slot_end),
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

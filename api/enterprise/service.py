"""Enterprise dispatch board: orders, live workers, manual assignment, explanations, timeline,
daily settlement. No FastAPI here.

Every read and write is scoped to the caller's enterprise (staff); a platform admin sees
every enterprise. Foreign ids are NotFound (404), never Forbidden, so ids of other
tenants leak nothing. Amounts are fen; times are UTC-aware datetimes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth.models import Role, User
from api.catalog.models import Service
from api.core.errors import Conflict, InvalidInput, NotFound
from api.core.live import LiveBackends, WorkerState
from api.core.settings import Settings
from api.dispatcher.board import DispatchSettings, parse_dispatch_settings
from api.dispatcher.models import DispatchDecision
from api.dispatcher.offer_flow import withdraw_offers
from api.notifications.models import OutboxMessage
from api.orders.models import Order, OrderEvent
from api.orders.service import OrderNotFound, WorkerBookedThen, assign_worker, lock_order
from api.orders.state import DispatchStatus, OrderEventType, OrderStatus
from api.tenants.models import Enterprise, Worker
from api.tracking import service as tracking
from api.tracking.service import ensure_track

#: Sub-states in which a worker is committed to the order (it can only be reassigned).
COMMITTED = (DispatchStatus.ACCEPTED.value,)
#: Sub-states still waiting for a worker (a manual assignment withdraws any open offer).
UNASSIGNED = (
    DispatchStatus.AWAITING_DISPATCH.value,
    DispatchStatus.OFFERED.value,
    DispatchStatus.ESCALATED.value,
)


class WorkerNotFound(NotFound):
    """No such worker in the caller's enterprise."""

    code = "worker_not_found"
    message = "No such worker in your enterprise."


class WorkerLacksSkills(InvalidInput):
    """The chosen worker does not have every skill the service needs."""

    status_code = 422
    code = "worker_lacks_skills"
    message = "This worker lacks the skills the service needs: {missing}."


class WorkerInactive(Conflict):
    """The chosen worker is deactivated."""

    code = "worker_inactive"
    message = "This worker is deactivated and cannot take orders."


class AlreadyAssigned(Conflict):
    """The order already has this worker."""

    code = "already_assigned"
    message = "The order is already assigned to this worker."


class NotAssignable(Conflict):
    """The order is past the point where staff may (re)assign it."""

    code = "not_assignable"
    message = "Only orders waiting for a worker or accepted but not yet started can be assigned."


class NoEnterprise(NotFound):
    """No such enterprise (or not the caller's)."""

    code = "enterprise_not_found"
    message = "No such enterprise."


def enterprise_scope(user: User) -> int | None:
    """The enterprise the caller may see; None = every enterprise (admin)."""
    if Role(user.role) is Role.ADMIN:
        return None
    return user.enterprise_id if user.enterprise_id is not None else -1


async def scoped_order(session: AsyncSession, user: User, order_id: int) -> Order:
    """The order if it belongs to the caller's enterprise (OrderNotFound otherwise)."""
    order = await session.get(Order, order_id)
    scope = enterprise_scope(user)
    if order is None or (scope is not None and order.enterprise_id != scope):
        raise OrderNotFound()
    return order


async def scoped_worker(session: AsyncSession, user: User, worker_id: int) -> Worker:
    """The worker if it belongs to the caller's enterprise (WorkerNotFound otherwise)."""
    worker = await session.get(Worker, worker_id)
    scope = enterprise_scope(user)
    if worker is None or (scope is not None and worker.enterprise_id != scope):
        raise WorkerNotFound()
    return worker


@dataclass(frozen=True)
class OrderFilter:
    """Board filters; None = any. Dates are local service days, inclusive."""

    status: OrderStatus | None = None
    dispatch_status: DispatchStatus | None = None
    service_id: int | None = None
    service_area_id: int | None = None
    date_from: date | None = None
    date_to: date | None = None


async def list_orders(
    session: AsyncSession,
    user: User,
    flt: OrderFilter,
    tz: ZoneInfo,
    *,
    limit: int,
    offset: int,
) -> tuple[list[Order], int]:
    """One page of the caller's enterprise orders by slot start, and the total count."""
    where: list[Any] = []
    scope = enterprise_scope(user)
    if scope is not None:
        where.append(Order.enterprise_id == scope)
    if flt.status is not None:
        where.append(Order.status == flt.status.value)
    if flt.dispatch_status is not None:
        where.append(Order.dispatch_status == flt.dispatch_status.value)
    if flt.service_id is not None:
        where.append(Order.service_id == flt.service_id)
    if flt.service_area_id is not None:
        where.append(Order.service_area_id == flt.service_area_id)
    if flt.date_from is not None:
        where.append(Order.slot_start >= datetime.combine(flt.date_from, time(), tzinfo=tz))
    if flt.date_to is not None:
        end = datetime.combine(flt.date_to + timedelta(days=1), time(), tzinfo=tz)
        where.append(Order.slot_start < end)
    total = int(await session.scalar(select(func.count(Order.id)).where(*where)) or 0)
    rows = await session.scalars(
        select(Order).where(*where).order_by(Order.slot_start, Order.id).limit(limit).offset(offset)
    )
    return list(rows), total


@dataclass(frozen=True)
class WorkerBoardRow:
    """A worker on the board: live state, position, current order, ping age (seconds)."""

    worker: Worker
    state: WorkerState
    lat: float | None
    lng: float | None
    last_ping_age_s: float | None
    current_order_id: int | None


async def board_workers(
    session: AsyncSession, live: LiveBackends, user: User, *, now: datetime
) -> list[WorkerBoardRow]:
    """The enterprise's active workers with LiveState positions/states and current orders."""
    stmt = select(Worker).where(Worker.is_active.is_(True)).order_by(Worker.id)
    scope = enterprise_scope(user)
    if scope is not None:
        stmt = stmt.where(Worker.enterprise_id == scope)
    workers = list(await session.scalars(stmt))
    if not workers:
        return []
    ids = [w.id for w in workers]
    current: dict[int, int] = {}
    active = await session.execute(
        select(Order.worker_id, Order.id)
        .where(
            Order.worker_id.in_(ids),
            (Order.status == OrderStatus.IN_SERVICE.value)
            | (
                (Order.status == OrderStatus.PENDING_SERVICE.value)
                & Order.dispatch_status.in_(
                    (
                        DispatchStatus.ACCEPTED.value,
                        DispatchStatus.EN_ROUTE.value,
                        DispatchStatus.ARRIVED.value,
                    )
                )
            ),
        )
        .order_by(Order.slot_start.desc())
    )
    for worker_id, order_id in active.all():
        if worker_id is not None:
            current[int(worker_id)] = int(order_id)
    pos = await live.state.get_positions(ids)
    out = []
    for i, w in enumerate(workers):
        found = bool(pos.found[i])
        state = WorkerState.from_code(int(pos.states[i])) if found else None
        out.append(
            WorkerBoardRow(
                worker=w,
                state=state or WorkerState.OFFLINE,
                lat=float(pos.lat[i]) if found else None,
                lng=float(pos.lng[i]) if found else None,
                last_ping_age_s=(
                    round(max(0.0, now.timestamp() - float(pos.ts[i])), 1) if found else None
                ),
                current_order_id=current.get(w.id),
            )
        )
    return out


def _notify_worker(
    session: AsyncSession, worker: Worker, order: Order, topic: str, now: datetime
) -> None:
    session.add(
        OutboxMessage(
            channel="inbox",
            topic=topic,
            user_id=worker.user_id,
            order_id=order.id,
            payload={
                "order_id": order.id,
                "order_no": order.order_no,
                "slot_start": order.slot_start.isoformat(),
                "service_id": order.service_id,
            },
            status="pending",
            attempts=0,
            next_attempt_at=now,
            last_error="",
            created_at=now,
        )
    )


async def assign(
    session: AsyncSession,
    live: LiveBackends,
    user: User,
    order_id: int,
    worker_id: int,
    *,
    settings: Settings,
    now: datetime,
) -> Order:
    """Assign (or reassign) an order to a worker of the same enterprise, overriding dispatch.

    Withdraws any open offer; 422 when skills are missing, 409 when the worker is busy
    at that time, inactive, already the order's worker, or the order is past accepted.
    Both workers get an inbox message. Commits.
    """
    await scoped_order(session, user, order_id)
    order = await lock_order(session, order_id)
    worker = await session.get(Worker, worker_id)
    if worker is None or worker.enterprise_id != order.enterprise_id:
        raise WorkerNotFound()
    if not worker.is_active:
        raise WorkerInactive()
    if order.status != OrderStatus.PENDING_SERVICE.value or order.dispatch_status not in (
        *UNASSIGNED,
        *COMMITTED,
    ):
        raise NotAssignable()
    if order.worker_id == worker.id and order.dispatch_status in COMMITTED:
        raise AlreadyAssigned()
    svc = await session.get(Service, order.service_id)
    missing = sorted(set(svc.required_skills or []) - set(worker.skills or [])) if svc else []
    if missing:
        raise WorkerLacksSkills(missing=", ".join(missing))
    previous = None
    if order.dispatch_status in COMMITTED and order.worker_id is not None:
        previous = await session.get(Worker, order.worker_id)
        event = OrderEventType.REASSIGNED
    else:
        event = OrderEventType.ACCEPTED
        await withdraw_offers(session, settings, order, now)
    await assign_worker(
        session, order, worker.id, actor_id=user.id, now=now,
        data={"manual": True, "previous_worker_id": previous.id if previous else None},
        event=event, busy=WorkerBookedThen,
    )  # fmt: skip
    session.add(
        DispatchDecision(
            order_id=order.id,
            worker_id=worker.id,
            region=0,
            mode="manual",
            total_cost=None,
            cost={},
            alternatives=[],
            reason="manual",
            fencing_token=0,
            created_at=now,
        )
    )
    await ensure_track(session, order.id, now)
    _notify_worker(session, worker, order, "assigned", now)
    if previous is not None:
        _notify_worker(session, previous, order, "unassigned", now)
    await session.commit()
    await live.state.set_worker_state(worker.id, WorkerState.BUSY)
    if previous is not None:
        await live.state.set_worker_state(previous.id, WorkerState.ONLINE)
    await tracking.publish_status(live.broker, order)
    return order


async def decisions(session: AsyncSession, user: User, order_id: int) -> list[DispatchDecision]:
    """Every dispatch decision of the order, oldest first (chosen line, runner-ups)."""
    await scoped_order(session, user, order_id)
    rows = await session.scalars(
        select(DispatchDecision)
        .where(DispatchDecision.order_id == order_id)
        .order_by(DispatchDecision.id)
    )
    return list(rows)


async def timeline(session: AsyncSession, user: User, order_id: int) -> Sequence[OrderEvent]:
    """The order's events, oldest first."""
    await scoped_order(session, user, order_id)
    rows = await session.scalars(
        select(OrderEvent).where(OrderEvent.order_id == order_id).order_by(OrderEvent.id)
    )
    return list(rows)


@dataclass(frozen=True)
class SettlementRow:
    """One worker's day: completed orders, their amount and refunds (fen)."""

    worker_id: int
    display_name: str
    completed_orders: int
    amount_fen: int
    refunded_fen: int


async def settlement(
    session: AsyncSession, user: User, day: date, tz: ZoneInfo
) -> list[SettlementRow]:
    """Per worker, the orders completed on local ``day`` with amounts and refunds (fen)."""
    start = datetime.combine(day, time(), tzinfo=tz)
    end = start + timedelta(days=1)
    stmt = (
        select(
            Worker.id,
            Worker.display_name,
            func.count(Order.id),
            func.coalesce(func.sum(Order.amount_fen), 0),
            func.coalesce(func.sum(Order.refunded_fen), 0),
        )
        .join(Order, Order.worker_id == Worker.id)
        .where(Order.completed_at >= start, Order.completed_at < end)
        .group_by(Worker.id, Worker.display_name)
        .order_by(Worker.id)
    )
    scope = enterprise_scope(user)
    if scope is not None:
        stmt = stmt.where(Order.enterprise_id == scope)
    return [
        SettlementRow(int(wid), str(name), int(n), int(amount), int(refunded))
        for wid, name, n, amount, refunded in (await session.execute(stmt)).all()
    ]


async def _enterprise(session: AsyncSession, user: User, enterprise_id: int | None) -> Enterprise:
    scope = enterprise_scope(user)
    wanted = enterprise_id if scope is None else scope
    if enterprise_id is not None and scope is not None and enterprise_id != scope:
        raise NoEnterprise()
    ent = await session.get(Enterprise, wanted) if wanted is not None else None
    if ent is None:
        raise NoEnterprise()
    return ent


async def get_dispatch_settings(
    session: AsyncSession, user: User, enterprise_id: int | None
) -> DispatchSettings:
    """The enterprise's dispatch settings (staff: their own; admin: ``enterprise_id``)."""
    ent = await _enterprise(session, user, enterprise_id)
    return parse_dispatch_settings(ent.dispatch_settings)


async def put_dispatch_settings(
    session: AsyncSession, user: User, enterprise_id: int | None, raw: dict[str, Any]
) -> DispatchSettings:
    """Validate and store the enterprise's dispatch settings; commits."""
    ent = await _enterprise(session, user, enterprise_id)
    parsed = parse_dispatch_settings(raw)
    ent.dispatch_settings = parsed.as_json()
    await session.commit()
    return parsed

"""Orders after booking: visibility, history, holds, cancel/expiry, worker actions, share links.

No FastAPI here. State changes go through ``api.orders.state`` only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.auth.models import Role, User
from api.catalog.models import Service
from api.core.errors import Conflict, Forbidden
from api.core.settings import Settings
from api.orders import state
from api.orders.errors import OrderNotFound, RefundWindowClosed, ShareLinkInvalid, WorkerBusy
from api.orders.models import Order, OrderEvent, WorkerReservation
from api.orders.quote import service_tz
from api.orders.slots import day_bounds
from api.orders.state import AfterSalesStatus, OrderEventType, OrderStatus
from api.orders.store import is_slot_conflict
from api.tenants.models import Worker


async def visible_order(session: AsyncSession, user: User, order_id: int) -> Order:
    """The order if ``user`` may see it (owner, its worker, its enterprise's staff, admin)."""
    order = await session.get(Order, order_id)
    if order is None or not await may_see(session, user, order):
        raise OrderNotFound()
    return order


async def get_order(session: AsyncSession, order_id: int) -> Order | None:
    """The order with ``order_id``, or None (no visibility check: see ``visible_order``)."""
    return await session.get(Order, order_id)


async def service_and_worker(
    session: AsyncSession, order: Order
) -> tuple[Service | None, Worker | None]:
    """The order's service and, once it has one, its worker."""
    svc = await session.get(Service, order.service_id)
    worker = await session.get(Worker, order.worker_id) if order.worker_id else None
    return svc, worker


async def order_events(session: AsyncSession, order_id: int) -> list[OrderEvent]:
    """The order's audit log, oldest first."""
    rows = await session.scalars(
        select(OrderEvent).where(OrderEvent.order_id == order_id).order_by(OrderEvent.id)
    )
    return list(rows)


async def worker_id_of(session: AsyncSession, user: User) -> int | None:
    """The worker profile id of a worker user."""
    if user.role != Role.WORKER.value:
        return None
    return await session.scalar(select(Worker.id).where(Worker.user_id == user.id))


async def may_see(session: AsyncSession, user: User, order: Order) -> bool:
    """Whether ``user`` may read ``order``."""
    role = Role(user.role)
    if role is Role.ADMIN:
        return True
    if role is Role.CUSTOMER:
        return order.customer_id == user.id
    if role is Role.STAFF:
        return order.enterprise_id == user.enterprise_id
    return order.worker_id is not None and order.worker_id == await worker_id_of(session, user)


@dataclass(frozen=True)
class OrderFilter:
    """History filters: statuses, local date range of the slot, service."""

    statuses: Sequence[OrderStatus] = ()
    date_from: date | None = None
    date_to: date | None = None
    service_id: int | None = None


async def list_orders(
    session: AsyncSession,
    user: User,
    flt: OrderFilter,
    settings: Settings,
    *,
    limit: int,
    offset: int,
) -> tuple[list[Order], int]:
    """Orders the caller may see, newest slot first, with the total count."""
    where: list[Any] = []
    role = Role(user.role)
    if role is Role.CUSTOMER:
        where.append(Order.customer_id == user.id)
    elif role is Role.STAFF:
        where.append(Order.enterprise_id == user.enterprise_id)
    elif role is Role.WORKER:
        where.append(Order.worker_id == (await worker_id_of(session, user) or -1))
    if flt.statuses:
        where.append(Order.status.in_([s.value for s in flt.statuses]))
    tz = service_tz(settings)
    if flt.date_from is not None:
        where.append(Order.slot_start >= day_bounds(flt.date_from, tz)[0])
    if flt.date_to is not None:
        where.append(Order.slot_start < day_bounds(flt.date_to, tz)[1])
    if flt.service_id is not None:
        where.append(Order.service_id == flt.service_id)
    cond = and_(*where) if where else and_(True)
    total = await session.scalar(select(func.count(Order.id)).where(cond))
    rows = await session.scalars(
        select(Order)
        .where(cond)
        .order_by(Order.slot_start.desc(), Order.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return list(rows), int(total or 0)


async def lock_order(session: AsyncSession, order_id: int) -> Order:
    """Re-read the order with a row lock (PostgreSQL ``FOR UPDATE``; SQLite: write lock)."""
    # SQLite renders no FOR UPDATE: there the transaction's write lock serialises writers.
    stmt = (
        select(Order)
        .where(Order.id == order_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    order = await session.scalar(stmt)
    if order is None:
        raise OrderNotFound()
    return order


async def release_reservation(session: AsyncSession, order: Order, now: datetime) -> None:
    """Free the worker held for ``order``."""
    res = await session.scalar(
        select(WorkerReservation).where(WorkerReservation.order_id == order.id)
    )
    if res is not None and res.status != "released":
        res.status = "released"
        res.updated_at = now


async def confirm_reservation(session: AsyncSession, order: Order, now: datetime) -> None:
    """Turn the order's hold into a confirmed reservation (after payment)."""
    res = await session.scalar(
        select(WorkerReservation).where(WorkerReservation.order_id == order.id)
    )
    if res is not None and res.status == "held":
        res.status = "confirmed"
        res.updated_at = now


def cancel_fee(order: Order, settings: Settings, now: datetime) -> int:
    """Fee (fen) kept when cancelling now: free before the cut-off, a share of it after."""
    if order.paid_at is None:
        return 0
    if now <= order.slot_start - timedelta(minutes=settings.cancel_free_before_min):
        return 0
    return order.amount_fen * settings.cancel_fee_pct // 100


async def expire_unpaid(maker: async_sessionmaker[AsyncSession], *, now: datetime) -> int:
    """Cancel every unpaid order past ``expires_at`` and release its hold; returns how many."""
    async with maker() as session:
        ids = list(
            await session.scalars(
                select(Order.id).where(
                    Order.status == OrderStatus.PENDING_PAYMENT.value,
                    Order.expires_at.is_not(None),
                    Order.expires_at <= now,
                )
            )
        )
    done = 0
    for order_id in ids:
        async with maker() as session:
            order = await lock_order(session, order_id)
            if order.status != OrderStatus.PENDING_PAYMENT.value:
                continue
            await state.apply(session, order, OrderEventType.EXPIRED, actor_id=None, now=now)
            await release_reservation(session, order, now)
            await session.commit()
            done += 1
    return done


# ------------------------------------------------------------------ actions


WORKER_EVENTS = {
    "accept": OrderEventType.ACCEPTED,
    "depart": OrderEventType.DEPARTED,
    "arrive": OrderEventType.ARRIVED,
    "start": OrderEventType.STARTED,
    "complete": OrderEventType.COMPLETED,
}


async def worker_action(
    session: AsyncSession, user: User, order_id: int, action: str, *, now: datetime
) -> Order:
    """The assigned worker (or its enterprise's staff) moves the order along."""
    order = await visible_order(session, user, order_id)
    if Role(user.role) not in (Role.WORKER, Role.STAFF, Role.ADMIN):
        raise Forbidden()
    order = await lock_order(session, order.id)
    await state.apply(session, order, WORKER_EVENTS[action], actor_id=user.id, now=now)
    await session.commit()
    return order


async def request_refund(
    session: AsyncSession, user: User, order_id: int, reason: str, *, now: datetime
) -> Order:
    """The customer asks for an after-sales refund of a completed order (within 7 days)."""
    order = await visible_order(session, user, order_id)
    if order.customer_id != user.id:
        raise Forbidden()
    order = await lock_order(session, order.id)
    if (
        order.status == OrderStatus.COMPLETED.value
        and order.completed_at is not None
        and now > order.completed_at + timedelta(days=7)
    ):
        raise RefundWindowClosed()
    await state.apply(
        session, order, OrderEventType.REFUND_REQUESTED, actor_id=user.id, now=now,
        data={"reason": reason},
    )  # fmt: skip
    await session.commit()
    return order


def is_aftersales_pending(order: Order) -> bool:
    """Whether a refund request waits for staff."""
    return order.aftersales_status == AfterSalesStatus.REFUND_REQUESTED.value


# ------------------------------------------------------------------ share links


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def share_token(secret: str, order: Order, *, now: datetime, ttl_s: int) -> tuple[str, datetime]:
    """A signed (HMAC-SHA256), expiring token naming the order."""
    expires = now + timedelta(seconds=ttl_s)
    body = f"{order.id}.{int(expires.timestamp())}"
    sig = hmac.new(("share:" + secret).encode(), body.encode(), hashlib.sha256).digest()
    return f"{_b64(body.encode())}.{_b64(sig[:18])}", expires


def read_share_token(secret: str, token: str, *, now: datetime) -> int:
    """The order id of a valid, unexpired token; ShareLinkInvalid otherwise."""
    try:
        body_b64, sig_b64 = token.split(".")
        body = _unb64(body_b64)
        sig = _unb64(sig_b64)
        order_id_text, exp_text = body.decode().split(".")
        order_id, exp = int(order_id_text), int(exp_text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ShareLinkInvalid() from exc
    good = hmac.new(("share:" + secret).encode(), body, hashlib.sha256).digest()[:18]
    if not hmac.compare_digest(good, sig) or now.timestamp() > exp:
        raise ShareLinkInvalid()
    return order_id


async def assign_worker(
    session: AsyncSession,
    order: Order,
    worker_id: int,
    *,
    actor_id: int | None,
    now: datetime,
    data: dict[str, Any] | None = None,
    event: OrderEventType = OrderEventType.ACCEPTED,
    busy: type[Conflict] = WorkerBusy,
) -> None:
    """Make ``worker_id`` the order's worker: move its time hold, then ``event``.

    ``event`` is ACCEPTED (an offer, a claim, a manual assignment) or REASSIGNED.

    The order must be row-locked by the caller; ``busy`` (409; WorkerBusy, addressed
    to the worker, unless the caller is someone else) when the worker's other
    held/confirmed visits overlap this order's hold. The caller commits.
    """
    res = await session.scalar(
        select(WorkerReservation).where(WorkerReservation.order_id == order.id)
    )
    if res is not None and res.worker_id != worker_id and res.status != "released":
        taken = await session.scalar(
            select(WorkerReservation.id).where(
                WorkerReservation.worker_id == worker_id,
                WorkerReservation.status.in_(("held", "confirmed")),
                WorkerReservation.starts_at < res.ends_at,
                WorkerReservation.ends_at > res.starts_at,
                WorkerReservation.id != res.id,
            )
        )
        if taken is not None:
            raise busy()
        try:
            async with session.begin_nested():
                res.worker_id = worker_id
                res.updated_at = now
                await session.flush()
        except DBAPIError as exc:
            if is_slot_conflict(exc):
                raise busy() from None
            raise
    order.worker_id = worker_id
    await state.apply(
        session, order, event, actor_id=actor_id, now=now,
        data={"worker_id": worker_id, **(data or {})},
    )  # fmt: skip

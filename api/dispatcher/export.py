"""Read a recorded production day out of the tables, as plain data (``daojia export day``).

A *day* is a local calendar day in ``settings.service_timezone``; its orders are the paid
orders whose slot starts that day (optionally of one enterprise). For them this module
reads the order rows, their services, every ``dispatch_offers`` row, the dispatcher's
escalations (``dispatch_decisions``), the order events (accepted, started, completed,
cancelled), and the workers of their enterprises with each one's answer history (offers
decided over the last ``history_days`` up to the day's end) for the simulator to estimate
their decline probability and response time. Times are UTC epoch seconds.

Nothing here converts to the simulator's types: ``simulations.export`` does (``api`` must
not import ``simulations``); the ``daojia export day`` command composes both.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.catalog.models import Service
from api.core.settings import Settings
from api.dispatcher.desk_store import epoch
from api.dispatcher.models import DispatchDecision, DispatchOffer, OfferMode, OfferState
from api.orders.models import Order, OrderEvent
from api.orders.state import OrderEventType
from api.tenants.models import Worker

#: Order events a replay log needs (when the job was taken, started, done; cancellations).
_EVENTS = (
    OrderEventType.ACCEPTED.value,
    OrderEventType.REASSIGNED.value,
    OrderEventType.ARRIVED.value,
    OrderEventType.STARTED.value,
    OrderEventType.COMPLETED.value,
    OrderEventType.CANCELLED.value,
)


@dataclass(frozen=True)
class DayOrder:
    """One order of the day: where, what, when (epoch s), and how it ended."""

    id: int
    enterprise_id: int
    service_id: int
    lat: float
    lng: float
    created_s: int
    paid_s: int
    slot_start_s: int
    slot_end_s: int
    duration_s: int
    amount_fen: int
    status: str
    dispatch_status: str | None
    worker_id: int | None
    #: order event -> first time it happened (accepted, arrived, started, completed, ...).
    events: dict[str, int] = field(default_factory=dict)
    #: the worker the order was (re)assigned to by each accepted/reassigned event, in order.
    assigned: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class DayOffer:
    """One ``dispatch_offers`` row (auto: one worker; grab: the pool, worker on claim)."""

    id: int
    order_id: int
    worker_id: int | None
    mode: str
    state: str
    offered_s: int
    expires_s: int
    decided_s: int | None
    eligible: tuple[int, ...]


@dataclass(frozen=True)
class DayWorker:
    """A worker of the day's enterprises: profile, and their recent answers to auto offers.

    ``answered_s`` the seconds each accept or decline took; ``declined`` how many of those
    were declines; ``expired`` offers left unanswered until their timeout.
    """

    id: int
    enterprise_id: int
    home_lat: float
    home_lng: float
    skills: tuple[str, ...]
    transport_mode: str
    rating: float
    shifts: tuple[dict[str, Any], ...]
    answered_s: tuple[int, ...]
    declined: int
    expired: int


@dataclass(frozen=True)
class RecordedDay:
    """Everything the tables hold about one day's dispatch, plus the knobs it ran under."""

    day: date
    timezone: str
    day_start_s: int
    day_end_s: int
    orders: tuple[DayOrder, ...]
    offers: tuple[DayOffer, ...]
    escalations: tuple[tuple[int, int, str], ...]  # (epoch s, order id, reason)
    workers: tuple[DayWorker, ...]
    #: service id -> (name, required skills)
    services: dict[int, tuple[str, tuple[str, ...]]]
    settings: dict[str, Any]


def day_bounds(day: date, tz_name: str) -> tuple[datetime, datetime]:
    """The local day ``day`` in ``tz_name`` as a half-open UTC-aware range."""
    tz = ZoneInfo(tz_name)
    start = datetime.combine(day, time(0), tzinfo=tz)
    return start, datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)


def _knobs(settings: Settings) -> dict[str, Any]:
    """The platform's dispatch knobs the day ran under (enterprise boards aside)."""
    return {
        "offer_timeout_s": settings.offer_timeout_s,
        "grab_window_s": settings.grab_window_s,
        "dispatch_tick_s": settings.dispatch_tick_s,
        "dispatch_batch_max": settings.dispatch_batch_max,
        "dispatch_horizon_s": settings.dispatch_horizon_s,
        "dispatch_max_travel_s": settings.dispatch_max_travel_s,
        "dispatch_max_lateness_s": settings.dispatch_max_lateness_s,
        "dispatch_aging_per_hour": settings.dispatch_aging_per_hour,
    }


async def _day_orders(
    session: AsyncSession, start: datetime, end: datetime, enterprise_id: int | None
) -> list[DayOrder]:
    query = select(Order).where(
        Order.slot_start >= start, Order.slot_start < end, Order.paid_at.is_not(None)
    )
    if enterprise_id is not None:
        query = query.where(Order.enterprise_id == enterprise_id)
    rows = list(await session.scalars(query.order_by(Order.id)))
    events: dict[int, dict[str, int]] = defaultdict(dict)
    assigned: dict[int, list[tuple[int, int]]] = defaultdict(list)
    if rows:
        found = await session.scalars(
            select(OrderEvent)
            .where(OrderEvent.order_id.in_([o.id for o in rows]), OrderEvent.event.in_(_EVENTS))
            .order_by(OrderEvent.id)
        )
        for ev in found:
            at = epoch(ev.created_at)
            events[ev.order_id].setdefault(ev.event, at)
            worker = (ev.data or {}).get("worker_id")
            taking = ev.event in (OrderEventType.ACCEPTED.value, OrderEventType.REASSIGNED.value)
            if taking and isinstance(worker, int):
                assigned[ev.order_id].append((at, worker))
    out = []
    for o in rows:
        assert o.paid_at is not None
        took = assigned[o.id]
        if not took and o.worker_id is not None and OrderEventType.ACCEPTED.value in events[o.id]:
            took = [(events[o.id][OrderEventType.ACCEPTED.value], o.worker_id)]
        out.append(
            DayOrder(
                id=o.id, enterprise_id=o.enterprise_id, service_id=o.service_id,
                lat=o.lat, lng=o.lng, created_s=epoch(o.created_at), paid_s=epoch(o.paid_at),
                slot_start_s=epoch(o.slot_start), slot_end_s=epoch(o.slot_end),
                duration_s=o.duration_min * 60, amount_fen=o.amount_fen, status=o.status,
                dispatch_status=o.dispatch_status, worker_id=o.worker_id,
                events=dict(events[o.id]), assigned=tuple(took),
            )
        )  # fmt: skip
    return out


async def _day_offers(
    session: AsyncSession, order_ids: list[int]
) -> tuple[list[DayOffer], list[tuple[int, int, str]]]:
    if not order_ids:
        return [], []
    offers = [
        DayOffer(
            id=r.id,
            order_id=r.order_id,
            worker_id=r.worker_id,
            mode=r.mode,
            state=r.state,
            offered_s=epoch(r.offered_at),
            expires_s=epoch(r.expires_at),
            decided_s=None if r.decided_at is None else epoch(r.decided_at),
            eligible=tuple(int(w) for w in r.eligible_worker_ids or ()),
        )
        for r in await session.scalars(
            select(DispatchOffer)
            .where(DispatchOffer.order_id.in_(order_ids))
            .order_by(DispatchOffer.id)
        )
    ]
    escalations = [
        (epoch(d.created_at), d.order_id, (d.reason or "").removeprefix("escalated:"))
        for d in await session.scalars(
            select(DispatchDecision)
            .where(
                DispatchDecision.order_id.in_(order_ids),
                DispatchDecision.reason.like("escalated:%"),
            )
            .order_by(DispatchDecision.id)
        )
    ]
    return offers, escalations


async def _workers(
    session: AsyncSession, enterprise_ids: set[int], since: datetime, until: datetime
) -> list[DayWorker]:
    workers = list(
        await session.scalars(
            select(Worker)
            .where(Worker.enterprise_id.in_(enterprise_ids), Worker.is_active.is_(True))
            .order_by(Worker.id)
        )
    )
    answered: dict[int, list[int]] = defaultdict(list)
    declined: dict[int, int] = defaultdict(int)
    expired: dict[int, int] = defaultdict(int)
    if workers:
        rows = await session.execute(
            select(
                DispatchOffer.worker_id,
                DispatchOffer.state,
                DispatchOffer.offered_at,
                DispatchOffer.decided_at,
            ).where(
                DispatchOffer.mode == OfferMode.AUTO.value,
                DispatchOffer.worker_id.in_([w.id for w in workers]),
                DispatchOffer.offered_at >= since,
                DispatchOffer.offered_at < until,
            )
        )
        for wid, st, offered_at, decided_at in rows:
            if wid is None:
                continue
            if st in (OfferState.ACCEPTED.value, OfferState.DECLINED.value) and decided_at:
                answered[wid].append(max(0, epoch(decided_at) - epoch(offered_at)))
                declined[wid] += st == OfferState.DECLINED.value
            elif st == OfferState.EXPIRED.value:
                expired[wid] += 1
    return [
        DayWorker(
            id=w.id,
            enterprise_id=w.enterprise_id,
            home_lat=w.home_lat,
            home_lng=w.home_lng,
            skills=tuple(w.skills or ()),
            transport_mode=w.transport_mode,
            rating=w.rating,
            shifts=tuple(w.shifts or ()),
            answered_s=tuple(answered[w.id]),
            declined=declined[w.id],
            expired=expired[w.id],
        )
        for w in workers
    ]


async def recorded_day(
    session: AsyncSession,
    settings: Settings,
    day: date,
    *,
    enterprise_id: int | None = None,
    history_days: int = 30,
) -> RecordedDay:
    """The recorded dispatch of local day ``day`` (of one enterprise, or all of them).

    Workers' answer histories cover the ``history_days`` days up to the end of ``day``.
    """
    start, end = day_bounds(day, settings.service_timezone)
    orders = await _day_orders(session, start, end, enterprise_id)
    offers, escalations = await _day_offers(session, [o.id for o in orders])
    enterprises = {o.enterprise_id for o in orders}
    if enterprise_id is not None:
        enterprises.add(enterprise_id)
    workers = await _workers(session, enterprises, end - timedelta(days=history_days), end)
    services: dict[int, tuple[str, tuple[str, ...]]] = {}
    if orders:
        for svc in await session.scalars(
            select(Service).where(Service.id.in_({o.service_id for o in orders}))
        ):
            names = svc.names or {}
            name = str(names.get("en") or names.get("zh-CN") or f"service-{svc.id}")
            services[svc.id] = (name, tuple(svc.required_skills or ()))
    return RecordedDay(
        day=day,
        timezone=settings.service_timezone,
        day_start_s=epoch(start),
        day_end_s=epoch(end),
        orders=tuple(orders),
        offers=tuple(offers),
        escalations=tuple(escalations),
        workers=tuple(workers),
        services=services,
        settings=_knobs(settings),
    )

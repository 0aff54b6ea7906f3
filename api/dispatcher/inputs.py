"""Every input of ``dispatch.match`` from the tables and the live layer (DESIGN §1.6).

Workers (``Fleet``): position (LiveState), skills, rating, reputation (the stored score the
reviews keep; until a worker has one, the stored rating scaled to [0, 1]), today's load
(jobs held or done today, local day) and recent earnings (completed in the last
``fairness_earnings_days``), shift end and breaks (a worker outside their shift or inside
a break takes no offer; one whose shift or next break comes before a job could finish is
never offered it: the core checks travel + service against ``shift_end_s``), transport
mode, enterprise. Orders (``OrderBatch``): position, skills, duration, the latest start
the booked window allows, the waiting-time priority (``dispatch.rounds.waiting_priority``),
the worker the booking reserved (a rebook "same worker again" reserves the previous
worker when they fit), enterprise, and the workers whose other reservations overlap it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.catalog.models import Service
from api.core.live import LiveBackends, PingBatch, WorkerState
from api.core.settings import Settings
from api.dispatcher.desk_store import epoch
from api.dispatcher.models import DispatchOffer, OfferState
from api.orders.models import Order, WorkerReservation
from api.orders.state import COMMITTED, OrderStatus
from api.tenants.models import Worker
from dispatch.model import MAX_RATING, NO_LIMIT_S, TRANSPORT_MODES, Fleet, OrderBatch, SkillCatalog
from dispatch.rounds import waiting_priority

_LIVE_RESERVATION = ("held", "confirmed")
_DAY_MIN = 24 * 60


@dataclass(frozen=True, eq=False)
class FleetInputs:
    """An enterprise's idle online workers as a ``Fleet``, and the skill catalog used."""

    fleet: Fleet
    catalog: SkillCatalog

    @property
    def worker_ids(self) -> list[int]:
        return [int(w) for w in self.fleet.ids.tolist()]


async def busy_workers(session: AsyncSession) -> set[int]:
    """Workers holding a live auto offer or a committed job: no new offer for them."""
    offered = await session.scalars(
        select(DispatchOffer.worker_id).where(
            DispatchOffer.state == OfferState.OFFERED.value, DispatchOffer.worker_id.is_not(None)
        )
    )
    committed = await session.scalars(
        select(Order.worker_id).where(
            Order.worker_id.is_not(None),
            (
                (Order.status == OrderStatus.PENDING_SERVICE.value)
                & Order.dispatch_status.in_(COMMITTED)
            )
            | (Order.status == OrderStatus.IN_SERVICE.value),
        )
    )
    return {int(w) for w in [*offered, *committed] if w is not None}


def _windows(rows: Any) -> list[list[tuple[int, int]]]:
    """Weekly ``[{"weekday", "start_min", "end_min"}]`` rows as (start, end) per weekday."""
    days: list[list[tuple[int, int]]] = [[] for _ in range(7)]
    for row in rows or ():
        weekday = int(row.get("weekday", -1))
        if 0 <= weekday < 7:
            days[weekday].append((int(row["start_min"]), int(row["end_min"])))
    return days


def on_duty_until(
    shifts: Any, breaks: Any, now: datetime, tz: ZoneInfo, horizon_s: int = 0
) -> int | None:
    """Epoch seconds at which the worker's duty stretch ends: the shift covering ``now``,
    or, for a worker online ahead of their shift, the first shift starting within
    ``horizon_s``; None when there is none, or the worker is on a break now. A shift
    ending at midnight runs on into one starting at midnight the next day; the next
    break today ends the stretch. No shifts at all: no limit (``NO_LIMIT_S``)."""
    week = _windows(shifts)
    if not any(week):
        return NO_LIMIT_S
    local = now.astimezone(tz)
    today = local.date()
    midnight = datetime.combine(today, time(0), tzinfo=tz)
    latest_start = now + timedelta(seconds=horizon_s)
    stretch: tuple[date, int] | None = None
    for ahead in range(horizon_s // 86_400 + 2):
        day = today + timedelta(days=ahead)
        base = datetime.combine(day, time(0), tzinfo=tz)
        for a, b in sorted(week[day.weekday()]):
            if base + timedelta(minutes=b) > now and base + timedelta(minutes=a) <= latest_start:
                stretch = (day, b)
                break
        if stretch is not None:
            break
    if stretch is None:
        return None
    day, end = stretch
    for _ in range(7):  # run on across midnight
        following = day + timedelta(days=1)
        more = (
            next((b for a, b in week[following.weekday()] if a == 0), 0) if end >= _DAY_MIN else 0
        )
        if more == 0:
            break
        day, end = following, more
    until = datetime.combine(day, time(0), tzinfo=tz) + timedelta(minutes=end)
    minute = (now - midnight).total_seconds() / 60
    for a, b in _windows(breaks)[today.weekday()]:
        if a <= minute < b:
            return None
        if a > minute:
            until = min(until, midnight + timedelta(minutes=a))
    return epoch(until)


async def _loads(
    session: AsyncSession, ids: list[int], now: datetime, settings: Settings
) -> tuple[dict[int, int], dict[int, int]]:
    """Per worker: jobs held or done today (local day) and fen earned recently."""
    tz = ZoneInfo(settings.service_timezone)
    midnight = datetime.combine(now.astimezone(tz).date(), time(0), tzinfo=tz)
    held = (
        (Order.status == OrderStatus.PENDING_SERVICE.value) & Order.dispatch_status.in_(COMMITTED)
    ) | Order.status.in_((OrderStatus.IN_SERVICE.value, OrderStatus.COMPLETED.value))
    today = await session.execute(
        select(Order.worker_id, func.count())
        .where(
            Order.worker_id.in_(ids),
            held,
            Order.slot_start >= midnight,
            Order.slot_start < midnight + timedelta(days=1),
        )
        .group_by(Order.worker_id)
    )
    since = now - timedelta(days=settings.fairness_earnings_days)
    earned = await session.execute(
        select(Order.worker_id, func.sum(Order.amount_fen))
        .where(
            Order.worker_id.in_(ids),
            Order.status == OrderStatus.COMPLETED.value,
            Order.completed_at > since,
        )
        .group_by(Order.worker_id)
    )
    return (
        {int(w): int(n) for w, n in today.all() if w is not None},
        {int(w): int(fen or 0) for w, fen in earned.all() if w is not None},
    )


async def fleet_inputs(
    session: AsyncSession,
    live: LiveBackends,
    settings: Settings,
    enterprise_id: int,
    snap: PingBatch,
    busy: set[int],
    services: Iterable[Service],
    now: datetime,
) -> FleetInputs:
    """The enterprise's online workers without a live offer or job, with every cost input."""
    online = snap.states == WorkerState.ONLINE.code
    ids = [int(w) for w in snap.worker_ids[online].tolist() if int(w) not in busy]
    workers: list[Worker] = []
    if ids:
        workers = list(
            await session.scalars(
                select(Worker)
                .where(
                    Worker.id.in_(ids),
                    Worker.enterprise_id == enterprise_id,
                    Worker.is_active.is_(True),
                )
                .order_by(Worker.id)
            )
        )
    names = sorted(
        {n for w in workers for n in (w.skills or [])}
        | {n for s in services for n in (s.required_skills or [])}
    )[:64]
    catalog = SkillCatalog(tuple(names))
    wids = [w.id for w in workers]
    pos = await live.state.get_positions(wids)
    loads, earnings = await _loads(session, wids, now, settings) if wids else ({}, {})
    tz = ZoneInfo(settings.service_timezone)
    until = [
        on_duty_until(w.shifts, w.breaks, now, tz, settings.dispatch_horizon_s) for w in workers
    ]
    rating = np.clip(np.array([w.rating for w in workers], dtype=np.float64), 0, MAX_RATING)
    fleet = Fleet.from_arrays(
        np.array(wids, dtype=np.int64),
        pos.lat,
        pos.lng,
        available=np.array(
            [u is not None and np.isfinite(la) for u, la in zip(until, pos.lat, strict=True)],
            dtype=np.bool_,
        ),
        skills=catalog.masks([[n for n in (w.skills or []) if n in names] for w in workers]),
        rating=rating,
        reputation=np.array(
            [
                min(1.0, max(0.0, w.reputation)) if w.reputation is not None else r / MAX_RATING
                for w, r in zip(workers, rating, strict=True)
            ],
            dtype=np.float64,
        ),
        shift_end_s=np.array([NO_LIMIT_S if u is None else u for u in until], dtype=np.int64),
        load_today=np.array([loads.get(w, 0) for w in wids], dtype=np.int64),
        recent_earnings_fen=np.array([earnings.get(w, 0) for w in wids], dtype=np.int64),
        enterprise_id=np.array([w.enterprise_id for w in workers], dtype=np.int64),
        mode=[
            w.transport_mode if w.transport_mode in TRANSPORT_MODES else "ebike" for w in workers
        ],
    )
    return FleetInputs(fleet, catalog)


async def _reservations(
    session: AsyncSession, orders: Sequence[Order]
) -> tuple[dict[int, int], dict[int, set[int]]]:
    """Per order: the worker its live reservation holds, and the other workers whose live
    reservations overlap its reserved time (they cannot take it)."""
    own = {
        r.order_id: r
        for r in await session.scalars(
            select(WorkerReservation).where(
                WorkerReservation.order_id.in_([o.id for o in orders]),
                WorkerReservation.status.in_(_LIVE_RESERVATION),
            )
        )
    }
    clash: dict[int, set[int]] = defaultdict(set)
    if not own:
        return {}, clash
    lo = min(r.starts_at for r in own.values())
    hi = max(r.ends_at for r in own.values())
    others = list(
        await session.scalars(
            select(WorkerReservation).where(
                WorkerReservation.status.in_(_LIVE_RESERVATION),
                WorkerReservation.starts_at < hi,
                WorkerReservation.ends_at > lo,
            )
        )
    )
    for order_id, mine in own.items():
        for r in others:
            if r.order_id != order_id and r.starts_at < mine.ends_at and r.ends_at > mine.starts_at:
                clash[order_id].add(r.worker_id)
    return {oid: r.worker_id for oid, r in own.items()}, clash


async def order_inputs(
    session: AsyncSession,
    settings: Settings,
    orders: Sequence[Order],
    services: Mapping[int, Service],
    catalog: SkillCatalog,
    now: datetime,
) -> OrderBatch:
    """The orders as an ``OrderBatch`` with every input the cost model takes."""
    reserved, clash = await _reservations(session, orders) if orders else ({}, {})
    names = set(catalog.names)
    now_s = epoch(now)
    return OrderBatch.from_arrays(
        np.array([o.id for o in orders], dtype=np.int64),
        [o.lat for o in orders],
        [o.lng for o in orders],
        required_skills=catalog.masks(
            [
                [n for n in (services[o.service_id].required_skills or []) if n in names]
                for o in orders
            ]
        ),
        service_s=[max(60, o.duration_min * 60) for o in orders],
        latest_start_s=[
            max(epoch(o.slot_start), epoch(o.slot_end) - o.duration_min * 60)
            + settings.dispatch_max_lateness_s
            for o in orders
        ],
        priority=waiting_priority(
            [now_s - epoch(o.paid_at or o.created_at) for o in orders],
            settings.dispatch_aging_per_hour,
        ),
        preferred_worker_id=[reserved.get(o.id, -1) for o in orders],
        excluded_worker_ids=[
            np.array(sorted(clash.get(o.id, set()) - {reserved.get(o.id)}), dtype=np.int64)
            for o in orders
        ],
        enterprise_id=[o.enterprise_id for o in orders],
    )

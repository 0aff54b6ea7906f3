"""Bookable slots, and the workers' days both the slot list and a booking are read from.

A slot is offered when some eligible worker can insert the visit into their day as
booked (held and confirmed reservations as visits, shift, breaks, home, transport
mode) with real travel times (``dispatch.slots``); a booking asks the same engine
for its worker (``api.orders.booking``). Times are UTC-aware datetimes; shifts are
read in ``settings.service_timezone``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import anyio
import numpy as np
from numpy.typing import NDArray
from sqlalchemy.ext.asyncio import AsyncSession

from api.catalog.models import Service
from api.catalog.service import AreaLookup
from api.orders.errors import OutsideArea, SlotTooFar
from api.orders.quote import service_tz
from api.orders.roster import Roster, RosterCache
from api.orders.store import BookedVisit, OrderStore
from api.settings import Settings
from dispatch.schedule import Break, Visit, VisitStatus, WorkerDay
from dispatch.slots import DEFAULT_TIE_COST, ServiceRequest, booked_days, booked_slots
from geo.travel import HaversineTravelModel, TravelTimeModel

#: Nearest eligible workers a slot list looks at (a booking looks at these first).
LIST_CANDIDATES = 40
#: Free workers whose days one booking pass reads; the next pass takes the next ones.
BOOKING_CHUNK = 12


@dataclass(frozen=True)
class BookingEnv:
    """What a booking needs besides the request, made once at startup.

    ``store`` is the persistence adapter of the database (``api.orders.store``),
    ``travel`` the travel model the slot engine plans with, ``seed`` the base of each
    booking's seed (the engine's choice among equally good workers).
    """

    lookup: AreaLookup
    rosters: RosterCache
    store: OrderStore
    travel: TravelTimeModel = field(default_factory=HaversineTravelModel)
    seed: int = 0
    tie_cost: int = DEFAULT_TIE_COST


def day_bounds(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """Local midnight to midnight of ``day`` as aware datetimes."""
    start = datetime.combine(day, time(0), tzinfo=tz)
    return start, start + timedelta(days=1)


async def area_for(
    session: AsyncSession,
    lookup: AreaLookup,
    svc: Service,
    lat: float,
    lng: float,
    key: tuple[Any, ...] | None = None,
) -> int:
    """The service area of ``svc``'s enterprise containing the point; OutsideArea otherwise."""
    hits = [
        h
        for h in await lookup.containing(session, lat, lng, key)
        if h.enterprise_id == svc.enterprise_id
    ]
    if not hits:
        raise OutsideArea()
    return hits[0].area_id


def working_rows(roster: Roster, rows: NDArray[np.intp], day: date) -> NDArray[np.intp]:
    """The ``rows`` with a shift on local ``day`` (their order kept)."""
    keep: NDArray[np.intp] = rows[roster.shift_start[rows, day.weekday()] >= 0]
    return keep


def worker_days(roster: Roster, ids: Sequence[int], day: date, tz: ZoneInfo) -> list[WorkerDay]:
    """The engine's view of workers ``ids`` on local ``day``: shift, breaks, home, mode."""
    row_of = {int(w): r for r, w in enumerate(roster.ids.tolist())}
    out: list[WorkerDay] = []
    for wid in ids:
        row = row_of[int(wid)]
        shift = roster.shift_window(row, day, tz)
        if shift is None:
            continue
        out.append(
            WorkerDay(
                id=int(wid),
                shift_start=int(shift[0].timestamp()),
                shift_end=int(shift[1].timestamp()),
                start_lat=float(roster.lat[row]),
                start_lng=float(roster.lng[row]),
                breaks=tuple(
                    Break(int(a.timestamp()), int(b.timestamp()))
                    for a, b in roster.breaks_on(row, day, tz)
                ),
                mode=roster.modes[row] if roster.modes else "ebike",
            )
        )
    return out


def booked_visits(held: Sequence[BookedVisit]) -> list[Visit]:
    """Live reservations as confirmed visits pinned to their worker and start."""
    return [
        Visit(
            id=h.reservation_id,
            lat=h.lat,
            lng=h.lng,
            duration_s=max(1, int((h.end - h.start).total_seconds())),
            window_start=int(h.start.timestamp()),
            window_end=int(h.start.timestamp()),
            status=VisitStatus.CONFIRMED,
            pinned_worker=h.worker_id,
        )
        for h in held
    ]


@dataclass(frozen=True)
class SlotOut:
    """An offered start window (UTC) and how many workers could take it."""

    start: datetime
    end: datetime
    workers: int


async def available_slots(
    session: AsyncSession,
    env: BookingEnv,
    svc: Service,
    lat: float,
    lng: float,
    day: date,
    settings: Settings,
    *,
    now: datetime,
) -> list[SlotOut]:
    """Start windows on local ``day`` that one of the nearest eligible workers can take.

    The workers' days (``worker_days`` + their live reservations) go to
    ``dispatch.slots.booked_slots`` (travel and duration fit), the very test
    ``choose_booked_worker`` makes for a booking; CPU work runs off the event loop.
    """
    await area_for(session, env.lookup, svc, lat, lng)
    tz = service_tz(settings)
    if day > (now.astimezone(tz) + timedelta(days=settings.booking_horizon_days)).date():
        raise SlotTooFar(days=settings.booking_horizon_days)
    roster = await env.rosters.get(session, svc.enterprise_id)
    rows, _ = roster.in_reach(
        frozenset(svc.required_skills or ()), lat, lng, settings.booking_max_distance_km * 1000.0
    )
    ids = [int(w) for w in roster.ids[working_rows(roster, rows, day)[:LIST_CANDIDATES]]]
    if not ids:
        return []
    bounds = day_bounds(day, tz)
    _, held = await env.store.free_days(session, ids, None, bounds, len(ids))
    workers = worker_days(roster, ids, day, tz)
    visits = booked_visits(held)
    request = ServiceRequest(duration_s=svc.duration_min * 60)

    def run() -> list[tuple[int, int, int]]:
        found = booked_slots(
            request,
            (lat, lng),
            (int(bounds[0].timestamp()), int(bounds[1].timestamp())),
            booked_days(workers, visits),
            travel=env.travel,
            granularity_s=settings.slot_granularity_s,
            lead_time_s=settings.slot_lead_time_s,
            now=int(now.timestamp()),
        )
        return [(s.start, s.end, s.workers) for s in found]

    return [
        SlotOut(datetime.fromtimestamp(s, UTC), datetime.fromtimestamp(e, UTC), n)
        for s, e, n in await anyio.to_thread.run_sync(run)
    ]

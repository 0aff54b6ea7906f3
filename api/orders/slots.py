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
from api.core.settings import Settings
from api.orders.errors import OutsideArea, SlotTooFar
from api.orders.quote import service_tz
from api.orders.roster import Roster, RosterCache
from api.orders.store import BookedVisit, OrderStore
from dispatch.booked import BookedDays, booked_slots
from dispatch.model import TRANSPORT_MODES
from dispatch.slots import DEFAULT_TIE_COST, ServiceRequest
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


def booked_days_of(
    roster: Roster, ids: Sequence[int], day: date, tz: ZoneInfo, held: Sequence[BookedVisit]
) -> BookedDays:
    """The engine's view of workers ``ids`` on local ``day`` and their ``held`` visits.

    Workers without a shift that day are left out (with their visits); each worker's
    shift, breaks, home and transport mode come from the roster, each live reservation
    is a visit at its worker's booked time and place.
    """
    sorter = np.argsort(roster.ids, kind="stable")
    want = np.asarray(ids, dtype=np.int64)
    rows = sorter[np.searchsorted(roster.ids, want, sorter=sorter)]
    shifts: list[tuple[int, int, int]] = []
    brk: list[list[tuple[int, int]]] = []
    for row in rows.tolist():
        shift = roster.shift_window(row, day, tz)
        if shift is not None:
            shifts.append((row, int(shift[0].timestamp()), int(shift[1].timestamp())))
            brk.append(
                sorted(
                    (int(a.timestamp()), int(b.timestamp()))
                    for a, b in roster.breaks_on(row, day, tz)
                )
            )
    kept = np.array([r for r, _, _ in shifts], dtype=np.int64)
    index = {int(roster.ids[r]): k for k, r in enumerate(kept.tolist())}
    mine = sorted(
        ((index[h.worker_id], int(h.start.timestamp()), int(h.end.timestamp()), h.lat, h.lng)
         for h in held if h.worker_id in index),
        key=lambda v: (v[0], v[1]),
    )  # fmt: skip
    n = len(kept)
    count = np.bincount(np.array([v[0] for v in mine], dtype=np.int64), minlength=n)
    big = np.iinfo(np.int32).max
    lat, lng = roster.lat[kept], roster.lng[kept]
    modes = roster.modes or ("ebike",) * len(roster)
    return BookedDays(
        worker_id=roster.ids[kept],
        shift_start=np.array([a for _, a, _ in shifts], dtype=np.int64),
        shift_end=np.array([e for _, _, e in shifts], dtype=np.int64),
        home_lat=lat,
        home_lng=lng,
        end_lat=lat,
        end_lng=lng,
        mode=np.array([TRANSPORT_MODES.index(modes[r]) for r in kept.tolist()], dtype=np.int64),
        skills=np.zeros(n, dtype=np.uint64),
        visits_left=np.full(n, big, dtype=np.int64) - count,
        load_left=np.full(n, big, dtype=np.int64),
        visit_offset=np.concatenate([[0], np.cumsum(count)]).astype(np.int64),
        visit_start=np.array([v[1] for v in mine], dtype=np.int64),
        visit_end=np.array([max(v[2], v[1] + 1) for v in mine], dtype=np.int64),
        visit_lat=np.array([v[3] for v in mine], dtype=np.float64),
        visit_lng=np.array([v[4] for v in mine], dtype=np.float64),
        break_offset=np.concatenate([[0], np.cumsum([len(b) for b in brk])]).astype(np.int64),
        break_start=np.array([a for b in brk for a, _ in b], dtype=np.int64),
        break_end=np.array([e for b in brk for _, e in b], dtype=np.int64),
    )


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

    The workers' days (``booked_days_of``: shifts and live reservations) go to
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
    days = booked_days_of(roster, ids, day, tz, held)
    request = ServiceRequest(duration_s=svc.duration_min * 60)

    def run() -> list[tuple[int, int, int]]:
        found = booked_slots(
            request,
            (lat, lng),
            (int(bounds[0].timestamp()), int(bounds[1].timestamp())),
            days,
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

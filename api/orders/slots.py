"""Bookable slots, and the workers' days both the slot list and a booking are read from.

A slot is offered when some eligible worker can insert the visit into their day as
booked (held and confirmed reservations as visits, shift, breaks, home, transport
mode) with real travel times (``dispatch.slots``); a booking asks the same engine
for its worker (``api.orders.booking``). Times are UTC-aware datetimes; shifts are
read in ``settings.service_timezone``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
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
from api.orders.roster import NO_SHIFT, Roster, RosterCache
from api.orders.store import BookedVisit, DaysQuery, OrderStore
from dispatch.booked import BookedDays, booked_slots
from dispatch.model import TRANSPORT_MODES
from dispatch.slots import DEFAULT_TIE_COST, ServiceRequest
from geo.travel import HaversineTravelModel, TravelTimeModel

#: Nearest eligible workers a slot list looks at (a booking looks at these first).
LIST_CANDIDATES = 40
#: Free workers whose days one booking pass reads; the next pass takes the next ones.
BOOKING_CHUNK = 12


@dataclass(frozen=True)
class Guess:
    """A booking's visit length and candidate workers (nearest first)."""

    duration_s: int
    ids: tuple[int, ...]


class CandidateMemo:
    """Per process: the candidates last found for a (service, address, weekday).

    The next booking of the same kind reads their days in its first query, one round
    trip fewer. A guess is never trusted: finding the candidates costs no query (the
    roster is cached), so every booking finds them again and keeps what it read only
    when they and the visit length are the same.
    """

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._guesses: OrderedDict[tuple[int, int, int], Guess] = OrderedDict()

    def get(self, key: tuple[int, int, int]) -> Guess | None:
        """The guess for ``key``, if any."""
        guess = self._guesses.get(key)
        if guess is not None:
            self._guesses.move_to_end(key)
        return guess

    def put(self, key: tuple[int, int, int], guess: Guess) -> None:
        """Remember ``guess`` (the least recently used one goes when full)."""
        self._guesses[key] = guess
        self._guesses.move_to_end(key)
        while len(self._guesses) > self._size:
            self._guesses.popitem(last=False)


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
    candidates: CandidateMemo = field(default_factory=CandidateMemo)


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
    weekday = day.weekday()
    rows = roster.rows_of(ids)
    rows = rows[roster.shift_start[rows, weekday] != NO_SHIFT]
    at = _local_clock(day, tz)
    brk = [roster.breaks[r][weekday] if roster.breaks else () for r in rows.tolist()]
    index = {w: k for k, w in enumerate(roster.ids[rows].tolist())}
    mine = sorted(
        (index[h.worker_id], h.start, max(h.end, h.start + 1), h.lat, h.lng)
        for h in held
        if h.worker_id in index
    )
    n = rows.size
    count = np.bincount(np.array([v[0] for v in mine], dtype=np.int64), minlength=n)
    big = np.iinfo(np.int32).max
    lat, lng = roster.lat[rows], roster.lng[rows]
    modes = roster.modes or ("ebike",) * len(roster)
    return BookedDays(
        worker_id=roster.ids[rows],
        shift_start=np.array([at(m) for m in roster.shift_start[rows, weekday].tolist()],
                             dtype=np.int64),
        shift_end=np.array([at(m) for m in roster.shift_end[rows, weekday].tolist()],
                           dtype=np.int64),
        home_lat=lat,
        home_lng=lng,
        end_lat=lat,
        end_lng=lng,
        mode=np.array([TRANSPORT_MODES.index(modes[r]) for r in rows.tolist()], dtype=np.int64),
        skills=np.zeros(n, dtype=np.uint64),
        visits_left=np.full(n, big, dtype=np.int64) - count,
        load_left=np.full(n, big, dtype=np.int64),
        visit_offset=np.concatenate([[0], np.cumsum(count)]).astype(np.int64),
        visit_start=np.array([v[1] for v in mine], dtype=np.int64),
        visit_end=np.array([v[2] for v in mine], dtype=np.int64),
        visit_lat=np.array([v[3] for v in mine], dtype=np.float64),
        visit_lng=np.array([v[4] for v in mine], dtype=np.float64),
        break_offset=np.concatenate([[0], np.cumsum([len(b) for b in brk])]).astype(np.int64),
        break_start=np.array([at(a) for b in brk for a, _ in b], dtype=np.int64),
        break_end=np.array([at(e) for b in brk for _, e in b], dtype=np.int64),
    )  # fmt: skip


def _local_clock(day: date, tz: ZoneInfo) -> Callable[[int], int]:
    """Minutes from local midnight of ``day`` (wall clock) to epoch seconds, memoised."""
    midnight = datetime.combine(day, time(0), tzinfo=tz)
    seen: dict[int, int] = {}

    def at(minutes: int) -> int:
        out = seen.get(minutes)
        if out is None:
            out = seen[minutes] = int((midnight + timedelta(minutes=minutes)).timestamp())
        return out

    return at


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
    found = await env.store.free_days(session, DaysQuery(ids, None, bounds, len(ids)))
    days = booked_days_of(roster, ids, day, tz, found.held)
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

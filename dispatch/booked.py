"""Bookings into workers' days as booked: the days as arrays and a vectorised insertion.

The fast path bookings and the slot list take (``api/orders``): per candidate worker the
visits around a slot, the rides in and out at their real departures, and the added travel,
for every slot × worker at once, with the same feasibility and tie-break rules as a
booked day plan (``dispatch.slots.booked_plan`` + ``choose_worker``); see
``booked_insertions`` for the one deliberate difference under time-dependent travel.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dispatch._vrp_core import (
    MODE_NAMES,
    TRAVEL_MARGIN,
    FloatArray,
    IntArray,
    TravelMatrix,
    TravelModelLike,
)
from dispatch.errors import InvalidInput
from dispatch.schedule import (
    Insertion,
    Visit,
    WorkerDay,
)
from dispatch.slots import (
    DEFAULT_GRANULARITY_S,
    DEFAULT_LEAD_TIME_S,
    DEFAULT_MAX_LEG_S,
    DEFAULT_TIE_COST,
    BookingChoice,
    ServiceRequest,
    Slot,
    check_choice,
    check_location,
    ordered,
    probe,
    slot_grid,
    start_of,
)


@dataclass(frozen=True)
class BookedDays:
    """Candidate workers' days as booked, as arrays (epoch seconds, WGS-84 degrees).

    Per worker ``w`` (``W`` of them, in the caller's order): ``worker_id``, shift
    ``[shift_start, shift_end]``, home ``home_lat``/``home_lng`` (where the day starts)
    and ``end_lat``/``end_lng`` (where it ends), ``mode`` (code: walk 0, ebike 1, car 2),
    ``skills`` bitmask, and how many more visits (``visits_left``) and how much more load
    (``load_left``) they take. Booked visits of worker ``w`` are
    ``visit_*[visit_offset[w]:visit_offset[w + 1]]``, sorted by start; breaks likewise
    under ``break_offset``. Build one from ``WorkerDay`` and pinned ``Visit`` objects
    with ``booked_days``.
    """

    worker_id: IntArray
    shift_start: IntArray
    shift_end: IntArray
    home_lat: FloatArray
    home_lng: FloatArray
    end_lat: FloatArray
    end_lng: FloatArray
    mode: IntArray
    skills: NDArray[np.uint64]
    visits_left: IntArray
    load_left: IntArray
    visit_offset: IntArray
    visit_start: IntArray
    visit_end: IntArray
    visit_lat: FloatArray
    visit_lng: FloatArray
    break_offset: IntArray
    break_start: IntArray
    break_end: IntArray

    def __post_init__(self) -> None:
        w = np.shape(self.worker_id)[0] if np.ndim(self.worker_id) == 1 else -1
        if w < 0:
            raise InvalidInput("worker_id must be a 1-d array")
        for name in ("shift_start", "shift_end", "home_lat", "home_lng", "end_lat", "end_lng",
                     "mode", "skills", "visits_left", "load_left"):  # fmt: skip
            if np.shape(getattr(self, name)) != (w,):
                raise InvalidInput(f"{name} must have one entry per worker ({w})")
        for kind, cols in (
            ("visit", ("start", "end", "lat", "lng")),
            ("break", ("start", "end")),
        ):
            off = np.asarray(getattr(self, f"{kind}_offset"))
            if off.shape != (w + 1,) or off[0] != 0 or np.any(np.diff(off) < 0):
                raise InvalidInput(f"{kind}_offset must be {w + 1} non-decreasing counts from 0")
            for col in cols:
                if np.shape(getattr(self, f"{kind}_{col}")) != (int(off[-1]),):
                    raise InvalidInput(f"{kind}_{col} must have {int(off[-1])} entries")
            start, end = getattr(self, f"{kind}_start"), getattr(self, f"{kind}_end")
            if np.any(end < start):
                raise InvalidInput(
                    f"{kind}_end before {kind}_start at {int(np.argmax(end < start))}"
                )
            same = np.repeat(np.arange(w), np.diff(off))
            unsorted = (np.diff(start) < 0) & (same[1:] == same[:-1])
            if np.any(unsorted):
                raise InvalidInput(f"{kind}_start must be sorted per worker")
        if np.any(self.shift_end < self.shift_start):
            bad = int(np.argmax(self.shift_end < self.shift_start))
            raise InvalidInput(
                f"shift_end before shift_start for worker {int(self.worker_id[bad])}"
            )
        for name in ("home_lat", "end_lat", "visit_lat"):
            if not np.all(np.abs(getattr(self, name)) <= 90.0):
                raise InvalidInput(f"{name} must be finite degrees in [-90, 90]")
        for name in ("home_lng", "end_lng", "visit_lng"):
            if not np.all(np.abs(getattr(self, name)) <= 180.0):
                raise InvalidInput(f"{name} must be finite degrees in [-180, 180]")
        if np.any((self.mode < 0) | (self.mode >= len(MODE_NAMES))):
            raise InvalidInput(f"mode must be a code in 0..{len(MODE_NAMES) - 1}")

    @property
    def size(self) -> int:
        """Number of workers."""
        return int(self.worker_id.shape[0])


def booked_days(workers: Sequence[WorkerDay], visits: Sequence[Visit]) -> BookedDays:
    """``workers``' days as arrays, with ``visits`` at their pinned worker and start.

    The same input ``booked_plan`` takes: every visit needs a ``pinned_worker`` among
    ``workers``; its start is ``pinned_start`` or ``window_start``.
    """
    index = {w.id: k for k, w in enumerate(workers)}
    own = np.empty(len(visits), dtype=np.int64)
    for j, v in enumerate(visits):
        k = index.get(v.pinned_worker)  # type: ignore[arg-type]
        if k is None:
            raise InvalidInput(f"visit {v.id}: pinned_worker {v.pinned_worker} is not in workers")
        own[j] = k
    start = np.array([start_of(v) for v in visits], dtype=np.int64)
    order = np.lexsort((start, own))
    vs = [visits[int(j)] for j in order]
    n_w = len(workers)
    demand = np.bincount(own, weights=[v.demand for v in visits], minlength=n_w)
    count = np.bincount(own, minlength=n_w)
    big = np.iinfo(np.int32).max
    brk = [sorted((b.start, b.end) for b in w.breaks) for w in workers]
    return BookedDays(
        worker_id=np.array([w.id for w in workers], dtype=np.int64),
        shift_start=np.array([w.shift_start for w in workers], dtype=np.int64),
        shift_end=np.array([w.shift_end for w in workers], dtype=np.int64),
        home_lat=np.array([w.start_lat for w in workers], dtype=np.float64),
        home_lng=np.array([w.start_lng for w in workers], dtype=np.float64),
        end_lat=np.array([w.end_lat for w in workers], dtype=np.float64),
        end_lng=np.array([w.end_lng for w in workers], dtype=np.float64),
        mode=np.array([w.mode_code for w in workers], dtype=np.int64),
        skills=np.array([w.skills for w in workers], dtype=np.uint64),
        visits_left=np.array(
            [big if w.max_visits is None else w.max_visits for w in workers], dtype=np.int64
        )
        - count,
        load_left=np.array(
            [big if w.capacity is None else w.capacity for w in workers], dtype=np.int64
        )
        - demand.astype(np.int64),
        visit_offset=np.concatenate([[0], np.cumsum(count)]).astype(np.int64),
        visit_start=start[order],
        visit_end=np.array([start_of(v) + v.duration_s for v in vs], dtype=np.int64),
        visit_lat=np.array([v.lat for v in vs], dtype=np.float64),
        visit_lng=np.array([v.lng for v in vs], dtype=np.float64),
        break_offset=np.concatenate([[0], np.cumsum([len(b) for b in brk])]).astype(np.int64),
        break_start=np.array([a for b in brk for a, _ in b], dtype=np.int64),
        break_end=np.array([e for b in brk for _, e in b], dtype=np.int64),
    )


@dataclass(frozen=True)
class _Gaps:
    """Every place a new visit can go in the booked days: one row per gap, by worker."""

    worker: IntArray  # index into the BookedDays workers
    offset: IntArray  # (W + 1,) first gap row of each worker
    position: IntArray  # booked visits before the gap
    prev_end: IntArray  # when the worker can leave the previous place
    prev_lat: FloatArray
    prev_lng: FloatArray
    next_lat: FloatArray
    next_lng: FloatArray
    next_latest: IntArray  # latest arrival at the next stop (visit start or shift end)


#: ``next_latest`` of a gap that nothing may use (right before a break).
_NEVER = np.iinfo(np.int64).min // 4


def _gaps(days: BookedDays) -> _Gaps:
    """The gaps of every worker's day: before each visit or break and before going home.

    As in a booked day plan: breaks sit among the visits in time order; nothing goes
    right before a break (the ride after the break would change with it); a visit
    right after a break leaves from the place before the break when the break ends.
    """
    n_w = days.size
    nv = np.diff(days.visit_offset)
    nb = np.diff(days.break_offset)
    own = np.repeat(np.arange(n_w), nv)
    start, end = days.visit_start, days.visit_end
    lat, lng = days.visit_lat, days.visit_lng
    is_visit = np.ones(own.size, dtype=bool)
    n_items = nv + nb
    item_off = days.visit_offset
    if days.break_start.size:
        own = np.concatenate([own, np.repeat(np.arange(n_w), nb)])
        start = np.concatenate([start, days.break_start])
        end = np.concatenate([end, days.break_end])
        is_visit = np.concatenate([is_visit, np.zeros(nb.sum(), bool)])
        order = np.lexsort((~is_visit, end, start, own))
        own, start, end, is_visit = own[order], start[order], end[order], is_visit[order]
        lat = np.concatenate([lat, np.zeros(nb.sum())])[order]
        lng = np.concatenate([lng, np.zeros(nb.sum())])[order]
        item_off = np.concatenate([[0], np.cumsum(n_items)])
        # A break's place is the last visit's before it, or home.
        last = np.maximum.accumulate(np.where(is_visit, np.arange(own.size), -1))
        at_home = last < item_off[own]
        src = np.maximum(last, 0)
        lat = np.where(is_visit, lat, np.where(at_home, days.home_lat[own], lat[src]))
        lng = np.where(is_visit, lng, np.where(at_home, days.home_lng[own], lng[src]))
    seen = np.concatenate([[0], np.cumsum(is_visit)])  # visits among the first j items
    offset = np.concatenate([[0], np.cumsum(n_items + 1)]).astype(np.int64)
    worker = np.repeat(np.arange(n_w), n_items + 1)
    g = np.arange(worker.size) - offset[worker]
    first, home = g == 0, g == n_items[worker]
    prev = np.maximum(item_off[worker] + g - 1, 0)
    nxt = np.minimum(item_off[worker] + g, max(own.size - 1, 0))

    def pick(a: NDArray[Any], fill: NDArray[Any]) -> NDArray[Any]:
        return np.where(first, fill, a[prev]) if own.size else fill

    def after(a: NDArray[Any], fill: NDArray[Any]) -> NDArray[Any]:
        return np.where(home, fill, a[nxt]) if own.size else fill

    next_latest = after(np.where(is_visit, start, _NEVER), days.shift_end[worker])
    return _Gaps(
        worker=worker,
        offset=offset,
        position=(seen[item_off[worker] + g] - seen[item_off[worker]]).astype(np.int64),
        prev_end=pick(end, days.shift_start[worker]).astype(np.int64),
        prev_lat=pick(lat, days.home_lat[worker]),
        prev_lng=pick(lng, days.home_lng[worker]),
        next_lat=after(lat, days.end_lat[worker]),
        next_lng=after(lng, days.end_lng[worker]),
        next_latest=np.asarray(next_latest, dtype=np.int64),
    )


def _rides(
    travel: TravelModelLike,
    mode: IntArray,
    points: tuple[FloatArray, FloatArray, FloatArray, FloatArray],
    at: IntArray,
) -> IntArray:
    """Seconds of each ride departing at ``at``, as the plans count them (with the margin).

    One call for every mode: the travel model broadcasts an array of mode codes.
    """
    if mode.size == 0:
        return np.zeros(0, dtype=np.int64)
    secs = np.asarray(travel.seconds(*points, at, mode=mode), dtype=np.float64)
    out: IntArray = np.ceil(secs * TRAVEL_MARGIN).astype(np.int64)
    # A ride to the very same point takes no time, as in the plans.
    out[(points[0] == points[2]) & (points[1] == points[3])] = 0
    return out


@dataclass(frozen=True)
class BookedInsertions:
    """Per slot and worker, the best place of a new visit: ``(S, W)`` arrays.

    ``ok`` says whether the worker can take the slot; where so, ``start`` (epoch
    seconds), ``position`` (booked visits before it) and ``added_travel_s`` (ride in +
    ride out - the direct ride it replaces) of the cheapest gap, the earliest on ties.
    """

    ok: NDArray[np.bool_]
    start: IntArray
    position: IntArray
    added_travel_s: IntArray


def booked_insertions(
    service: ServiceRequest,
    location: tuple[float, float],
    days: BookedDays,
    starts: IntArray,
    width_s: int,
    *,
    travel: TravelModelLike,
    max_leg_s: int = DEFAULT_MAX_LEG_S,
) -> BookedInsertions:
    """Where each worker of ``days`` can take a visit starting in ``[s, s + width_s]``.

    Vectorised over slots ``starts`` x workers x gaps. The ride in leaves the previous
    stop (or home) when it ends; the ride out leaves the new visit when it ends; both
    are ``travel.seconds`` at that departure (time-dependent, with the plans' margin)
    and at most ``max_leg_s``. The visit starts at ``max(s, previous end + ride in)``,
    no later than ``s + width_s``, and its ride out reaches the next visit by its start
    (home by the shift end). Skills, visit count and load are checked as in a plan.
    """
    lat, lng = check_location(location)
    if isinstance(travel, TravelMatrix):
        raise InvalidInput("travel must be a travel model (a TravelMatrix has no departure times)")
    if max_leg_s <= 0:
        raise InvalidInput(f"max_leg_s must be > 0, got {max_leg_s}")
    if width_s < 0:
        raise InvalidInput(f"width_s must be >= 0, got {width_s}")
    starts = np.asarray(starts, dtype=np.int64).reshape(-1)
    gp = _gaps(days)
    mode = days.mode[gp.worker]
    need = np.uint64(service.skills)
    n_g = gp.worker.size
    here = (np.full(n_g, lat), np.full(n_g, lng))
    # The ride in and the direct ride it replaces both leave the previous place at its end.
    both = _rides(
        travel,
        np.tile(mode, 2),
        (
            np.tile(gp.prev_lat, 2),
            np.tile(gp.prev_lng, 2),
            np.concatenate([here[0], gp.next_lat]),
            np.concatenate([here[1], gp.next_lng]),
        ),
        np.tile(gp.prev_end, 2),
    )
    ride_in, direct = both[:n_g], both[n_g:]
    static = (
        ((days.skills[gp.worker] & need) == need)
        & (days.visits_left[gp.worker] >= 1)
        & (days.load_left[gp.worker] >= service.demand)
        & (ride_in <= max_leg_s)
        & (gp.next_latest > _NEVER)
    )
    begin = np.maximum(starts[:, None], (gp.prev_end + ride_in)[None, :])  # (S, G)
    maybe = static[None, :] & (begin <= (starts + width_s)[:, None])
    maybe &= begin + service.duration_s <= gp.next_latest[None, :]
    s_idx, g_idx = np.nonzero(maybe)
    ride_out = _rides(
        travel,
        mode[g_idx],
        (here[0][g_idx], here[1][g_idx], gp.next_lat[g_idx], gp.next_lng[g_idx]),
        begin[s_idx, g_idx] + service.duration_s,
    )
    fits = (ride_out <= max_leg_s) & (
        begin[s_idx, g_idx] + service.duration_s + ride_out <= gp.next_latest[g_idx]
    )
    s_idx, g_idx, ride_out = s_idx[fits], g_idx[fits], ride_out[fits]
    added = ride_in[g_idx] + ride_out - direct[g_idx]
    # Cheapest gap per (slot, worker), the earliest gap on ties.
    n_s, n_w = starts.size, days.size
    best = np.lexsort((g_idx, added, gp.worker[g_idx], s_idx))
    s_b, g_b, a_b = s_idx[best], g_idx[best], added[best]
    w_b = gp.worker[g_b]
    head = np.r_[True, (s_b[1:] != s_b[:-1]) | (w_b[1:] != w_b[:-1])] if best.size else best > 0
    s_b, g_b, a_b, w_b = s_b[head], g_b[head], a_b[head], w_b[head]
    ok = np.zeros((n_s, n_w), dtype=bool)
    start = np.zeros((n_s, n_w), dtype=np.int64)
    position = np.zeros((n_s, n_w), dtype=np.int64)
    added_travel = np.zeros((n_s, n_w), dtype=np.int64)
    ok[s_b, w_b] = True
    start[s_b, w_b] = begin[s_b, g_b]
    position[s_b, w_b] = gp.position[g_b]
    added_travel[s_b, w_b] = a_b
    return BookedInsertions(ok, start, position, added_travel)


def choose_booked_worker(
    service: ServiceRequest,
    location: tuple[float, float],
    slot: Slot,
    days: BookedDays,
    *,
    travel: TravelModelLike,
    visit_id: int = -1,
    customer: int = -1,
    seed: int | None = None,
    tie_cost: int = DEFAULT_TIE_COST,
    max_leg_s: int = DEFAULT_MAX_LEG_S,
    preferred_worker: int | None = None,
) -> BookingChoice:
    """``choose_worker`` on days as booked, without building a day plan.

    Same options, order, seeded tie spreading and preferred worker as ``choose_worker``
    over ``booked_plan(...)`` of the same days (``plan_index`` is all 0); feasibility is
    ``booked_insertions``'s, which ``booked_slots`` lists. The one deliberate difference:
    rides are timed at their real departure instead of the slowest over the plan's
    sampled departures, so a fast ride at a quiet hour is not refused for a slow one
    at rush hour.
    """
    lat, lng = check_location(location)
    check_choice(slot, tie_cost, max_leg_s)
    visit = probe(service, lat, lng, slot.start, slot.end, None, visit_id, customer)
    found = booked_insertions(
        service, (lat, lng), days, np.array([slot.start]), slot.end - slot.start,
        travel=travel, max_leg_s=max_leg_s,
    )  # fmt: skip
    options = [
        (0, Insertion(int(days.worker_id[k]), int(found.position[0, k]),
                      int(found.start[0, k]), int(found.added_travel_s[0, k]),
                      int(found.added_travel_s[0, k])))
        for k in np.flatnonzero(found.ok[0]).tolist()
    ]  # fmt: skip
    return ordered(visit, options, seed, tie_cost, preferred_worker)


def booked_slots(
    service: ServiceRequest,
    location: tuple[float, float],
    day: tuple[int, int],
    days: BookedDays,
    *,
    travel: TravelModelLike,
    granularity_s: int = DEFAULT_GRANULARITY_S,
    lead_time_s: int = DEFAULT_LEAD_TIME_S,
    now: int,
    max_leg_s: int = DEFAULT_MAX_LEG_S,
) -> tuple[Slot, ...]:
    """``available_slots`` on days as booked: a slot is listed iff ``choose_booked_worker``
    finds a worker for it, with the number of such workers."""
    if lead_time_s < 0:
        raise InvalidInput(f"lead_time_s must be >= 0, got {lead_time_s}")
    starts = slot_grid(day, granularity_s, int(now) + lead_time_s)
    found = booked_insertions(
        service, location, days, starts, granularity_s, travel=travel, max_leg_s=max_leg_s
    )
    counts = found.ok.sum(axis=1)
    return tuple(
        Slot(int(s), int(s) + granularity_s, int(c))
        for s, c in zip(starts.tolist(), counts.tolist(), strict=True)
        if c > 0
    )


__all__ = [
    "BookedDays",
    "BookedInsertions",
    "booked_days",
    "booked_insertions",
    "booked_slots",
    "choose_booked_worker",
]

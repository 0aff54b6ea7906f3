"""Bookable time slots: offer a start window only if some suitable worker can really take it.

A slot ``[start, end]`` (epoch seconds) is the window in which the worker
arrives and starts the service. It is offered when at least one worker with
the skills can insert the visit into their current day plan with every
visit already in it still on time, the shift end respected, capacity left,
and no ride longer than ``max_leg_s`` (a worker is not sent across the city
for one job; a district without workers nearby gets no slots). Every gap of
every route is evaluated for every slot at once with numpy.

Bookings and the API's slot list work on days as booked (``BookedDays``: shifts,
breaks, homes and pinned visits as arrays) through ``booked_insertions``: the same
gaps and rules as a booked day plan (``booked_plan`` + ``choose_worker``), without
building one, and with each ride timed at its real departure. ``choose_booked_worker``
and ``booked_slots`` are that one test for one slot and for a day's grid.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
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
from dispatch.errors import DispatchError, InvalidInput
from dispatch.schedule import (
    DayPlan,
    Insertion,
    Objective,
    Visit,
    VisitStatus,
    WorkerDay,
    plan_with_insertion,
)
from dispatch.schedule.insertion import external_insertions, gap_rides, plan_gaps
from dispatch.schedule.problem import build_problem, build_space
from dispatch.schedule.routes import assemble, with_breaks

__all__ = [
    "BookedDays",
    "BookedInsertions",
    "BookingChoice",
    "Reservation",
    "ServiceRequest",
    "Slot",
    "SlotUnavailable",
    "available_slots",
    "booked_days",
    "booked_insertions",
    "booked_plan",
    "booked_slots",
    "choose_booked_worker",
    "choose_worker",
    "reserve_slot",
]

#: Default slot step and width: half an hour.
DEFAULT_GRANULARITY_S = 1800
#: Default minimum notice between booking and the slot start: two hours.
DEFAULT_LEAD_TIME_S = 2 * 3600
#: Default longest ride to or from a booked visit: one hour.
DEFAULT_MAX_LEG_S = 3600
#: Default tie band of ``choose_worker``: insertions within this many cost units (travel
#: seconds) of the cheapest count as equally good and are ordered by the seed.
DEFAULT_TIE_COST = 120


class SlotUnavailable(DispatchError, LookupError):
    """The slot can no longer be booked (another booking took the capacity)."""


@dataclass(frozen=True)
class ServiceRequest:
    """What the customer books: service duration (seconds), skills bitmask, load."""

    duration_s: int
    skills: int = 0
    demand: int = 0

    def __post_init__(self) -> None:
        if self.duration_s <= 0:
            raise InvalidInput(f"duration_s must be > 0, got {self.duration_s}")
        if self.skills < 0:
            raise InvalidInput(f"skills must be a non-negative bitmask, got {self.skills}")
        if self.demand < 0:
            raise InvalidInput(f"demand must be >= 0, got {self.demand}")


@dataclass(frozen=True)
class Slot:
    """A start window (epoch seconds) and how many workers could take it."""

    start: int
    end: int
    workers: int


@dataclass(frozen=True)
class Reservation:
    """A tentative booking: the visit, its worker and place in the route, and the new plan."""

    visit: Visit
    insertion: Insertion
    plan: DayPlan

    @property
    def worker_id(self) -> int:
        """The worker tentatively holding the visit."""
        return self.insertion.worker_id


def _check_location(location: tuple[float, float]) -> tuple[float, float]:
    try:
        lat, lng = float(location[0]), float(location[1])
    except (TypeError, ValueError, IndexError) as exc:
        raise InvalidInput(f"location must be (lat, lng) in degrees, got {location!r}") from exc
    if not (abs(lat) <= 90.0 and abs(lng) <= 180.0):
        raise InvalidInput(f"location must be finite (lat, lng) degrees, got {location!r}")
    return lat, lng


def _plans(plans: DayPlan | Sequence[DayPlan]) -> list[DayPlan]:
    return [plans] if isinstance(plans, DayPlan) else list(plans)


def _slot_grid(day: tuple[int, int], granularity_s: int, earliest: int) -> NDArray[np.int64]:
    lo, hi = int(day[0]), int(day[1])
    if hi < lo:
        raise InvalidInput(f"day end {hi} is before its start {lo}")
    if granularity_s <= 0:
        raise InvalidInput(f"granularity_s must be > 0, got {granularity_s}")
    starts = np.arange(lo, hi, granularity_s, dtype=np.int64)
    return starts[starts >= earliest]


def _workers_per_slot(
    plan: DayPlan,
    probe: Visit,
    starts: IntArray,
    width_s: int,
    max_leg_s: int,
) -> NDArray[np.int64]:
    """(S,) number of distinct workers of ``plan`` who can take the probe in each slot."""
    p, _, flat = plan_gaps(plan)
    if flat.route.size == 0 or starts.size == 0:
        return np.zeros(starts.size, dtype=np.int64)
    to_new, from_new = gap_rides(p, flat, probe)
    need = np.uint64(probe.skills)
    static = (
        ((flat.skills & need) == need)
        & (flat.load_left >= probe.demand)
        & (flat.visits_left >= 1)
        & (to_new <= max_leg_s)
        & (from_new <= max_leg_s)
    )
    rel = starts - p.t0
    arrival = flat.prev_end + to_new  # (G,)
    start = np.maximum(arrival[None, :], rel[:, None])  # (S, G)
    next_start = np.maximum(start + probe.duration_s + from_new[None, :], flat.next_early[None, :])
    ok = (
        static[None, :]
        & (start <= (rel + width_s)[:, None])
        & (next_start <= flat.next_latest[None, :])
    )
    counts = np.zeros(starts.size, dtype=np.int64)
    for s_idx in np.flatnonzero(ok.any(axis=1)):
        counts[s_idx] = np.unique(flat.route[ok[s_idx]]).size
    return counts


def _probe(
    service: ServiceRequest,
    lat: float,
    lng: float,
    start: int,
    end: int,
    node: int | None,
    visit_id: int = -1,
    customer: int = -1,
) -> Visit:
    return Visit(
        id=visit_id,
        lat=lat,
        lng=lng,
        duration_s=service.duration_s,
        window_start=start,
        window_end=end,
        skills=service.skills,
        demand=service.demand,
        customer=customer,
        node=node,
        status=VisitStatus.PLANNED,
    )


def available_slots(
    service: ServiceRequest,
    location: tuple[float, float],
    day: tuple[int, int],
    plans: DayPlan | Sequence[DayPlan],
    *,
    granularity_s: int = DEFAULT_GRANULARITY_S,
    lead_time_s: int = DEFAULT_LEAD_TIME_S,
    now: int,
    max_leg_s: int = DEFAULT_MAX_LEG_S,
    node: int | None = None,
) -> tuple[Slot, ...]:
    """Start windows in ``day`` (epoch seconds) that some eligible worker can take.

    Slots start every ``granularity_s`` seconds and are that wide; none starts
    before ``now + lead_time_s``. ``plans`` are the current day plans (one per
    district or team). ``node`` is the location's node when plans use a
    ``TravelMatrix``.
    """
    lat, lng = _check_location(location)
    if lead_time_s < 0:
        raise InvalidInput(f"lead_time_s must be >= 0, got {lead_time_s}")
    if max_leg_s <= 0:
        raise InvalidInput(f"max_leg_s must be > 0, got {max_leg_s}")
    starts = _slot_grid(day, granularity_s, int(now) + lead_time_s)
    counts = np.zeros(starts.size, dtype=np.int64)
    probe = _probe(service, lat, lng, int(day[0]), int(day[0]), node)
    for plan in _plans(plans):
        counts += _workers_per_slot(plan, probe, starts, granularity_s, max_leg_s)
    return tuple(
        Slot(int(s), int(s) + granularity_s, int(c))
        for s, c in zip(starts.tolist(), counts.tolist(), strict=True)
        if c > 0
    )


def booked_plan(
    visits: Sequence[Visit],
    workers: Sequence[WorkerDay],
    *,
    travel: TravelMatrix | TravelModelLike,
    around: tuple[int, int] | None = None,
    max_leg_s: int = DEFAULT_MAX_LEG_S,
) -> DayPlan:
    """The workers' days as booked: each visit on its pinned worker at its start, in time order.

    Nothing is searched and nothing moves (no solver run): this is the state a new
    booking is inserted into, with real travel times between the stops. Every visit
    needs a ``pinned_worker`` among ``workers``; its start is ``pinned_start`` or
    ``window_start`` (epoch seconds). Breaks go where the worker is free.

    ``around`` (epoch seconds): keep only what a visit starting in that window can
    meet — per worker the visits overlapping it and the last one before and first one
    after. As booked visits keep their start times, inserting there depends on those
    neighbours only, and the travel matrices stay small. Travel times are then the
    slowest over departures from ``max_leg_s`` before that window to ``max_leg_s``
    after it (the rides to and from a visit there), not over the whole day: never
    slower, so what a whole-day plan offers stays bookable.
    """
    t_begin = time.perf_counter()
    known = {w.id for w in workers}
    for v in visits:
        if v.pinned_worker not in known:
            raise InvalidInput(f"visit {v.id}: pinned_worker {v.pinned_worker} is not in workers")
    space = None
    if around is not None:
        visits = _neighbours(visits, around)
        lo, hi = around[0] - max_leg_s, around[1] + max_leg_s
        departures = [replace(w, shift_start=lo, shift_end=hi, breaks=()) for w in workers]
        space = build_space(travel, visits, departures)
    p = build_problem(visits, workers, travel, None, None, space=space, strict=False)
    seqs: list[list[int]] = [[] for _ in range(p.W)]
    for i in sorted(range(p.V), key=lambda i: (int(p.early[i]), p.visits[i].id)):
        if not p.fixed[i]:
            seqs[int(p.pinned[i])].append(i)
    seqs = [with_breaks(p, k, seq) for k, seq in enumerate(seqs)]
    return assemble(
        p,
        seqs,
        {},
        hit_time_limit=False,
        engine="booked",
        runtime_s=time.perf_counter() - t_begin,
        objective=Objective(),
        current=None,
        travel=travel,
    )


def _start(v: Visit) -> int:
    return v.pinned_start if v.pinned_start is not None else v.window_start


def _neighbours(visits: Sequence[Visit], around: tuple[int, int]) -> list[Visit]:
    """Per worker: visits overlapping ``around``, the last before and the first after it."""
    lo, hi = int(around[0]), int(around[1])
    if hi < lo:
        raise InvalidInput(f"around end {hi} is before its start {lo}")
    before: dict[int | None, Visit] = {}
    after: dict[int | None, Visit] = {}
    keep: list[Visit] = []
    for v in visits:
        start = _start(v)
        w = v.pinned_worker
        if start + v.duration_s <= lo:
            if w not in before or _start(before[w]) < start:
                before[w] = v
        elif start >= hi:
            if w not in after or _start(after[w]) > start:
                after[w] = v
        else:
            keep.append(v)
    return [*before.values(), *keep, *after.values()]


@dataclass(frozen=True)
class BookingChoice:
    """Who takes a booking: the engine's choice first, then the next ones, best first.

    The next choices are for a lost race: when the store finds the chosen worker
    taken by a concurrent booking, it takes the next option, never another rule.
    """

    visit: Visit
    options: tuple[Insertion, ...]
    #: index into the ``plans`` given to ``choose_worker`` of each option
    plan_index: tuple[int, ...]

    @property
    def chosen(self) -> Insertion | None:
        """The engine's choice, None when no worker can take the visit."""
        return self.options[0] if self.options else None


def choose_worker(
    service: ServiceRequest,
    location: tuple[float, float],
    slot: Slot,
    plans: DayPlan | Sequence[DayPlan],
    *,
    visit_id: int = -1,
    customer: int = -1,
    seed: int | None = None,
    tie_cost: int = DEFAULT_TIE_COST,
    max_leg_s: int = DEFAULT_MAX_LEG_S,
    node: int | None = None,
    preferred_worker: int | None = None,
) -> BookingChoice:
    """Every worker who can take ``slot`` by insertion into their day, the engine's choice first.

    Options are ordered by added cost (travel seconds by default), ties by worker id.
    With a ``seed``, the options within ``tie_cost`` of the cheapest count as equally
    good and come in a seeded random order: concurrent bookings of one slot then spread
    over those workers instead of all racing for one. The same seed gives the same order.
    Feasibility is exactly ``available_slots``'s: a slot it offers has options here.
    A ``preferred_worker`` (the customer's "same worker again") who can take it comes first.
    """
    lat, lng = _check_location(location)
    _check_choice(slot, tie_cost, max_leg_s)
    visit = _probe(service, lat, lng, slot.start, slot.end, node, visit_id, customer)
    found: list[tuple[int, Insertion]] = []
    for k, plan in enumerate(_plans(plans)):
        if visit_id in {v.id for v in plan.visits}:
            raise InvalidInput(f"visit {visit_id} is already in the plan")
        _, _, options = external_insertions(plan, visit, max_leg_s=max_leg_s)
        found += [(k, option) for option in options.options]
    return _ordered(visit, found, seed, tie_cost, preferred_worker)


def _check_choice(slot: Slot, tie_cost: int, max_leg_s: int) -> None:
    if slot.end < slot.start:
        raise InvalidInput(f"slot end {slot.end} is before its start {slot.start}")
    if tie_cost < 0:
        raise InvalidInput(f"tie_cost must be >= 0, got {tie_cost}")
    if max_leg_s <= 0:
        raise InvalidInput(f"max_leg_s must be > 0, got {max_leg_s}")


def _ordered(
    visit: Visit,
    found: list[tuple[int, Insertion]],
    seed: int | None,
    tie_cost: int,
    preferred_worker: int | None,
) -> BookingChoice:
    """Options cheapest first (ties by worker id), seeded order within ``tie_cost``,
    the preferred worker first."""
    found.sort(key=lambda f: (f[1].added_cost, f[1].worker_id, f[0]))
    if seed is not None and found:
        cutoff = found[0][1].added_cost + tie_cost
        tied = sum(1 for _, option in found if option.added_cost <= cutoff)
        order = np.random.default_rng(seed).permutation(tied)
        found[:tied] = [found[int(j)] for j in order]
    if preferred_worker is not None:
        found.sort(key=lambda f: f[1].worker_id != preferred_worker)
    return BookingChoice(
        visit=visit,
        options=tuple(option for _, option in found),
        plan_index=tuple(k for k, _ in found),
    )


def reserve_slot(
    service: ServiceRequest,
    location: tuple[float, float],
    slot: Slot,
    plans: DayPlan | Sequence[DayPlan],
    *,
    visit_id: int,
    customer: int = -1,
    max_leg_s: int = DEFAULT_MAX_LEG_S,
    node: int | None = None,
    seed: int | None = None,
    tie_cost: int = DEFAULT_TIE_COST,
) -> Reservation:
    """Book ``slot``: the worker ``choose_worker`` picks, and the updated plan.

    Without a ``seed`` that is the cheapest worker. Raises ``SlotUnavailable`` when no
    worker can take the slot any more. The visit is added as PLANNED (tentative
    worker); nothing else moves.
    """
    choice = choose_worker(
        service, location, slot, plans, visit_id=visit_id, customer=customer, seed=seed,
        tie_cost=tie_cost, max_leg_s=max_leg_s, node=node,
    )  # fmt: skip
    if choice.chosen is None:
        raise SlotUnavailable(
            f"slot {slot.start}-{slot.end}: no worker can take visit {visit_id} any more"
        )
    plan = _plans(plans)[choice.plan_index[0]]
    return Reservation(
        visit=choice.visit,
        insertion=choice.chosen,
        plan=plan_with_insertion(plan, choice.visit, choice.chosen),
    )


# --- Booked days as arrays: the fast, exact insertion path of bookings and the slot list ---


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
    start = np.array([_start(v) for v in visits], dtype=np.int64)
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
        visit_end=np.array([_start(v) + v.duration_s for v in vs], dtype=np.int64),
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
    lat, lng = _check_location(location)
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
    lat, lng = _check_location(location)
    _check_choice(slot, tie_cost, max_leg_s)
    visit = _probe(service, lat, lng, slot.start, slot.end, None, visit_id, customer)
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
    return _ordered(visit, options, seed, tie_cost, preferred_worker)


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
    starts = _slot_grid(day, granularity_s, int(now) + lead_time_s)
    found = booked_insertions(
        service, location, days, starts, granularity_s, travel=travel, max_leg_s=max_leg_s
    )
    counts = found.ok.sum(axis=1)
    return tuple(
        Slot(int(s), int(s) + granularity_s, int(c))
        for s, c in zip(starts.tolist(), counts.tolist(), strict=True)
        if c > 0
    )

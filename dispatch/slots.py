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

import numpy as np
from numpy.typing import NDArray

from dispatch._vrp_core import (
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
    "BookingChoice",
    "Reservation",
    "ServiceRequest",
    "Slot",
    "SlotUnavailable",
    "available_slots",
    "booked_plan",
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


def check_location(location: tuple[float, float]) -> tuple[float, float]:
    try:
        lat, lng = float(location[0]), float(location[1])
    except (TypeError, ValueError, IndexError) as exc:
        raise InvalidInput(f"location must be (lat, lng) in degrees, got {location!r}") from exc
    if not (abs(lat) <= 90.0 and abs(lng) <= 180.0):
        raise InvalidInput(f"location must be finite (lat, lng) degrees, got {location!r}")
    return lat, lng


def _plans(plans: DayPlan | Sequence[DayPlan]) -> list[DayPlan]:
    return [plans] if isinstance(plans, DayPlan) else list(plans)


def slot_grid(day: tuple[int, int], granularity_s: int, earliest: int) -> NDArray[np.int64]:
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


def probe(
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
    lat, lng = check_location(location)
    if lead_time_s < 0:
        raise InvalidInput(f"lead_time_s must be >= 0, got {lead_time_s}")
    if max_leg_s <= 0:
        raise InvalidInput(f"max_leg_s must be > 0, got {max_leg_s}")
    starts = slot_grid(day, granularity_s, int(now) + lead_time_s)
    counts = np.zeros(starts.size, dtype=np.int64)
    visit = probe(service, lat, lng, int(day[0]), int(day[0]), node)
    for plan in _plans(plans):
        counts += _workers_per_slot(plan, visit, starts, granularity_s, max_leg_s)
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


def start_of(v: Visit) -> int:
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
        start = start_of(v)
        w = v.pinned_worker
        if start + v.duration_s <= lo:
            if w not in before or start_of(before[w]) < start:
                before[w] = v
        elif start >= hi:
            if w not in after or start_of(after[w]) > start:
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
    lat, lng = check_location(location)
    check_choice(slot, tie_cost, max_leg_s)
    visit = probe(service, lat, lng, slot.start, slot.end, node, visit_id, customer)
    found: list[tuple[int, Insertion]] = []
    for k, plan in enumerate(_plans(plans)):
        if visit_id in {v.id for v in plan.visits}:
            raise InvalidInput(f"visit {visit_id} is already in the plan")
        _, _, options = external_insertions(plan, visit, max_leg_s=max_leg_s)
        found += [(k, option) for option in options.options]
    return ordered(visit, found, seed, tie_cost, preferred_worker)


def check_choice(slot: Slot, tie_cost: int, max_leg_s: int) -> None:
    if slot.end < slot.start:
        raise InvalidInput(f"slot end {slot.end} is before its start {slot.start}")
    if tie_cost < 0:
        raise InvalidInput(f"tie_cost must be >= 0, got {tie_cost}")
    if max_leg_s <= 0:
        raise InvalidInput(f"max_leg_s must be > 0, got {max_leg_s}")


def ordered(
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

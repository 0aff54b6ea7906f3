"""Bookable time slots: offer a start window only if some suitable worker can really take it.

A slot ``[start, end]`` (epoch seconds) is the window in which the worker
arrives and starts the service. It is offered when at least one worker with
the skills can insert the visit into their current day plan with every
visit already in it still on time, the shift end respected, capacity left,
and no ride longer than ``max_leg_s`` (a worker is not sent across the city
for one job; a district without workers nearby gets no slots). Every gap of
every route is evaluated for every slot at once with numpy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from dispatch._vrp_core import IntArray
from dispatch.errors import DispatchError, InvalidInput
from dispatch.schedule import (
    DayPlan,
    Insertion,
    Visit,
    VisitStatus,
    plan_with_insertion,
)
from dispatch.schedule.insertion import external_insertions, flat_routes
from dispatch.schedule.problem import build_problem
from dispatch.schedule.routes import plan_sequences

__all__ = [
    "Reservation",
    "ServiceRequest",
    "Slot",
    "SlotUnavailable",
    "available_slots",
    "reserve_slot",
]

#: Default slot step and width: half an hour.
DEFAULT_GRANULARITY_S = 1800
#: Default minimum notice between booking and the slot start: two hours.
DEFAULT_LEAD_TIME_S = 2 * 3600
#: Default longest ride to or from a booked visit: one hour.
DEFAULT_MAX_LEG_S = 3600


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
    if plan.travel is None or plan._space is None:
        raise DispatchError("this plan has no travel model attached; re-plan it with plan_day")
    p = build_problem(
        plan.visits, plan.workers, plan.travel, None, None, space=plan._space, strict=False
    )
    seqs = plan_sequences(plan, p)
    flat = flat_routes(p, seqs)
    if flat.route.size == 0 or starts.size == 0:
        return np.zeros(starts.size, dtype=np.int64)
    to_new = np.zeros(flat.route.size, dtype=np.int64)
    from_new = np.zeros(flat.route.size, dtype=np.int64)
    node = -1 if probe.node is None else probe.node
    for m in p.space.modes:
        sel = np.flatnonzero(flat.mode == m)
        if sel.size == 0:
            continue
        rows = np.unique(np.concatenate([flat.prev_row[sel], flat.next_row[sel]]))
        t_in, t_out = p.space.to_and_from(probe.lat, probe.lng, node, m, rows)
        pos = np.searchsorted(rows, flat.prev_row[sel])
        to_new[sel] = t_in[pos]
        pos = np.searchsorted(rows, flat.next_row[sel])
        from_new[sel] = t_out[pos]
        to_new[sel] = np.where(flat.prev_row[sel] == p.break_row, 0, to_new[sel])
        from_new[sel] = np.where(flat.next_row[sel] == p.break_row, 0, from_new[sel])
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
) -> Reservation:
    """Book ``slot``: the cheapest worker who can still take it, and the updated plan.

    Raises ``SlotUnavailable`` when no worker can take the slot any more.
    The visit is added as PLANNED (tentative worker); nothing else moves.
    """
    lat, lng = _check_location(location)
    if slot.end < slot.start:
        raise InvalidInput(f"slot end {slot.end} is before its start {slot.start}")
    visit = _probe(service, lat, lng, slot.start, slot.end, node, visit_id, customer)
    best: tuple[DayPlan, Insertion] | None = None
    for plan in _plans(plans):
        if visit_id in {v.id for v in plan.visits}:
            raise InvalidInput(f"visit {visit_id} is already in the plan")
        _, _, options = external_insertions(plan, visit, max_leg_s=max_leg_s)
        if options.best is not None and (
            best is None or options.best.added_cost < best[1].added_cost
        ):
            best = (plan, options.best)
    if best is None:
        raise SlotUnavailable(
            f"slot {slot.start}-{slot.end}: no worker can take visit {visit_id} any more"
        )
    plan, option = best
    return Reservation(visit=visit, insertion=option, plan=plan_with_insertion(plan, visit, option))

"""Day plans for booked visits: VRPTW with skills, shifts, pinning and change penalties.

``plan_day(visits, workers, travel=..., stop=...)`` builds every worker's route
for one day. Times are int64 epoch seconds (UTC), durations seconds. A visit's
window ``[window_start, window_end]`` bounds its *start* of service (the
customer's arrival window); the worker waits when early. Travel is either a
``geo.travel.TravelTimeModel`` (planned with the slowest travel time over the
day, so arriving early only means waiting) or a precomputed ``TravelMatrix``
(Solomon instances, road-network tables).

Engine: PyVRP's iterated local search carries the whole model: workers are
vehicle types with their own start/end places and shift windows, skills and
pins are load dimensions a worker has zero capacity in when it may not serve
the visit, optional visits are prize clients (the prize is the drop penalty),
and the change penalty is a mutually exclusive pair per visit — a copy pinned
to its current worker and a free copy whose prize is lower by the penalty.
Started and finished visits are a fixed prefix of their worker's day. The
whole call, matrices included, stays within ``stop.seconds``.

Every route PyVRP returns is re-timed exactly here (``route_times``), and a
stop that does not fit is taken out and re-inserted at its cheapest feasible
place or dropped with a reason. That matters for breaks: PyVRP sees a break as
a client pinned to its worker at a place with zero travel, while the real
rule is that the break is taken where the worker is and the next ride leaves
from there. Insertion (slots, urgent visits) never puts a visit directly
before a break, because the ride after the break would change with it.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dispatch._vrp_core import (
    MODE_NAMES,
    FlatRoutes,
    IntArray,
    Places,
    Space,
    TravelMatrix,
    TravelModelLike,
    cheapest_insertions,
    latest_starts,
    route_times,
)
from dispatch.errors import DispatchError, InvalidInput, UnknownSkill, UnknownWorker

__all__ = [
    "Break",
    "ChangeReason",
    "DayPlan",
    "DropReason",
    "DroppedVisit",
    "Insertion",
    "InsertionOptions",
    "Objective",
    "Route",
    "ScheduledVisit",
    "Stop",
    "TravelMatrix",
    "Visit",
    "VisitOutsideShifts",
    "VisitStatus",
    "WorkerDay",
    "insertion_options",
    "plan_day",
    "plan_with_insertion",
]

#: Cost units are "travel seconds"; dropping a visit costs this by default (8 h of riding).
DEFAULT_DROP_PENALTY = 8 * 3600
#: Time kept for decoding and repairing the search's routes: per visit, at most this share.
_DECODE_S_PER_VISIT = 0.0005
_DECODE_RESERVE = 0.1
#: Default penalty for moving a visit away from its current worker (1 h of riding).
DEFAULT_CHANGE_PENALTY = 3600


class VisitOutsideShifts(InvalidInput):
    """A visit's time window does not overlap any worker's shift."""


class VisitStatus(StrEnum):
    """Where a visit is in its life: only planned visits may move freely."""

    PLANNED = "planned"  # booked, worker tentative
    CONFIRMED = "confirmed"  # customer told which worker: pinned to it
    STARTED = "started"  # in service: worker and start fixed
    DONE = "done"


class DropReason(StrEnum):
    """Why a visit is not in any route."""

    NO_SKILLED_WORKER = "no_skilled_worker"
    PINNED_WORKER_ABSENT = "pinned_worker_absent"
    UNREACHABLE = "unreachable"  # no eligible worker can reach it inside window and shift
    NO_CAPACITY = "no_capacity"  # it fits alone, but not next to the other visits
    CANCELLED = "cancelled"


class ChangeReason(StrEnum):
    """Why a confirmed or planned visit changed in a repair."""

    WORKER_ABSENT = "worker_absent"
    OVERRUN = "overrun"
    URGENT_INSERTED = "urgent_inserted"
    CANCELLED = "cancelled"
    REOPTIMISED = "reoptimised"


@dataclass(frozen=True)
class Stop:
    """When the search must stop: a wall-clock limit in seconds, optionally earlier on a plateau.

    ``max_iterations`` caps PyVRP iterations (deterministic runs for tests).
    """

    seconds: float = 5.0
    max_iterations: int | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.seconds) and self.seconds > 0):
            raise InvalidInput(f"seconds must be a positive finite number, got {self.seconds}")
        if self.max_iterations is not None and self.max_iterations < 1:
            raise InvalidInput(f"max_iterations must be >= 1, got {self.max_iterations}")


@dataclass(frozen=True)
class Objective:
    """Weights of the planning objective, in integer cost units per unit.

    Arc cost = ``travel_weight`` × travel seconds + ``distance_weight`` ×
    distance. ``worker_cost`` is charged per worker who leaves home.
    ``drop_penalty`` (per visit unless the visit sets its own) must exceed any
    change penalty. With ``allow_drop=False`` every visit is required (the
    Solomon benchmark: distance only, nothing dropped).
    """

    travel_weight: int = 1
    distance_weight: int = 0
    worker_cost: int = 0
    drop_penalty: int = DEFAULT_DROP_PENALTY
    allow_drop: bool = True

    def __post_init__(self) -> None:
        for name in ("travel_weight", "distance_weight", "worker_cost", "drop_penalty"):
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or value < 0:
                raise InvalidInput(f"{name} must be an integer >= 0, got {value!r}")
        if self.travel_weight == 0 and self.distance_weight == 0:
            raise InvalidInput("travel_weight and distance_weight must not both be 0")


@dataclass(frozen=True)
class Visit:
    """One booked visit: where, how long (seconds), and when it may start (epoch seconds).

    ``skills`` is the bitmask of skills the worker needs (SkillCatalog bits);
    ``demand`` uses a worker's ``capacity`` (e.g. kit or Solomon load).
    ``node`` indexes a ``TravelMatrix`` when one is used.
    """

    id: int
    lat: float
    lng: float
    duration_s: int
    window_start: int
    window_end: int
    skills: int = 0
    customer: int = -1
    demand: int = 0
    status: VisitStatus = VisitStatus.PLANNED
    pinned_worker: int | None = None
    pinned_start: int | None = None
    node: int | None = None
    drop_penalty: int | None = None

    def __post_init__(self) -> None:
        who = f"visit {self.id}"
        if not isinstance(self.id, int | np.integer):
            raise InvalidInput(f"visit id must be an integer, got {self.id!r}")
        if not (abs(self.lat) <= 90.0 and abs(self.lng) <= 180.0):
            raise InvalidInput(f"{who}: lat/lng must be finite degrees, got {self.lat}, {self.lng}")
        if self.duration_s < 0:
            raise InvalidInput(f"{who}: duration_s must be >= 0, got {self.duration_s}")
        if self.window_end < self.window_start:
            raise InvalidInput(
                f"{who}: window_end {self.window_end} is before window_start {self.window_start}"
            )
        if self.skills < 0:
            raise InvalidInput(f"{who}: skills must be a non-negative bitmask, got {self.skills}")
        if self.demand < 0:
            raise InvalidInput(f"{who}: demand must be >= 0, got {self.demand}")
        object.__setattr__(self, "status", VisitStatus(self.status))
        if self.status in (VisitStatus.STARTED, VisitStatus.DONE) and (
            self.pinned_worker is None or self.pinned_start is None
        ):
            raise InvalidInput(f"{who}: a {self.status} visit needs pinned_worker and pinned_start")
        if self.node is not None and self.node < 0:
            raise InvalidInput(f"{who}: node must be >= 0, got {self.node}")
        if self.drop_penalty is not None and self.drop_penalty < 0:
            raise InvalidInput(f"{who}: drop_penalty must be >= 0, got {self.drop_penalty}")

    @property
    def fixed(self) -> bool:
        """Started or done: its worker and times cannot change."""
        return self.status in (VisitStatus.STARTED, VisitStatus.DONE)


@dataclass(frozen=True)
class Break:
    """A fixed interval [start, end) (epoch seconds): the worker neither serves nor rides."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise InvalidInput(f"break end {self.end} must be after start {self.start}")


@dataclass(frozen=True)
class WorkerDay:
    """One worker's day: shift (epoch seconds), home places, skills bitmask, limits, mode."""

    id: int
    shift_start: int
    shift_end: int
    start_lat: float
    start_lng: float
    end_lat: float | None = None
    end_lng: float | None = None
    skills: int = 0
    breaks: tuple[Break, ...] = ()
    max_visits: int | None = None
    capacity: int | None = None
    mode: str = "ebike"
    start_node: int | None = None
    end_node: int | None = None

    def __post_init__(self) -> None:
        who = f"worker {self.id}"
        if self.shift_end < self.shift_start:
            raise InvalidInput(
                f"{who}: shift_end {self.shift_end} is before shift_start {self.shift_start}"
            )
        if self.end_lat is None or self.end_lng is None:
            object.__setattr__(self, "end_lat", self.start_lat)
            object.__setattr__(self, "end_lng", self.start_lng)
        if self.end_node is None and self.start_node is not None:
            object.__setattr__(self, "end_node", self.start_node)
        for name in ("start_lat", "end_lat"):
            if not abs(float(getattr(self, name))) <= 90.0:
                raise InvalidInput(f"{who}: {name} must be within ±90, got {getattr(self, name)}")
        for name in ("start_lng", "end_lng"):
            if not abs(float(getattr(self, name))) <= 180.0:
                raise InvalidInput(f"{who}: {name} must be within ±180, got {getattr(self, name)}")
        if self.skills < 0:
            raise InvalidInput(f"{who}: skills must be a non-negative bitmask, got {self.skills}")
        if self.max_visits is not None and self.max_visits < 0:
            raise InvalidInput(f"{who}: max_visits must be >= 0, got {self.max_visits}")
        if self.capacity is not None and self.capacity < 0:
            raise InvalidInput(f"{who}: capacity must be >= 0, got {self.capacity}")
        mode = getattr(self.mode, "value", self.mode)
        if mode not in MODE_NAMES:
            raise InvalidInput(f"{who}: mode must be one of {MODE_NAMES}, got {self.mode!r}")
        object.__setattr__(self, "mode", mode)
        breaks = tuple(sorted(self.breaks, key=lambda b: b.start))
        for a, b in itertools.pairwise(breaks):
            if b.start < a.end:
                raise InvalidInput(f"{who}: breaks overlap at {b.start}")
        object.__setattr__(self, "breaks", breaks)

    @property
    def mode_code(self) -> int:
        """Transport mode code (walk 0, ebike 1, car 2)."""
        return MODE_NAMES.index(self.mode)


@dataclass(frozen=True)
class ScheduledVisit:
    """A visit in a route: arrival, start and end (epoch seconds), travel into it (seconds)."""

    visit_id: int
    worker_id: int
    arrival: int
    start: int
    end: int
    travel_s: int
    lateness_s: int = 0


@dataclass(frozen=True)
class Route:
    """One worker's ordered day: stops, when they leave and get home, travel (seconds)."""

    worker_id: int
    stops: tuple[ScheduledVisit, ...]
    depart: int
    finish: int
    travel_s: int
    distance: int

    @property
    def visit_ids(self) -> tuple[int, ...]:
        """Visit ids in route order."""
        return tuple(s.visit_id for s in self.stops)


@dataclass(frozen=True)
class DroppedVisit:
    """A visit no route serves, and why (never dropped silently)."""

    visit_id: int
    reason: DropReason
    detail: str


@dataclass(frozen=True)
class DayPlan:
    """Result of ``plan_day``: routes, dropped visits, totals and how the search went.

    ``changed_assignments`` counts visits whose worker differs from the
    ``current`` plan's (or that lost their worker). ``hit_time_limit`` is a
    warning: the search was stopped by its limit, not by convergence.
    """

    routes: tuple[Route, ...]
    dropped: tuple[DroppedVisit, ...]
    total_travel_s: int
    total_distance: int
    total_lateness_s: int
    changed_assignments: int
    hit_time_limit: bool
    objective: int
    engine: str
    runtime_s: float
    visits: tuple[Visit, ...]
    workers: tuple[WorkerDay, ...]
    warnings: tuple[str, ...] = ()
    travel: TravelMatrix | TravelModelLike | None = field(default=None, repr=False, compare=False)
    _space: Space | None = field(default=None, repr=False, compare=False)

    def route_of(self, worker_id: int) -> Route:
        """The route of ``worker_id``; raises UnknownWorker."""
        for r in self.routes:
            if r.worker_id == worker_id:
                return r
        raise UnknownWorker(f"worker {worker_id} is not in this plan")

    def assignment(self) -> dict[int, int]:
        """Visit id -> worker id for every routed visit."""
        return {s.visit_id: r.worker_id for r in self.routes for s in r.stops}

    def stop_of(self, visit_id: int) -> ScheduledVisit | None:
        """The scheduled stop of ``visit_id`` or None if it is dropped/unknown."""
        for r in self.routes:
            for s in r.stops:
                if s.visit_id == visit_id:
                    return s
        return None

    @property
    def num_dropped(self) -> int:
        """How many visits are unserved."""
        return len(self.dropped)


# --------------------------------------------------------------------------- problem assembly


@dataclass
class _Problem:
    """Arrays of one planning problem; rows: worker starts, worker ends, visits, break row."""

    visits: tuple[Visit, ...]
    workers: tuple[WorkerDay, ...]
    space: Space
    t0: int
    W: int
    V: int
    early: IntArray
    late: IntArray
    service: IntArray
    demand: IntArray
    vskills: NDArray[np.uint64]
    wskills: NDArray[np.uint64]
    wmode: IntArray
    shift_start: IntArray
    shift_end: IntArray
    cap: IntArray
    maxv: IntArray
    pinned: IntArray  # worker index a visit is pinned to, -1
    fixed: NDArray[np.bool_]
    ready_row: IntArray  # where each worker's free part starts
    ready_time: IntArray
    prefix: list[list[int]]  # fixed visit indices per worker
    current: IntArray  # current worker index per visit, -1
    worker_index: dict[int, int]
    visit_index: dict[int, int]

    @property
    def break_row(self) -> int:
        return 2 * self.W + self.V


BIG = 1 << 40


def _places(visits: Sequence[Visit], workers: Sequence[WorkerDay], matrix: bool) -> Places:
    lat = [w.start_lat for w in workers] + [w.end_lat for w in workers] + [v.lat for v in visits]
    lng = [w.start_lng for w in workers] + [w.end_lng for w in workers] + [v.lng for v in visits]
    node = (
        [w.start_node for w in workers] + [w.end_node for w in workers] + [v.node for v in visits]
    )
    if matrix:
        for k, n in enumerate(node):
            if n is None:
                what = (
                    f"worker {workers[k % max(len(workers), 1)].id}"
                    if k < 2 * len(workers)
                    else f"visit {visits[k - 2 * len(workers)].id}"
                )
                raise InvalidInput(f"{what}: node is required when travel is a TravelMatrix")
    # The last row stands for "wherever the worker is" during a break (zero travel).
    lat.append(0.0)
    lng.append(0.0)
    node.append(-1)
    return Places(
        lat=np.asarray(lat, dtype=np.float64),
        lng=np.asarray(lng, dtype=np.float64),
        node=np.asarray([-1 if n is None else n for n in node], dtype=np.int64),
    )


def _build_space(
    travel: TravelMatrix | TravelModelLike,
    visits: Sequence[Visit],
    workers: Sequence[WorkerDay],
) -> Space:
    is_matrix = isinstance(travel, TravelMatrix)
    places = _places(visits, workers, is_matrix)
    if is_matrix:
        assert isinstance(travel, TravelMatrix)
        bad = places.node[:-1] >= travel.size
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise InvalidInput(f"node {places.node[k]} is outside the {travel.size}-node matrix")
        # Break row: map to node 0 for indexing, then zero its travel.
        places = Places(places.lat, places.lng, np.where(places.node < 0, 0, places.node))
    lo = min([w.shift_start for w in workers], default=0)
    hi = max([w.shift_end for w in workers], default=lo)
    modes = tuple(sorted({w.mode_code for w in workers})) or (1,)
    space = Space(travel=travel, places=places, modes=modes, horizon=(lo, hi))
    space.build()
    for m in space.modes:
        for mat_name in ("duration", "distance"):
            mat = np.array(getattr(space, mat_name)[m])
            mat[-1, :] = 0
            mat[:, -1] = 0
            getattr(space, mat_name)[m] = mat
    return space


def _validate(
    visits: Sequence[Visit],
    workers: Sequence[WorkerDay],
    known_skills: int | None,
    current: DayPlan | None,
    strict: bool = True,
) -> tuple[dict[int, int], dict[int, int]]:
    worker_index: dict[int, int] = {}
    for k, w in enumerate(workers):
        if w.id in worker_index:
            raise InvalidInput(f"workers[{k}]: worker id {w.id} appears twice")
        worker_index[w.id] = k
    visit_index: dict[int, int] = {}
    for i, v in enumerate(visits):
        if v.id in visit_index:
            raise InvalidInput(f"visits[{i}]: visit id {v.id} appears twice")
        visit_index[v.id] = i
        if known_skills is not None and v.skills & ~known_skills:
            raise UnknownSkill(
                f"visit {v.id}: skills bits {v.skills & ~known_skills:#x} are not in the catalog"
            )
    if workers and strict:
        # One pass over all (visit, shift) pairs: a visit must overlap some shift.
        starts = np.array([w.shift_start for w in workers], dtype=np.int64)
        ends = np.array([w.shift_end for w in workers], dtype=np.int64)
        ws = np.array([v.window_start for v in visits], dtype=np.int64)
        we = np.array([v.window_end for v in visits], dtype=np.int64)
        dur = np.array([v.duration_s for v in visits], dtype=np.int64)
        fits = (
            (ws[:, None] <= ends[None, :])
            & (np.maximum(ws[:, None], starts[None, :]) + dur[:, None] <= ends[None, :])
            & (we[:, None] >= starts[None, :])
        )
        fixed = np.array([v.fixed for v in visits], dtype=bool)
        bad = ~fits.any(axis=1) & ~fixed
        if bad.any():
            v = visits[int(np.flatnonzero(bad)[0])]
            raise VisitOutsideShifts(
                f"visit {v.id}: window [{v.window_start}, {v.window_end}] plus "
                f"{v.duration_s} s of service fits no worker's shift"
            )
    elif strict and visits and not all(v.fixed for v in visits):
        v = next(v for v in visits if not v.fixed)
        raise VisitOutsideShifts(f"visit {v.id}: there are no workers, so it fits no shift")
    for v in visits:
        if v.fixed and v.pinned_worker not in worker_index:
            raise UnknownWorker(
                f"visit {v.id}: {v.status} by worker {v.pinned_worker}, who is not in workers"
            )
    return worker_index, visit_index


def _problem(
    visits: Sequence[Visit],
    workers: Sequence[WorkerDay],
    travel: TravelMatrix | TravelModelLike,
    current: DayPlan | None,
    known_skills: int | None,
    space: Space | None = None,
    strict: bool = True,
) -> _Problem:
    visits, workers = tuple(visits), tuple(workers)
    worker_index, visit_index = _validate(visits, workers, known_skills, current, strict)
    if space is None:
        space = _build_space(travel, visits, workers)
    W, V = len(workers), len(visits)
    t0 = min([w.shift_start for w in workers] + [v.window_start for v in visits], default=0)
    early = np.array([v.window_start for v in visits], dtype=np.int64) - t0
    late = np.array([v.window_end for v in visits], dtype=np.int64) - t0
    service = np.array([v.duration_s for v in visits], dtype=np.int64)
    pinned = np.full(V, -1, dtype=np.int64)
    fixed = np.zeros(V, dtype=bool)
    for i, v in enumerate(visits):
        if v.pinned_worker is not None and v.pinned_worker in worker_index:
            pinned[i] = worker_index[v.pinned_worker]
        elif v.pinned_worker is not None:
            pinned[i] = -2  # pinned to someone absent
        if v.pinned_start is not None and not v.fixed:
            early[i] = late[i] = np.int64(v.pinned_start - t0)
        fixed[i] = v.fixed
    prefix: list[list[int]] = [[] for _ in range(W)]
    for fixed_i in np.flatnonzero(fixed).tolist():
        prefix[int(pinned[fixed_i])].append(fixed_i)
    ready_row = np.arange(W, dtype=np.int64)
    ready_time = np.array([w.shift_start for w in workers], dtype=np.int64) - t0
    for k in range(W):
        prefix[k].sort(key=lambda i: visits[i].pinned_start or 0)
        if prefix[k]:
            last = prefix[k][-1]
            v = visits[last]
            assert v.pinned_start is not None
            ready_row[k] = 2 * W + last
            ready_time[k] = max(int(ready_time[k]), v.pinned_start + v.duration_s - t0)
    cur = np.full(V, -1, dtype=np.int64)
    if current is not None:
        for vid, wid in current.assignment().items():
            if vid in visit_index and wid in worker_index:
                cur[visit_index[vid]] = worker_index[wid]
            elif vid in visit_index:
                cur[visit_index[vid]] = -2  # had a worker who is gone now
    cap = np.array([BIG if w.capacity is None else w.capacity for w in workers], dtype=np.int64)
    maxv = np.array(
        [BIG if w.max_visits is None else w.max_visits for w in workers], dtype=np.int64
    )
    for k in range(W):
        cap[k] -= sum(visits[i].demand for i in prefix[k])
        maxv[k] -= len(prefix[k])
    return _Problem(
        visits=visits,
        workers=workers,
        space=space,
        t0=t0,
        W=W,
        V=V,
        early=early,
        late=late,
        service=service,
        demand=np.array([v.demand for v in visits], dtype=np.int64),
        vskills=np.array([v.skills for v in visits], dtype=np.uint64),
        wskills=np.array([w.skills for w in workers], dtype=np.uint64),
        wmode=np.array([w.mode_code for w in workers], dtype=np.int64),
        shift_start=np.array([w.shift_start for w in workers], dtype=np.int64) - t0,
        shift_end=np.array([w.shift_end for w in workers], dtype=np.int64) - t0,
        cap=cap,
        maxv=maxv,
        pinned=pinned,
        fixed=fixed,
        ready_row=ready_row,
        ready_time=ready_time,
        prefix=prefix,
        current=cur,
        worker_index=worker_index,
        visit_index=visit_index,
    )


def _eligibility(p: _Problem) -> NDArray[np.bool_]:
    """(V, W) may worker w serve visit v at all: skills, pin, and a direct trip fits."""
    if p.W == 0:
        return np.zeros((p.V, 0), dtype=bool)
    need = p.vskills[:, None]
    ok = (p.wskills[None, :] & need) == need
    pin = p.pinned[:, None]
    ok &= (pin == -1) | (pin == np.arange(p.W)[None, :])
    ok &= p.pinned[:, None] != -2
    return np.asarray(ok & _direct_fit(p), dtype=bool)


def _direct_fit(p: _Problem) -> NDArray[np.bool_]:
    vrows = 2 * p.W + np.arange(p.V)
    fit = np.zeros((p.V, p.W), dtype=bool)
    for m in p.space.modes:
        dur = p.space.duration[m]
        cols = np.flatnonzero(p.wmode == m)
        if cols.size == 0:
            continue
        to_v = dur[p.ready_row[cols][None, :], vrows[:, None]]  # (V, w)
        back = dur[vrows[:, None], (p.W + cols)[None, :]]
        start = np.maximum(p.ready_time[cols][None, :] + to_v, p.early[:, None])
        fit[:, cols] = (start <= p.late[:, None]) & (
            start + p.service[:, None] + back <= p.shift_end[cols][None, :]
        )
    return fit


# --------------------------------------------------------------------------- decoding


def _schedule_route(
    p: _Problem, k: int, seq: Sequence[int], allow_late: bool = False
) -> tuple[list[ScheduledVisit], int, int, int, bool, int]:
    """Exact timing of worker k's day (fixed prefix + ``seq``); absolute epoch seconds out."""
    w = p.workers[k]
    m = w.mode_code
    dur = p.space.duration[m]
    dist = p.space.distance[m]
    stops: list[ScheduledVisit] = []
    travel = 0
    distance = 0
    prev_row = k
    t_prev_end = int(p.shift_start[k])
    for i in p.prefix[k]:
        v = p.visits[i]
        assert v.pinned_start is not None
        row = 2 * p.W + i
        tt = int(dur[prev_row, row])
        travel += tt
        distance += int(dist[prev_row, row])
        start = v.pinned_start
        stops.append(
            ScheduledVisit(
                v.id,
                w.id,
                min(start, t_prev_end + tt + p.t0),
                start,
                start + v.duration_s,
                tt,
                max(0, start - v.window_end),
            )
        )
        prev_row, t_prev_end = row, start + v.duration_s - p.t0
    nodes = np.asarray([2 * p.W + i if i >= 0 else p.break_row for i in seq], dtype=np.int64)
    idx = np.asarray(seq, dtype=np.int64)
    early, late, service = _stop_windows(p, k, idx)
    rt = route_times(
        dur,
        int(prev_row),
        p.W + k,
        int(p.ready_time[k]),
        int(p.shift_end[k]),
        nodes,
        early,
        late,
        service,
        allow_late=allow_late,
        pass_through=p.break_row,
    )
    # Travel across a break is really from the stop before the break.
    real_prev = int(prev_row)
    for j, i in enumerate(seq):
        if i < 0:
            continue
        row = int(nodes[j])
        travel += int(dur[real_prev, row])
        distance += int(dist[real_prev, row])
        real_prev = row
    travel += int(dur[real_prev, p.W + k])
    distance += int(dist[real_prev, p.W + k])
    for j, i in enumerate(seq):
        if i < 0:
            continue
        v = p.visits[i]
        stops.append(
            ScheduledVisit(
                v.id,
                w.id,
                int(rt.arrival[j]) + p.t0,
                int(rt.start[j]) + p.t0,
                int(rt.end[j]) + p.t0,
                int(rt.travel[j]),
                max(0, int(rt.start[j]) + p.t0 - v.window_end),
            )
        )
    return stops, rt.finish + p.t0, travel, distance, rt.feasible, rt.first_violation


def _stop_windows(p: _Problem, k: int, idx: IntArray) -> tuple[IntArray, IntArray, IntArray]:
    early = np.empty(idx.size, dtype=np.int64)
    late = np.empty(idx.size, dtype=np.int64)
    service = np.empty(idx.size, dtype=np.int64)
    brk = p.workers[k].breaks
    for j, i in enumerate(idx.tolist()):
        if i >= 0:
            early[j], late[j], service[j] = p.early[i], p.late[i], p.service[i]
        else:
            b = brk[-i - 1]
            early[j] = late[j] = b.start - p.t0
            service[j] = b.end - b.start
    return early, late, service


def _route_sequences_feasible(
    p: _Problem, seqs: list[list[int]]
) -> tuple[list[list[int]], list[int]]:
    """Remove stops until every route is on time and within capacity; return removed visits."""
    removed: list[int] = []
    for k, seq in enumerate(seqs):
        while True:
            real = [i for i in seq if i >= 0]
            load = int(p.demand[real].sum()) if real else 0
            if real and (load > p.cap[k] or len(real) > p.maxv[k]):
                drop = max(real, key=lambda i: (p.demand[i], i))
                seq.remove(drop)
                removed.append(drop)
                continue
            *_, ok, bad = _schedule_route(p, k, seq)
            if ok:
                break
            # Remove the first visit at or before the violation (never a break).
            cand = [j for j in range(min(bad, len(seq) - 1), -1, -1) if seq[j] >= 0]
            if not cand:
                break
            j = cand[0]
            removed.append(seq.pop(j))
    return seqs, removed


def _assemble(
    p: _Problem,
    seqs: list[list[int]],
    reasons: dict[int, tuple[DropReason, str]],
    *,
    hit_time_limit: bool,
    engine: str,
    runtime_s: float,
    objective: Objective,
    current: DayPlan | None,
    travel: TravelMatrix | TravelModelLike,
    warnings: Sequence[str] = (),
) -> DayPlan:
    routes: list[Route] = []
    tot_travel = tot_dist = tot_late = 0
    for k, w in enumerate(p.workers):
        stops, finish, trav, dist, _, _ = _schedule_route(p, k, seqs[k], allow_late=True)
        depart = int(p.shift_start[k]) + p.t0
        if stops:
            depart = stops[0].arrival - stops[0].travel_s
        routes.append(Route(w.id, tuple(stops), depart, finish, trav, dist))
        tot_travel += trav
        tot_dist += dist
        tot_late += sum(s.lateness_s for s in stops)
    served = {i for seq in seqs for i in seq if i >= 0} | {i for pre in p.prefix for i in pre}
    dropped = tuple(
        DroppedVisit(
            p.visits[i].id,
            *reasons.get(i, (DropReason.NO_CAPACITY, "the solver found no room for it")),
        )
        for i in range(p.V)
        if i not in served
    )
    changed = _count_changes(p, seqs) if current is not None else 0
    obj = objective.travel_weight * tot_travel + objective.distance_weight * tot_dist
    obj += objective.worker_cost * sum(1 for r in routes if r.stops)
    obj += sum(_drop_penalty(p.visits[p.visit_index[d.visit_id]], objective) for d in dropped)
    warn = list(warnings)
    if hit_time_limit:
        warn.append("search stopped at its time limit; the plan may not be optimal")
    return DayPlan(
        routes=tuple(routes),
        dropped=dropped,
        total_travel_s=tot_travel,
        total_distance=tot_dist,
        total_lateness_s=tot_late,
        changed_assignments=changed,
        hit_time_limit=hit_time_limit,
        objective=int(obj),
        engine=engine,
        runtime_s=runtime_s,
        visits=p.visits,
        workers=p.workers,
        warnings=tuple(warn),
        travel=travel,
        _space=p.space,
    )


def _count_changes(p: _Problem, seqs: list[list[int]]) -> int:
    now = np.full(p.V, -1, dtype=np.int64)
    for k, seq in enumerate(seqs):
        for i in seq:
            if i >= 0:
                now[i] = k
    for k, pre in enumerate(p.prefix):
        now[pre] = k
    had = p.current != -1
    return int(np.count_nonzero(had & (now != p.current)))


def _drop_penalty(v: Visit, objective: Objective) -> int:
    return objective.drop_penalty if v.drop_penalty is None else v.drop_penalty


# --------------------------------------------------------------------------- plan_day


def plan_day(
    visits: Sequence[Visit],
    workers: Sequence[WorkerDay],
    *,
    travel: TravelMatrix | TravelModelLike,
    stop: float | Stop = 5.0,
    seed: int = 0,
    current: DayPlan | None = None,
    change_penalty: int = DEFAULT_CHANGE_PENALTY,
    objective: Objective | None = None,
    known_skills: int | None = None,
) -> DayPlan:
    """Plan every worker's route for a day (times epoch seconds, durations seconds).

    ``current`` is the plan in force: each visit moved away from its worker
    there costs ``change_penalty`` (cost units = travel seconds by default).
    Confirmed visits stay with their pinned worker; started/done visits are a
    fixed prefix. ``known_skills`` (the catalog's full mask) turns unknown
    skill bits into ``UnknownSkill``. Raises ``InvalidInput`` subclasses naming
    the visit for malformed input; infeasible visits are dropped with a reason.
    """
    t_begin = time.perf_counter()
    stop = stop if isinstance(stop, Stop) else Stop(seconds=float(stop))
    objective = objective or Objective()
    if change_penalty < 0:
        raise InvalidInput(f"change_penalty must be >= 0, got {change_penalty}")
    p = _problem(visits, workers, travel, current, known_skills)
    return _solve_problem(p, travel, stop, seed, current, change_penalty, objective, t_begin)


def _solve_problem(
    p: _Problem,
    travel: TravelMatrix | TravelModelLike,
    stop: Stop,
    seed: int,
    current: DayPlan | None,
    change_penalty: int,
    objective: Objective,
    t_begin: float,
) -> DayPlan:
    """Search, make every route feasible, place what the search left out, and report."""
    from dispatch._vrp_pyvrp import solve_pyvrp

    elig = _eligibility(p)
    reasons = _pre_drop_reasons(p, elig)
    # The limit is wall-clock for the whole call: the matrices and decoding count too.
    spent = time.perf_counter() - t_begin
    reserve = min(_DECODE_RESERVE * stop.seconds, 0.01 + _DECODE_S_PER_VISIT * p.V)
    budget = max(stop.seconds - spent - reserve, 0.05)
    seqs, reasons2, hit, _ = solve_pyvrp(
        p,
        elig,
        objective,
        replace(stop, seconds=budget),
        seed,
        change_penalty if current is not None else 0,
        current,
    )
    reasons.update(reasons2)
    seqs, removed = _route_sequences_feasible(p, seqs)
    if removed:
        seqs, still = _greedy_insert(p, seqs, removed, elig)
        for i in still:
            reasons.setdefault(i, (DropReason.NO_CAPACITY, "no worker's day had room after search"))
    return _assemble(
        p,
        seqs,
        reasons,
        hit_time_limit=hit,
        engine="pyvrp",
        runtime_s=time.perf_counter() - t_begin,
        objective=objective,
        current=current,
        travel=travel,
    )


def _pre_drop_reasons(p: _Problem, elig: NDArray[np.bool_]) -> dict[int, tuple[DropReason, str]]:
    reasons: dict[int, tuple[DropReason, str]] = {}
    if p.W:
        need = p.vskills[:, None]
        skilled = ((p.wskills[None, :] & need) == need).any(axis=1)
    else:
        skilled = np.zeros(p.V, dtype=bool)
    for i in np.flatnonzero(~elig.any(axis=1) & ~p.fixed):
        v = p.visits[int(i)]
        if p.pinned[i] == -2:
            reasons[int(i)] = (
                DropReason.PINNED_WORKER_ABSENT,
                f"pinned to worker {v.pinned_worker}, who is not working",
            )
        elif not skilled[i]:
            reasons[int(i)] = (
                DropReason.NO_SKILLED_WORKER,
                f"no worker on shift has skills {v.skills:#x}",
            )
        else:
            reasons[int(i)] = (
                DropReason.UNREACHABLE,
                "no eligible worker can reach it within its window and still end the shift",
            )
    return reasons


# --------------------------------------------------------------------------- insertion


@dataclass(frozen=True)
class Insertion:
    """Cheapest feasible insertion of a visit into one worker's route (epoch seconds)."""

    worker_id: int
    position: int  # index among the worker's stops before which the visit goes
    start: int
    added_travel_s: int
    added_cost: int


@dataclass(frozen=True)
class InsertionOptions:
    """The best insertion per worker that can take the visit, cheapest first."""

    options: tuple[Insertion, ...]

    @property
    def best(self) -> Insertion | None:
        """The cheapest option, or None when no worker can take the visit."""
        return self.options[0] if self.options else None

    def __len__(self) -> int:
        return len(self.options)


_FLAT_COLUMNS = (
    "route",
    "position",
    "prev_row",
    "next_row",
    "prev_end",
    "next_early",
    "next_start",
    "next_latest",
    "mode",
    "load_left",
    "visits_left",
    "skills",
    "free_from",
    "old_travel",
)


def _route_gaps(p: _Problem, k: int, seq: list[int]) -> dict[str, NDArray[Any]]:
    """Gap rows of worker k's free route part: one before each stop and one before home."""
    w = p.workers[k]
    m = w.mode_code
    dur = p.space.duration[m]
    real = [i for i in seq if i >= 0]
    nodes = np.asarray([2 * p.W + i if i >= 0 else p.break_row for i in seq], dtype=np.int64)
    early, late, service = _stop_windows(p, k, np.asarray(seq, dtype=np.int64))
    rt = route_times(
        dur,
        int(p.ready_row[k]),
        p.W + k,
        int(p.ready_time[k]),
        int(p.shift_end[k]),
        nodes,
        early,
        late,
        service,
        allow_late=True,
        pass_through=p.break_row,
    )
    # A stop already late (after an overrun) may not get any later than it is now.
    lat = latest_starts(
        dur,
        nodes,
        p.W + k,
        max(int(p.shift_end[k]), rt.finish),
        np.maximum(late, rt.start),
        service,
        start_node=int(p.ready_row[k]),
        pass_through=p.break_row,
    )
    # Nothing goes right before a break: the ride after the break would change with it.
    lat = np.where(nodes == p.break_row, np.iinfo(np.int64).min // 4, lat)
    n = len(seq)
    prev_rows = np.concatenate([[p.ready_row[k]], nodes]).astype(np.int64)
    prev_end = np.concatenate([[p.ready_time[k]], rt.end]).astype(np.int64)
    # Inserting right after a break means leaving from the place before the break.
    for j in range(1, n + 1):
        if seq[j - 1] < 0:
            prev_rows[j] = prev_rows[j - 1]
    next_rows = np.concatenate([nodes, [p.W + k]]).astype(np.int64)
    used = int(p.demand[real].sum()) if real else 0
    return {
        "route": np.full(n + 1, k, dtype=np.int64),
        "position": np.arange(n + 1, dtype=np.int64),
        "prev_row": prev_rows,
        "next_row": next_rows,
        "prev_end": prev_end,
        "next_early": np.concatenate([early, [0]]).astype(np.int64),
        "next_start": np.concatenate([rt.start, [rt.finish]]).astype(np.int64),
        "next_latest": np.concatenate([lat, [p.shift_end[k]]]).astype(np.int64),
        "mode": np.full(n + 1, m, dtype=np.int64),
        "load_left": np.full(n + 1, p.cap[k] - used, dtype=np.int64),
        "visits_left": np.full(n + 1, p.maxv[k] - len(real), dtype=np.int64),
        "skills": np.full(n + 1, p.wskills[k], dtype=np.uint64),
        "free_from": np.zeros(n + 1, dtype=np.int64),
        "old_travel": dur[prev_rows, next_rows].astype(np.int64),
    }


def _concat_gaps(pieces: Sequence[dict[str, NDArray[Any]]]) -> FlatRoutes:
    cat = {
        c: (
            np.concatenate([pc[c] for pc in pieces])
            if pieces
            else np.zeros(0, dtype=np.uint64 if c == "skills" else np.int64)
        )
        for c in _FLAT_COLUMNS
    }
    return FlatRoutes(**cat, old_cost=cat["old_travel"])  # type: ignore[arg-type]


def _flat_routes(p: _Problem, seqs: list[list[int]]) -> FlatRoutes:
    """Gap rows of every route (free part only), for vectorised insertion."""
    return _concat_gaps([_route_gaps(p, k, seq) for k, seq in enumerate(seqs)])


def _insert_one(
    p: _Problem, flat: FlatRoutes, i: int, allowed: NDArray[np.bool_]
) -> tuple[IntArray, IntArray, IntArray, IntArray]:
    """Feasible insertions of existing visit i: (route, position, start, added travel)."""
    row = 2 * p.W + i
    to_new = np.zeros(flat.route.size, dtype=np.int64)
    from_new = np.zeros(flat.route.size, dtype=np.int64)
    for m in p.space.modes:
        sel = flat.mode == m
        if sel.any():
            dur = p.space.duration[m]
            to_new[sel] = dur[flat.prev_row[sel], row]
            from_new[sel] = dur[row, flat.next_row[sel]]
    cand = cheapest_insertions(
        flat,
        to_new,
        from_new,
        to_new,
        from_new,
        flat.old_cost,
        int(p.early[i]),
        int(p.late[i]),
        int(p.service[i]),
        int(p.demand[i]),
        int(p.vskills[i]),
    )
    keep = allowed[cand.route]
    return cand.route[keep], cand.position[keep], cand.start[keep], cand.added_cost[keep]


def _greedy_insert(
    p: _Problem, seqs: list[list[int]], todo: Sequence[int], elig: NDArray[np.bool_]
) -> tuple[list[list[int]], list[int]]:
    """Insert visits one by one at their cheapest feasible place (hardest-window first)."""
    left: list[int] = []
    order = sorted(todo, key=lambda i: (int(p.late[i] - p.early[i]), i))
    pieces = [_route_gaps(p, k, seq) for k, seq in enumerate(seqs)]
    flat = _concat_gaps(pieces)
    for i in order:
        r, pos, _, cost = _insert_one(p, flat, i, elig[i])
        if r.size == 0:
            left.append(i)
            continue
        j = int(np.argmin(cost))
        k = int(r[j])
        seqs[k].insert(int(pos[j]), i)
        pieces[k] = _route_gaps(p, k, seqs[k])
        flat = _concat_gaps(pieces)
    return seqs, left


def _external_insertions(
    plan: DayPlan,
    visit: Visit,
    worker_filter: NDArray[np.bool_] | None = None,
    max_leg_s: int | None = None,
) -> tuple[_Problem, list[list[int]], InsertionOptions]:
    """Best insertion per worker of a visit that is not in ``plan`` yet."""
    if plan.travel is None or plan._space is None:
        raise DispatchError("this plan has no travel model attached; re-plan it with plan_day")
    p = _problem(
        plan.visits, plan.workers, plan.travel, None, None, space=plan._space, strict=False
    )
    seqs = _sequences(plan, p)
    flat = _flat_routes(p, seqs)
    to_new = np.zeros(flat.route.size, dtype=np.int64)
    from_new = np.zeros(flat.route.size, dtype=np.int64)
    node = -1 if visit.node is None else visit.node
    for m in p.space.modes:
        sel = np.flatnonzero(flat.mode == m)
        if sel.size == 0:
            continue
        rows = np.unique(np.concatenate([flat.prev_row[sel], flat.next_row[sel]]))
        t_in, t_out = p.space.to_and_from(visit.lat, visit.lng, node, m, rows)
        lookup_in = dict(zip(rows.tolist(), t_in.tolist(), strict=True))
        lookup_out = dict(zip(rows.tolist(), t_out.tolist(), strict=True))
        # Break row: zero travel, like everywhere else.
        to_new[sel] = [0 if r == p.break_row else lookup_in[r] for r in flat.prev_row[sel]]
        from_new[sel] = [0 if r == p.break_row else lookup_out[r] for r in flat.next_row[sel]]
    ws = (visit.pinned_start if visit.pinned_start is not None else visit.window_start) - p.t0
    we = (visit.pinned_start if visit.pinned_start is not None else visit.window_end) - p.t0
    cand = cheapest_insertions(
        flat,
        to_new,
        from_new,
        to_new,
        from_new,
        flat.old_cost,
        ws,
        we,
        visit.duration_s,
        visit.demand,
        visit.skills,
    )
    keep = np.ones(cand.route.size, dtype=bool)
    if max_leg_s is not None:
        rows = _candidate_rows(flat, cand)
        keep &= (to_new[rows] <= max_leg_s) & (from_new[rows] <= max_leg_s)
    if worker_filter is not None:
        keep &= worker_filter[cand.route]
    if visit.pinned_worker is not None:
        keep &= cand.route == p.worker_index.get(visit.pinned_worker, -1)
    r, pos, st, cost, trav = (
        cand.route[keep],
        cand.position[keep],
        cand.start[keep],
        cand.added_cost[keep],
        cand.added_travel[keep],
    )
    options: list[Insertion] = []
    if r.size:
        order = np.lexsort((pos, cost, r))
        r, pos, st, cost, trav = r[order], pos[order], st[order], cost[order], trav[order]
        first = np.flatnonzero(np.r_[True, r[1:] != r[:-1]])
        for j in first[np.argsort(cost[first], kind="stable")]:
            k = int(r[j])
            # Position among *visible* stops: count real stops before the gap (prefix + free).
            visible = len(p.prefix[k]) + sum(1 for i in seqs[k][: int(pos[j])] if i >= 0)
            options.append(
                Insertion(p.workers[k].id, visible, int(st[j]) + p.t0, int(trav[j]), int(cost[j]))
            )
    return p, seqs, InsertionOptions(tuple(options))


def _candidate_rows(flat: FlatRoutes, cand: Any) -> IntArray:
    """Gap rows of the flat table that the candidates came from."""
    starts = np.flatnonzero(flat.position == 0)
    return np.asarray(starts[cand.route] + cand.position, dtype=np.int64)


def _sequences(plan: DayPlan, p: _Problem) -> list[list[int]]:
    """Free-part sequences (visit indices, breaks as -b-1) of every worker in ``plan``."""
    seqs: list[list[int]] = [[] for _ in range(p.W)]
    for r in plan.routes:
        k = p.worker_index[r.worker_id]
        free = [
            p.visit_index[s.visit_id]
            for s in r.stops
            if not p.visits[p.visit_index[s.visit_id]].fixed
        ]
        seqs[k] = _with_breaks(p, k, free)
    return seqs


def _with_breaks(p: _Problem, k: int, free: list[int]) -> list[int]:
    """Place worker k's breaks into a free sequence where its schedule puts them."""
    brk = p.workers[k].breaks
    if not brk:
        return list(free)
    seq = list(free)
    for b_idx, b in enumerate(brk):
        best: list[int] | None = None
        for pos in range(len(seq) + 1):
            trial = [*seq[:pos], -b_idx - 1, *seq[pos:]]
            *_, ok, _ = _schedule_route(p, k, trial)
            if ok:
                best = trial
                break
        if best is None:
            # Keep the break where the worker is free: after the stop ending before it.
            pos = sum(1 for i in seq if i >= 0 and p.late[i] + p.service[i] <= b.start - p.t0)
            best = [*seq[:pos], -b_idx - 1, *seq[pos:]]
        seq = best
    return seq


def insertion_options(plan: DayPlan, visit: Visit) -> InsertionOptions:
    """Cheapest feasible insertion of a new visit per worker, cheapest first (seconds, cost).

    Every gap of every route is evaluated at once (numpy); an option keeps
    every visit already in the plan on time and within its worker's shift,
    skills, capacity and visit limit.
    """
    if visit.id in {v.id for v in plan.visits}:
        raise InvalidInput(f"visit {visit.id} is already in the plan")
    _, _, options = _external_insertions(plan, visit)
    return options


def plan_with_insertion(plan: DayPlan, visit: Visit, option: Insertion) -> DayPlan:
    """A new plan with ``visit`` inserted as ``option`` says; nothing else moves."""
    if plan.travel is None or plan._space is None:
        raise DispatchError("this plan has no travel model attached; re-plan it with plan_day")
    if visit.id in {v.id for v in plan.visits}:
        raise InvalidInput(f"visit {visit.id} is already in the plan")
    p_old = _problem(
        plan.visits, plan.workers, plan.travel, None, None, space=plan._space, strict=False
    )
    seqs = _sequences(plan, p_old)
    k = p_old.worker_index.get(option.worker_id)
    if k is None:
        raise UnknownWorker(f"worker {option.worker_id} is not in this plan")
    space = _extend_space(plan, visit)
    visits = (*plan.visits, visit)
    # The new visit's row is appended after the old visits; the break row moves by one.
    p = _problem(visits, plan.workers, plan.travel, None, None, space=space, strict=False)
    new_i = len(visits) - 1
    free_visible = option.position - len(p.prefix[k])
    seq = seqs[k]
    pos, seen = 0, 0
    while pos < len(seq) and (seen < free_visible or seq[pos] < 0):
        if seq[pos] >= 0:
            seen += 1
        pos += 1
    seq.insert(pos, new_i)
    # Breaks keep their indices (negative), visits keep theirs.
    *_, ok, _ = _schedule_route(p, k, seq)
    if not ok:
        raise InvalidInput(f"visit {visit.id} does not fit worker {option.worker_id} there")
    reasons = {p.visit_index[d.visit_id]: (d.reason, d.detail) for d in plan.dropped}
    out = _assemble(
        p,
        seqs,
        reasons,
        hit_time_limit=False,
        engine="insertion",
        runtime_s=0.0,
        objective=Objective(),
        current=None,
        travel=space.travel,
    )
    return replace(out, changed_assignments=0)


def _extend_space(plan: DayPlan, visit: Visit) -> Space:
    """The plan's space with one more place (the new visit) before the break row."""
    old = plan._space
    assert old is not None
    n = old.places.lat.size
    node = -1 if visit.node is None else visit.node
    lat = np.insert(old.places.lat, n - 1, visit.lat)
    lng = np.insert(old.places.lng, n - 1, visit.lng)
    nodes = np.insert(old.places.node, n - 1, max(node, 0))
    space = Space(
        travel=old.travel, places=Places(lat, lng, nodes), modes=old.modes, horizon=old.horizon
    )
    rows = np.arange(n - 1, dtype=np.int64)
    for m in old.modes:
        t_in, t_out = old.to_and_from(visit.lat, visit.lng, node, m, rows)
        d_in, d_out = old.distance_to_and_from(visit.lat, visit.lng, node, rows)
        for name, a, b in (("duration", t_in, t_out), ("distance", d_in, d_out)):
            mat = getattr(old, name)[m]
            new = np.zeros((n + 1, n + 1), dtype=np.int64)
            new[: n - 1, : n - 1] = mat[: n - 1, : n - 1]
            new[: n - 1, n - 1] = a
            new[n - 1, : n - 1] = b
            getattr(space, name)[m] = new
    return space

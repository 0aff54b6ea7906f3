"""What a day plan is made of: visits, worker days, stops, routes, the plan and its knobs."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from dispatch._vrp_core import (
    MODE_NAMES,
    Space,
    TravelMatrix,
    TravelModelLike,
)
from dispatch.errors import InvalidInput, UnknownWorker

__all__ = [
    "DEFAULT_CHANGE_PENALTY",
    "DEFAULT_DROP_PENALTY",
    "Break",
    "ChangeReason",
    "DayPlan",
    "DropReason",
    "DroppedVisit",
    "Objective",
    "Route",
    "ScheduledVisit",
    "Stop",
    "Visit",
    "VisitOutsideShifts",
    "VisitStatus",
    "WorkerDay",
]

#: Cost units are "travel seconds"; dropping a visit costs this by default (8 h of riding).
DEFAULT_DROP_PENALTY = 8 * 3600
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

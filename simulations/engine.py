"""Discrete-event simulation of a city day through the production dispatch code.

Own heapq loop with an integer simulated clock (epoch seconds) that is passed as ``now``
into the dispatch policies. Per batch window the engine calls ``dispatch.match`` once
for every pending order × every idle, offer-eligible worker (one region: the city), and
drives :class:`dispatch.offers.OfferDesk` for offers, accept timeouts, exclusions,
fairness and the grab pool (grab-pool eligibility comes from
``dispatch.candidates.find_candidates``). Workers answer offers after a random delay
(slower than the accept timeout = a timeout) and decline with their own probability;
travel times come from the geo travel model; services take the city's pre-drawn actual
durations. Nothing here re-implements a dispatch decision: every batch window runs
:mod:`dispatch.rounds` (``admit``, ``escalate_late``, ``offer_round``) over the desk, the very
functions the API's dispatcher runs, and the decision functions come in as injected
:class:`Ports` (production's by default; tests pass wrappers instead of patching modules).

Windows are event driven: a dispatch runs at the next window boundary only after
something changed (a new order, a re-queued order, a worker became free), which is
exactly when a production dispatcher's batch would contain new work.

Booked orders go through the scheduling code instead. At ``Policy.plan_at_h`` the orders
booked so far get day plans from ``dispatch.schedule.plan_day``, one per partition (a
district's workers in angular sectors of at most ``plan_workers``, so every plan stays
small); a later booking is reserved into its partition's plan with
``dispatch.slots.reserve_slot`` (its requested slot, else the first slot
``dispatch.slots.available_slots`` still offers within ``reslot_h``, else refused). A
worker leaves for each planned visit so as to arrive at its planned start and, while
waiting, takes on-demand work that ends ``booked_buffer_s`` before. Disruptions repair
the plan through ``dispatch.repair.repair``: a sick call (``WorkerAbsent``), a visit
that will end so late the worker's next visit misses its slot (late trip or overrun:
``VisitOverran``), a booked cancellation (``VisitCancelled``). A visit no route can hold
leaves the plan for on-demand dispatch an hour before its slot. Before every call the
plan's visits are brought up to date (done and under way visits fixed), and plans ride
:class:`PlanningTravel`, the travel model at each mode's slowest hour.

Randomness uses common random numbers: a worker's answer to an order is a hash of (seed,
order, worker), so replaying the same day under another policy meets the same worker
behaviour wherever the same offer is made.
"""

from __future__ import annotations

import heapq
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from enum import IntEnum
from pathlib import Path
from typing import IO, Any, cast

import numpy as np
from numpy.typing import NDArray

import dispatch
import dispatch.assign
import dispatch.candidates
import dispatch.repair
import dispatch.rounds
import dispatch.schedule
import dispatch.slots
from dispatch.cost import CostWeights
from dispatch.errors import InvalidInput
from dispatch.model import NO_LIMIT_S, TRANSPORT_MODES, Fleet, OrderBatch
from dispatch.offers import (
    Claimed,
    Escalated,
    FallbackToAutoAssign,
    GrabOpened,
    OfferAccepted,
    OfferDesk,
    OfferExpired,
    OfferMade,
    OfferPolicy,
    OfferWithdrawn,
    Reoffer,
)
from dispatch.repair import ChangeKind, RepairResult, VisitCancelled, VisitOverran, WorkerAbsent
from dispatch.schedule import DayPlan, Stop, Visit, VisitStatus, WorkerDay
from dispatch.slots import ServiceRequest, Slot, SlotUnavailable
from geo.projection import haversine_m
from geo.travel import HaversineTravelModel, TravelTimeModel
from simulations.city import NEVER, CityDay, ScenarioError

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class Ports:
    """The production decision functions the engine calls, injected (tests pass wrappers).

    Defaults are the ``dispatch`` functions the API calls: ``match`` for every batch
    (through :func:`dispatch.rounds.offer_round`), ``find_candidates`` for grab pools
    (through :func:`dispatch.rounds.admit`), ``plan_day``, ``repair``, ``available_slots``
    and ``reserve_slot`` for booked orders.
    """

    match: Callable[..., dispatch.assign.Assignment] = dispatch.assign.match
    find_candidates: Callable[..., Any] = dispatch.candidates.find_candidates
    plan_day: Callable[..., DayPlan] = dispatch.schedule.plan_day
    repair: Callable[..., RepairResult] = dispatch.repair.repair
    available_slots: Callable[..., tuple[Slot, ...]] = dispatch.slots.available_slots
    reserve_slot: Callable[..., dispatch.slots.Reservation] = dispatch.slots.reserve_slot


# --------------------------------------------------------------------------- policy


@dataclass(frozen=True)
class Policy:
    """How the simulated platform dispatches: offer policy, cost weights, batching.

    ``batch_window_s`` seconds between batch matches; ``max_batch`` oldest pending orders
    per match; ``aging_per_hour`` member-priority units added per hour an order waits
    (older orders win ties, nobody starves); ``max_lateness_s`` hard bound on a start
    after the promise (None: none); grab pools show an order to the
    ``grab_candidates`` nearest eligible workers within ``grab_max_travel_s``.

    Booked orders: at local hour ``plan_at_h`` of the day the orders booked so far get
    day plans (``dispatch.schedule.plan_day``, one per partition of at most
    ``plan_workers`` workers of a district, ``plan_iterations`` search iterations);
    later bookings are reserved into the plan in force through ``dispatch.slots`` (a
    customer whose slot is gone takes the first free one up to ``reslot_h`` hours later,
    or books nothing). A disruption (sick call, a visit ending over ``repair_after_s``
    later than planned, a cancellation) repairs the plan with ``dispatch.repair``
    (``repair_iterations`` if it re-optimises). A worker waiting for a planned visit
    takes on-demand work that ends ``booked_buffer_s`` before they must leave for it.
    """

    name: str = "auto"
    offer: OfferPolicy = field(default_factory=OfferPolicy)
    weights: CostWeights = field(default_factory=CostWeights)
    batch_window_s: int = 30
    max_batch: int = 200
    aging_per_hour: float = 1.0
    max_lateness_s: int | None = 3600
    candidates_per_order: int = 8
    max_travel_s: float = 3600.0
    grab_candidates: int = 20
    grab_max_travel_s: float = 1800.0
    grab_claims_per_order: int = 3
    plan_at_h: float = 0.0
    plan_workers: int = 25
    plan_iterations: int = 20
    repair_iterations: int = 20
    reslot_h: float = 2.0
    repair_after_s: int = 900
    booked_buffer_s: int = 1200

    def __post_init__(self) -> None:
        ints = (
            *("batch_window_s", "max_batch", "candidates_per_order", "grab_candidates"),
            *("plan_workers", "plan_iterations", "repair_iterations"),
        )
        for name in ints:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ScenarioError(f"must be an integer >= 1, got {value!r}", name)
        if self.grab_claims_per_order < 1:
            raise ScenarioError("must be >= 1", "grab_claims_per_order")
        for name in ("repair_after_s", "booked_buffer_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ScenarioError(f"must be an integer >= 0, got {value!r}", name)
        if (
            isinstance(self.plan_at_h, bool)
            or not isinstance(self.plan_at_h, int | float)
            or not 0 <= self.plan_at_h <= 24
        ):
            raise ScenarioError(
                f"must be a local hour in [0, 24], got {self.plan_at_h!r}", "plan_at_h"
            )
        for name in ("aging_per_hour", "max_travel_s", "grab_max_travel_s", "reslot_h"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ScenarioError(f"must be a finite number >= 0, got {value!r}", name)
        if self.max_lateness_s is not None and self.max_lateness_s < 0:
            raise ScenarioError(
                f"must be >= 0 or null, got {self.max_lateness_s}", "max_lateness_s"
            )

    @property
    def mode(self) -> str:
        """``auto`` (派单) or ``grab`` (抢单)."""
        return self.offer.mode.value

    @property
    def rounds(self) -> dispatch.rounds.RoundParams:
        """The search knobs of every dispatch round (the same type production passes)."""
        return dispatch.rounds.RoundParams(
            candidates_per_order=self.candidates_per_order,
            max_travel_s=self.max_travel_s,
            grab_candidates=self.grab_candidates,
            grab_max_travel_s=self.grab_max_travel_s,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (as in a scenario's ``dispatch`` section)."""
        out: dict[str, Any] = {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name not in ("offer", "weights")
        }
        out.update(self.offer.to_dict())
        out["weights"] = {f.name: getattr(self.weights, f.name) for f in fields(CostWeights)}
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "dispatch") -> Policy:
        """Build from a scenario's ``dispatch`` mapping; errors name ``where.field``."""
        if not isinstance(data, Mapping):
            raise ScenarioError("must be a mapping", where)
        own = {f.name for f in fields(cls)} - {"offer", "weights"}
        offer_keys = set(OfferPolicy.__dataclass_fields__)
        unknown = sorted(set(data) - own - offer_keys - {"weights", "dispatch_ahead_s"})
        if unknown:
            raise ScenarioError(f"unknown field(s) {unknown}", f"{where}.{unknown[0]}")
        try:
            offer = OfferPolicy(**{k: v for k, v in data.items() if k in offer_keys})
        except ValueError as exc:
            name = str(exc).split(" ", 1)[0]
            raise ScenarioError(str(exc), f"{where}.{name}") from None
        raw_w = data.get("weights") or {}
        if isinstance(raw_w, str):
            raw_w = WEIGHT_PRESETS.get(raw_w)
            if raw_w is None:
                raise ScenarioError(
                    f"unknown preset; choose from {sorted(WEIGHT_PRESETS)}", f"{where}.weights"
                )
        if not isinstance(raw_w, Mapping):
            raise ScenarioError("must be a mapping or a preset name", f"{where}.weights")
        bad = sorted(set(raw_w) - set(CostWeights.__dataclass_fields__))
        if bad:
            raise ScenarioError(f"unknown weight(s) {bad}", f"{where}.weights.{bad[0]}")
        try:
            weights = CostWeights(**raw_w)
        except ValueError as exc:
            name = str(exc).split(" ", 1)[0]
            raise ScenarioError(str(exc), f"{where}.weights.{name}") from None
        kwargs = {k: v for k, v in data.items() if k in own}
        kwargs.setdefault("name", offer.mode.value)
        try:
            return cls(offer=offer, weights=weights, **kwargs)
        except ScenarioError as exc:
            raise ScenarioError(str(exc).split(": ", 1)[-1], f"{where}.{exc.field}") from None


#: Named cost-weight sets a sweep or replay can refer to.
WEIGHT_PRESETS: dict[str, dict[str, float]] = {
    "default": {},
    "travel_only": {
        "rating_per_star": 0.0,
        "reputation": 0.0,
        "fairness_per_order": 0.0,
        "preferred_worker": 0.0,
        "lateness_risk": 0.0,
    },
    "fair": {"fairness_per_order": 300.0, "fairness_per_100_yuan": 60.0},
}


# --------------------------------------------------------------------------- results


class OrderOutcome(IntEnum):
    """Final state of an order at the end of the simulated day."""

    SERVED = 0
    CANCELLED = 1
    ESCALATED = 2
    UNSERVED = 3  # still waiting (or in service) when the day ended
    REFUSED = 4  # booked on the day, but no slot was free (the customer booked nothing)


@dataclass(frozen=True, eq=False)
class SimResult:
    """Everything KPIs need: per-order and per-worker arrays plus run counters.

    Times epoch seconds (-1: never); ``travel_m`` metres along the road (detour applied).
    ``promised_s``/``booked_start_s`` are the city's unless a customer took another slot;
    ``moved`` counts repairs that gave an order's visit to another worker, ``repair_dropped``
    marks visits a repair left without a worker; ``repairs`` counts plan repairs by the
    order (overrun, cancellation) or worker (sick call) that caused them.
    """

    city: CityDay
    policy: Policy
    outcome: NDArray[np.int8]
    assigned_at: IntArray
    start_s: IntArray
    end_s: IntArray
    worker_row: IntArray
    travel_s: FloatArray
    travel_m: FloatArray
    offers: IntArray
    declines: IntArray
    timeouts: IntArray
    worker_busy_s: FloatArray
    worker_travel_m: FloatArray
    worker_served: IntArray
    worker_earnings_fen: IntArray
    worker_on_shift_s: FloatArray
    match_calls: int
    matched_orders: int
    events: int
    wall_s: float
    promised_s: IntArray | None = None
    booked_start_s: IntArray | None = None
    in_plan: NDArray[np.bool_] | None = None
    moved: IntArray | None = None
    repair_dropped: NDArray[np.bool_] | None = None
    order_repairs: IntArray | None = None
    worker_repairs: IntArray | None = None
    plan_calls: int = 0
    slot_calls: int = 0

    def __post_init__(self) -> None:
        n, m = self.city.n_orders, self.city.n_workers
        defaults: dict[str, Any] = {
            "promised_s": self.city.promised_s,
            "booked_start_s": self.city.booked_start_s,
            "in_plan": np.zeros(n, dtype=np.bool_),
            "moved": np.zeros(n, dtype=np.int64),
            "repair_dropped": np.zeros(n, dtype=np.bool_),
            "order_repairs": np.zeros(n, dtype=np.int64),
            "worker_repairs": np.zeros(m, dtype=np.int64),
        }
        for name, value in defaults.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)


class _Kind(IntEnum):
    # Value = order among events at the same instant; DISPATCH last so a window sees
    # every completion, arrival and answer of its instant.
    SERVICE_END = 0
    ARRIVE = 1
    RESPONSE = 2
    CLAIM = 3
    CANCEL = 4
    SICK = 5
    OVERRUN = 6
    RELEASE = 7
    BOOK = 8
    PLAN = 9
    SHIFT_START = 10
    DEPART = 11
    TICK = 12
    COOLDOWN_END = 13
    SHIFT_END = 14
    DISPATCH = 15


# order states (_PLANNED: in a day plan, its worker not on the way yet)
_WAITING, _QUEUED, _OFFERED, _ASSIGNED, _SERVING, _DONE, _CANCELLED, _ESCALATED = range(8)
_PLANNED, _REFUSED = 8, 9
# worker states
_OFF, _IDLE, _HOLDING, _BUSY = range(4)

_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xBF58476D1CE4E5B9)
_M3 = np.uint64(0x94D049BB133111EB)


def hash_u01(seed: int, a: Any, b: Any, stream: int) -> FloatArray:
    """Uniform [0, 1) numbers keyed by (seed, a, b, stream) (splitmix64; vectorised over a, b)."""
    x = np.asarray(a, dtype=np.uint64) * _M2 ^ np.asarray(b, dtype=np.uint64) * _M3
    x = x ^ np.uint64((seed * 0x632BE59BD9B4E019 + stream * 0x8CB92BA72F3D8DD7) % 2**64)
    x = x + _M1
    x = (x ^ (x >> np.uint64(30))) * _M2
    x = (x ^ (x >> np.uint64(27))) * _M3
    x = x ^ (x >> np.uint64(31))
    return np.asarray((x >> np.uint64(11)).astype(np.float64) / float(2**53))


class PlanningTravel:
    """Travel for day plans: the engine's model at each mode's slowest hour, all day.

    Plans take the slowest ride over the day anyway (dispatch keeps the maximum over
    departures sampled every 30 minutes), so real rides are never longer than planned.
    With a time-independent model every sampled departure gives the same answer: the
    last answer is reused while the same point arrays come back for the next sample,
    instead of the model being evaluated 30-odd times per planning query.
    """

    def __init__(self, model: HaversineTravelModel) -> None:
        self.model = model
        self._speed = np.array([float(model.speed_profile(m).min()) for m in TRANSPORT_MODES])
        self._detour = np.array([model.detour(m) for m in TRANSPORT_MODES])
        self._overhead = np.array([model.overhead(m) for m in TRANSPORT_MODES])
        self._last: tuple[tuple[Any, ...], FloatArray] | None = None

    def _rides(self, points: tuple[Any, Any, Any, Any], mode: Any, outer: bool) -> FloatArray:
        """Seconds pairwise (``outer=False``, broadcasting) or every origin to every
        destination; the last answer again while the same arrays come back."""
        key = (*points, mode, outer)
        last = self._last
        if last is not None and all(a is b for a, b in zip(last[0], key, strict=True)):
            return last[1]
        lat1, lng1, lat2, lng2 = (np.asarray(x, dtype=np.float64) for x in points)
        if outer:
            lat1, lng1, lat2, lng2 = lat1[:, None], lng1[:, None], lat2[None, :], lng2[None, :]
        code = TRANSPORT_MODES.index(str(getattr(mode, "value", mode)))
        metres = haversine_m(lat1, lng1, lat2, lng2)
        out = np.asarray(metres * self._detour[code] / self._speed[code] + self._overhead[code])
        self._last = (key, out)
        return out

    def seconds(
        self, from_lat: Any, from_lng: Any, to_lat: Any, to_lng: Any, at: Any, mode: Any = "ebike"
    ) -> FloatArray:
        """Seconds from each origin to its destination (broadcasting); ``at`` is ignored."""
        return self._rides((from_lat, from_lng, to_lat, to_lng), mode, outer=False)

    def matrix(
        self, from_lat: Any, from_lng: Any, to_lat: Any, to_lng: Any, at: Any, mode: Any = "ebike"
    ) -> FloatArray:
        """Seconds from every origin to every destination, shape (n, m); ``at`` is ignored."""
        return self._rides((from_lat, from_lng, to_lat, to_lng), mode, outer=True)


def _angle(lat: FloatArray, lng: FloatArray, clat: float, clng: float) -> FloatArray:
    """Bearing (radians) of points seen from (clat, clng), on a local flat projection."""
    east = (np.asarray(lng) - clng) * math.cos(math.radians(clat))
    return np.asarray(np.arctan2(np.asarray(lat) - clat, east), dtype=np.float64)


class _Recorder:
    """JSON-lines event log (one object per line); no-op when no file is given."""

    def __init__(self, fh: IO[str] | None) -> None:
        self.fh = fh

    def __call__(self, kind: str, t: int, **data: Any) -> None:
        if self.fh is not None:
            self.fh.write(json.dumps({"t": t, "e": kind, **data}, separators=(",", ":")) + "\n")


class Engine:
    """One simulated day; build with a CityDay and a Policy, then :meth:`run`."""

    def __init__(
        self,
        city: CityDay,
        policy: Policy | None = None,
        *,
        travel: TravelTimeModel | None = None,
        log: IO[str] | None = None,
        progress: Callable[[float], None] | None = None,
        ports: Ports | None = None,
    ) -> None:
        """Prepare state; ``log`` a text stream for the JSON-lines replay log; ``ports`` the
        decision functions (default: production's)."""
        self.city = city
        self.policy = policy or Policy()
        self.ports = ports or Ports()
        self.travel: TravelTimeModel = travel or cast(TravelTimeModel, HaversineTravelModel())
        # Day plans ride at the slowest hour (see PlanningTravel); other models as they are.
        self.plan_travel: Any = (
            PlanningTravel(self.travel)
            if isinstance(self.travel, HaversineTravelModel)
            else self.travel
        )
        self.desk = OfferDesk(self.policy.offer)
        self.rec = _Recorder(log)
        self.progress = progress
        n, m = city.n_orders, city.n_workers
        self.o_state = np.full(n, _WAITING, dtype=np.int8)
        self.assigned_at = np.full(n, -1, dtype=np.int64)
        self.start_s = np.full(n, -1, dtype=np.int64)
        self.end_s = np.full(n, -1, dtype=np.int64)
        self.worker_row = np.full(n, -1, dtype=np.int64)
        self.travel_s = np.zeros(n)
        self.travel_m = np.zeros(n)
        self.offers = np.zeros(n, dtype=np.int64)
        self.declines = np.zeros(n, dtype=np.int64)
        self.timeouts = np.zeros(n, dtype=np.int64)
        self.w_state = np.full(m, _OFF, dtype=np.int8)
        self.w_lat = city.home_lat.copy()
        self.w_lng = city.home_lng.copy()
        self.w_busy_s = np.zeros(m)
        self.w_travel_m = np.zeros(m)
        self.w_served = np.zeros(m, dtype=np.int64)
        self.w_earn = np.zeros(m, dtype=np.int64)
        self.w_off_after = np.zeros(m, dtype=np.bool_)
        self.w_on_since = np.zeros(m, dtype=np.int64)
        self.w_on_shift_s = np.zeros(m)
        self._heap: list[tuple[int, int, int, int, int]] = []
        self._seq = 0
        self._new: list[int] = []
        self._dirty = False
        self._dispatch_at: int | None = None
        self._ticks: set[int] = set()
        # Orders the last match could not serve for want of an eligible worker wait
        # ("parked") until a worker with one of their skills frees up: re-running match on
        # them before that cannot change the answer, and their growing search radii are the
        # most expensive part of a batch.
        self._parked = np.zeros(n, dtype=np.bool_)
        self._trip_s = np.zeros(n)
        self._trip_m = np.zeros(n)
        self._trip_w = np.full(n, -1, dtype=np.int64)
        self._trip_at = np.full(n, -1, dtype=np.int64)
        detour = getattr(self.travel, "detour", None)
        self._detour = np.array(
            [float(detour(m)) if callable(detour) else 1.0 for m in TRANSPORT_MODES]
        )
        self._freed_skills = 0
        self.match_calls = 0
        self._dispatches = 0
        self.matched = 0
        self.n_events = 0
        self._ids_sorted = bool(np.all(np.diff(city.worker_ids) > 0))
        # Booked orders and day plans (see "day plans" below).
        self.book_start = city.booked_start_s.copy()
        self.promised = city.promised_s.copy()
        self.o_part = np.full(n, -1, dtype=np.int64)  # plan partition of a booked order
        self.in_plan = np.zeros(n, dtype=np.bool_)
        self.o_route_w = np.full(n, -1, dtype=np.int64)  # worker row its plan routes it to
        self.o_plan_start = np.full(n, -1, dtype=np.int64)
        self.o_plan_end = np.full(n, -1, dtype=np.int64)
        self.o_known_end = np.full(n, -1, dtype=np.int64)  # end announced by an overrun
        self.moved = np.zeros(n, dtype=np.int64)
        self.repair_dropped = np.zeros(n, dtype=np.bool_)
        self.o_repairs = np.zeros(n, dtype=np.int64)
        self.w_repairs = np.zeros(m, dtype=np.int64)
        self.w_part = np.full(m, -1, dtype=np.int64)
        self.w_route: list[list[int]] = [[] for _ in range(m)]
        self.w_depart = np.full(m, NEVER, dtype=np.int64)  # must leave for a planned visit
        self.w_gone = np.zeros(m, dtype=np.bool_)  # called in sick
        self.plans: list[DayPlan | None] = []
        self.part_rows: list[IntArray] = []
        # Per partition, orders whose state changed since its plan last saw them.
        self._part_dirty: list[set[int]] = []
        self._visits: dict[int, Visit] = {}
        self.plan_calls = 0
        self.slot_calls = 0
        self.slot_errors = 0

    # ----------------------------------------------------------------- plumbing

    def _push(self, t: int, kind: _Kind, a: int = 0, b: int = 0) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (int(t), int(kind), self._seq, a, b))

    def _touch(self, now: int) -> None:
        """Something changed: make sure a dispatch runs at the next window boundary."""
        self._dirty = True
        w = self.policy.batch_window_s
        at = -(-now // w) * w
        if self._dispatch_at is None:
            self._dispatch_at = at
            self._push(at, _Kind.DISPATCH)

    def _schedule_tick(self) -> None:
        d = self.desk.next_deadline()
        if d is not None and d not in self._ticks:
            self._ticks.add(d)
            self._push(d, _Kind.TICK)

    def _oid(self, row: int) -> int:
        return int(self.city.order_ids[row])

    def _orow(self, oid: int) -> int:
        return self._o_lookup[int(oid)]

    def _orows(self, oids: IntArray) -> IntArray:
        """Row of each order id (vectorised)."""
        rows: IntArray = self._oid_sorter[np.searchsorted(self._oid_sorted, oids)]
        return rows

    def _wrow(self, wid: int) -> int:
        return self._w_lookup[int(wid)]

    # ----------------------------------------------------------------- run

    def run(self) -> SimResult:
        """Simulate the whole day (until every event is processed); returns the result."""
        wall0 = time.perf_counter()
        c = self.city
        ids = c.order_ids
        self._o_lookup = {int(o): i for i, o in enumerate(ids)}
        self._oid_sorter = np.argsort(ids, kind="stable").astype(np.int64)
        self._oid_sorted = ids[self._oid_sorter]
        self._w_lookup = {int(w): i for i, w in enumerate(c.worker_ids)}
        self.rec("header", c.day_start_s, city=c.to_json(), policy=self.policy.to_dict())
        plan_at = c.day_start_s + round(self.policy.plan_at_h * 3600)
        booked = c.booked_start_s >= 0
        # Booked before the plans are made (for a start after that): planned at plan_at;
        # booked later: reserved through dispatch.slots when the customer books.
        self._planned_rows = booked & (c.created_s < plan_at) & (c.booked_start_s >= plan_at)
        if booked.any():
            self._partition()
            self.o_part[booked] = self._part_of_orders(np.flatnonzero(booked))
        for row in range(c.n_orders):
            if self._planned_rows[row]:
                pass  # placed by the PLAN event
            elif booked[row]:
                self._push(int(c.created_s[row]), _Kind.BOOK, row)
            else:
                self._push(int(c.release_s[row]), _Kind.RELEASE, row)
            if c.cancel_at_s[row] < c.end_s + 86_400:
                self._push(int(c.cancel_at_s[row]), _Kind.CANCEL, row)
        if self._planned_rows.any():
            self._push(plan_at, _Kind.PLAN)
        assert c.sick_at_s is not None
        for row in range(c.n_workers):
            self._push(int(c.shift_start_s[row]), _Kind.SHIFT_START, row)
            self._push(int(c.shift_end_s[row]), _Kind.SHIFT_END, row)
            if c.sick_at_s[row] != NEVER:
                self._push(int(c.sick_at_s[row]), _Kind.SICK, row)
        handlers: dict[int, Callable[[int, int, int], None]] = {
            _Kind.SERVICE_END: self._on_service_end,
            _Kind.ARRIVE: self._on_arrive,
            _Kind.RESPONSE: self._on_response,
            _Kind.CLAIM: self._on_claim,
            _Kind.CANCEL: self._on_cancel,
            _Kind.RELEASE: self._on_release,
            _Kind.SHIFT_START: self._on_shift_start,
            _Kind.TICK: self._on_tick,
            _Kind.COOLDOWN_END: self._on_cooldown_end,
            _Kind.SHIFT_END: self._on_shift_end,
            _Kind.DISPATCH: self._on_dispatch,
            _Kind.SICK: self._on_sick,
            _Kind.OVERRUN: self._on_overrun,
            _Kind.BOOK: self._on_book,
            _Kind.PLAN: self._on_plan,
            _Kind.DEPART: self._on_depart,
        }
        span = max(c.end_s - c.day_start_s, 1)
        next_report = 0
        heap = self._heap
        while heap:
            t, kind, _, a, b = heapq.heappop(heap)
            self.n_events += 1
            handlers[kind](t, a, b)
            if self.progress is not None and self.n_events >= next_report:
                next_report = self.n_events + 2000
                self.progress(min(max((t - c.day_start_s) / span, 0.0), 1.0))
        last = max(c.end_s, int(self.end_s.max()) if self.end_s.size else c.end_s)
        on = self.w_state != _OFF
        self.w_on_shift_s[on] += last - self.w_on_since[on]
        outcome = np.full(c.n_orders, OrderOutcome.UNSERVED, dtype=np.int8)
        outcome[self.o_state == _DONE] = OrderOutcome.SERVED
        outcome[self.o_state == _CANCELLED] = OrderOutcome.CANCELLED
        outcome[self.o_state == _ESCALATED] = OrderOutcome.ESCALATED
        outcome[self.o_state == _REFUSED] = OrderOutcome.REFUSED
        if self.progress is not None:
            self.progress(1.0)
        result = SimResult(
            city=c,
            policy=self.policy,
            outcome=outcome,
            assigned_at=self.assigned_at,
            start_s=self.start_s,
            end_s=self.end_s,
            worker_row=self.worker_row,
            travel_s=self.travel_s,
            travel_m=self.travel_m,
            offers=self.offers,
            declines=self.declines,
            timeouts=self.timeouts,
            worker_busy_s=self.w_busy_s,
            worker_travel_m=self.w_travel_m,
            worker_served=self.w_served,
            worker_earnings_fen=self.w_earn,
            worker_on_shift_s=self.w_on_shift_s,
            match_calls=self.match_calls,
            matched_orders=self.matched,
            events=self.n_events,
            wall_s=time.perf_counter() - wall0,
            promised_s=self.promised,
            booked_start_s=self.book_start,
            in_plan=self.in_plan,
            moved=self.moved,
            repair_dropped=self.repair_dropped,
            order_repairs=self.o_repairs,
            worker_repairs=self.w_repairs,
            plan_calls=self.plan_calls,
            slot_calls=self.slot_calls,
        )
        self.rec("end", last, match_calls=self.match_calls, events=self.n_events)
        return result

    # ----------------------------------------------------------------- workers

    def _on_shift_start(self, t: int, w: int, _: int) -> None:
        if self.w_gone[w]:
            return  # called in sick before the shift
        self.w_state[w] = _IDLE
        self.w_on_since[w] = t
        self._freed_skills |= int(self.city.worker_skills[w])
        self.rec("shift_start", t, w=int(self.city.worker_ids[w]))
        self._plan_next(t, w)
        self._touch(t)

    def _go_off(self, t: int, w: int) -> None:
        self.w_state[w] = _OFF
        self.w_on_shift_s[w] += t - self.w_on_since[w]
        self.rec("shift_end", t, w=int(self.city.worker_ids[w]))

    def _on_shift_end(self, t: int, w: int, _: int) -> None:
        if self.w_state[w] == _IDLE and self._route_head(w) < 0:
            self._go_off(t, w)
        elif self.w_state[w] != _OFF:
            # Finish the job in hand (and visits planned for today, if running late).
            self.w_off_after[w] = True

    def _free(self, t: int, w: int) -> None:
        """Worker ``w`` is free again (job done, offer missed or withdrawn)."""
        ending = self.w_off_after[w] or t >= self.city.shift_end_s[w]
        if self.w_gone[w] or (ending and self._route_head(w) < 0):
            self._go_off(t, w)
            return
        self.w_state[w] = _IDLE
        self._freed_skills |= int(self.city.worker_skills[w])
        self._plan_next(t, w)
        self._touch(t)

    def _on_cooldown_end(self, t: int, w: int, _b: int) -> None:
        if self.w_state[w] == _IDLE:
            self._freed_skills |= int(self.city.worker_skills[w])
            self._touch(t)

    # ----------------------------------------------------------------- orders

    def _on_release(self, t: int, o: int, _: int) -> None:
        if self.o_state[o] != _WAITING:
            return  # cancelled before it reached dispatch
        self.o_state[o] = _QUEUED
        self.rec("release", t, o=self._oid(o))
        self._new.append(o)
        self._touch(t)

    def _on_cancel(self, t: int, o: int, _: int) -> None:
        state = self.o_state[o]
        if state == _PLANNED:
            self.o_state[o] = _CANCELLED
            self.rec("cancel", t, o=self._oid(o))
            self.o_repairs[o] += 1
            self._repair(t, int(self.o_part[o]), VisitCancelled(self._oid(o)))
            return
        if state not in (_WAITING, _QUEUED, _OFFERED):
            return  # already assigned: the customer keeps the visit
        oid = self._oid(o)
        if state != _WAITING and (oid in self.desk.book or oid in self.desk.pool):
            for ev in self.desk.cancel(oid, t):
                if isinstance(ev, OfferWithdrawn):
                    self._free(t, self._wrow(ev.worker_id))
        self.o_state[o] = _CANCELLED
        self.rec("cancel", t, o=oid)

    def _assign(self, t: int, o: int, w: int) -> None:
        c = self.city
        self.o_state[o] = _ASSIGNED
        self.w_state[w] = _BUSY
        self.assigned_at[o] = t
        self.worker_row[o] = w
        if self._trip_w[o] == w and self._trip_at[o] == t:
            secs, metres = float(self._trip_s[o]), float(self._trip_m[o])
        else:
            s_arr, m_arr = self._trips(np.array([t]), np.array([o]), np.array([w]))
            secs, metres = float(s_arr[0]), float(m_arr[0])
        self.travel_s[o] = secs
        self.travel_m[o] = metres
        self.w_travel_m[w] += metres
        self.w_busy_s[w] += secs
        self.rec(
            "assign", t, o=self._oid(o), w=int(c.worker_ids[w]), travel_s=secs, travel_m=metres
        )
        if self.in_plan[o]:
            self._part_dirty[int(self.o_part[o])].add(o)
        assert c.delay_s is not None
        self._push(t + math.ceil(secs) + int(c.delay_s[o]), _Kind.ARRIVE, o, w)

    def _trips(self, at: IntArray, o: IntArray, w: IntArray) -> tuple[FloatArray, FloatArray]:
        """Travel seconds and road metres of workers ``w`` to orders ``o`` leaving at ``at``."""
        c = self.city
        secs = self.travel.seconds(
            self.w_lat[w], self.w_lng[w], c.lat[o], c.lng[o], at, mode=c.mode[w].astype(np.int8)
        )
        metres = haversine_m(self.w_lat[w], self.w_lng[w], c.lat[o], c.lng[o])
        return np.asarray(secs, dtype=np.float64), metres * self._detour[c.mode[w]]

    def _on_arrive(self, t: int, o: int, w: int) -> None:
        c = self.city
        self.w_lat[w], self.w_lng[w] = c.lat[o], c.lng[o]
        start = max(t, int(self.book_start[o]))  # early for a booking: wait at the door
        self.o_state[o] = _SERVING
        self.start_s[o] = start
        self.rec("start", start, o=self._oid(o))
        end = start + int(c.actual_service_s[o])
        self._push(end, _Kind.SERVICE_END, o, w)
        if self.in_plan[o] and self.o_plan_end[o] >= 0:
            self._part_dirty[int(self.o_part[o])].add(o)
            # Ending so late (late start or overrun) that the worker's next planned visit
            # would start after its slot: the plan is repaired when that becomes known (at
            # the start, or when this visit should have ended).
            nxt = self._route_head(w)
            slack = self.policy.repair_after_s
            if nxt >= 0:
                room = int(self.promised[nxt]) + c.grace_s - int(self.o_plan_start[nxt])
                slack = max(slack, room)
            limit = int(self.o_plan_end[o]) + slack
            if nxt >= 0 and end > limit:
                known = start if start + int(c.expected_service_s[o]) > limit else None
                at = known if known is not None else start + int(c.expected_service_s[o])
                self._push(min(at, end - 1), _Kind.OVERRUN, o, w)

    def _on_service_end(self, t: int, o: int, w: int) -> None:
        if self.in_plan[o]:
            self._part_dirty[int(self.o_part[o])].add(o)
        self.o_state[o] = _DONE
        self.end_s[o] = t
        self.w_busy_s[w] += float(self.city.actual_service_s[o])
        self.w_served[w] += 1
        self.w_earn[w] += int(self.city.price_fen[o])
        self.rec("done", t, o=self._oid(o))
        self._free(t, w)

    # ----------------------------------------------------------------- offers

    def _after_desk_events(self, t: int, events: tuple[Any, ...]) -> None:
        for ev in events:
            if isinstance(ev, OfferExpired):
                o, w = self._orow(ev.order_id), self._wrow(ev.worker_id)
                self.timeouts[o] += 1
                self.o_state[o] = _QUEUED
                self.rec("timeout", ev.expired_at, o=ev.order_id, w=ev.worker_id)
                self._free(t, w)
                self._cooldown(t, w)
            elif isinstance(ev, Reoffer | FallbackToAutoAssign):
                self.o_state[self._orow(ev.order_id)] = _QUEUED
                self._touch(t)
            elif isinstance(ev, Escalated):
                o = self._orow(ev.order_id)
                self.o_state[o] = _ESCALATED
                self.rec("escalate", t, o=ev.order_id, reason=ev.reason)

    def _cooldown(self, t: int, w: int) -> None:
        cd = self.policy.offer.miss_cooldown_s
        if cd > 0:
            self._push(t + cd, _Kind.COOLDOWN_END, w)

    def _on_tick(self, t: int, _a: int, _b: int) -> None:
        self._ticks.discard(t)
        self._after_desk_events(t, self.desk.tick(t))
        self._schedule_tick()

    def _on_response(self, t: int, o: int, packed: int) -> None:
        w, accept = packed >> 1, packed & 1
        oid, wid = self._oid(o), int(self.city.worker_ids[w])
        if self.desk.book.outstanding_offer(wid) != oid:
            return  # withdrawn (cancelled) or already expired
        if accept:
            ev = self.desk.accept(oid, wid, t)
            if isinstance(ev, OfferAccepted):
                self._assign(t, o, w)
            return
        self.declines[o] += 1
        self.rec("decline", t, o=oid, w=wid)
        events = self.desk.decline(oid, wid, t, "declined")
        self._free(t, w)
        self._cooldown(t, w)
        self._after_desk_events(t, events)

    def _on_claim(self, t: int, o: int, w: int) -> None:
        if self.w_state[w] != _IDLE:
            return  # took another job meanwhile
        oid, wid = self._oid(o), int(self.city.worker_ids[w])
        if oid not in self.desk.pool:
            return
        ev = self.desk.claim(oid, wid, t)
        if isinstance(ev, Claimed):
            self.rec("claim", t, o=oid, w=wid)
            self._assign(t, o, w)

    # ----------------------------------------------------------------- dispatch

    def _free_until(self, rows: IntArray) -> IntArray:
        """When each worker must be done with on-demand work: shift end, or the departure
        for their next planned visit less ``booked_buffer_s``."""
        planned = self.w_depart[rows] - self.policy.booked_buffer_s
        until: IntArray = np.minimum(self.city.shift_end_s[rows], planned)
        return until

    def _fleet(self, rows: IntArray) -> Fleet:
        c = self.city
        return Fleet.from_arrays(
            c.worker_ids[rows],
            self.w_lat[rows],
            self.w_lng[rows],
            skills=c.worker_skills[rows],
            rating=c.rating[rows],
            shift_end_s=self._free_until(rows),
            load_today=self.w_served[rows],
            recent_earnings_fen=self.w_earn[rows],
            mode=c.mode[rows],
        )

    def _orders(self, rows: IntArray, now: int) -> OrderBatch:
        """Orders of ``rows`` as a batch (the desk adds its exclusions in each round)."""
        c, p = self.city, self.policy
        latest = self._latest_start(rows)
        return OrderBatch.from_arrays(
            c.order_ids[rows],
            c.lat[rows],
            c.lng[rows],
            required_skills=c.required_skills[rows],
            service_s=c.expected_service_s[rows],
            latest_start_s=latest,
            priority=dispatch.rounds.waiting_priority(now - c.release_s[rows], p.aging_per_hour),
        )

    def _idle_rows(self, now: int) -> IntArray:
        rows = np.flatnonzero(self.w_state == _IDLE).astype(np.int64)
        if rows.size:
            rows = rows[self._free_until(rows) > now]
        if rows.size:
            ok = self.desk.offer_eligible_mask(self.city.worker_ids[rows], now)
            rows = rows[ok]
        return rows

    def _on_dispatch(self, t: int, _a: int, _b: int) -> None:
        self._dispatch_at = None
        if not self._dirty:
            return
        self._dirty = False
        new, self._new = self._new, []
        new = [o for o in new if self.o_state[o] == _QUEUED]
        if new and self.policy.mode == "grab":
            self._open_grab(t, np.asarray(new, dtype=np.int64))
        else:
            for o in new:
                self.desk.submit(self._oid(o), t)
        pending = self._drop_hopeless(t, self.desk.book.pending_order_ids())
        pending = self._unparked(pending)[: self.policy.max_batch]
        self._freed_skills = 0
        if pending.size:
            idle = self._idle_rows(t)
            if idle.size:
                self._match(t, pending, idle)
        self._schedule_tick()
        self._dispatches += 1
        if self._dispatches % 20 == 0:
            # The book scans every order it holds on each call: forget closed ones.
            self.desk.drop_closed(t)

    def _unparked(self, pending_ids: IntArray) -> IntArray:
        """Pending orders worth matching: not parked, or parked but a skilled worker freed up."""
        if pending_ids.size == 0:
            return pending_ids
        rows = self._orows(pending_ids)
        parked = self._parked[rows]
        need = self.city.required_skills[rows]
        retry = parked & (((need & np.uint64(self._freed_skills)) != 0) | (need == 0))
        self._parked[rows[retry]] = False
        keep: IntArray = pending_ids[~parked | retry]
        return keep

    def _drop_hopeless(self, t: int, pending_ids: IntArray) -> IntArray:
        """Escalate orders whose latest acceptable start has passed (no match can serve them)."""
        if self.policy.max_lateness_s is None or pending_ids.size == 0:
            return pending_ids
        latest = self._latest_start(self._orows(pending_ids))
        self._after_desk_events(t, dispatch.rounds.escalate_late(self.desk, pending_ids, latest, t))
        keep: IntArray = pending_ids[latest >= t]
        return keep

    def _latest_start(self, rows: IntArray) -> IntArray:
        """Latest acceptable start of each order row (epoch s; NO_LIMIT_S without a bound)."""
        if self.policy.max_lateness_s is None:
            return np.full(rows.size, NO_LIMIT_S, dtype=np.int64)
        c = self.city
        latest: IntArray = c.promised_s[rows] + c.grace_s + self.policy.max_lateness_s
        return latest

    def _match(self, t: int, pending_ids: IntArray, idle: IntArray) -> None:
        p = self.policy
        rows = self._orows(pending_ids)
        outcome = dispatch.rounds.offer_round(
            self.desk,
            self._orders(rows, t),
            self._fleet(idle),
            t,
            weights=p.weights,
            params=p.rounds,
            travel=self.travel,
            match_fn=self.ports.match,
        )
        result = outcome.assignment
        if result is None:
            return
        self.match_calls += 1
        self.rec(
            "match", t, orders=int(rows.size), workers=int(idle.size), assigned=result.assigned
        )
        for oid, reason in zip(
            result.unassigned_order_ids.tolist(), result.unassigned_reasons, strict=True
        ):
            if reason != "outbid":  # outbid orders had an eligible worker: retry next window
                self._parked[self._orow(oid)] = True
        if not outcome.offers:
            return
        self.matched += len(outcome.offers)
        self._answer(t, outcome.offers)

    def _answer(self, t: int, made: tuple[OfferMade, ...]) -> None:
        """Draw each offered worker's answer (common random numbers) and schedule it."""
        c = self.city
        oids = np.fromiter((m.order_id for m in made), dtype=np.int64, count=len(made))
        wids = np.fromiter((m.worker_id for m in made), dtype=np.int64, count=len(made))
        o_rows = self._orows(oids)
        w_rows = np.asarray([self._wrow(w) for w in wids.tolist()], dtype=np.int64)
        u_decline = hash_u01(c.seed, oids, wids, 1)
        u_delay = hash_u01(c.seed, oids, wids, 2)
        delay = np.ceil(-np.log1p(-u_delay) * c.response_mean_s[w_rows]).astype(np.int64)
        timeout = self.policy.offer.accept_timeout_s
        accept = u_decline >= c.decline_prob[w_rows]
        # Trips of the workers who will accept, priced at once (vectorised) for their
        # departure instants; _assign uses them if the accept comes as drawn.
        go = accept & (delay < self.policy.offer.accept_timeout_s)
        if go.any():
            depart = t + delay[go]
            secs, metres = self._trips(depart, o_rows[go], w_rows[go])
            self._trip_s[o_rows[go]] = secs
            self._trip_m[o_rows[go]] = metres
            self._trip_w[o_rows[go]] = w_rows[go]
            self._trip_at[o_rows[go]] = depart
        for i, m in enumerate(made):
            o, w = int(o_rows[i]), int(w_rows[i])
            self.o_state[o] = _OFFERED
            self.offers[o] += 1
            self.w_state[w] = _HOLDING
            self.rec("offer", t, o=m.order_id, w=m.worker_id)
            if delay[i] < timeout:
                self._push(t + int(delay[i]), _Kind.RESPONSE, o, (w << 1) | int(accept[i]))

    def _open_grab(self, t: int, rows: IntArray) -> None:
        """Show new orders to nearby eligible idle workers; schedule the first claims."""
        c, p = self.city, self.policy
        events = dispatch.rounds.admit(
            self.desk,
            self._orders(rows, t),
            self._fleet(self._idle_rows(t)),
            t,
            params=p.rounds,
            travel=self.travel,
            find_fn=self.ports.find_candidates,
        )
        window = p.offer.grab_window_s
        for ev in events:
            if not isinstance(ev, GrabOpened):
                continue  # nobody eligible: queued for auto-assign straight away
            o = self._orow(ev.order_id)
            wids = np.asarray(ev.eligible_worker_ids, dtype=np.int64)
            w_rows = np.asarray([self._wrow(w) for w in wids.tolist()], dtype=np.int64)
            self.rec("grab_open", t, o=ev.order_id, shown=int(w_rows.size))
            oid_arr = np.full(w_rows.size, ev.order_id, dtype=np.int64)
            keen = hash_u01(c.seed, oid_arr, wids, 1) >= c.decline_prob[w_rows]
            delay = np.ceil(
                -np.log1p(-hash_u01(c.seed, oid_arr, wids, 2)) * c.response_mean_s[w_rows]
            ).astype(np.int64)
            ok = keen & (delay < window)
            first = np.argsort(delay[ok], kind="stable")[: p.grab_claims_per_order]
            for j in first.tolist():
                self._push(t + int(delay[ok][j]), _Kind.CLAIM, o, int(w_rows[ok][j]))

    # ----------------------------------------------------------------- day plans

    def _partition(self) -> None:
        """Plan partitions: each district's workers in angular sectors of at most
        ``plan_workers`` around their centroid (shifts mixed), so every plan_day is small."""
        c, size = self.city, self.policy.plan_workers
        self._sectors: dict[int, tuple[float, float, FloatArray, IntArray]] = {}
        for d in range(len(c.district_names)):
            ws = np.flatnonzero(c.home_district == d)
            if ws.size == 0:
                continue
            clat, clng = float(c.home_lat[ws].mean()), float(c.home_lng[ws].mean())
            ang = _angle(c.home_lat[ws], c.home_lng[ws], clat, clng)
            chunks = np.array_split(np.argsort(ang, kind="stable"), -(-ws.size // size))
            ids = np.arange(len(self.part_rows), len(self.part_rows) + len(chunks))
            for k, chunk in zip(ids.tolist(), chunks, strict=True):
                self.part_rows.append(ws[chunk])
                self.plans.append(None)
                self._part_dirty.append(set())
                self.w_part[ws[chunk]] = k
            edges = np.asarray([ang[ch[0]] for ch in chunks[1:]], dtype=np.float64)
            self._sectors[d] = (clat, clng, edges, ids.astype(np.int64))

    def _part_of_orders(self, rows: IntArray) -> IntArray:
        """Partition of each order: the sector of its district it lies in (-1: no workers)."""
        c = self.city
        out = np.full(rows.size, -1, dtype=np.int64)
        for d, (clat, clng, edges, ids) in self._sectors.items():
            sel = c.district[rows] == d
            if sel.any():
                ang = _angle(c.lat[rows[sel]], c.lng[rows[sel]], clat, clng)
                out[sel] = ids[np.searchsorted(edges, ang, side="right")]
        return out

    def _visit(self, o: int) -> Visit:
        c = self.city
        return Visit(
            id=self._oid(o),
            lat=float(c.lat[o]),
            lng=float(c.lng[o]),
            duration_s=int(c.expected_service_s[o]),
            window_start=int(self.book_start[o]),
            window_end=int(self.promised[o]),
            skills=int(c.required_skills[o]),
        )

    def _worker_days(self, k: int) -> list[WorkerDay]:
        c = self.city
        return [
            WorkerDay(
                id=int(c.worker_ids[w]),
                shift_start=int(c.shift_start_s[w]),
                shift_end=int(c.shift_end_s[w]),
                start_lat=float(c.home_lat[w]),
                start_lng=float(c.home_lng[w]),
                skills=int(c.worker_skills[w]),
                mode=TRANSPORT_MODES[int(c.mode[w])],
            )
            for w in self.part_rows[k].tolist()
            if not self.w_gone[w]
        ]

    def _stop(self, iterations: int) -> Stop:
        # The iteration cap binds, not the clock: the same day gives the same plans.
        return Stop(seconds=600.0, max_iterations=iterations)

    def _new_plan(self, k: int, visits: list[Visit]) -> DayPlan | None:
        workers = self._worker_days(k)
        if not workers:
            return None
        self.plan_calls += 1
        return self.ports.plan_day(
            visits,
            workers,
            travel=self.plan_travel,
            stop=self._stop(self.policy.plan_iterations),
            seed=self.city.seed,
        )

    def _fits_a_shift(self, rows: IntArray, workers: list[WorkerDay]) -> NDArray[np.bool_]:
        """Orders whose slot and duration fit some worker's shift (plan_day rejects others)."""
        if not workers or rows.size == 0:
            return np.zeros(rows.size, dtype=np.bool_)
        starts = np.asarray([w.shift_start for w in workers], dtype=np.int64)[None, :]
        ends = np.asarray([w.shift_end for w in workers], dtype=np.int64)[None, :]
        ws, we = self.book_start[rows][:, None], self.promised[rows][:, None]
        dur = self.city.expected_service_s[rows][:, None]
        ok = (ws <= ends) & (np.maximum(ws, starts) + dur <= ends) & (we >= starts)
        return np.asarray(ok.any(axis=1), dtype=np.bool_)

    def _on_plan(self, t: int, _a: int, _b: int) -> None:
        """Day plans for everything booked so far, one plan_day per partition."""
        rows = np.flatnonzero(self._planned_rows & (self.o_state == _WAITING))
        parts = self.o_part[rows]
        for o in rows[parts < 0].tolist():
            self._push(max(t, int(self.city.release_s[o])), _Kind.RELEASE, o)
        planned = dropped = 0
        for k in range(len(self.part_rows)):
            mine = rows[parts == k]
            ours = self.in_plan & (self.o_part == k)
            earlier = np.flatnonzero(ours & (self.o_state == _PLANNED))
            # Booked earlier and already under way: finished outside the new plan.
            self.in_plan[ours & (self.o_state != _PLANNED)] = False
            fits = self._fits_a_shift(mine, self._worker_days(k))
            take = mine[fits]
            plan = None
            if take.size or earlier.size or self.plans[k] is None:
                for o in take.tolist():
                    self._visits[o] = self._visit(o)
                visits = [self._visits[o] for o in [*earlier.tolist(), *take.tolist()]]
                plan = self._new_plan(k, visits)
            # No shift covers it, or nobody is left to plan for: on-demand dispatch takes it.
            for o in (mine if plan is None else mine[~fits]).tolist():
                self._push(max(t, int(self.city.release_s[o])), _Kind.RELEASE, o)
            if plan is None:
                continue
            self.o_state[take] = _PLANNED
            self.in_plan[take] = True
            self.rec("planned", t, o=self.city.order_ids[take].tolist())
            planned += int(take.size)
            dropped += plan.num_dropped
            self._adopt(t, k, plan)
        self.rec("plan", t, partitions=len(self.part_rows), visits=planned, dropped=dropped)

    def _adopt(self, t: int, k: int, plan: DayPlan) -> None:
        """Make ``plan`` the one in force for partition ``k``: routes, departures, drops."""
        self.plans[k] = plan
        heads = {
            w: (self.w_route[w][0], int(self.o_plan_start[self.w_route[w][0]]))
            if self.w_route[w]
            else (-1, -1)
            for w in self.part_rows[k].tolist()
        }
        for w in heads:
            self.w_route[w] = []
        for r in plan.routes:
            w = self._wrow(r.worker_id)
            seq = self.w_route[w]
            for stop in r.stops:
                o = self._orow(stop.visit_id)
                if self.o_state[o] != _PLANNED:
                    continue
                self.o_route_w[o] = w
                self.o_plan_start[o] = stop.start
                self.o_plan_end[o] = stop.end
                seq.append(o)
        # A visit no route can hold leaves the plan for on-demand dispatch (an hour ahead),
        # as a dispatcher would hand it to whoever is free.
        left = [
            self._orow(d.visit_id)
            for d in plan.dropped
            if self.o_state[self._orow(d.visit_id)] == _PLANNED
        ]
        for o in left:
            self.in_plan[o] = False
            self.o_route_w[o] = -1
            self.o_state[o] = _WAITING
            self._push(max(t, int(self.city.release_s[o])), _Kind.RELEASE, o)
        if left:
            self._part_dirty[k].update(left)
            self.rec("unplanned", t, o=self.city.order_ids[left].tolist())
        changed = []
        for w, head in heads.items():
            route = self.w_route[w]
            now = (route[0], int(self.o_plan_start[route[0]])) if route else (-1, -1)
            # A new first visit, or the same one retimed: the departure moves.
            if now != head or (now[0] >= 0 and self.w_depart[w] == NEVER):
                changed.append(w)
        self._plan_next_many(t, changed)

    def _route_head(self, w: int) -> int:
        """The next planned visit of worker ``w`` (-1: none left)."""
        route = self.w_route[w]
        while route and self.o_state[route[0]] != _PLANNED:
            route.pop(0)
        return route[0] if route else -1

    def _plan_next(self, t: int, w: int) -> None:
        """An idle worker with a planned visit leaves so as to arrive at its planned start."""
        self._plan_next_many(t, [w])

    def _plan_next_many(self, t: int, workers: list[int]) -> None:
        """:meth:`_plan_next` for several workers, their rides priced in one call."""
        going: list[tuple[int, int]] = []
        for w in workers:
            o = self._route_head(w)
            if o < 0:
                self.w_depart[w] = NEVER
            elif self.w_state[w] == _IDLE:
                going.append((w, o))
        if not going:
            return
        w_rows = np.fromiter((w for w, _ in going), dtype=np.int64, count=len(going))
        o_rows = np.fromiter((o for _, o in going), dtype=np.int64, count=len(going))
        secs = self._planned_rides(t, o_rows, w_rows)
        for (w, o), ride in zip(going, secs.tolist(), strict=True):
            depart = max(t, int(self.o_plan_start[o]) - math.ceil(ride))
            self.w_depart[w] = depart
            if depart <= t:
                self._go_planned(t, w, o)
            else:
                self._push(depart, _Kind.DEPART, w, o)

    def _planned_rides(self, t: int, o: IntArray, w: IntArray) -> FloatArray:
        """Seconds a worker allows for the ride to a planned visit: the plans' own (slowest
        hour) estimate, so they leave early rather than late."""
        if not isinstance(self.plan_travel, PlanningTravel):
            secs, _ = self._trips(np.full(o.size, t, dtype=np.int64), o, w)
            return secs
        c = self.city
        out = np.zeros(o.size)
        modes = c.mode[w]
        for code in np.unique(modes).tolist():
            sel = modes == code
            out[sel] = self.plan_travel.seconds(
                self.w_lat[w[sel]],
                self.w_lng[w[sel]],
                c.lat[o[sel]],
                c.lng[o[sel]],
                t,
                mode=TRANSPORT_MODES[code],
            )
        return out

    def _go_planned(self, t: int, w: int, o: int) -> None:
        self.w_route[w].pop(0)
        self.w_depart[w] = NEVER
        self._assign(t, o, w)

    def _on_depart(self, t: int, w: int, o: int) -> None:
        if self.w_state[w] == _IDLE and self.w_depart[w] == t and self._route_head(w) == o:
            self._go_planned(t, w, o)

    def _sync(self, k: int, t: int, overrun: int = -1) -> DayPlan:
        """Partition ``k``'s plan with every visit's status as the day has gone so far.

        Started and done visits are fixed (a visit under way counts as started); gone
        ones (cancelled, escalated, left for on-demand dispatch) are pinned to nobody, so
        no repair brings them back.
        """
        plan = self.plans[k]
        assert plan is not None
        dirty = self._part_dirty[k]
        if overrun >= 0:
            dirty.add(overrun)
        if not dirty:
            return plan
        c = self.city
        out = list(plan.visits)
        where = {v.id: i for i, v in enumerate(out)}
        for o in sorted(dirty):
            i = where.get(self._oid(o))
            if i is None:
                continue  # not in this plan (any more)
            state = self.o_state[o]
            w = int(self.worker_row[o])
            wid = int(c.worker_ids[w]) if w >= 0 else -1
            spec = self._visits[o]
            if not self.in_plan[o]:
                v = replace(spec, status=VisitStatus.CONFIRMED, pinned_worker=-1)
            elif state == _DONE:
                v = replace(
                    spec,
                    status=VisitStatus.DONE,
                    pinned_worker=wid,
                    pinned_start=int(self.start_s[o]),
                    duration_s=int(c.actual_service_s[o]),
                )
            elif state in (_SERVING, _ASSIGNED):
                start = (
                    int(self.start_s[o]) if state == _SERVING else max(int(self.o_plan_start[o]), t)
                )
                if o == overrun:  # its end moves by the event's extra seconds
                    dur = max(1, int(self.o_plan_end[o]) - start)
                elif self.o_known_end[o] >= 0:
                    dur = max(1, int(self.o_known_end[o]) - start)
                else:
                    dur = int(c.expected_service_s[o])
                v = replace(
                    spec,
                    status=VisitStatus.STARTED,
                    pinned_worker=wid,
                    pinned_start=start,
                    duration_s=dur,
                )
            elif state == _PLANNED:
                v = spec
            else:
                v = replace(spec, status=VisitStatus.CONFIRMED, pinned_worker=-1)
            out[i] = v
        dirty.clear()
        synced = replace(plan, visits=tuple(out))
        self.plans[k] = synced
        return synced

    def _repair(self, t: int, k: int, event: Any, overrun: int = -1) -> None:
        """Repair partition ``k``'s plan after ``event`` through ``dispatch.repair``."""
        if k < 0 or self.plans[k] is None:
            return
        plan = self._sync(k, t, overrun)
        result = self.ports.repair(
            plan,
            event,
            travel=self.plan_travel,
            stop=self._stop(self.policy.repair_iterations),
            seed=self.city.seed,
        )
        moved: list[int] = []
        dropped: list[int] = []
        for change in result.changes:
            o = self._o_lookup.get(change.visit_id)
            if o is None:
                continue
            if change.kind == ChangeKind.REASSIGNED:
                self.moved[o] += 1
                moved.append(change.visit_id)
            elif change.kind == ChangeKind.DROPPED:
                self.repair_dropped[o] = True
                dropped.append(change.visit_id)
        self.rec("repair", t, why=type(event).__name__, moved=moved, dropped=dropped)
        self._adopt(t, k, result.plan)

    def _on_sick(self, t: int, w: int, _: int) -> None:
        """Worker ``w`` calls in sick: home after the job in hand; their plan is repaired."""
        c = self.city
        if t >= c.shift_end_s[w] or self.w_gone[w]:
            return
        self.w_gone[w] = True
        self.rec("sick", t, w=int(c.worker_ids[w]))
        if self.w_state[w] == _IDLE:
            self._go_off(t, w)
        elif self.w_state[w] != _OFF:
            self.w_off_after[w] = True
        k = int(self.w_part[w])
        if k >= 0 and self.plans[k] is not None:
            self.w_repairs[w] += 1
            self._repair(t, k, WorkerAbsent(int(c.worker_ids[w]), t))

    def _on_overrun(self, t: int, o: int, w: int) -> None:
        """A planned visit will end well after its planned end: repair the rest of the day."""
        if self.o_state[o] != _SERVING:
            return
        start = int(self.start_s[o])
        end = start + int(self.city.actual_service_s[o])
        extra = end - max(start + 1, int(self.o_plan_end[o]))
        if extra <= 0:
            return
        self.o_repairs[o] += 1
        self.rec("overrun", t, o=self._oid(o), extra_s=extra)
        self._repair(t, int(self.o_part[o]), VisitOverran(self._oid(o), extra), overrun=o)
        self.o_known_end[o] = end

    def _ensure_plan(self, k: int) -> DayPlan | None:
        if self.plans[k] is None:
            plan = self._new_plan(k, [])
            if plan is not None:
                self.plans[k] = plan
        return self.plans[k]

    def _on_book(self, t: int, o: int, _: int) -> None:
        """A customer books a slot: reserved into the plan in force through dispatch.slots.

        The requested slot first; if it is gone, the first free slot (available_slots)
        up to ``reslot_h`` later; otherwise the customer books nothing (refused).
        """
        if self.o_state[o] != _WAITING:
            return  # cancelled at once
        c = self.city
        k = int(self.o_part[o])
        plan = self._ensure_plan(k) if k >= 0 else None
        oid = self._oid(o)
        result = None
        if plan is not None:
            plan = self._sync(k, t)
            req = ServiceRequest(
                duration_s=int(c.expected_service_s[o]), skills=int(c.required_skills[o])
            )
            where = (float(c.lat[o]), float(c.lng[o]))
            start, width = int(self.book_start[o]), int(self.promised[o] - self.book_start[o])
            result = self._reserve(req, where, Slot(start, start + width, 1), plan, oid)
            latest = start + round(self.policy.reslot_h * 3600)
            if result is None and latest > start:
                self.slot_calls += 1
                free = self.ports.available_slots(
                    req, where, (start + width, latest + 1), plan,
                    granularity_s=width, lead_time_s=0, now=t,
                )  # fmt: skip
                if free:
                    result = self._reserve(req, where, free[0], plan, oid)
        if result is None:
            self.o_state[o] = _REFUSED
            self.rec("refuse", t, o=oid)
            return
        shift = result.visit.window_start - int(self.book_start[o])
        if shift:
            self.book_start[o] += shift
            self.promised[o] += shift
        self._visits[o] = result.visit
        self.o_state[o] = _PLANNED
        self.in_plan[o] = True
        self.rec("book", t, o=oid, start=int(self.book_start[o]), end=int(self.promised[o]))
        self._adopt(t, k, result.plan)

    def _reserve(
        self,
        req: ServiceRequest,
        where: tuple[float, float],
        slot: Slot,
        plan: DayPlan,
        oid: int,
    ) -> dispatch.slots.Reservation | None:
        self.slot_calls += 1
        try:
            return self.ports.reserve_slot(req, where, slot, plan, visit_id=oid)
        except SlotUnavailable:
            return None
        except InvalidInput:
            # dispatch.schedule.plan_with_insertion re-times the chosen route without the
            # lateness the insertion search tolerates, so a route already running late (kept
            # by a repair) rejects the option it was offered. The booking fails like a
            # taken slot; counted so the KPI table shows it.
            self.slot_errors += 1
            return None


def simulate(
    city: CityDay,
    policy: Policy | None = None,
    *,
    travel: TravelTimeModel | None = None,
    record: str | Path | None = None,
    progress: Callable[[float], None] | None = None,
    ports: Ports | None = None,
) -> SimResult:
    """Simulate ``city`` under ``policy``; ``record`` writes the JSON-lines replay log there;
    ``ports`` the decision functions (default: production's)."""
    if record is None:
        return Engine(city, policy, travel=travel, progress=progress, ports=ports).run()
    path = Path(record)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        return Engine(city, policy, travel=travel, log=fh, progress=progress, ports=ports).run()


def policy_with(policy: Policy, **changes: Any) -> Policy:
    """A copy of ``policy`` with top-level, offer (``mode``, ``accept_timeout_s``, ...) or
    ``weights`` (a mapping or preset name) fields changed."""
    data = policy.to_dict()
    for key, value in changes.items():
        if key == "weights" and isinstance(value, Mapping):
            data["weights"] = {**data["weights"], **value}
        else:
            data[key] = value
    if "mode" in changes and "name" not in changes:
        data["name"] = str(changes["mode"])
    return Policy.from_dict(data, where="policy")


__all__ = [
    "WEIGHT_PRESETS",
    "Engine",
    "OrderOutcome",
    "Policy",
    "Ports",
    "SimResult",
    "hash_u01",
    "policy_with",
    "simulate",
]

"""How the simulated platform dispatches (``Policy``), what it calls (``Ports``), what it gives."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from enum import IntEnum
from typing import Any

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
from dispatch.offers import (
    OfferPolicy,
)
from dispatch.repair import RepairResult
from dispatch.schedule import DayPlan
from dispatch.slots import Slot
from simulations.city import CityDay, ScenarioError

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

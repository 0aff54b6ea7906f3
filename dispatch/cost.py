"""Matching costs: weighted terms per (order, worker) pair, kept apart for explanations.

Every term is in *cost seconds* (seconds of travel the dispatcher would trade for it), so a
dispatcher can read "rating: +48 s" beside "travel: 312 s". The solver sees the total scaled
to integer deci-seconds (``COST_SCALE``); explanations keep the real units.

Terms (per pair, weight × feature):
- travel: ``travel_per_s`` × travel seconds;
- rating: ``rating_per_star`` × (5 − rating);
- reputation: ``reputation`` × (1 − reputation score);
- fairness: F·tanh(raw / F) with raw = ``fairness_per_order`` × orders served today +
  ``fairness_per_100_yuan`` × recent earnings in units of 100 yuan (10 000 fen) and the cap
  F = ``fairness_cap`` × ``unassigned``: about raw while small, never above F, so however
  busy a feasible idle worker has been, fairness alone never makes leaving an order
  unassigned cheaper than sending them;
- member_priority: −``priority`` × the order's member priority (the same for every worker of
  an order: it raises what leaving the order unassigned costs);
- preferred_worker: −``preferred_worker`` when the worker is the customer's preferred one;
- lateness_risk: ``lateness_risk`` × seconds by which the slack before the latest start
  falls under ``lateness_window_s``.
Leaving an order unassigned costs ``unassigned`` + ``urgency`` × ``lateness_risk`` × the
seconds by which its slack before the latest start (latest start − now) falls under
``lateness_window_s`` + the travel bound (see ``unassigned_penalty``). That horizon covers
every pair's lateness window and the slope is ``urgency`` (>= 1) times the lateness slope,
so the penalty grows with urgency at least as fast as any pair's lateness risk: of two
orders contesting one worker at equal travel, the more urgent one wins (strictly, when
``urgency`` > 1). Exact ties are broken towards the older order (lower row = earlier
arrival) by the solver (assign.py), never at the cost of a strictly cheaper solution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np
from numpy.typing import NDArray

from dispatch.errors import InvalidInput
from dispatch.model import MAX_RATING, NO_LIMIT_S, NONE_ID, Fleet, OrderBatch

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]

#: Integer solver costs are cost seconds × COST_SCALE (deci-seconds).
COST_SCALE = 10
#: Cost terms in explanation order.
TERMS: tuple[str, ...] = (
    "travel",
    "rating",
    "reputation",
    "fairness",
    "member_priority",
    "preferred_worker",
    "lateness_risk",
)
_FEN_PER_100_YUAN = 10_000.0


@dataclass(frozen=True)
class CostWeights:
    """Weights of the cost terms (see module docstring); all >= 0 and finite, in cost seconds.

    One instance per enterprise is how a tenant tunes its dispatch.
    """

    travel_per_s: float = 1.0
    rating_per_star: float = 120.0
    reputation: float = 60.0
    fairness_per_order: float = 30.0
    fairness_per_100_yuan: float = 0.0
    priority: float = 300.0
    preferred_worker: float = 600.0
    lateness_risk: float = 1.0
    lateness_window_s: float = 600.0
    unassigned: float = 3600.0
    #: Fairness saturates at this fraction of ``unassigned`` (in [0, 1)).
    fairness_cap: float = 0.25
    #: Unassigned-penalty growth per second of lost slack, in units of ``lateness_risk`` (>= 1).
    urgency: float = 1.25

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidInput(f"{f.name} must be a number, got {value!r}")
            if not math.isfinite(value) or value < 0:
                raise InvalidInput(f"{f.name} must be finite and >= 0, got {value}")
        if self.unassigned <= 0:
            raise InvalidInput(f"unassigned must be > 0, got {self.unassigned}")
        if self.fairness_cap >= 1:
            raise InvalidInput(f"fairness_cap must be < 1, got {self.fairness_cap}")
        if self.urgency < 1:
            raise InvalidInput(f"urgency must be >= 1, got {self.urgency}")

    @classmethod
    def travel_only(cls, unassigned: float = 3600.0) -> CostWeights:
        """Pure travel-time matching: every term but travel switched off."""
        return cls(
            travel_per_s=1.0,
            rating_per_star=0.0,
            reputation=0.0,
            fairness_per_order=0.0,
            fairness_per_100_yuan=0.0,
            priority=0.0,
            preferred_worker=0.0,
            lateness_risk=0.0,
            unassigned=unassigned,
        )


@dataclass(frozen=True, eq=False)
class PairCosts:
    """Cost terms (cost seconds) of many pairs, their float total and integer solver cost."""

    terms: dict[str, FloatArray]
    total: FloatArray
    total_int: IntArray


def to_int(cost_s: FloatArray) -> IntArray:
    """Cost seconds to integer solver units (deci-seconds, rounded half to even)."""
    return np.asarray(np.rint(np.asarray(cost_s) * COST_SCALE), dtype=np.int64)


def fairness(weights: CostWeights, fleet: Fleet, worker_idx: IntArray) -> FloatArray:
    """Saturating fairness term of each worker (cost seconds, below the cap; see module)."""
    if weights.fairness_per_order == 0 and weights.fairness_per_100_yuan == 0:
        return np.zeros(worker_idx.shape[0])
    raw = weights.fairness_per_order * fleet.load_today[worker_idx].astype(
        np.float64
    ) + weights.fairness_per_100_yuan * (fleet.recent_earnings_fen[worker_idx] / _FEN_PER_100_YUAN)
    cap = weights.fairness_cap * weights.unassigned
    if cap <= 0:
        return np.zeros(raw.shape)
    return np.asarray(cap * np.tanh(raw / cap), dtype=np.float64)


def _rating(weights: CostWeights, fleet: Fleet, worker_idx: IntArray) -> FloatArray:
    """The rating term of each worker (cost seconds)."""
    return weights.rating_per_star * (MAX_RATING - fleet.rating[worker_idx])


def _reputation(weights: CostWeights, fleet: Fleet, worker_idx: IntArray) -> FloatArray:
    """The reputation term of each worker (cost seconds)."""
    return weights.reputation * (1.0 - fleet.reputation[worker_idx])


def _preferred(
    weights: CostWeights,
    orders: OrderBatch,
    fleet: Fleet,
    order_idx: IntArray,
    worker_idx: IntArray,
) -> FloatArray:
    """The preferred-worker term of each pair (cost seconds, <= 0)."""
    preferred_id = orders.preferred_worker_id[order_idx]
    is_preferred = (preferred_id != NONE_ID) & (preferred_id == fleet.ids[worker_idx])
    return np.where(is_preferred, -weights.preferred_worker, 0.0)


def _lateness(
    weights: CostWeights, orders: OrderBatch, order_idx: IntArray, travel_s: FloatArray, now: int
) -> FloatArray:
    """The lateness-risk term of each pair (cost seconds; ``now`` epoch s)."""
    latest = orders.latest_start_s[order_idx]
    slack = np.where(latest == NO_LIMIT_S, np.inf, (latest - now).astype(np.float64) - travel_s)
    return weights.lateness_risk * np.clip(weights.lateness_window_s - slack, 0.0, None)


def worker_terms(weights: CostWeights, fleet: Fleet, worker_idx: IntArray) -> FloatArray:
    """Sum of the terms that depend on the worker only (rating, reputation, fairness)."""
    return (
        _rating(weights, fleet, worker_idx)
        + _reputation(weights, fleet, worker_idx)
        + fairness(weights, fleet, worker_idx)
    )


def order_terms(weights: CostWeights, orders: OrderBatch, order_idx: IntArray) -> FloatArray:
    """Sum of the terms that depend on the order only (member priority)."""
    return -weights.priority * orders.priority[order_idx]


def pair_costs(
    weights: CostWeights,
    orders: OrderBatch,
    fleet: Fleet,
    order_idx: IntArray,
    worker_idx: IntArray,
    travel_s: FloatArray,
    now: int,
) -> PairCosts:
    """Every cost term of each (order, worker) pair; ``travel_s`` seconds, ``now`` epoch s."""
    w = weights
    terms = {
        "travel": w.travel_per_s * travel_s,
        "rating": _rating(w, fleet, worker_idx),
        "reputation": _reputation(w, fleet, worker_idx),
        "fairness": fairness(w, fleet, worker_idx),
        "member_priority": order_terms(w, orders, order_idx),
        "preferred_worker": _preferred(w, orders, fleet, order_idx, worker_idx),
        "lateness_risk": _lateness(w, orders, order_idx, travel_s, now),
    }
    total = np.zeros(order_idx.shape[0])
    for name in TERMS:
        terms[name] = np.asarray(np.broadcast_to(terms[name], total.shape), dtype=np.float64)
        total = total + terms[name]
    return PairCosts(terms=terms, total=total, total_int=to_int(total))


def pair_total_int(
    weights: CostWeights,
    orders: OrderBatch,
    fleet: Fleet,
    order_idx: IntArray,
    worker_idx: IntArray,
    travel_s: FloatArray,
    now: int,
) -> IntArray:
    """``pair_costs(...).total_int`` without the per-term arrays, skipping zero weights.

    Sums the same terms in the same order as ``pair_costs`` (so the same float total).
    """
    w = weights
    n = order_idx.shape[0]
    total = w.travel_per_s * travel_s
    if w.rating_per_star:
        total = total + _rating(w, fleet, worker_idx)
    if w.reputation:
        total = total + _reputation(w, fleet, worker_idx)
    if w.fairness_per_order or w.fairness_per_100_yuan:
        total = total + fairness(w, fleet, worker_idx)
    if w.priority:
        total = total + order_terms(w, orders, order_idx)
    if w.preferred_worker:
        total = total + _preferred(w, orders, fleet, order_idx, worker_idx)
    if w.lateness_risk:
        total = total + _lateness(w, orders, order_idx, travel_s, now)
    return to_int(np.broadcast_to(np.asarray(total, dtype=np.float64), (n,)))


def unassigned_seconds(
    weights: CostWeights, orders: OrderBatch, now: int, max_travel_s: float
) -> FloatArray:
    """Cost seconds of leaving each order unassigned: base plus urgency (see module).

    The urgency part rises by ``urgency`` × ``lateness_risk`` per second the slack
    (latest start − now) falls under ``lateness_window_s`` + ``max_travel_s``, and stops at
    that horizon, so it is bounded.
    """
    horizon = weights.lateness_window_s + float(max_travel_s)
    latest = orders.latest_start_s
    slack = np.where(latest == NO_LIMIT_S, np.inf, (latest - int(now)).astype(np.float64))
    lost = np.clip(horizon - slack, 0.0, horizon)
    return np.asarray(
        weights.unassigned + weights.urgency * weights.lateness_risk * lost, dtype=np.float64
    )


def unassigned_penalty(
    weights: CostWeights,
    n_orders: int,
    orders: OrderBatch | None = None,
    now: int = 0,
    max_travel_s: float = 0.0,
) -> IntArray:
    """Integer solver cost of leaving each order unassigned (flat without ``orders``)."""
    if orders is None:
        return np.full(n_orders, int(to_int(np.asarray(weights.unassigned))), dtype=np.int64)
    return to_int(unassigned_seconds(weights, orders, now, max_travel_s))

"""Constants and the small value types of ``match``'s results."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from numpy.typing import NDArray

from dispatch.cost import (
    TERMS,
)
from dispatch.errors import InvalidInput

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]

#: Re-solve rounds before giving up on the certificate (a warning says so).
MAX_ROUNDS = 30
# K grows with orders per worker in the order's ~5 km² cell beyond CROWD_FREE:
# K·(1 + gain·excess), at most CROWD_MAX·K. Fewer certification rounds where orders crowd.
CROWD_FREE = 0.25
CROWD_GAIN = 4.0
CROWD_MAX = 4
# Local repair after new arcs: re-solve orders this many hops away, up to this many.
LOCAL_HOPS = 8
LOCAL_MAX = 4000
LOCAL_PER_SEED = 50
# Supply/demand sizing (supply.py): square cells of this side (m), at most this many a
# side, capacity >= (1 + margin) x demand in the square.
SUPPLY_CELL_M = 500.0
SUPPLY_MAX_CELLS = 1024
SUPPLY_MARGIN = 0.2
# Above this relative error of local-plane distances (areas spanning many degrees) the
# supply grid is not used.
SUPPLY_MAX_EPS = 0.05
# A short order's first graph (supply.Reserve.sample): its pairs within the radius that
# holds its STRIDE_NEAR nearest workers, and about SURGE_SAMPLE drawn from those within
# the radius holding SURGE_K_SHARE x its competing orders' worth of workers.
SURGE_K_SHARE = 1.0
STRIDE_NEAR = 32
SURGE_SAMPLE = 192
# Reserved pairs costed per call, at most (supply.Reserve.could_violate).
RESERVE_TAKE = 1_000_000
# Largest reserve (pairs) the supply sizing gathers up front (~0.8 GB with temporaries).
RESERVE_MAX_PAIRS = 20_000_000
# Assigned orders priced at most this share of their penalty are widened in the same
# round as violators are added; the others (prices still echoing an unassigned order's
# penalty, so radii near the travel bound) wait until nothing else violates.
PRICED_SHARE = 0.5
# A part with at least this many arcs per order goes to min-cost flow under "auto".
DENSE_ARCS_PER_ORDER = 32
# Re-solve rounds (graph.sparsified): orders with more than TIGHT_MIN_ARCS arcs keep those
# within TIGHT_SHARE x their price of tight (at least TIGHT_KEEP); violators enter at most
# VIOLATORS_PER_ORDER per order and round.
TIGHT_MIN_ARCS = 24
TIGHT_SHARE = 0.03
TIGHT_KEEP = 4
VIOLATORS_PER_ORDER = 32
# Largest radius growth per certification pass.
WIDEN = 4.0
#: Instances with at most this many (order, available worker) pairs are solved densely.
DENSE_PAIRS = 10_000
# Tie-break resolution: solver costs are real costs x this (see tie_broken).
TIE_SCALE = 1 << 20
# Unassigned orders searched together when finding out why (bounds the pairs in memory).
REASON_BLOCK = 64
#: Alternatives listed by ``Assignment.explain`` besides the chosen worker.
EXPLAIN_ALTERNATIVES = 3


class UnassignedReason(StrEnum):
    """Why an order stayed unassigned."""

    NO_WORKER_IN_RANGE = "no_worker_in_range"  # no available worker within the travel bound
    NO_SKILLED_WORKER = "no_skilled_worker"  # in range, but none has the required skills
    NOT_ELIGIBLE = "not_eligible"  # skilled ones excluded: enterprise, exclusion, shift, start
    OUTBID = "outbid"  # eligible workers exist; the batch optimum gave them to other orders


@dataclass(frozen=True)
class CostLine:
    """One worker considered for an order, with every cost term in cost seconds."""

    worker_id: int
    travel_s: float
    terms: dict[str, float]
    total: float
    chosen: bool
    assigned_to_order_id: int | None

    def __post_init__(self) -> None:
        missing = [t for t in TERMS if t not in self.terms]
        if missing:
            raise InvalidInput(f"terms is missing {missing}")


@dataclass(frozen=True)
class Explanation:
    """Why an order got its worker: the chosen line, the best alternatives, the penalty.

    ``chosen`` is None when the order stayed unassigned (``reason`` then says why).
    ``alternatives`` are the next-cheapest eligible workers, each marked with the order it
    went to (or None: free, but costlier for the batch). Terms sum to ``total``.
    """

    order_id: int
    chosen: CostLine | None
    alternatives: tuple[CostLine, ...]
    unassigned_cost: float
    reason: str | None


@dataclass(frozen=True)
class WhyNot:
    """One worker's standing for one order, next to the worker who got it.

    ``blocked_by`` names the first hard constraint the worker failed (then ``line`` is
    None): "unavailable", "out_of_range", "skills", "enterprise", "excluded",
    "latest_start" or "shift_end". Otherwise ``line`` itemises their cost; when it is
    lower than the chosen worker's, ``line.assigned_to_order_id`` says where they were
    needed more.
    """

    order_id: int
    worker_id: int
    blocked_by: str | None
    line: CostLine | None
    chosen: CostLine | None

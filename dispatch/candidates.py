"""Candidate generation: for each order, every eligible worker within a growing search radius.

Each order's first radius is sized from the local worker density (about 2K workers
expected inside; a coarser cell's density where the order's own cell is empty); the
orders that still have fewer than K eligible workers grow theirs by 1.6-4x per pass
(more when fewer were found), all together, until K are found or the radius reaches
what the travel-time bound allows (max travel s x the fastest straight-line speed of any
mode present). Hard constraints (availability, skills, enterprise scope, exclusions,
travel bound, latest start, shift end after travel + service) filter pairs; everything is
vectorised over (order, worker) pairs. The result is a pool: every eligible worker
within ``radius_m[o]`` of order o is in it, which is what lets the assignment certify
optimality (assign.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import h3
import numpy as np
from numpy.typing import NDArray

from dispatch._ragged import member, offsets_from_sorted
from dispatch.errors import InvalidInput
from dispatch.index import WorkerIndex
from dispatch.model import TRANSPORT_MODES, Fleet, OrderBatch
from geo.cells import latlng_to_cells
from geo.travel import TransportMode, TravelTimeModel, max_speed_mps

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

#: Default number of eligible candidates sought per order before the radius stops growing.
#: Small on purpose: the certificate adds whatever crowded orders need (measured fastest).
DEFAULT_CANDIDATES = 4
# H3 level of the cells in which orders per worker are counted (~5 km²).
_CROWD_LEVEL = 7
# Radius growth per pass for orders still short of k eligible workers: at least _GROWTH,
# up to _GROWTH_MAX when few were found (see CandidateSearch.initial).
_GROWTH = 1.6
_GROWTH_MAX = 4.0
_GROWTH_SLACK = 1.2
# Coarser H3 levels (~250 km², ~12 000 km²) whose density sizes an empty cell's first radius.
_COARSE_LEVELS = (5, 3)
#: Default hard bound on a worker's travel time to an order, seconds.
DEFAULT_MAX_TRAVEL_S = 3600.0


def speed_bound_mps(travel: TravelTimeModel, mode_codes: NDArray[np.uint8]) -> float:
    """An upper bound on straight-line speed (m/s) of any worker in ``mode_codes``.

    Exact for models exposing ``speed_profile``/``detour`` (HaversineTravelModel); the
    physical per-mode ceiling otherwise. Travel time >= distance / this bound.
    """
    modes = [TransportMode(TRANSPORT_MODES[int(c)]) for c in np.unique(mode_codes)] or [
        TransportMode.CAR
    ]
    profile = getattr(travel, "speed_profile", None)
    detour = getattr(travel, "detour", None)
    if callable(profile) and callable(detour):
        return max(float(np.max(profile(m))) / float(detour(m)) for m in modes)
    return max(max_speed_mps(m) for m in modes)


def pair_travel_s(
    travel: TravelTimeModel,
    orders: OrderBatch,
    fleet: Fleet,
    order_idx: IntArray,
    worker_idx: IntArray,
    now: int,
) -> FloatArray:
    """Travel seconds from each worker row to its order row, departing at ``now``."""
    if order_idx.size == 0:
        return np.zeros(0)
    modes = fleet.mode[worker_idx]
    mode: Any = int(modes[0]) if bool((modes == modes[0]).all()) else modes.astype(np.int8)
    if isinstance(mode, int):
        mode = TransportMode(TRANSPORT_MODES[mode])
    return np.asarray(
        travel.seconds(
            fleet.lat[worker_idx],
            fleet.lng[worker_idx],
            orders.lat[order_idx],
            orders.lng[order_idx],
            now,
            mode=mode,
        ),
        dtype=np.float64,
    )


def hard_constraints(
    orders: OrderBatch,
    fleet: Fleet,
    order_idx: IntArray,
    worker_idx: IntArray,
    travel_s: FloatArray,
    now: int,
    max_travel_s: float,
) -> tuple[BoolArray, BoolArray, BoolArray]:
    """Check every hard constraint of each (order, worker) pair.

    Returns ``(in_range, skilled, eligible)``: in range = available and travel within the
    bound; skilled = in range with the required skills; eligible = every constraint holds
    (also enterprise scope, exclusions, latest start, shift end after travel + service).
    """
    in_range = fleet.available[worker_idx] & (travel_s <= max_travel_s)
    need = orders.required_skills[order_idx]
    skilled = in_range & ((need & ~fleet.skills[worker_idx]) == 0)
    scope = orders.enterprise_id[order_idx]
    ok = skilled & ((scope < 0) | (scope == fleet.enterprise_id[worker_idx]))
    # Integer-second arithmetic on the ceiling of travel: never admit a pair that is late
    # by a fraction of a second. Sentinel NO_LIMIT_S stays safe: now + travel is small.
    arrive = now + np.ceil(travel_s).astype(np.int64)
    ok &= arrive <= orders.latest_start_s[order_idx]
    finish = arrive + orders.service_s[order_idx]
    ok &= finish <= fleet.shift_end_s[worker_idx]
    if orders.excluded_worker_ids.size:
        ok &= ~excluded_pairs(orders, fleet, order_idx, worker_idx)
    return in_range, skilled, ok


def excluded_pairs(
    orders: OrderBatch, fleet: Fleet, order_idx: IntArray, worker_idx: IntArray
) -> BoolArray:
    """Whether each (order, worker) pair is on the order's exclusion list (vectorised)."""
    counts = np.diff(orders.excluded_offsets)
    ex_order = np.repeat(np.arange(len(orders), dtype=np.int64), counts)
    ex_worker = orders.excluded_worker_ids
    # Pack (order row, worker id) into one sortable key per pair; ids are compared exactly.
    ex_keys = np.stack([ex_order, ex_worker], axis=1)
    pair_keys = np.stack([order_idx, fleet.ids[worker_idx]], axis=1)
    ex_sorted = ex_keys[np.lexsort((ex_keys[:, 1], ex_keys[:, 0]))]
    # Binary search on the lexicographically sorted exclusion pairs.
    lo = np.searchsorted(ex_sorted[:, 0], pair_keys[:, 0], side="left")
    hi = np.searchsorted(ex_sorted[:, 0], pair_keys[:, 0], side="right")
    hit = np.zeros(order_idx.shape[0], dtype=np.bool_)
    has = np.flatnonzero(hi > lo)
    if has.size:
        # Exclusion lists are short: compare each candidate pair against its order's list.
        span = (hi - lo)[has]
        rep = np.repeat(has, span)
        start = np.repeat(lo[has], span)
        step = np.arange(rep.size) - np.repeat(np.cumsum(span) - span, span)
        match = ex_sorted[start + step, 1] == pair_keys[rep, 1]
        hit[rep[match]] = True
    return hit


@dataclass(frozen=True, eq=False)
class CandidatePool:
    """Eligible (order, worker) pairs in COO form, sorted by order.

    ``radius_m[o]``: every eligible worker within this great-circle distance of order o is
    in the pool (the completeness the certificate relies on). ``offsets`` is the CSR view
    (length n_orders + 1). ``rounds`` counts radius-doubling passes.
    """

    order_idx: IntArray
    worker_idx: IntArray
    travel_s: FloatArray
    offsets: IntArray
    radius_m: FloatArray
    max_radius_m: float
    rounds: int

    @property
    def n_pairs(self) -> int:
        """Number of (order, worker) pairs."""
        return int(self.order_idx.shape[0])


def _sorted_pool(
    n_orders: int, o: IntArray, w: IntArray, t: FloatArray
) -> tuple[IntArray, IntArray, FloatArray, IntArray]:
    order = np.argsort(o, kind="stable")
    o, w, t = o[order], w[order], t[order]
    return o, w, t, offsets_from_sorted(o, n_orders)


class CandidateSearch:
    """Stateful search over one batch: initial pools, then widening for chosen orders."""

    def __init__(
        self,
        orders: OrderBatch,
        fleet: Fleet,
        travel: TravelTimeModel,
        now: int,
        *,
        index: WorkerIndex,
        max_travel_s: float = DEFAULT_MAX_TRAVEL_S,
    ) -> None:
        """Prepare a search; ``index`` holds the fleet's available workers keyed by row."""
        if not np.isfinite(max_travel_s) or max_travel_s <= 0:
            raise InvalidInput(f"max_travel_s must be a positive number, got {max_travel_s}")
        self.orders = orders
        self.fleet = fleet
        self.travel = travel
        self.now = int(now)
        self.index = index
        self.max_travel_s = float(max_travel_s)
        self.speed_mps = speed_bound_mps(travel, fleet.mode[fleet.available])
        self.max_radius_m = self.max_travel_s * self.speed_mps
        n = len(orders)
        self.radius_m = np.zeros(n)
        self._o = np.zeros(0, dtype=np.int64)
        self._w = np.zeros(0, dtype=np.int64)
        self._t = np.zeros(0)
        self.rounds = 0

    def _query(self, rows: IntArray, radius: FloatArray) -> tuple[IntArray, IntArray, FloatArray]:
        """Eligible pairs of order ``rows`` within ``radius`` (whole disk, not annulus)."""
        origin, slots, _ = self.index.within(self.orders.lat[rows], self.orders.lng[rows], radius)
        o = rows[origin]
        w = self.index.ids_of(slots)  # the index is keyed by fleet row
        t = pair_travel_s(self.travel, self.orders, self.fleet, o, w, self.now)
        *_, ok = hard_constraints(self.orders, self.fleet, o, w, t, self.now, self.max_travel_s)
        return o[ok], w[ok], t[ok]

    def crowding(self) -> FloatArray:
        """Orders per indexed worker in each order's ~5 km² cell (inf where no worker)."""
        level = min(_CROWD_LEVEL, self.index.resolution)
        cells = np.asarray(latlng_to_cells(self.orders.lat, self.orders.lng, level), np.uint64)
        _, inverse, counts = np.unique(cells, return_inverse=True, return_counts=True)
        orders_here = counts[inverse.reshape(-1)].astype(np.float64)
        workers_here = self.index.density_per_m2(
            self.orders.lat, self.orders.lng, level
        ) * h3.average_hexagon_area(level, "m^2")
        with np.errstate(divide="ignore"):
            return np.asarray(orders_here / workers_here, dtype=np.float64)

    def initial(self, k: int | IntArray) -> CandidatePool:
        """Grow radii from a density-sized start until each order has ``k`` eligible workers.

        ``k`` is one target for all orders or one per order.
        """
        n = len(self.orders)
        k_arr = np.broadcast_to(np.asarray(k, dtype=np.int64), (n,))
        if n and int(k_arr.min()) < 1:
            raise InvalidInput(f"candidates_per_order must be >= 1, got {int(k_arr.min())}")
        # Size each first radius to hold about 2k workers at the local density, so dense
        # districts do not gather hundreds of pairs per order and suburbs skip doublings.
        density = self.index.density_per_m2(self.orders.lat, self.orders.lng)
        # Orders in an empty ~5 km² cell take the density of a coarser cell around them,
        # rather than starting from a few cells and growing 1.6x for many passes.
        for level in _COARSE_LEVELS:
            empty = np.flatnonzero(density <= 0)
            if empty.size == 0:
                break
            density[empty] = self.index.density_per_m2(
                self.orders.lat[empty], self.orders.lng[empty], level
            )
        floor = float(self.index.covered_radius_m(1))
        guess = np.sqrt(2.0 * k_arr / (np.pi * np.maximum(density, 1e-12)))
        radius = np.where(density > 0, guess, float(self.index.covered_radius_m(3)))
        radius = np.clip(radius, floor, self.max_radius_m)
        todo = np.arange(n, dtype=np.int64)
        found_o: list[IntArray] = []
        found_w: list[IntArray] = []
        found_t: list[FloatArray] = []
        while todo.size:
            self.rounds += 1
            o, w, t = self._query(todo, radius[todo])
            counts = np.bincount(o, minlength=n)[todo]
            done = (counts >= k_arr[todo]) | (radius[todo] >= self.max_radius_m)
            finished = np.zeros(n, dtype=np.bool_)
            finished[todo[done]] = True
            keep = finished[o]
            found_o.append(o[keep])
            found_w.append(w[keep])
            found_t.append(t[keep])
            self.radius_m[todo[done]] = radius[todo[done]]
            short_k, short_c = k_arr[todo[~done]], counts[~done]
            todo = todo[~done]
            # Grow by what the local density says is missing: c of k found in area πr²
            # needs about r·sqrt(k/c) (c = 0 counts as half a worker), within [1.6, 4]x.
            factor = np.clip(
                _GROWTH_SLACK * np.sqrt(short_k / np.maximum(short_c, 0.5)), _GROWTH, _GROWTH_MAX
            )
            radius[todo] = np.minimum(radius[todo] * factor, self.max_radius_m)
        self._o = np.concatenate(found_o) if found_o else self._o
        self._w = np.concatenate(found_w) if found_w else self._w
        self._t = np.concatenate(found_t) if found_t else self._t
        return self.pool()

    def widen(self, rows: IntArray, radius: FloatArray) -> tuple[IntArray, IntArray, FloatArray]:
        """Grow the radius of order ``rows`` to ``radius`` (m); return only the new pairs."""
        radius = np.minimum(radius, self.max_radius_m)
        grow = radius > self.radius_m[rows]
        rows, radius = rows[grow], radius[grow]
        if rows.size == 0:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty.copy(), np.zeros(0)
        self.rounds += 1
        o, w, t = self._query(rows, radius)
        # Drop pairs already pooled (the ones within the old radius).
        n_w = len(self.fleet)
        mine = np.zeros(len(self.orders), dtype=np.bool_)
        mine[rows] = True
        pooled = mine[self._o]
        known = member(o * n_w + w, self._o[pooled] * n_w + self._w[pooled])
        self.radius_m[rows] = radius
        o, w, t = o[~known], w[~known], t[~known]
        self._o = np.concatenate([self._o, o])
        self._w = np.concatenate([self._w, w])
        self._t = np.concatenate([self._t, t])
        return o, w, t

    def pool(self) -> CandidatePool:
        """The pool gathered so far, sorted by order."""
        o, w, t, offsets = _sorted_pool(len(self.orders), self._o, self._w, self._t)
        for arr in (o, w, t, offsets):
            arr.setflags(write=False)
        radius = self.radius_m.copy()
        radius.setflags(write=False)
        return CandidatePool(o, w, t, offsets, radius, self.max_radius_m, self.rounds)


def find_candidates(
    orders: OrderBatch,
    fleet: Fleet,
    travel: TravelTimeModel,
    now: int,
    *,
    candidates_per_order: int = DEFAULT_CANDIDATES,
    max_travel_s: float = DEFAULT_MAX_TRAVEL_S,
    index: WorkerIndex | None = None,
) -> CandidatePool:
    """Eligible workers per order by expanding search radii (see module docstring).

    ``now`` epoch seconds; ``max_travel_s`` the hard travel bound in seconds. ``index``
    must hold the fleet's available workers keyed by fleet row (``fleet_index`` builds one).
    """
    search = CandidateSearch(
        orders, fleet, travel, now, index=index or fleet_index(fleet), max_travel_s=max_travel_s
    )
    return search.initial(candidates_per_order)


def fleet_index(fleet: Fleet, resolution: int | None = None) -> WorkerIndex:
    """A WorkerIndex of the fleet's available workers, keyed by fleet row (not worker id)."""
    rows = np.flatnonzero(fleet.available).astype(np.int64)
    if resolution is None:
        return WorkerIndex.from_arrays(rows, fleet.lat[rows], fleet.lng[rows])
    return WorkerIndex.from_arrays(rows, fleet.lat[rows], fleet.lng[rows], resolution)

"""Batch matching of on-demand orders to workers: ``match(orders, fleet, ...) -> Assignment``.

1. Candidates (candidates.py): per order, every eligible worker within a growing radius;
   the target K grows with the number of orders per worker nearby.
2. Costs (cost.py), integer deci-seconds; the solver graph keeps each order's K cheapest.
3. Solve exactly on that sparse graph, after fixing orders whose cheapest worker nobody
   else lists and splitting the rest into chunks of whole connected components: scipy's
   sparse LAPJV (``min_weight_full_bipartite_matching``, one private "unassigned" column
   per order) when each worker takes one order, OR-Tools min-cost flow when ``capacity``
   > 1 or asked for. Both reach the same optimum (tests); measured on the benchmark
   cities LAPJV was as fast or up to ~1.6x faster on chunks below ~8000 orders, flow
   ~1.5x faster on the single 10k-19k-order components of dense districts, so "auto"
   picks per chunk (``Assignment.solver`` still says "lapjv"). An order may stay
   unassigned at its penalty, so the problem is always feasible. Batches of at most
   ``DENSE_PAIRS`` pairs skip all this: one dense assignment (``_match_dense``).
4. Certify with dual prices (LP of "assign or pay the penalty"): order prices u_o <=
   penalty_o, worker prices v_w >= 0 (zero unless the worker is full), every graph arc
   with reduced cost c_ow - u_o + v_w >= 0. Neither solver returns duals, so they are
   derived from the solution: the least v solving the complementary-slackness difference
   constraints, by vectorised label correcting on the residual graph. A pair outside the
   graph can improve the solution only if c_ow + v_w < u_o, hence c_ow < u_o. Pooled pairs
   are checked exactly; any other worker lies beyond the order's pool radius, where
   c_ow >= travel weight x distance / speed bound + worker-only and order-only terms, so
   only workers within the radius that bound implies for u_o can violate: the pool is
   widened to it through the index (never a dense scan). Violators join the graph, the
   touched components are re-solved, and this repeats until none is left; then the
   sparse optimum is the optimum over all eligible pairs and ``certified`` is True.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import cast

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from dispatch._ragged import compact, member
from dispatch._solvers import dual_prices, solve
from dispatch.candidates import (
    DEFAULT_CANDIDATES,
    DEFAULT_MAX_TRAVEL_S,
    CandidateSearch,
    fleet_index,
    hard_constraints,
    pair_travel_s,
    speed_bound_mps,
)
from dispatch.cost import (
    COST_SCALE,
    TERMS,
    CostWeights,
    order_terms,
    pair_costs,
    pair_total_int,
    to_int,
    unassigned_seconds,
    worker_terms,
)
from dispatch.errors import InvalidInput, UnknownOrder
from dispatch.index import WorkerIndex
from dispatch.model import NONE_ID, Fleet, OrderBatch
from geo.travel import HaversineTravelModel, TravelTimeModel

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]

#: Re-solve rounds before giving up on the certificate (a warning says so).
MAX_ROUNDS = 30
# K grows with orders per worker in the order's ~5 km² cell beyond _CROWD_FREE:
# K·(1 + gain·excess), at most _CROWD_MAX·K. Fewer certification rounds where orders crowd.
_CROWD_FREE = 0.25
_CROWD_GAIN = 4.0
_CROWD_MAX = 4
# Local repair after new arcs: re-solve orders this many hops away, up to this many.
_LOCAL_HOPS = 8
_LOCAL_MAX = 4000
_LOCAL_PER_SEED = 50
# Largest radius growth per certification pass.
_WIDEN = 4.0
#: Instances with at most this many (order, available worker) pairs are solved densely.
DENSE_PAIRS = 10_000
# Tie-break resolution: solver costs are real costs x this (see _tie_broken).
_TIE_SCALE = 1 << 20
# Unassigned orders searched together when finding out why (bounds the pairs in memory).
_REASON_BLOCK = 64
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


@dataclass(frozen=True, eq=False)
class Assignment:
    """Result of ``match``: pairs, unassigned orders with reasons, timings and certificate.

    Costs are cost seconds (see cost.py); ``total_cost`` includes unassigned penalties and
    equals ``objective / COST_SCALE`` up to rounding of each pair.
    """

    order_ids: IntArray
    worker_ids: IntArray
    cost: FloatArray
    travel_s: FloatArray
    unassigned_order_ids: IntArray
    unassigned_reasons: tuple[str, ...]
    total_cost: float
    objective: int
    certified: bool
    candidates_s: float
    solve_s: float
    certify_s: float
    rounds: int
    n_candidate_pairs: int
    solver: str
    warnings: tuple[str, ...]
    _context: _Context = field(repr=False)

    def __post_init__(self) -> None:
        n = self.order_ids.shape[0]
        for name in ("worker_ids", "cost", "travel_s"):
            if getattr(self, name).shape != (n,):
                raise InvalidInput(f"{name} must have one entry per assigned order ({n})")
        if len(self.unassigned_reasons) != self.unassigned_order_ids.shape[0]:
            raise InvalidInput("unassigned_reasons must have one entry per unassigned order")

    @property
    def assigned(self) -> int:
        """Number of assigned orders."""
        return int(self.order_ids.shape[0])

    def worker_of(self, order_id: int) -> int | None:
        """The worker id an order went to, or None if it stayed unassigned."""
        hit = np.flatnonzero(self.order_ids == order_id)
        return int(self.worker_ids[hit[0]]) if hit.size else None

    def explain(self, order_id: int, alternatives: int = EXPLAIN_ALTERNATIVES) -> Explanation:
        """The chosen worker and the best ``alternatives`` others, every cost term itemised."""
        return self._context.explain(self, int(order_id), alternatives)

    def why_not(self, order_id: int, worker_id: int) -> WhyNot:
        """Answer a worker's "why not me" for one order: their cost line or the failed rule."""
        return self._context.why_not(int(order_id), int(worker_id))


@dataclass(frozen=True, eq=False)
class _Context:
    """What ``explain`` needs to recompute cost terms (kept out of the public surface)."""

    orders: OrderBatch
    fleet: Fleet
    weights: CostWeights
    travel: TravelTimeModel
    now: int
    index: WorkerIndex | None  # None: the pool holds every eligible pair (dense solve)
    max_travel_s: float
    max_radius_m: float
    pool_order: IntArray
    pool_worker: IntArray
    pool_travel: FloatArray
    chosen_worker: IntArray  # fleet row per order row, -1 unassigned
    reason_of: dict[int, str]

    def _row(self, order_id: int) -> int:
        rows = np.flatnonzero(self.orders.ids == order_id)
        if rows.size == 0:
            raise UnknownOrder(f"order_id {order_id} is not in this batch")
        return int(rows[0])

    def _line(self, row: int, w: int, travel_s: float) -> CostLine:
        o_idx = np.array([row], dtype=np.int64)
        w_idx = np.array([w], dtype=np.int64)
        costs = pair_costs(
            self.weights, self.orders, self.fleet, o_idx, w_idx, np.array([travel_s]), self.now
        )
        others = np.flatnonzero(self.chosen_worker == w)
        others = others[others != row]
        return CostLine(
            worker_id=int(self.fleet.ids[w]),
            travel_s=float(travel_s),
            terms={t: float(costs.terms[t][0]) for t in TERMS},
            total=float(costs.total[0]),
            chosen=w == int(self.chosen_worker[row]),
            assigned_to_order_id=int(self.orders.ids[others[0]]) if others.size else None,
        )

    def why_not(self, order_id: int, worker_id: int) -> WhyNot:
        row = self._row(order_id)
        w = int(self.fleet.rows_of([worker_id])[0])
        o_idx = np.array([row], dtype=np.int64)
        w_idx = np.array([w], dtype=np.int64)
        travel = pair_travel_s(self.travel, self.orders, self.fleet, o_idx, w_idx, self.now)
        chosen_row = int(self.chosen_worker[row])
        chosen = None
        if chosen_row >= 0:
            t_c = pair_travel_s(
                self.travel,
                self.orders,
                self.fleet,
                o_idx,
                np.array([chosen_row], dtype=np.int64),
                self.now,
            )
            chosen = self._line(row, chosen_row, float(t_c[0]))
        blocked = _first_failed_rule(
            self.orders, self.fleet, row, w, float(travel[0]), self.now, self.max_travel_s
        )
        line = None if blocked else self._line(row, w, float(travel[0]))
        return WhyNot(order_id, int(worker_id), blocked, line, chosen)

    def explain(self, result: Assignment, order_id: int, n_alt: int) -> Explanation:
        row = self._row(order_id)
        mine = self.pool_order == row
        workers = self.pool_worker[mine]
        travel = self.pool_travel[mine]
        if workers.size < n_alt + 1 and self.index is not None:
            # Too few pooled: look as far as the travel bound allows, for this order only.
            _, slots, _ = self.index.within(
                self.orders.lat[row : row + 1],
                self.orders.lng[row : row + 1],
                self.max_radius_m,
            )
            w_all = self.index.ids_of(slots)
            o_all = np.full(w_all.shape, row, dtype=np.int64)
            t_all = pair_travel_s(self.travel, self.orders, self.fleet, o_all, w_all, self.now)
            *_, ok = hard_constraints(
                self.orders, self.fleet, o_all, w_all, t_all, self.now, self.max_travel_s
            )
            workers, travel = w_all[ok], t_all[ok]
        o_idx = np.full(workers.shape, row, dtype=np.int64)
        costs = pair_costs(self.weights, self.orders, self.fleet, o_idx, workers, travel, self.now)
        order = np.lexsort((workers, costs.total_int))
        chosen_row = int(self.chosen_worker[row])
        lines: list[CostLine] = []
        chosen_line: CostLine | None = None
        for i in order.tolist():
            w = int(workers[i])
            if w != chosen_row and len(lines) >= n_alt:
                continue
            others = np.flatnonzero(self.chosen_worker == w)
            others = others[others != row]
            taken = int(others[0]) if others.size else None
            line = CostLine(
                worker_id=int(self.fleet.ids[w]),
                travel_s=float(travel[i]),
                terms={t: float(costs.terms[t][i]) for t in TERMS},
                total=float(costs.total[i]),
                chosen=w == chosen_row,
                assigned_to_order_id=(int(self.orders.ids[taken]) if taken is not None else None),
            )
            if line.chosen:
                chosen_line = line
            elif len(lines) < n_alt:
                lines.append(line)
            if len(lines) >= n_alt and (chosen_line is not None or chosen_row < 0):
                break
        return Explanation(
            order_id=order_id,
            chosen=chosen_line,
            alternatives=tuple(lines),
            unassigned_cost=float(
                unassigned_seconds(self.weights, self.orders, self.now, self.max_travel_s)[row]
            ),
            reason=self.reason_of.get(row),
        )


def match(
    orders: OrderBatch,
    fleet: Fleet,
    *,
    weights: CostWeights | None = None,
    travel: TravelTimeModel | None = None,
    candidates_per_order: int = DEFAULT_CANDIDATES,
    capacity: int = 1,
    now: int,
    seed: int = 0,
    max_travel_s: float = DEFAULT_MAX_TRAVEL_S,
    index: WorkerIndex | None = None,
    solver: str = "auto",
    certify: bool = True,
    dense_pairs: int = DENSE_PAIRS,
) -> Assignment:
    """Optimal batch assignment of ``orders`` to ``fleet`` (see module docstring).

    ``now`` epoch seconds; ``max_travel_s`` hard travel bound, seconds; ``capacity`` orders
    per worker in this batch; ``solver`` "auto" | "lapjv" | "flow"; ``index`` an optional
    prebuilt ``fleet_index(fleet)``. ``seed`` is accepted for API symmetry: the result is
    deterministic (ties broken by row order: the older order wins an exact tie).

    With ``solver`` "auto" and at most ``dense_pairs`` (order, available worker) pairs
    (the simulator's batch windows; 0 turns this off), every pair is costed and solved by
    one dense assignment: exact over all eligible pairs, so certified without dual prices,
    and without the index or candidate machinery (``solver`` is then "dense").
    """
    del seed  # deterministic; kept so every randomised-or-not entry point looks alike
    weights = weights or CostWeights()
    model: TravelTimeModel = (
        travel if travel is not None else cast(TravelTimeModel, HaversineTravelModel())
    )
    if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
        raise InvalidInput(f"capacity must be an int >= 1, got {capacity!r}")
    if solver not in ("auto", "lapjv", "flow"):
        raise InvalidInput(f"solver must be 'auto', 'lapjv' or 'flow', got {solver!r}")
    if solver == "lapjv" and capacity != 1:
        raise InvalidInput("solver 'lapjv' needs capacity == 1")
    use_flow = solver == "flow" or capacity > 1
    k = int(candidates_per_order)
    if k < 1:
        raise InvalidInput(f"candidates_per_order must be >= 1, got {candidates_per_order}")
    n = len(orders)
    warnings: list[str] = []

    t0 = time.perf_counter()
    small = n * int(np.count_nonzero(fleet.available)) <= dense_pairs
    if solver == "auto" and certify and dense_pairs > 0 and small:
        if not np.isfinite(max_travel_s) or max_travel_s <= 0:
            raise InvalidInput(f"max_travel_s must be a positive number, got {max_travel_s}")
        return _match_dense(orders, fleet, weights, model, capacity, int(now), max_travel_s, t0)
    index = index if index is not None else fleet_index(fleet)
    search = CandidateSearch(orders, fleet, model, now, index=index, max_travel_s=max_travel_s)
    # Where orders crowd, each needs a deeper list: scale K by orders per worker nearby.
    crowd = search.crowding() if n else np.zeros(0)
    excess = np.maximum(crowd - _CROWD_FREE, 0.0)
    k_per_order = np.clip(np.rint(k * (1.0 + _CROWD_GAIN * excess)), k, _CROWD_MAX * k).astype(
        np.int64
    )
    pool0 = search.initial(k_per_order)
    pool = _Pool(orders, fleet, weights, now)
    pool.add(pool0.order_idx, pool0.worker_idx, pool0.travel_s)
    pool.add(*_preferred_pairs(orders, fleet, model, now, max_travel_s, pool))
    penalty_s = unassigned_seconds(weights, orders, now, max_travel_s)
    penalty = to_int(penalty_s)
    graph = pool.cheapest_per_order(k_per_order, penalty)
    candidates_s = time.perf_counter() - t0

    speed = search.speed_mps
    travel_w = weights.travel_per_s * COST_SCALE  # solver units per second of travel
    g_all = worker_terms(weights, fleet, np.flatnonzero(fleet.available).astype(np.int64))
    g_floor = -float(g_all.min()) * COST_SCALE if g_all.size else 0.0
    h = order_terms(weights, orders, np.arange(n, dtype=np.int64)) * COST_SCALE
    method = "flow" if use_flow else ("auto" if solver == "auto" else "lapjv")

    solve_s = certify_s = 0.0
    certified = False
    rounds = 0
    chosen_pool = np.full(n, -1, dtype=np.int64)  # pool index of each order's pair
    new_arcs = graph
    while True:
        rounds += 1
        t1 = time.perf_counter()
        local = rounds > 1 and capacity == 1 and certify
        _resolve(pool, graph, new_arcs, rounds == 1, penalty, capacity, method, chosen_pool, local)
        solve_s += time.perf_counter() - t1
        if not certify:
            break
        t2 = time.perf_counter()
        g_order, g_worker, g_cost = pool.graph_arrays(graph)
        workers_in_graph, local_w = compact(g_worker)
        local_w = local_w.reshape(-1).astype(np.int64)
        u, v_local, ok = _duals(
            n,
            workers_in_graph.size,
            g_order,
            local_w,
            g_cost,
            penalty,
            capacity,
            graph,
            chosen_pool,
        )
        if not ok and local:
            # The local repair did not reach the optimum: re-solve the touched components.
            certify_s += time.perf_counter() - t2
            t1 = time.perf_counter()
            _resolve(pool, graph, new_arcs, False, penalty, capacity, method, chosen_pool)
            solve_s += time.perf_counter() - t1
            t2 = time.perf_counter()
            u, v_local, ok = _duals(
                n,
                workers_in_graph.size,
                g_order,
                local_w,
                g_cost,
                penalty,
                capacity,
                graph,
                chosen_pool,
            )
        if not ok:
            warnings.append("dual prices inconsistent: solution not proven optimal")
            certify_s += time.perf_counter() - t2
            break
        v = np.zeros(len(fleet), dtype=np.int64)
        v[workers_in_graph] = v_local
        violators = pool.violations(graph, u, v, penalty)
        # A worker beyond order o's radius costs at least travel_w·d/speed + worker-only
        # and order-only terms, and v_w >= 0 only makes it dearer: it can violate only
        # within the radius where that bound stays below u_o.
        need_r = _needed_radius(u, h, g_floor, travel_w, speed, search.max_radius_m)
        grow = np.flatnonzero(need_r > search.radius_m)
        while grow.size and violators.size == 0:
            # Grow at most _WIDEN x per pass: the re-solve usually lowers u_o first.
            new_r = np.minimum(need_r[grow], np.maximum(_WIDEN * search.radius_m[grow], 1.0))
            o_new, w_new, t_new = search.widen(grow, new_r)
            first_new = pool.size
            pool.add(*pool.drop_known(o_new, w_new, t_new))
            violators = pool.violations_from(first_new, u, v, penalty)
            grow = np.flatnonzero(need_r > search.radius_m)
        certify_s += time.perf_counter() - t2
        if violators.size == 0 and grow.size == 0:
            certified = True
            break
        if rounds >= MAX_ROUNDS:
            warnings.append(f"certificate not reached after {MAX_ROUNDS} rounds")
            break
        new_arcs = violators
        graph = np.sort(np.concatenate([graph, violators]))  # violators are never in graph
    _, pool_w, _, _ = pool.arrays()
    chosen_w = np.full(n, -1, dtype=np.int64)
    chosen_w[chosen_pool >= 0] = pool_w[chosen_pool[chosen_pool >= 0]]

    t3 = time.perf_counter()
    assigned_rows = np.flatnonzero(chosen_w >= 0)
    a_workers = chosen_w[assigned_rows]
    a_travel = pair_travel_s(model, orders, fleet, assigned_rows, a_workers, now)
    a_costs = pair_costs(weights, orders, fleet, assigned_rows, a_workers, a_travel, now)
    unassigned_rows = np.flatnonzero(chosen_w < 0)
    reasons = _reasons(
        orders,
        fleet,
        model,
        now,
        max_travel_s,
        index,
        search.max_radius_m,
        pool.arrays()[0],
        unassigned_rows,
    )
    objective = int(a_costs.total_int.sum() + penalty[unassigned_rows].sum())
    total_cost = float(a_costs.total.sum() + penalty_s[unassigned_rows].sum())
    certify_s += time.perf_counter() - t3
    if not certify:
        warnings.append("certification skipped: optimal on the candidate graph only")

    ctx = _Context(
        orders=orders,
        fleet=fleet,
        weights=weights,
        travel=model,
        now=int(now),
        index=index,
        max_travel_s=float(max_travel_s),
        max_radius_m=float(search.max_radius_m),
        pool_order=pool.arrays()[0],
        pool_worker=pool.arrays()[1],
        pool_travel=pool.arrays()[2],
        chosen_worker=chosen_w,
        reason_of=dict(zip(unassigned_rows.tolist(), reasons, strict=True)),
    )
    return Assignment(
        order_ids=orders.ids[assigned_rows],
        worker_ids=fleet.ids[a_workers],
        cost=a_costs.total,
        travel_s=a_travel,
        unassigned_order_ids=orders.ids[unassigned_rows],
        unassigned_reasons=tuple(reasons),
        total_cost=total_cost,
        objective=objective,
        certified=certified,
        candidates_s=candidates_s,
        solve_s=solve_s,
        certify_s=certify_s,
        rounds=rounds,
        n_candidate_pairs=int(graph.size),
        solver="flow" if use_flow else "lapjv",
        warnings=tuple(warnings),
        _context=ctx,
    )


def _match_dense(
    orders: OrderBatch,
    fleet: Fleet,
    weights: CostWeights,
    model: TravelTimeModel,
    capacity: int,
    now: int,
    max_travel_s: float,
    t0: float,
) -> Assignment:
    """``match`` on a small instance: every pair costed, one rectangular assignment.

    Minimises the sum of min(c_ow - p_o, 0) over matchings (p_o the unassigned penalty):
    a pair at reduced cost 0 stands for "unassigned", so this equals the optimum of
    "assign or pay the penalty" minus the sum of penalties. Workers are repeated
    ``capacity`` times; costs carry the same tie-break as the sparse solvers.
    """
    n = len(orders)
    rows = np.flatnonzero(fleet.available).astype(np.int64)
    m = rows.size
    o = np.repeat(np.arange(n, dtype=np.int64), m)
    w = np.tile(rows, n)
    t = pair_travel_s(model, orders, fleet, o, w, now)
    in_range, skilled, ok = hard_constraints(orders, fleet, o, w, t, now, max_travel_s)
    o_ok, w_ok, t_ok = o[ok], w[ok], t[ok]
    penalty_s = unassigned_seconds(weights, orders, now, max_travel_s)
    penalty = to_int(penalty_s)
    cost = pair_costs(weights, orders, fleet, o_ok, w_ok, t_ok, now).total_int
    candidates_s = time.perf_counter() - t0

    t1 = time.perf_counter()
    chosen_w = np.full(n, -1, dtype=np.int64)
    useful = np.flatnonzero(cost < penalty[o_ok])
    if useful.size:
        c_s, p_s = _tie_broken(cost[useful], penalty, np.arange(n, dtype=np.int64), n)
        reduced = np.zeros((n, m), dtype=np.float64)
        col = np.searchsorted(rows, w_ok[useful])
        reduced[o_ok[useful], col] = (c_s - p_s[o_ok[useful]]).astype(np.float64)
        if capacity > 1:
            reduced = np.repeat(reduced, capacity, axis=1)
        r_ind, c_ind = linear_sum_assignment(reduced)
        took = reduced[r_ind, c_ind] < 0
        chosen_w[r_ind[took]] = rows[c_ind[took] // capacity]
    solve_s = time.perf_counter() - t1

    t2 = time.perf_counter()
    assigned_rows = np.flatnonzero(chosen_w >= 0)
    a_workers = chosen_w[assigned_rows]
    a_travel = pair_travel_s(model, orders, fleet, assigned_rows, a_workers, now)
    a_costs = pair_costs(weights, orders, fleet, assigned_rows, a_workers, a_travel, now)
    unassigned_rows = np.flatnonzero(chosen_w < 0)
    any_ok = np.bincount(o[ok], minlength=n) > 0
    any_skilled = np.bincount(o[skilled], minlength=n) > 0
    any_in_range = np.bincount(o[in_range], minlength=n) > 0
    reason_rows = np.where(
        any_ok,
        UnassignedReason.OUTBID.value,
        np.where(
            any_skilled,
            UnassignedReason.NOT_ELIGIBLE.value,
            np.where(
                any_in_range,
                UnassignedReason.NO_SKILLED_WORKER.value,
                UnassignedReason.NO_WORKER_IN_RANGE.value,
            ),
        ),
    )
    reasons = [str(r) for r in reason_rows[unassigned_rows].tolist()]
    objective = int(a_costs.total_int.sum() + penalty[unassigned_rows].sum())
    total_cost = float(a_costs.total.sum() + penalty_s[unassigned_rows].sum())
    speed = speed_bound_mps(model, fleet.mode[fleet.available])
    ctx = _Context(
        orders=orders,
        fleet=fleet,
        weights=weights,
        travel=model,
        now=now,
        index=None,
        max_travel_s=float(max_travel_s),
        max_radius_m=float(max_travel_s) * speed,
        pool_order=o_ok,
        pool_worker=w_ok,
        pool_travel=t_ok,
        chosen_worker=chosen_w,
        reason_of=dict(zip(unassigned_rows.tolist(), reasons, strict=True)),
    )
    return Assignment(
        order_ids=orders.ids[assigned_rows],
        worker_ids=fleet.ids[a_workers],
        cost=a_costs.total,
        travel_s=a_travel,
        unassigned_order_ids=orders.ids[unassigned_rows],
        unassigned_reasons=tuple(reasons),
        total_cost=total_cost,
        objective=objective,
        certified=True,
        candidates_s=candidates_s,
        solve_s=solve_s,
        certify_s=time.perf_counter() - t2,
        rounds=1,
        n_candidate_pairs=int(o_ok.size),
        solver="dense",
        warnings=(),
        _context=ctx,
    )


def _resolve(
    pool: _Pool,
    graph: IntArray,
    new_arcs: IntArray,
    first: bool,
    penalty: IntArray,
    capacity: int,
    method: str,
    chosen_pool: IntArray,
    local: bool = False,
) -> None:
    """Solve the graph, or only its components that ``new_arcs`` touched; updates in place.

    Components of the order-worker graph are independent problems, so an optimum stays
    optimal wherever no arc was added. With ``local`` (one order per worker), only orders
    a few hops from the new arcs are re-solved, everyone else keeps their worker: usually
    enough to absorb a handful of new arcs, and the dual check tells when it was not.
    """
    g_order, g_worker, g_cost = pool.graph_arrays(graph)
    n = penalty.shape[0]
    if first:
        sub = np.arange(graph.size, dtype=np.int64)
        orders_sub = np.arange(n, dtype=np.int64)
    elif local:
        orders_sub = _neighbourhood(g_order, g_worker, pool.arrays()[0][new_arcs], n)
        in_region = np.zeros(n, dtype=np.bool_)
        in_region[orders_sub] = True
        # Workers kept by orders outside the region are not available to it.
        _, pool_w, _, _ = pool.arrays()
        keep = chosen_pool >= 0
        keep &= ~in_region
        blocked_workers = pool_w[chosen_pool[keep]]
        blocked = member(g_worker, blocked_workers)
        sub = np.flatnonzero(in_region[g_order] & ~blocked).astype(np.int64)
    else:
        workers, w_local = compact(g_worker)
        w_local = w_local.reshape(-1)
        size = n + workers.size
        adj = csr_matrix(
            (np.ones(graph.size, dtype=np.int8), (g_order, n + w_local)), shape=(size, size)
        )
        _, label = connected_components(adj, directed=False)
        new_orders = pool.arrays()[0][new_arcs]
        hit = np.zeros(label.max() + 1, dtype=np.bool_)
        hit[label[new_orders]] = True
        orders_sub = np.flatnonzero(hit[label[:n]]).astype(np.int64)
        sub = np.flatnonzero(hit[label[g_order]]).astype(np.int64)
    o_sub, o_local = compact(g_order[sub])
    w_sub, w_local2 = compact(g_worker[sub])
    chosen_pool[orders_sub] = -1
    if sub.size == 0:
        return
    cost_sub, pen_sub = _tie_broken(g_cost[sub], penalty[o_sub], o_sub, n)
    picked = solve(
        o_sub.size,
        w_sub.size,
        o_local.reshape(-1).astype(np.int64),
        w_local2.reshape(-1).astype(np.int64),
        cost_sub,
        pen_sub,
        capacity,
        method,
    )
    got = picked >= 0
    chosen_pool[o_sub[got]] = graph[sub[picked[got]]]


def _tie_broken(
    cost: IntArray, penalty: IntArray, rows: IntArray, n: int
) -> tuple[IntArray, IntArray]:
    """Solver costs that break exact ties towards older orders (lower rows).

    Costs are scaled by S and leaving order row r unassigned costs e_r more, with
    e_r = (n - 1 - r)·E // (n - 1) and E = (S - 1) // n. Two assignments differ in at most
    n orders' e_r, by less than S in total: below one unit of the real cost, so a strictly
    cheaper assignment stays strictly cheaper, and among equal ones the solver keeps the
    one leaving the youngest orders unassigned (exactly for n <= 1024, in E age buckets
    beyond). S shrinks so that scaled costs stay far from int64/float64 limits.
    """
    top = int(max(np.abs(cost).max(initial=0), np.abs(penalty).max(initial=0))) + 1
    scale = min(_TIE_SCALE, (1 << 50) // max(top * (cost.size + penalty.size + 1), 1))
    step = (scale - 1) // max(n, 1)
    if step < 1:
        return cost, penalty
    age = (n - 1 - rows) * step // max(n - 1, 1)
    return cost * scale, penalty * scale + age


def _duals(
    n: int,
    m: int,
    g_order: IntArray,
    local_w: IntArray,
    g_cost: IntArray,
    penalty: IntArray,
    capacity: int,
    graph: IntArray,
    chosen_pool: IntArray,
) -> tuple[IntArray, IntArray, bool]:
    """Dual prices of the current choice (pool indices) on the graph's arcs."""
    chosen_arc = np.where(chosen_pool >= 0, np.searchsorted(graph, chosen_pool.clip(0)), -1).astype(
        np.int64
    )
    return dual_prices(n, m, g_order, local_w, g_cost, penalty, capacity, chosen_arc)


def _neighbourhood(g_order: IntArray, g_worker: IntArray, seeds: IntArray, n: int) -> IntArray:
    """Orders within _LOCAL_HOPS order-worker-order hops of ``seeds`` (size-capped)."""
    workers, w_local = compact(g_worker)
    w_local = w_local.reshape(-1)
    incidence = csr_matrix(
        (np.ones(g_order.size, dtype=np.int32), (g_order, w_local)), shape=(n, workers.size)
    )
    to_orders = incidence.tocsr()
    to_workers = incidence.T.tocsr()
    reached = np.zeros(n, dtype=np.bool_)
    reached[seeds] = True
    for _ in range(_LOCAL_HOPS):
        w_hit = to_workers @ reached.astype(np.int32) > 0
        grown = (to_orders @ w_hit.astype(np.int32) > 0) | reached
        limit = max(_LOCAL_MAX, _LOCAL_PER_SEED * seeds.size)
        if int(grown.sum()) > limit or bool((grown == reached).all()):
            reached = grown if int(grown.sum()) <= limit else reached
            break
        reached = grown
    return np.flatnonzero(reached).astype(np.int64)


def _first_failed_rule(
    orders: OrderBatch,
    fleet: Fleet,
    row: int,
    w: int,
    travel_s: float,
    now: int,
    max_travel_s: float,
) -> str | None:
    """Name of the first hard constraint pair (row, w) fails, or None if it is eligible."""
    if not fleet.available[w]:
        return "unavailable"
    if travel_s > max_travel_s:
        return "out_of_range"
    if int(orders.required_skills[row]) & ~int(fleet.skills[w]):
        return "skills"
    scope = int(orders.enterprise_id[row])
    if scope >= 0 and scope != int(fleet.enterprise_id[w]):
        return "enterprise"
    if int(fleet.ids[w]) in set(orders.excluded_for(row).tolist()):
        return "excluded"
    arrive = now + math.ceil(travel_s)
    if arrive > int(orders.latest_start_s[row]):
        return "latest_start"
    if arrive + int(orders.service_s[row]) > int(fleet.shift_end_s[w]):
        return "shift_end"
    return None


def _needed_radius(
    u: IntArray, h: FloatArray, slack: float, travel_w: float, speed: float, cap_m: float
) -> FloatArray:
    """Radius (m) beyond which no worker's cost can fall below u_o (see module docstring)."""
    budget = u.astype(np.float64) - h + slack + 0.5  # +0.5: integer rounding of each cost
    if travel_w <= 0:
        return np.where(budget > 0, cap_m, 0.0)
    return np.clip(budget / travel_w * speed, 0.0, cap_m)


class _Pool:
    """Growing set of eligible pairs with their integer costs; graph = subset of indices."""

    def __init__(self, orders: OrderBatch, fleet: Fleet, weights: CostWeights, now: int):
        self.orders, self.fleet, self.weights, self.now = orders, fleet, weights, now
        self._o: list[IntArray] = []
        self._w: list[IntArray] = []
        self._t: list[FloatArray] = []
        self._c: list[IntArray] = []
        self.size = 0
        self._cat: tuple[IntArray, IntArray, FloatArray, IntArray] | None = None

    def add(self, o: IntArray, w: IntArray, t: FloatArray) -> None:
        if o.size == 0:
            return
        c = pair_total_int(self.weights, self.orders, self.fleet, o, w, t, self.now)
        self._o.append(o)
        self._w.append(w)
        self._t.append(t)
        self._c.append(c)
        self.size += o.size
        self._cat = None

    def arrays(self) -> tuple[IntArray, IntArray, FloatArray, IntArray]:
        if self._cat is None:
            if not self._o:
                z = np.zeros(0, dtype=np.int64)
                self._cat = (z, z.copy(), np.zeros(0), z.copy())
            else:
                self._cat = (
                    np.concatenate(self._o),
                    np.concatenate(self._w),
                    np.concatenate(self._t),
                    np.concatenate(self._c),
                )
                self._o, self._w = [self._cat[0]], [self._cat[1]]
                self._t, self._c = [self._cat[2]], [self._cat[3]]
        return self._cat

    def cheapest_per_order(self, k: IntArray, penalty: IntArray) -> IntArray:
        """Indices of each order's k cheapest pairs that beat leaving it unassigned."""
        o, _, _, c = self.arrays()
        useful = np.flatnonzero(c < penalty[o])
        order = useful[_order_cost_sort(o[useful], c[useful])]
        o_sorted = o[order]
        start = np.searchsorted(o_sorted, o_sorted, side="left")
        rank = np.arange(order.size) - start
        return np.sort(order[rank < k[o_sorted]])

    def graph_arrays(self, graph: IntArray) -> tuple[IntArray, IntArray, IntArray]:
        o, w, _, c = self.arrays()
        return o[graph], w[graph], c[graph]

    def violations(self, graph: IntArray, u: IntArray, v: IntArray, penalty: IntArray) -> IntArray:
        """Pool indices outside the graph with negative reduced cost (and cost < penalty)."""
        o, w, _, c = self.arrays()
        bad = (c - u[o] + v[w] < 0) & (c < penalty[o])
        bad[graph] = False
        return np.flatnonzero(bad)

    def violations_from(self, first: int, u: IntArray, v: IntArray, penalty: IntArray) -> IntArray:
        o, w, _, c = self.arrays()
        o, w, c = o[first:], w[first:], c[first:]
        bad = (c - u[o] + v[w] < 0) & (c < penalty[o])
        return np.flatnonzero(bad) + first

    def drop_known(
        self, o: IntArray, w: IntArray, t: FloatArray
    ) -> tuple[IntArray, IntArray, FloatArray]:
        """Drop pairs already pooled (the preferred-worker pairs added up front)."""
        if o.size == 0:
            return o, w, t
        pref = self.orders.preferred_worker_id[o]
        known = (pref != NONE_ID) & (pref == self.fleet.ids[w])
        if known.any():
            po, pw, _, _ = self.arrays()
            n_w = len(self.fleet)
            have = member(o * n_w + w, po * n_w + pw)
            keep = ~(known & have)
            return o[keep], w[keep], t[keep]
        return o, w, t


def _order_cost_sort(o: IntArray, c: IntArray) -> IntArray:
    """Stable argsort by (order, cost), through one int64 key when it fits."""
    if o.size == 0:
        return np.zeros(0, dtype=np.int64)
    c_min, c_span = int(c.min()), int(c.max()) - int(c.min()) + 1
    if c_span * (int(o.max()) + 1) < 2**62:
        return np.argsort(o * c_span + (c - c_min), kind="stable").astype(np.int64)
    return np.lexsort((c, o)).astype(np.int64)


def _preferred_pairs(
    orders: OrderBatch,
    fleet: Fleet,
    travel: TravelTimeModel,
    now: int,
    max_travel_s: float,
    pool: _Pool,
) -> tuple[IntArray, IntArray, FloatArray]:
    """Eligible (order, preferred worker) pairs not yet pooled, wherever the worker is."""
    rows = np.flatnonzero(orders.preferred_worker_id != NONE_ID)
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
    if rows.size == 0 or len(fleet) == 0:
        return empty
    sorter = np.argsort(fleet.ids, kind="stable")
    pos = np.minimum(
        np.searchsorted(fleet.ids, orders.preferred_worker_id[rows], sorter=sorter), len(fleet) - 1
    )
    w = sorter[pos]
    found = fleet.ids[w] == orders.preferred_worker_id[rows]
    o, w = rows[found].astype(np.int64), w[found].astype(np.int64)
    po, pw, _, _ = pool.arrays()
    n_w = len(fleet)
    fresh = ~member(o * n_w + w, po * n_w + pw)
    o, w = o[fresh], w[fresh]
    t = pair_travel_s(travel, orders, fleet, o, w, now)
    *_, ok = hard_constraints(orders, fleet, o, w, t, now, max_travel_s)
    return o[ok], w[ok], t[ok]


def _reasons(
    orders: OrderBatch,
    fleet: Fleet,
    travel: TravelTimeModel,
    now: int,
    max_travel_s: float,
    index: WorkerIndex,
    max_radius_m: float,
    pool_order: IntArray,
    rows: IntArray,
) -> list[str]:
    """Reason of each unassigned order row.

    An order with an eligible pooled worker was outbid. The others get one search out to
    the travel bound (in small blocks, to bound memory) to tell "nobody in range" from
    "nobody skilled" from "skilled but excluded".
    """
    if rows.size == 0:
        return []
    has_pool = np.zeros(len(orders), dtype=np.bool_)
    has_pool[pool_order] = True
    reason = np.full(rows.size, UnassignedReason.OUTBID.value, dtype=object)
    todo = np.flatnonzero(~has_pool[rows])
    for lo in range(0, todo.size, _REASON_BLOCK):
        block = todo[lo : lo + _REASON_BLOCK]
        block_rows = rows[block]
        origin, slots, _ = index.within(
            orders.lat[block_rows], orders.lng[block_rows], max_radius_m
        )
        o = block_rows[origin]
        w = index.ids_of(slots)
        t = pair_travel_s(travel, orders, fleet, o, w, now)
        in_range, skilled, ok = hard_constraints(orders, fleet, o, w, t, now, max_travel_s)
        n_b = block.size
        any_ok = np.bincount(origin[ok], minlength=n_b) > 0
        any_skilled = np.bincount(origin[skilled], minlength=n_b) > 0
        any_in_range = np.bincount(origin[in_range], minlength=n_b) > 0
        reason[block] = np.where(
            any_ok,
            UnassignedReason.OUTBID.value,
            np.where(
                any_skilled,
                UnassignedReason.NOT_ELIGIBLE.value,
                np.where(
                    any_in_range,
                    UnassignedReason.NO_SKILLED_WORKER.value,
                    UnassignedReason.NO_WORKER_IN_RANGE.value,
                ),
            ),
        )
    return [str(r) for r in reason.tolist()]


def total_cost_int(costs: FloatArray) -> int:
    """Sum of integer solver costs of cost-second values (for external comparisons)."""
    return int(to_int(costs).sum())

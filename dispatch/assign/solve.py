"""``match``: candidates, the sparse solve and its certificate, or a dense solve when small."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import cast

import numpy as np
from scipy.optimize import linear_sum_assignment

from dispatch._ragged import compact
from dispatch.assign.graph import (
    Pool,
    classify_unassigned,
    duals,
    needed_radius,
    preferred_pairs,
    resolve,
    sparsified,
    tie_broken,
    unassigned_reasons_of,
)
from dispatch.assign.result import (
    Assignment,
    Run,
    SolveSummary,
    assemble,
)
from dispatch.assign.supply import Reserve, SupplyReach, supply_reach
from dispatch.assign.types import (
    CROWD_FREE,
    CROWD_GAIN,
    CROWD_MAX,
    DENSE_PAIRS,
    MAX_ROUNDS,
    PRICED_SHARE,
    STRIDE_NEAR,
    SURGE_K_SHARE,
    SURGE_SAMPLE,
    TIGHT_SHARE,
    WIDEN,
    FloatArray,
    IntArray,
)
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
    CostWeights,
    order_terms,
    pair_costs,
    to_int,
    unassigned_seconds,
    worker_terms,
)
from dispatch.errors import InvalidInput
from dispatch.index import WorkerIndex
from dispatch.model import TRANSPORT_MODES, Fleet, OrderBatch
from geo.travel import HaversineTravelModel, TransportMode, TravelTimeModel


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
    budget_s: float | None = None,
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

    ``budget_s`` (seconds of wall time from the call, None: no limit) stops the
    certification rounds early: no new round starts that the last one's duration says
    would end past it (the first always runs). The result is then the best assignment
    found, feasible, ``certified`` False, a warning says so, and ``gap_bound`` bounds its
    distance from the optimum by LP duality (see ``certify_rounds``).
    """
    del seed  # deterministic; kept so every randomised-or-not entry point looks alike
    weights = weights or CostWeights()
    model: TravelTimeModel = (
        travel if travel is not None else cast(TravelTimeModel, HaversineTravelModel())
    )
    k = _checked_k(capacity, solver, budget_s, candidates_per_order)
    use_flow = solver == "flow" or capacity > 1
    n = len(orders)
    warnings: list[str] = []

    t0 = time.perf_counter()
    small = n * int(np.count_nonzero(fleet.available)) <= dense_pairs
    if solver == "auto" and certify and dense_pairs > 0 and small:
        if not np.isfinite(max_travel_s) or max_travel_s <= 0:
            raise InvalidInput(f"max_travel_s must be a positive number, got {max_travel_s}")
        return match_dense(orders, fleet, weights, model, capacity, int(now), max_travel_s, t0)
    index = index if index is not None else fleet_index(fleet)
    search = CandidateSearch(orders, fleet, model, now, index=index, max_travel_s=max_travel_s)
    pool, reserve, graph, penalty = _first_graph(search, weights, now, max_travel_s, k, capacity)
    candidates_s = time.perf_counter() - t0

    travel_w, g_floor, h = _cost_floors(weights, orders, fleet)
    method = "flow" if use_flow else ("auto" if solver == "auto" else "lapjv")

    deadline = None if budget_s is None else t0 + float(budget_s)
    rounds = certify_rounds(
        pool,
        search,
        graph,
        penalty,
        capacity,
        method,
        certify,
        h,
        g_floor,
        travel_w,
        n,
        reserve,
        deadline,
        t0,
    )
    warnings.extend(rounds.warnings)
    if not certify:
        warnings.append("certification skipped: optimal on the candidate graph only")
    summary = SolveSummary(
        certified=rounds.certified,
        candidates_s=candidates_s,
        solve_s=rounds.solve_s,
        certify_s=rounds.certify_s,
        rounds=rounds.rounds,
        n_candidate_pairs=int(rounds.graph.size),
        solver="flow" if use_flow else "lapjv",
        warnings=tuple(warnings),
        gap_bound=rounds.gap_bound,
    )
    return _assembled(search, weights, now, max_travel_s, pool, rounds.chosen_pool, summary)


def _checked_k(
    capacity: int, solver: str, budget_s: float | None, candidates_per_order: int
) -> int:
    """Check ``match``'s solver arguments (InvalidInput if bad); the initial K per order."""
    if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
        raise InvalidInput(f"capacity must be an int >= 1, got {capacity!r}")
    if solver not in ("auto", "lapjv", "flow"):
        raise InvalidInput(f"solver must be 'auto', 'lapjv' or 'flow', got {solver!r}")
    if solver == "lapjv" and capacity != 1:
        raise InvalidInput("solver 'lapjv' needs capacity == 1")
    if budget_s is not None and (
        isinstance(budget_s, bool)
        or not isinstance(budget_s, int | float)
        or not math.isfinite(budget_s)
        or budget_s <= 0
    ):
        raise InvalidInput(f"budget_s must be a finite number > 0 or None, got {budget_s!r}")
    k = int(candidates_per_order)
    if k < 1:
        raise InvalidInput(f"candidates_per_order must be >= 1, got {candidates_per_order}")
    return k


def _first_graph(
    search: CandidateSearch,
    weights: CostWeights,
    now: int,
    max_travel_s: float,
    k: int,
    capacity: int,
) -> tuple[Pool, Reserve, IntArray, IntArray]:
    """The pool, surge reserve, first solver graph (pool indices) and penalties of ``match``."""
    orders, fleet, model = search.orders, search.fleet, search.travel
    n = len(orders)
    # Where orders crowd, each needs a deeper list: scale K by orders per worker nearby.
    crowd = search.crowding() if n else np.zeros(0)
    excess = np.maximum(crowd - CROWD_FREE, 0.0)
    k_per_order = np.clip(np.rint(k * (1.0 + CROWD_GAIN * excess)), k, CROWD_MAX * k).astype(
        np.int64
    )
    pool0 = search.initial(k_per_order)
    pool = Pool(orders, fleet, weights, now)
    # Where demand outruns the supply near it, reach the capacity that covers it up front:
    # the short orders' pairs out to that radius wait, uncosted, in a reserve (their first
    # search's pairs are dropped: the reserve holds them too); the first graph samples
    # the reserve, and the certificate costs the pairs that could matter.
    reach = supply_reach(orders, fleet, capacity, search.max_radius_m)
    short = np.flatnonzero(reach.radius_m > search.radius_m)
    reserve = reserve_of(search, reach, short)
    first = np.ones(pool0.n_pairs, dtype=np.bool_)
    if short.size:
        is_short = np.zeros(n, dtype=np.bool_)
        is_short[short] = True
        first = ~is_short[pool0.order_idx]
    pool.add(pool0.order_idx[first], pool0.worker_idx[first], pool0.travel_s[first])
    if reserve.size:
        want = np.ceil(SURGE_K_SHARE * reach.competitors).astype(np.int64)
        sampled = reserve.sample(np.maximum(want, k_per_order), STRIDE_NEAR, SURGE_SAMPLE)
        pool.add(*cost_pairs(search, *reserve.take(sampled)))
        k_per_order[short] = 2 * (SURGE_SAMPLE + STRIDE_NEAR)  # the sample is their graph
    pool.add(*preferred_pairs(orders, fleet, model, now, max_travel_s, pool))
    penalty = to_int(unassigned_seconds(weights, orders, now, max_travel_s))
    graph = pool.cheapest_per_order(k_per_order, penalty)
    return pool, reserve, graph, penalty


def _cost_floors(
    weights: CostWeights, orders: OrderBatch, fleet: Fleet
) -> tuple[float, float, FloatArray]:
    """Solver-unit cost bound terms: travel weight per second, worker-term slack, order terms."""
    travel_w = weights.travel_per_s * COST_SCALE  # solver units per second of travel
    g_all = worker_terms(weights, fleet, np.flatnonzero(fleet.available).astype(np.int64))
    g_floor = -float(g_all.min()) * COST_SCALE if g_all.size else 0.0
    h = order_terms(weights, orders, np.arange(len(orders), dtype=np.int64)) * COST_SCALE
    return travel_w, g_floor, h


def _assembled(
    search: CandidateSearch,
    weights: CostWeights,
    now: int,
    max_travel_s: float,
    pool: Pool,
    chosen: IntArray,
    summary: SolveSummary,
) -> Assignment:
    """The ``Assignment`` of the pool pairs ``chosen`` (-1: unassigned) per order."""
    orders, fleet, model, index = search.orders, search.fleet, search.travel, search.index
    _, pool_w, _, _ = pool.arrays()
    chosen_w = np.full(len(orders), -1, dtype=np.int64)
    chosen_w[chosen >= 0] = pool_w[chosen[chosen >= 0]]
    pool_order, pool_worker, pool_travel, _ = pool.arrays()

    def reasons_of(rows: IntArray) -> list[str]:
        return unassigned_reasons_of(
            orders, fleet, model, now, max_travel_s, index, search.max_radius_m, pool_order, rows
        )

    run = Run(
        index=index,
        max_radius_m=float(search.max_radius_m),
        pool_order=pool_order,
        pool_worker=pool_worker,
        pool_travel=pool_travel,
        summary=summary,
    )
    return assemble(
        orders, fleet, weights, model, int(now), max_travel_s, chosen_w, reasons_of, run
    )


def reserve_of(search: CandidateSearch, reach: SupplyReach, rows: IntArray) -> Reserve:
    """Every eligible-or-not pair out to ``reach.radius_m[rows]``, uncosted, for ``rows``.

    The search forgets what it found for ``rows`` (the reserve holds all of it) and records
    the new radii and pairs, so that later widening stays incremental (its completeness:
    every eligible worker within radius_m[o] is pooled or reserved).
    """
    speed = window_speed_mps(search)
    if reach.grid is None or rows.size == 0:
        return Reserve(*(np.zeros(0, dtype=np.int64),) * 2, np.zeros(0), np.zeros(0), speed)
    o, w, d_lb = reach.grid.gather(rows, reach.radius_m[rows])
    mine = np.zeros(len(search.orders), dtype=np.bool_)
    mine[rows] = True
    keep = ~mine[search._o]
    search.radius_m[rows] = np.maximum(search.radius_m[rows], reach.radius_m[rows])
    search._o = np.concatenate([search._o[keep], o])
    search._w = np.concatenate([search._w[keep], w])
    search._t = np.concatenate([search._t[keep], np.full(o.size, np.nan)])
    return Reserve(o, w, d_lb, search.radius_m, speed)


def window_speed_mps(search: CandidateSearch) -> float:
    """A straight-line speed bound (m/s) for the trips of this batch, tighter than the
    search's all-day one where the travel model says how speed varies by hour.

    For ``HaversineTravelModel`` an eligible trip leaves at ``now`` and lasts at most the
    travel bound, so its average road speed is at most the fastest hourly speed of the
    local hours it can touch; divided by the detour, a bound on distance / seconds. Other
    models keep ``search.speed_mps``. Used only where a tighter bound pays: the reserve's
    cost bounds and the gap bound.
    """
    model = search.travel
    if not isinstance(model, HaversineTravelModel):
        return float(search.speed_mps)
    fleet = search.fleet
    codes = np.unique(fleet.mode[fleet.available])
    if codes.size == 0:
        return float(search.speed_mps)
    tod = (search.now + model.utc_offset_s) % 86_400
    first = tod // 3600
    last = (tod + math.ceil(search.max_travel_s)) // 3600
    hours = np.arange(first, last + 1) % 24
    best = 0.0
    for code in codes.tolist():
        mode = TransportMode(TRANSPORT_MODES[int(code)])
        profile = model.speed_profile(mode)
        best = max(best, float(np.max(profile[hours])) / model.detour(mode))
    return min(best, float(search.speed_mps))


def cost_pairs(
    search: CandidateSearch, o: IntArray, w: IntArray
) -> tuple[IntArray, IntArray, FloatArray]:
    """The eligible ones of pairs (order row, fleet row), with their travel seconds."""
    t = pair_travel_s(search.travel, search.orders, search.fleet, o, w, search.now)
    *_, ok = hard_constraints(search.orders, search.fleet, o, w, t, search.now, search.max_travel_s)
    return o[ok], w[ok], t[ok]


@dataclass(frozen=True, eq=False)
class Rounds:
    """What the solve-and-certify rounds of ``match`` ended with."""

    chosen_pool: IntArray  # pool index of each order's pair (-1: unassigned)
    graph: IntArray
    rounds: int
    certified: bool
    solve_s: float
    certify_s: float
    warnings: tuple[str, ...]
    gap_bound: float


def certify_rounds(
    pool: Pool,
    search: CandidateSearch,
    graph: IntArray,
    penalty: IntArray,
    capacity: int,
    method: str,
    certify: bool,
    h: FloatArray,
    g_floor: float,
    travel_w: float,
    n: int,
    reserve: Reserve | None = None,
    deadline: float | None = None,
    started_s: float | None = None,
) -> Rounds:
    """Solve on the candidate graph, then prove the solution optimal against every pair
    by dual prices, adding the violating pairs (and widening radii) until none is left.

    ``deadline`` (``time.perf_counter()`` seconds; ``started_s`` when the call began)
    stops the rounds early (see ``match``);
    an uncertified end still carries a gap bound from the last prices (``gap_bound``).
    """
    fleet = pool.fleet
    warnings: list[str] = []
    solve_s = certify_s = 0.0
    certified = False
    rounds = 0
    chosen_pool = np.full(n, -1, dtype=np.int64)
    new_arcs = graph
    v = np.zeros(len(fleet), dtype=np.int64)
    started = time.perf_counter() if started_s is None else started_s
    while True:
        rounds += 1
        t1 = time.perf_counter()
        local = rounds > 1 and capacity == 1 and certify
        resolve(pool, graph, new_arcs, rounds == 1, penalty, capacity, method, chosen_pool, local)
        solve_s += time.perf_counter() - t1
        if not certify:
            break
        t2 = time.perf_counter()
        g_order, g_worker, g_cost = pool.graph_arrays(graph)
        workers_in_graph, local_w = compact(g_worker)
        local_w = local_w.reshape(-1).astype(np.int64)
        dual_args = (n, workers_in_graph.size, g_order, local_w, g_cost, penalty, capacity, graph)
        u, v_local, ok = duals(*dual_args, chosen_pool)
        if not ok and local:
            # The local repair did not reach the optimum: re-solve the touched components.
            certify_s += time.perf_counter() - t2
            t1 = time.perf_counter()
            resolve(pool, graph, new_arcs, False, penalty, capacity, method, chosen_pool)
            solve_s += time.perf_counter() - t1
            t2 = time.perf_counter()
            u, v_local, ok = duals(*dual_args, chosen_pool)
        v = np.zeros(len(fleet), dtype=np.int64)
        v[workers_in_graph] = np.maximum(v_local, 0)
        if not ok:
            warnings.append("dual prices inconsistent: solution not proven optimal")
            certify_s += time.perf_counter() - t2
            break
        violators = pool.violations(graph, u, v, penalty)
        prices = _Prices(u, v, penalty, h, g_floor, travel_w)
        if reserve is not None:
            violators = _reserve_violators(pool, search, reserve, prices, violators)
        violators, grow = _widened(pool, search, reserve, chosen_pool, prices, violators)
        certify_s += time.perf_counter() - t2
        if violators.size == 0 and grow.size == 0:
            certified = True
            break
        if rounds >= MAX_ROUNDS:
            warnings.append(f"certificate not reached after {MAX_ROUNDS} rounds")
            break
        if deadline is not None and _past_deadline(deadline, started, t1, rounds):
            warnings.append(
                f"time budget reached after {rounds} rounds: not proven optimal, see gap_bound"
            )
            break
        graph = sparsified(pool, graph, violators, u, v, chosen_pool)
        in_graph = np.zeros(pool.size, dtype=np.bool_)
        in_graph[graph] = True
        new_arcs = violators[in_graph[violators]]
    if certified:
        gap = 0.0
    elif not certify:
        gap = math.inf
    else:
        t2 = time.perf_counter()
        gap = gap_bound_of(
            pool, reserve, search, chosen_pool, v, penalty, h, g_floor, travel_w, capacity
        )
        certify_s += time.perf_counter() - t2
    return Rounds(chosen_pool, graph, rounds, certified, solve_s, certify_s, tuple(warnings), gap)


@dataclass(frozen=True)
class _Prices:
    """One round's dual prices (orders ``u``, workers ``v``) and the cost floors they meet."""

    u: IntArray
    v: IntArray
    penalty: IntArray
    h: FloatArray
    g_floor: float
    travel_w: float


def _reserve_violators(
    pool: Pool, search: CandidateSearch, reserve: Reserve, prices: _Prices, violators: IntArray
) -> IntArray:
    """``violators`` and the reserved pairs (now pooled) that violate the prices (u, v)."""
    u, v, penalty, h = prices.u, prices.v, prices.penalty, prices.h
    g_floor, travel_w = prices.g_floor, prices.travel_w
    while reserve.size:
        # Reserved pairs whose cost bound does not clear them are costed and checked,
        # a bounded batch at a time, until one violates or none is left unchecked.
        maybe, cut = reserve.could_violate(
            u, v, h, g_floor, travel_w, reserve.speed_mps, TIGHT_SHARE
        )
        if maybe.size == 0:
            break
        first_new = pool.size
        pool.add(*pool.drop_known(*cost_pairs(search, *reserve.take(maybe))))
        found = pool.violations_from(first_new, u, v, penalty)
        violators = np.concatenate([violators, found])
        if not cut:
            break
    return violators


def _widened(
    pool: Pool,
    search: CandidateSearch,
    reserve: Reserve | None,
    chosen_pool: IntArray,
    prices: _Prices,
    violators: IntArray,
) -> tuple[IntArray, IntArray]:
    """Widen radii the prices (u, v) call for: the violators so far and any new ones, and
    the orders whose radius is still short of what their price needs."""
    u, v, penalty = prices.u, prices.v, prices.penalty
    # A worker beyond order o's radius costs at least travel_w·d/speed + worker-only
    # and order-only terms, and v_w >= 0 only makes it dearer: it can violate only
    # within the radius where that bound stays below u_o.
    speed = search.speed_mps if reserve is None else reserve.speed_mps
    need_r = needed_radius(u, prices.h, prices.g_floor, prices.travel_w, speed, search.max_radius_m)
    grow = np.flatnonzero(need_r > search.radius_m)
    # Assigned orders' prices are real: widen them now, beside any violators, rather
    # than one round later (each round is a re-solve). Unassigned orders (u_o = the
    # penalty) wait until nothing else violates, as their radius is the travel bound.
    priced = grow[(chosen_pool[grow] >= 0) & (u[grow] <= PRICED_SHARE * penalty[grow])]
    if violators.size and priced.size:
        new_r = np.minimum(need_r[priced], np.maximum(WIDEN * search.radius_m[priced], 1.0))
        o_new, w_new, t_new = search.widen(priced, new_r)
        first_new = pool.size
        pool.add(*pool.drop_known(o_new, w_new, t_new))
        violators = np.concatenate([violators, pool.violations_from(first_new, u, v, penalty)])
        grow = np.flatnonzero(need_r > search.radius_m)
    while grow.size and violators.size == 0:
        # Grow at most WIDEN x per pass: the re-solve usually lowers u_o first.
        new_r = np.minimum(need_r[grow], np.maximum(WIDEN * search.radius_m[grow], 1.0))
        o_new, w_new, t_new = search.widen(grow, new_r)
        first_new = pool.size
        pool.add(*pool.drop_known(o_new, w_new, t_new))
        violators = pool.violations_from(first_new, u, v, penalty)
        grow = np.flatnonzero(need_r > search.radius_m)
    return violators, grow


def _past_deadline(deadline: float, started: float, round_start: float, rounds: int) -> bool:
    """Whether another round, and then ending, would likely run past ``deadline``."""
    now_s = time.perf_counter()
    # The next round costs about this one (half, after the first: later graphs are
    # near-tight arcs only), and ending (gap bound, result) about a fifth of the time
    # spent so far.
    next_s = (now_s - round_start) * (0.5 if rounds == 1 else 1.0)
    return now_s + next_s + 0.2 * (now_s - started) > deadline


def gap_bound_of(
    pool: Pool,
    reserve: Reserve | None,
    search: CandidateSearch,
    chosen_pool: IntArray,
    v: IntArray,
    penalty: IntArray,
    h: FloatArray,
    g_floor: float,
    travel_w: float,
    capacity: int = 1,
) -> float:
    """A proven bound on (objective - optimum) / optimum of ``chosen_pool``, by LP duality.

    The LP of "assign or pay the penalty" has the dual: maximise sum_o u_o - capacity x
    sum_w v_w subject to u_o <= penalty_o, u_o <= c_ow + v_w for every eligible pair,
    v >= 0; any feasible (u, v) bounds the optimum from below. Given the last worker
    prices v >= 0, the best u_o is the least of: the penalty, c_ow + v_w over pooled pairs,
    the distance bound + v_w over reserved pairs, and for workers beyond the order's
    radius the cost bound of ``needed_radius`` at that radius (v_w >= 0 only adds). The
    bound is exact arithmetic on integer solver costs, so it never undercuts the true gap.
    """
    o, w, _, c = pool.arrays()
    radius = search.radius_m
    speed = search.speed_mps if reserve is None else reserve.speed_mps
    beyond = travel_w * radius / speed + h - g_floor - 0.5
    beyond = np.where(radius >= search.max_radius_m, np.inf, beyond)
    if reserve is not None and reserve.size:
        idx = np.flatnonzero(reserve.open)
        ro, rw = reserve.o[idx], reserve.w[idx]
        r_lb = travel_w * reserve.d_lb[idx] / speed + h[ro] - g_floor - 0.5
    else:
        ro = rw = np.zeros(0, dtype=np.int64)
        r_lb = np.zeros(0)
    lower = -math.inf
    # The last prices, and no prices at all (v = 0 is feasible too, and wins when the
    # prices still carry unassigned orders' penalties): the better bound counts.
    for prices in (v, np.zeros_like(v)):
        u = np.minimum(penalty.astype(np.float64), beyond)
        np.minimum.at(u, o, (c + prices[w]).astype(np.float64))
        np.minimum.at(u, ro, r_lb + prices[rw])
        lower = max(lower, float(u.sum()) - capacity * float(prices.sum()))
    got = chosen_pool >= 0
    objective = float(c[chosen_pool[got]].sum() + penalty[~got].sum())
    if objective <= lower:
        return 0.0
    return (objective - lower) / lower if lower > 0 else math.inf


def match_dense(
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
    penalty = to_int(unassigned_seconds(weights, orders, now, max_travel_s))
    cost = pair_costs(weights, orders, fleet, o_ok, w_ok, t_ok, now).total_int
    candidates_s = time.perf_counter() - t0

    t1 = time.perf_counter()
    chosen_w = np.full(n, -1, dtype=np.int64)
    useful = np.flatnonzero(cost < penalty[o_ok])
    if useful.size:
        c_s, p_s = tie_broken(cost[useful], penalty, np.arange(n, dtype=np.int64), n)
        reduced = np.zeros((n, m), dtype=np.float64)
        col = np.searchsorted(rows, w_ok[useful])
        reduced[o_ok[useful], col] = (c_s - p_s[o_ok[useful]]).astype(np.float64)
        if capacity > 1:
            reduced = np.repeat(reduced, capacity, axis=1)
        r_ind, c_ind = linear_sum_assignment(reduced)
        took = reduced[r_ind, c_ind] < 0
        chosen_w[r_ind[took]] = rows[c_ind[took] // capacity]
    solve_s = time.perf_counter() - t1

    def reasons_of(unassigned_rows: IntArray) -> list[str]:
        reason_rows = classify_unassigned(o, in_range, skilled, ok, n)
        return [str(r) for r in reason_rows[unassigned_rows].tolist()]

    speed = speed_bound_mps(model, fleet.mode[fleet.available])
    run = Run(
        index=None,
        max_radius_m=float(max_travel_s) * speed,
        pool_order=o_ok,
        pool_worker=w_ok,
        pool_travel=t_ok,
        summary=SolveSummary(True, candidates_s, solve_s, 0.0, 1, int(o_ok.size), "dense", (), 0.0),
    )
    return assemble(orders, fleet, weights, model, now, max_travel_s, chosen_w, reasons_of, run)

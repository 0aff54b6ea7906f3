"""Exact solvers for the sparse order-worker problem and its dual prices.

Problem (integer costs): each order takes at most one worker over its graph arcs or stays
unassigned at ``penalty[o]``; worker w takes at most ``capacity`` orders. Minimise the total.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from ortools.graph.python import min_cost_flow
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components, min_weight_full_bipartite_matching

from dispatch._ragged import compact
from dispatch.errors import SolverError

IntArray = NDArray[np.int64]

# Orders per solver call when splitting into components (measured: ~linear below this).
_CHUNK_ORDERS = 2000
# With method "auto", parts of at least this many orders (single big components of dense
# districts) go to min-cost flow, smaller ones to LAPJV. Measured on the 200k x 1M cities
# (CPU s, same parts): LAPJV 0.16 vs flow 0.31 at 500-2000 orders, 0.39 vs 0.60 at
# 2000-5000, 0.26 vs 0.24 at 5000-10000, 3.6 vs 2.3 above 10000 (components up to 19k).
_FLOW_ORDERS = 8000


@dataclass(frozen=True, eq=False)
class Arcs:
    """A sparse order-worker problem: orders 0..n_orders-1, workers 0..n_workers-1, arc i
    joins ``order[i]`` to ``worker[i]`` at integer ``cost[i]``; leaving order o unassigned
    costs ``penalty[o]``."""

    n_orders: int
    n_workers: int
    order: IntArray
    worker: IntArray
    cost: IntArray
    penalty: IntArray


def solve_flow(arcs: Arcs, capacity: int) -> IntArray:
    """Min-cost flow (OR-Tools); returns the arc index chosen per order (-1: unassigned).

    Workers are graph-local 0..n_workers-1. Nodes: orders, workers, one sink.
    """
    n_orders, n_workers = arcs.n_orders, arcs.n_workers
    arc_order, arc_worker, arc_cost, penalty = arcs.order, arcs.worker, arcs.cost, arcs.penalty
    smcf = min_cost_flow.SimpleMinCostFlow()
    sink = n_orders + n_workers
    orders = np.arange(n_orders, dtype=np.int64)
    workers = np.arange(n_workers, dtype=np.int64)
    tails = np.concatenate([arc_order, n_orders + workers, orders])
    heads = np.concatenate([n_orders + arc_worker, np.full(n_workers + n_orders, sink)])
    caps = np.concatenate(
        [
            np.ones(arc_order.size, dtype=np.int64),
            np.full(n_workers, capacity, dtype=np.int64),
            np.ones(n_orders, dtype=np.int64),
        ]
    )
    costs = np.concatenate([arc_cost, np.zeros(n_workers, dtype=np.int64), penalty])
    smcf.add_arcs_with_capacity_and_unit_cost(tails, heads, caps, costs)
    supplies = np.zeros(sink + 1, dtype=np.int64)
    supplies[:n_orders] = 1
    supplies[sink] = -n_orders
    smcf.set_nodes_supplies(np.arange(sink + 1, dtype=np.int64), supplies)
    status = smcf.solve()
    if status != smcf.OPTIMAL:
        raise SolverError(f"min cost flow ended with status {status}")
    flows = smcf.flows(np.arange(arc_order.size, dtype=np.int64))
    chosen = np.full(n_orders, -1, dtype=np.int64)
    used = np.flatnonzero(flows > 0)
    chosen[arc_order[used]] = used
    return chosen


def presolve(arcs: Arcs) -> tuple[IntArray, NDArray[np.bool_]]:
    """Fix the orders whose cheapest worker no other order lists (one order per worker).

    Such an order can take that worker in some optimal solution: swapping it in never
    costs more and blocks nobody. Repeats while it fixes something. Returns (arc chosen per
    order or -1, mask of arcs still open to the solver).
    """
    n_orders, n_workers = arcs.n_orders, arcs.n_workers
    arc_order, arc_worker, arc_cost, penalty = arcs.order, arcs.worker, arcs.cost, arcs.penalty
    chosen = np.full(n_orders, -1, dtype=np.int64)
    open_arc = arc_cost < penalty[arc_order]
    for _ in range(8):
        idx = np.flatnonzero(open_arc)
        if idx.size == 0:
            break
        o, w, c = arc_order[idx], arc_worker[idx], arc_cost[idx]
        demand = np.bincount(w, minlength=n_workers)
        # Cheapest open arc per order (ties: lowest arc index, so results are deterministic).
        # One stable int64 sort by (order, cost) beats a three-key lexsort; idx is ascending,
        # so stability breaks ties by arc index.
        c_min = int(c.min())
        span = int(c.max()) - c_min + 1
        if span * (int(o.max()) + 1) < 2**62:
            key = np.argsort(o * span + (c - c_min), kind="stable")
        else:
            key = np.lexsort((idx, c, o))
        o_sorted = o[key]
        first = np.ones(key.size, dtype=np.bool_)
        first[1:] = o_sorted[1:] != o_sorted[:-1]
        best = key[first]
        fix = demand[w[best]] <= 1
        if not fix.any():
            break
        fixed_arcs = idx[best[fix]]
        chosen[arc_order[fixed_arcs]] = fixed_arcs
        done_order = np.zeros(n_orders, dtype=np.bool_)
        done_order[arc_order[fixed_arcs]] = True
        open_arc &= ~done_order[arc_order]
        done_worker = np.zeros(n_workers, dtype=np.bool_)
        done_worker[arc_worker[fixed_arcs]] = True
        open_arc &= ~done_worker[arc_worker]
    return chosen, open_arc


def solve_matching(arcs: Arcs) -> IntArray:
    """One order per worker via scipy's sparse LAPJV; same contract as ``solve_flow``."""
    n_orders, n_workers = arcs.n_orders, arcs.n_workers
    arc_order, arc_worker, arc_cost, penalty = arcs.order, arcs.worker, arcs.cost, arcs.penalty
    if n_orders == 0:
        return np.zeros(0, dtype=np.int64)
    # One private "unassigned" column per order makes a full row matching always exist.
    rows = np.concatenate([arc_order, np.arange(n_orders, dtype=np.int64)])
    cols = np.concatenate([arc_worker, n_workers + np.arange(n_orders, dtype=np.int64)])
    cost = np.concatenate([arc_cost, penalty])
    # Every row is matched exactly once, so a per-row shift keeps the optimum; it makes
    # weights >= 1, as the solver reads stored zeros as missing edges.
    row_min = np.full(n_orders, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(row_min, rows, cost)
    weights = (cost - row_min[rows] + 1).astype(np.float64)
    graph = csr_matrix((weights, (rows, cols)), shape=(n_orders, n_workers + n_orders))
    graph.sum_duplicates()
    row_ind, col_ind = min_weight_full_bipartite_matching(graph)
    # Map (row, column) back to the arc index.
    arc_key = arc_order * (n_workers + n_orders) + arc_worker
    order_of_keys = np.argsort(arc_key, kind="stable")
    chosen = np.full(n_orders, -1, dtype=np.int64)
    real = col_ind < n_workers
    want = row_ind[real].astype(np.int64) * (n_workers + n_orders) + col_ind[real]
    pos = np.searchsorted(arc_key, want, sorter=order_of_keys)
    chosen[row_ind[real]] = order_of_keys[pos]
    return chosen


def dual_prices(arcs: Arcs, capacity: int, chosen: IntArray) -> tuple[IntArray, IntArray, bool]:
    """Order prices u <= penalty and least worker prices v >= 0 proving ``chosen`` optimal.

    LP duality of "assign or pay the penalty": every arc must have reduced cost
    c_ow - u_o + v_w >= 0, with equality on chosen arcs, u_o = penalty_o for unassigned
    orders and v_w = 0 for workers with spare capacity. So u_o = c_oa + v_a for an order on
    worker a, and v has lower bounds v_w >= penalty_o - c_ow (unassigned o) that propagate
    along alternatives: v_w' >= v_a + c_oa - c_ow'. The least fixed point is found by
    vectorised label correcting; ``ok`` is False when it violates an upper bound (spare
    worker priced, or u_o > penalty_o), i.e. ``chosen`` is not optimal on these arcs.
    """
    n_orders, n_workers = arcs.n_orders, arcs.n_workers
    arc_order, arc_worker, arc_cost, penalty = arcs.order, arcs.worker, arcs.cost, arcs.penalty
    assigned = chosen >= 0
    a_worker = np.full(n_orders, -1, dtype=np.int64)
    a_cost = np.zeros(n_orders, dtype=np.int64)
    a_worker[assigned] = arc_worker[chosen[assigned]]
    a_cost[assigned] = arc_cost[chosen[assigned]]
    # Seeds: arcs of unassigned orders push their worker's price up.
    v = np.zeros(n_workers, dtype=np.int64)
    free_arcs = ~assigned[arc_order]
    np.maximum.at(v, arc_worker[free_arcs], (penalty[arc_order] - arc_cost)[free_arcs])
    np.maximum(v, 0, out=v)
    # Propagation arcs: order o on worker a could move to w' (an arc of o that is not a).
    prop = assigned[arc_order] & (arc_worker != a_worker[arc_order])
    src = a_worker[arc_order[prop]]
    dst = arc_worker[prop]
    delta = (a_cost[arc_order] - arc_cost)[prop]
    ok = True
    load = np.bincount(a_worker[assigned], minlength=n_workers)
    # Upper bounds: 0 for a worker with spare capacity, penalty - cost of its order for a
    # full one (u_o <= penalty_o). Crossing one proves "not optimal" at once, instead of
    # letting a positive cycle climb for n_workers iterations.
    cap_v = np.full(n_workers, np.iinfo(np.int64).max, dtype=np.int64)
    cap_v[load < capacity] = 0
    np.minimum.at(cap_v, a_worker[assigned], (penalty - a_cost)[assigned])
    if bool((v > cap_v).any()):
        ok = False
    active = np.ones(src.size, dtype=np.bool_)
    for _ in range(n_workers + 2):
        if not ok:
            break
        cand = v[src[active]] + delta[active]
        dst_a = dst[active]
        grow = cand > v[dst_a]
        if not grow.any():
            break
        changed = np.zeros(n_workers, dtype=np.bool_)
        changed[dst_a[grow]] = True
        np.maximum.at(v, dst_a[grow], cand[grow])
        if bool((v[changed] > cap_v[changed]).any()):
            ok = False
        active = changed[src]  # only arcs leaving a re-priced worker can raise anything
    else:
        ok = False
    if bool((v[load < capacity] > 0).any()):
        ok = False
    price_of_own = v[a_worker.clip(0)] if n_workers else np.zeros(n_orders, dtype=np.int64)
    u = np.where(assigned, a_cost + price_of_own, penalty).astype(np.int64)
    ok = ok and bool((u <= penalty).all())
    reduced = arc_cost - u[arc_order] + v[arc_worker]
    ok = ok and bool((reduced >= 0).all())
    return u, v, ok


def solve(arcs: Arcs, capacity: int, method: str) -> IntArray:
    """Exact optimum: presolve (capacity 1), then ``method`` on the rest.

    ``method`` "flow", "lapjv" (capacity 1) or "auto" (capacity 1: LAPJV per chunk, flow
    for chunks of at least _FLOW_ORDERS orders). Returns the arc index chosen per order
    (-1: unassigned).
    """
    arc_order, arc_worker = arcs.order, arcs.worker
    if capacity == 1:
        chosen, open_arc = presolve(arcs)
    else:
        chosen = np.full(arcs.n_orders, -1, dtype=np.int64)
        open_arc = np.ones(arc_order.size, dtype=np.bool_)
    rest = np.flatnonzero(open_arc)
    if rest.size == 0:
        return chosen
    # Components of the order-worker graph are independent problems. The solvers grow
    # faster than linearly with size, so solve them in chunks of whole components.
    o_all, o_loc = compact(arc_order[rest])
    w_all, w_loc = compact(arc_worker[rest])
    o_loc = o_loc.reshape(-1).astype(np.int64)
    w_loc = w_loc.reshape(-1).astype(np.int64)
    size = o_all.size + w_all.size
    adj = csr_matrix(
        (np.ones(rest.size, dtype=np.int8), (o_loc, o_all.size + w_loc)), shape=(size, size)
    )
    _, label = connected_components(adj, directed=False)
    order_label = label[: o_all.size]
    by_label = np.argsort(order_label, kind="stable")
    # Cut the label-sorted orders into chunks at component boundaries.
    sorted_labels = order_label[by_label]
    starts = np.flatnonzero(np.concatenate([[True], sorted_labels[1:] != sorted_labels[:-1]]))
    chunk_of_comp = np.cumsum(np.diff(np.append(starts, sorted_labels.size)))  # end positions
    chunk_id_per_comp = (chunk_of_comp - 1) // _CHUNK_ORDERS
    comp_rank = np.cumsum(np.concatenate([[True], sorted_labels[1:] != sorted_labels[:-1]])) - 1
    chunk_of_order = np.empty(o_all.size, dtype=np.int64)
    chunk_of_order[by_label] = chunk_id_per_comp[comp_rank]
    arc_chunk = chunk_of_order[o_loc]
    arc_by_chunk = np.argsort(arc_chunk, kind="stable")
    bounds = np.searchsorted(arc_chunk[arc_by_chunk], np.arange(chunk_of_order.max() + 2))
    for c in range(bounds.size - 1):
        part = rest[arc_by_chunk[bounds[c] : bounds[c + 1]]]
        if part.size:
            _solve_part(arcs, part, capacity, method, chosen)
    return chosen


def _solve_part(arcs: Arcs, part: IntArray, capacity: int, method: str, chosen: IntArray) -> None:
    """Solve the subproblem on the arcs ``part`` (whole components), record its choices."""
    orders_left, o_local = compact(arcs.order[part])
    workers_left, w_local = compact(arcs.worker[part])
    sub_arcs = Arcs(
        orders_left.size,
        workers_left.size,
        o_local.reshape(-1).astype(np.int64),
        w_local.reshape(-1).astype(np.int64),
        arcs.cost[part],
        arcs.penalty[orders_left],
    )
    use_flow = method == "flow" or (method == "auto" and orders_left.size >= _FLOW_ORDERS)
    sub = solve_flow(sub_arcs, capacity) if use_flow else solve_matching(sub_arcs)
    got = sub >= 0
    chosen[orders_left[got]] = part[sub[got]]

"""Exact solvers for the sparse order-worker problem and its dual prices.

Problem (integer costs): each order takes at most one worker over its graph arcs or stays
unassigned at ``penalty[o]``; worker w takes at most ``capacity`` orders. Minimise the total.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from ortools.graph.python import min_cost_flow
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import min_weight_full_bipartite_matching

from dispatch.errors import SolverError

IntArray = NDArray[np.int64]


def solve_flow(
    n_orders: int,
    n_workers: int,
    arc_order: IntArray,
    arc_worker: IntArray,
    arc_cost: IntArray,
    penalty: IntArray,
    capacity: int,
) -> IntArray:
    """Min-cost flow (OR-Tools); returns the arc index chosen per order (-1: unassigned).

    Workers are graph-local 0..n_workers-1. Nodes: orders, workers, one sink.
    """
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


def solve_matching(
    n_orders: int,
    n_workers: int,
    arc_order: IntArray,
    arc_worker: IntArray,
    arc_cost: IntArray,
    penalty: IntArray,
) -> IntArray:
    """One order per worker via scipy's sparse LAPJV; same contract as ``solve_flow``."""
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


def dual_prices(
    n_orders: int,
    n_workers: int,
    arc_order: IntArray,
    arc_worker: IntArray,
    arc_cost: IntArray,
    penalty: IntArray,
    capacity: int,
    chosen: IntArray,
) -> tuple[IntArray, IntArray, bool]:
    """Smallest worker prices v >= 0 and order prices u proving ``chosen`` optimal.

    Solves the difference constraints of LP complementary slackness by label correcting:
    v[w] = 0 unless w is full; for order o on arc (o, a): v[a] >= c_oa - penalty[o] and
    v[a] >= v[w'] + c_oa - c_ow' for every graph arc (o, w'). Then u[o] = c_oa - v[a]
    (penalty[o] if unassigned). Returns (u, v, ok); ok is False if the constraints have no
    solution within the iteration bound (``chosen`` not optimal) or some arc prices negative.
    """
    v = np.zeros(n_workers, dtype=np.int64)
    assigned = chosen >= 0
    if not assigned.any():
        u = penalty.astype(np.int64).copy()
        reduced = arc_cost - u[arc_order] - v[arc_worker]
        return u, v, bool((reduced >= 0).all())
    a_worker = np.full(n_orders, -1, dtype=np.int64)
    a_cost = np.zeros(n_orders, dtype=np.int64)
    a_worker[assigned] = arc_worker[chosen[assigned]]
    a_cost[assigned] = arc_cost[chosen[assigned]]
    load = np.bincount(a_worker[assigned], minlength=n_workers)
    full = load >= capacity
    # Arcs of assigned orders whose worker is full: the only constraints that can bind.
    arc_mask = assigned[arc_order] & full[a_worker[arc_order].clip(0)]
    src_order = arc_order[arc_mask]
    src_worker = a_worker[src_order]
    other = arc_worker[arc_mask]
    delta = a_cost[src_order] - arc_cost[arc_mask]
    base = np.zeros(n_workers, dtype=np.int64)
    full_orders = np.flatnonzero(assigned & full[a_worker.clip(0)])
    np.maximum.at(base, a_worker[full_orders], a_cost[full_orders] - penalty[full_orders])
    v = np.maximum(base, 0)
    ok = True
    for _ in range(n_workers + 2):
        cand = v[other] + delta
        grow = cand > v[src_worker]
        if not grow.any():
            break
        new_v = v.copy()
        np.maximum.at(new_v, src_worker[grow], cand[grow])
        v = new_v
    else:
        ok = False
    u = np.where(assigned, a_cost - v[a_worker.clip(0)], penalty).astype(np.int64)
    reduced = arc_cost - u[arc_order] - v[arc_worker]
    ok = ok and bool((reduced >= 0).all()) and bool((u <= penalty).all())
    return u, v, ok

"""The candidate graph of ``match``: the pair pool, solving on it, dual prices, reasons."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from dispatch._ragged import compact, member
from dispatch._solvers import Arcs, dual_prices, solve
from dispatch.assign.types import (
    DENSE_ARCS_PER_ORDER,
    LOCAL_HOPS,
    LOCAL_MAX,
    LOCAL_PER_SEED,
    REASON_BLOCK,
    TIE_SCALE,
    TIGHT_KEEP,
    TIGHT_MIN_ARCS,
    TIGHT_SHARE,
    VIOLATORS_PER_ORDER,
    FloatArray,
    IntArray,
    UnassignedReason,
)
from dispatch.candidates import (
    hard_constraints,
    pair_travel_s,
)
from dispatch.cost import (
    CostWeights,
    pair_total_int,
)
from dispatch.index import WorkerIndex
from dispatch.model import NONE_ID, Fleet, OrderBatch
from geo.travel import TravelTimeModel


def resolve(
    pool: Pool,
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
        orders_sub = neighbourhood(g_order, g_worker, pool.arrays()[0][new_arcs], n)
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
    cost_sub, pen_sub = tie_broken(g_cost[sub], penalty[o_sub], o_sub, n)
    if method == "auto" and sub.size >= DENSE_ARCS_PER_ORDER * o_sub.size:
        # Surge components are dense and geometric: cost-scaling flow was ~2x faster than
        # LAPJV there (1000 x 1300, 100-1300 arcs per order: 0.04-0.88 s against 0.08-1.27 s).
        method = "flow"
    arcs = Arcs(
        o_sub.size,
        w_sub.size,
        o_local.reshape(-1).astype(np.int64),
        w_local2.reshape(-1).astype(np.int64),
        cost_sub,
        pen_sub,
    )
    picked = solve(arcs, capacity, method)
    got = picked >= 0
    chosen_pool[o_sub[got]] = graph[sub[picked[got]]]


def tie_broken(
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
    scale = min(TIE_SCALE, (1 << 50) // max(top * (cost.size + penalty.size + 1), 1))
    step = (scale - 1) // max(n, 1)
    if step < 1:
        return cost, penalty
    age = (n - 1 - rows) * step // max(n - 1, 1)
    return cost * scale, penalty * scale + age


def duals(
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
    return dual_prices(Arcs(n, m, g_order, local_w, g_cost, penalty), capacity, chosen_arc)


def neighbourhood(g_order: IntArray, g_worker: IntArray, seeds: IntArray, n: int) -> IntArray:
    """Orders within LOCAL_HOPS order-worker-order hops of ``seeds`` (size-capped)."""
    workers, w_local = compact(g_worker)
    w_local = w_local.reshape(-1)
    incidence = csr_matrix(
        (np.ones(g_order.size, dtype=np.int32), (g_order, w_local)), shape=(n, workers.size)
    )
    to_orders = incidence.tocsr()
    to_workers = incidence.T.tocsr()
    reached = np.zeros(n, dtype=np.bool_)
    reached[seeds] = True
    for _ in range(LOCAL_HOPS):
        w_hit = to_workers @ reached.astype(np.int32) > 0
        grown = (to_orders @ w_hit.astype(np.int32) > 0) | reached
        limit = max(LOCAL_MAX, LOCAL_PER_SEED * seeds.size)
        if int(grown.sum()) > limit or bool((grown == reached).all()):
            reached = grown if int(grown.sum()) <= limit else reached
            break
        reached = grown
    return np.flatnonzero(reached).astype(np.int64)


def first_failed_rule(
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


def needed_radius(
    u: IntArray, h: FloatArray, slack: float, travel_w: float, speed: float, cap_m: float
) -> FloatArray:
    """Radius (m) beyond which no worker's cost can fall below u_o (see module docstring)."""
    budget = u.astype(np.float64) - h + slack + 0.5  # +0.5: integer rounding of each cost
    if travel_w <= 0:
        return np.where(budget > 0, cap_m, 0.0)
    return np.clip(budget / travel_w * speed, 0.0, cap_m)


class Pool:
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
        order = useful[order_cost_sort(o[useful], c[useful])]
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


def order_cost_sort(o: IntArray, c: IntArray) -> IntArray:
    """Stable argsort by (order, cost), through one int64 key when it fits."""
    if o.size == 0:
        return np.zeros(0, dtype=np.int64)
    c_min, c_span = int(c.min()), int(c.max()) - int(c.min()) + 1
    if c_span * (int(o.max()) + 1) < 2**62:
        return np.argsort(o * c_span + (c - c_min), kind="stable").astype(np.int64)
    return np.lexsort((c, o)).astype(np.int64)


def preferred_pairs(
    orders: OrderBatch,
    fleet: Fleet,
    travel: TravelTimeModel,
    now: int,
    max_travel_s: float,
    pool: Pool,
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


def unassigned_reasons_of(
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
    for lo in range(0, todo.size, REASON_BLOCK):
        block = todo[lo : lo + REASON_BLOCK]
        block_rows = rows[block]
        origin, slots, _ = index.within(
            orders.lat[block_rows], orders.lng[block_rows], max_radius_m
        )
        o = block_rows[origin]
        w = index.ids_of(slots)
        t = pair_travel_s(travel, orders, fleet, o, w, now)
        in_range, skilled, ok = hard_constraints(orders, fleet, o, w, t, now, max_travel_s)
        reason[block] = classify_unassigned(origin, in_range, skilled, ok, block.size)
    return [str(r) for r in reason.tolist()]


def classify_unassigned(
    origin: IntArray,
    in_range: NDArray[np.bool_],
    skilled: NDArray[np.bool_],
    ok: NDArray[np.bool_],
    n: int,
) -> NDArray[np.str_]:
    """Why each of ``n`` orders stayed unassigned, from its pairs (``origin`` = order row of
    each pair, and which pairs are in range, skilled, eligible): outbid when it had an
    eligible worker, else not eligible, no skilled worker, or no worker in range."""
    any_ok = np.bincount(origin[ok], minlength=n) > 0
    any_skilled = np.bincount(origin[skilled], minlength=n) > 0
    any_in_range = np.bincount(origin[in_range], minlength=n) > 0
    return np.where(
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


def sparsified(
    pool: Pool,
    graph: IntArray,
    violators: IntArray,
    u: IntArray,
    v: IntArray,
    chosen_pool: IntArray,
) -> IntArray:
    """The next round's graph: near-tight arcs under the current prices, plus violators.

    Prices carry what the last solve learnt, so the next optimum almost always lies on
    arcs whose reduced cost c - u_o + v_w is small: an order with many arcs keeps those
    within TIGHT_SHARE x u_o of tight (at least its TIGHT_KEEP lowest) and its chosen
    arc; an order's violators enter cheapest-reduced-cost first, at most VIOLATORS_PER_ORDER
    per round. Dropped arcs stay in the pool, where every round checks them again, so
    this changes how many rounds the certificate takes, never what it proves.
    """
    o, w, _, c = pool.arrays()
    n = u.shape[0]
    # Orders with violators take their pooled arcs within TIGHT_SHARE x u_o of tight, not
    # only the violating ones: the re-solve moves prices, and the arcs just short of
    # tight are the next round's violators. Lowest reduced cost first, a bounded number.
    hit = np.zeros(n, dtype=np.bool_)
    hit[o[violators]] = True
    near = np.flatnonzero(hit[o])
    r_near = c[near] - u[o[near]] + v[w[near]]
    near_ok = r_near <= TIGHT_SHARE * np.maximum(u[o[near]], 0)
    near, r_near = near[near_ok], r_near[near_ok]
    by = near[order_cost_sort(o[near], r_near)]
    vo = o[by]
    rank = np.arange(by.size) - np.searchsorted(vo, vo, side="left")
    new = by[rank < VIOLATORS_PER_ORDER]
    per_order = np.bincount(o[graph], minlength=n)
    heavy = per_order[o[graph]] > TIGHT_MIN_ARCS
    if heavy.any():
        g = graph[heavy]
        r = c[g] - u[o[g]] + v[w[g]]
        by_r = order_cost_sort(o[g], r)
        g_sorted, r_sorted = g[by_r], r[by_r]
        go = o[g_sorted]
        g_rank = np.arange(g_sorted.size) - np.searchsorted(go, go, side="left")
        keep = (g_rank < TIGHT_KEEP) | (r_sorted <= TIGHT_SHARE * np.maximum(u[go], 0))
        drop = np.zeros(pool.size, dtype=np.bool_)
        drop[g_sorted[~keep]] = True
        drop[chosen_pool[chosen_pool >= 0]] = False
        graph = graph[~drop[graph]]
    in_graph = np.zeros(pool.size, dtype=np.bool_)
    in_graph[graph] = True
    in_graph[new] = True
    return np.flatnonzero(in_graph).astype(np.int64)

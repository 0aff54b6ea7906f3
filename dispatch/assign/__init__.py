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
5. Surge (supply.py): where demand outruns the supply near it (a hotspot with five orders
   per worker), per-order K cannot see how far the orders must reach, and step 4 used to
   widen and re-solve for a dozen rounds over millions of pairs. Per 500 m grid cell with
   orders, the square around it grows until capacity covers demand with a margin (a
   local Hall condition); a "short" order's pairs out to that radius go, uncosted, into a
   reserve with a distance bound on their cost; its first graph is its nearest pairs and
   a random spread of the rest. The certificate costs a reserved pair only when the bound
   does not clear it against the prices.
6. Warm rounds (graph.sparsified): a re-solve keeps the prices' information by keeping
   only near-tight arcs (reduced cost within a few % of the order's price) plus the
   violators and the near-tight pairs of the orders that have them; dropped arcs stay in
   the pool, which every round checks again, so this changes the rounds, not the proof.
   Dense components go to cost-scaling flow.
7. Budget: ``budget_s`` stops starting rounds that would end past it. Any worker prices
   v >= 0 give a dual-feasible (u, v) of the LP with u_o = min(penalty, c_ow + v_w over
   all eligible pairs, bounded as in step 4 beyond the pool), so sum u - capacity x sum v
   is a lower bound on the optimum and ``Assignment.gap_bound`` = (objective - bound) /
   bound bounds the answer's distance from it (0 when certified).
"""

from __future__ import annotations

from dispatch.assign.result import (
    Assignment,
    total_cost_int,
)
from dispatch.assign.solve import (
    match,
)
from dispatch.assign.types import (
    DENSE_PAIRS,
    EXPLAIN_ALTERNATIVES,
    MAX_ROUNDS,
    CostLine,
    Explanation,
    UnassignedReason,
    WhyNot,
)

__all__ = [
    "DENSE_PAIRS",
    "EXPLAIN_ALTERNATIVES",
    "MAX_ROUNDS",
    "Assignment",
    "CostLine",
    "Explanation",
    "UnassignedReason",
    "WhyNot",
    "match",
    "total_cost_int",
]

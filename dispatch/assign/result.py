"""``Assignment``: the result of ``match``, its explanations, and the one way it is built."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields

import numpy as np

from dispatch.assign.graph import (
    first_failed_rule,
)
from dispatch.assign.types import (
    EXPLAIN_ALTERNATIVES,
    CostLine,
    Explanation,
    FloatArray,
    IntArray,
    WhyNot,
)
from dispatch.candidates import (
    hard_constraints,
    pair_travel_s,
)
from dispatch.cost import (
    TERMS,
    CostWeights,
    pair_costs,
    to_int,
    unassigned_seconds,
)
from dispatch.errors import InvalidInput, UnknownOrder
from dispatch.index import WorkerIndex
from dispatch.model import Fleet, OrderBatch
from geo.travel import TravelTimeModel


@dataclass(frozen=True, eq=False)
class SolveSummary:
    """How a solve went: whether it is proven optimal, its timings (seconds), the
    certification rounds, candidate pairs, which solver ran, any warnings, and
    ``gap_bound``: a proven bound on (objective - optimum) / optimum, from dual prices
    (0 when certified; inf when no bound was computed, e.g. certification skipped)."""

    certified: bool
    candidates_s: float
    solve_s: float
    certify_s: float
    rounds: int
    n_candidate_pairs: int
    solver: str
    warnings: tuple[str, ...]
    gap_bound: float


@dataclass(frozen=True, eq=False)
class Assignment(SolveSummary):
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
    _context: Context = field(repr=False)

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
class Context:
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
        blocked = first_failed_rule(
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


@dataclass(frozen=True, eq=False)
class Run:
    """How one solve went, for its result: the pair pool, search bound, timings, flags."""

    index: WorkerIndex | None
    max_radius_m: float
    pool_order: IntArray
    pool_worker: IntArray
    pool_travel: FloatArray
    summary: SolveSummary


def assemble(
    orders: OrderBatch,
    fleet: Fleet,
    weights: CostWeights,
    model: TravelTimeModel,
    now: int,
    max_travel_s: float,
    chosen_w: IntArray,
    reasons_of: Callable[[IntArray], list[str]],
    run: Run,
) -> Assignment:
    """The ``Assignment`` of a solve (both paths): each order's worker or why none, costs
    and the explanation context; the time taken here counts as certification."""
    t = time.perf_counter()
    penalty_s = unassigned_seconds(weights, orders, now, max_travel_s)
    assigned_rows = np.flatnonzero(chosen_w >= 0)
    a_workers = chosen_w[assigned_rows]
    a_travel = pair_travel_s(model, orders, fleet, assigned_rows, a_workers, now)
    a_costs = pair_costs(weights, orders, fleet, assigned_rows, a_workers, a_travel, now)
    unassigned_rows = np.flatnonzero(chosen_w < 0)
    reasons = reasons_of(unassigned_rows)
    ctx = Context(
        orders=orders,
        fleet=fleet,
        weights=weights,
        travel=model,
        now=now,
        index=run.index,
        max_travel_s=float(max_travel_s),
        max_radius_m=run.max_radius_m,
        pool_order=run.pool_order,
        pool_worker=run.pool_worker,
        pool_travel=run.pool_travel,
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
        total_cost=float(a_costs.total.sum() + penalty_s[unassigned_rows].sum()),
        objective=int(a_costs.total_int.sum() + to_int(penalty_s)[unassigned_rows].sum()),
        **{
            **{f.name: getattr(run.summary, f.name) for f in fields(SolveSummary)},
            "certify_s": run.summary.certify_s + time.perf_counter() - t,
        },
        _context=ctx,
    )


def total_cost_int(costs: FloatArray) -> int:
    """Sum of integer solver costs of cost-second values (for external comparisons)."""
    return int(to_int(costs).sum())

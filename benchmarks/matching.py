"""Batch matching: sparse certified ``dispatch.assign.match`` vs dense scipy, same run.

The city is a deterministic 40 km square around Shanghai's centre. ``uniform`` spreads
orders and workers evenly; ``clustered`` puts most of both in dense districts (orders more
so than workers, which is where sparse matching gets hard) with a sparse suburban rest.
The baseline is what a user would reach for: the full travel-time matrix (same travel
model, same integer deci-second rounding, same unassigned penalty and travel bound, so the
objective is the same) solved by ``scipy.optimize.linear_sum_assignment``.

Usage: daojia bench matching --orders N --workers M [--city uniform|clustered] [--seed S]
       [--repeat R] [--dense-repeat R] [--no-dense] [--json]
"""

from __future__ import annotations

import argparse
import gc
import time
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray

from benchmarks._common import add_common_args, emit, machine, peak_rss_mb, timed
from dispatch.assign import Assignment, match
from dispatch.candidates import DEFAULT_CANDIDATES
from dispatch.cost import COST_SCALE, CostWeights
from dispatch.model import Fleet, OrderBatch
from geo.travel import HaversineTravelModel, TransportMode, TravelTimeModel

CENTRE_LAT, CENTRE_LNG = 31.2304, 121.4737
HALF_SIDE_M = 20_000.0
#: Departure time of the batch: a weekday 10:00 in Shanghai (off-peak ebike speeds).
NOW_S = 1_767_578_400
#: Largest dense matrix (bytes of float64) the baseline will allocate.
DENSE_MAX_BYTES = 4.5e9
_M_PER_DEG_LAT = 111_195.0


def city(n_orders: int, n_workers: int, kind: str, seed: int) -> tuple[OrderBatch, Fleet]:
    """A deterministic batch: orders and idle workers in a 40 km square (degrees)."""
    rng = np.random.default_rng(seed)
    m_per_deg_lng = _M_PER_DEG_LAT * np.cos(np.radians(CENTRE_LAT))

    def points(n: int, share_in_districts: float, spread_m: float) -> tuple[Any, Any]:
        if kind == "uniform":
            x = rng.uniform(-HALF_SIDE_M, HALF_SIDE_M, n)
            y = rng.uniform(-HALF_SIDE_M, HALF_SIDE_M, n)
        else:
            n_in = round(n * share_in_districts)
            which = rng.choice(len(districts), size=n_in, p=weights)
            x = np.concatenate(
                [
                    districts[which, 0] + rng.normal(0, spread_m, n_in),
                    rng.uniform(-HALF_SIDE_M, HALF_SIDE_M, n - n_in),
                ]
            )
            y = np.concatenate(
                [
                    districts[which, 1] + rng.normal(0, spread_m, n_in),
                    rng.uniform(-HALF_SIDE_M, HALF_SIDE_M, n - n_in),
                ]
            )
            x = np.clip(x, -HALF_SIDE_M, HALF_SIDE_M)
            y = np.clip(y, -HALF_SIDE_M, HALF_SIDE_M)
            perm = rng.permutation(n)
            x, y = x[perm], y[perm]
        return CENTRE_LAT + y / _M_PER_DEG_LAT, CENTRE_LNG + x / m_per_deg_lng

    districts = rng.uniform(-0.7 * HALF_SIDE_M, 0.7 * HALF_SIDE_M, size=(12, 2))
    weights = rng.dirichlet(np.full(12, 2.0))
    o_lat, o_lng = points(n_orders, 0.85, 1_200.0)
    w_lat, w_lng = points(n_workers, 0.65, 2_000.0)
    orders = OrderBatch.from_arrays(np.arange(n_orders, dtype=np.int64), o_lat, o_lng)
    fleet = Fleet.from_arrays(np.arange(n_workers, dtype=np.int64) + 10_000_000, w_lat, w_lng)
    return orders, fleet


def dense_baseline(
    orders: OrderBatch,
    fleet: Fleet,
    travel: TravelTimeModel,
    weights: CostWeights,
    max_travel_s: float,
) -> tuple[NDArray[np.int64], int, float, float]:
    """Full matrix + linear_sum_assignment.

    Returns (worker row per order or -1, objective, matrix seconds, solve seconds).
    """
    from scipy.optimize import linear_sum_assignment

    n, m = len(orders), len(fleet)
    penalty = float(np.rint(weights.unassigned * COST_SCALE))
    start = time.perf_counter()
    cost = np.empty((n, m), dtype=np.float64)
    chunk = max(1, int(2e6 // max(m, 1)))  # small blocks: model temporaries stay cheap
    for lo in range(0, n, chunk):
        hi = min(n, lo + chunk)
        seconds = travel.matrix(
            fleet.lat,
            fleet.lng,
            orders.lat[lo:hi],
            orders.lng[lo:hi],
            NOW_S,
            mode=TransportMode.EBIKE,
        ).T
        block = np.rint(seconds * weights.travel_per_s * COST_SCALE)
        block[seconds > max_travel_s] = penalty
        np.minimum(block, penalty, out=cost[lo:hi])
    matrix_s = time.perf_counter() - start
    start = time.perf_counter()
    if n <= m:
        # With at least as many workers as orders, truncating each cost at the penalty is
        # exactly "unassigned at the penalty": an order left out can always sit on a worker
        # nobody else needs at cost >= penalty. Fewer workers: add penalty columns.
        rows, cols = linear_sum_assignment(cost)
    else:
        cost = np.hstack([cost, np.full((n, n), penalty)])
        rows, cols = linear_sum_assignment(cost)
    lsa_s = time.perf_counter() - start
    objective = int(cost[rows, cols].sum())
    worker = np.full(n, -1, dtype=np.int64)
    real = (cols < m) & (cost[rows, cols] < penalty)
    worker[rows[real]] = cols[real]
    return worker, objective, matrix_s, lsa_s


def main(argv: list[str]) -> int:
    """Run the matching benchmark; prints a table or one JSON object."""
    parser = argparse.ArgumentParser(prog="daojia bench matching", description=__doc__)
    parser.add_argument("--orders", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=20000)
    parser.add_argument("--city", choices=("uniform", "clustered"), default="uniform")
    parser.add_argument(
        "--candidates", type=int, default=DEFAULT_CANDIDATES, help="K per order (initial)"
    )
    parser.add_argument("--max-travel-s", type=float, default=3600.0)
    parser.add_argument("--dense-repeat", type=int, default=1)
    parser.add_argument("--no-dense", action="store_true", help="skip the dense baseline")
    parser.add_argument("--solver", choices=("auto", "lapjv", "flow"), default="auto")
    add_common_args(parser)
    args = parser.parse_args(argv)

    orders, fleet = city(args.orders, args.workers, args.city, args.seed)
    travel = cast(TravelTimeModel, HaversineTravelModel())
    weights = CostWeights.travel_only()

    def ours() -> Assignment:
        return match(
            orders,
            fleet,
            weights=weights,
            travel=travel,
            now=NOW_S,
            candidates_per_order=args.candidates,
            max_travel_s=args.max_travel_s,
            solver=args.solver,
            seed=args.seed,
        )

    gc.collect()
    cpu0 = time.process_time()
    timing, result = timed(ours, args.repeat)
    # CPU seconds per run beside wall time: the machines are shared (BENCHMARKS.md 2).
    ours_cpu_s = (time.process_time() - cpu0) / args.repeat
    rss_sparse = peak_rss_mb()

    out: dict[str, Any] = {
        "benchmark": "matching",
        "orders": args.orders,
        "workers": args.workers,
        "seed": args.seed,
        "city": args.city,
        "candidates_per_order": args.candidates,
        "repeat": args.repeat,
        "candidates_s": result.candidates_s,
        "solve_s": result.solve_s,
        "certify_s": result.certify_s,
        "rounds": result.rounds,
        "total_s": timing.median,
        "total_min_s": timing.min,
        "total_max_s": timing.max,
        "total_cpu_s": ours_cpu_s,
        "solver": result.solver,
        "candidate_pairs": result.n_candidate_pairs,
        "assigned": result.assigned,
        "total_cost": result.objective / COST_SCALE,
        "certified": result.certified,
        "warnings": list(result.warnings),
        "peak_rss_sparse_mb": rss_sparse,
    }
    dense_bytes = 8.0 * args.orders * max(args.workers, 2 * args.orders)
    if args.no_dense or dense_bytes > DENSE_MAX_BYTES:
        out.update(
            dense_s=None,
            dense_matrix_s=None,
            dense_lsa_s=None,
            dense_cost=None,
            dense_assigned=None,
            speedup=None,
            speedup_vs_lsa_only=None,
            gap_pct=None,
            unassigned_that_dense_assigns=None,
            dense_skipped=(
                "--no-dense" if args.no_dense else f"matrix needs {dense_bytes / 1e9:.1f} GB"
            ),
        )
    else:
        gc.collect()
        dense_timing, (dense_worker, dense_obj, matrix_s, lsa_s) = timed(
            lambda: dense_baseline(orders, fleet, travel, weights, args.max_travel_s),
            args.dense_repeat,
        )
        ours_assigned = np.zeros(len(orders), dtype=np.bool_)
        ours_assigned[np.searchsorted(orders.ids, result.order_ids)] = True
        dense_assigned = dense_worker >= 0
        out.update(
            dense_s=dense_timing.median,
            dense_min_s=dense_timing.min,
            dense_max_s=dense_timing.max,
            dense_cost=dense_obj / COST_SCALE,
            dense_assigned=int(dense_assigned.sum()),
            dense_matrix_s=matrix_s,
            dense_lsa_s=lsa_s,
            speedup=dense_timing.median / timing.median,
            # The matrix dominates the baseline with a time-of-day travel model; this is
            # the ratio against the solve alone, for readers who want it.
            speedup_vs_lsa_only=lsa_s / timing.median,
            gap_pct=100.0 * (result.objective - dense_obj) / max(dense_obj, 1),
            unassigned_that_dense_assigns=int((dense_assigned & ~ours_assigned).sum()),
        )
    out["peak_rss_mb"] = peak_rss_mb()
    out["machine"] = machine()
    emit(
        out,
        [{k: v for k, v in out.items() if k not in ("machine", "warnings")}],
        args.json,
        "matching: sparse certified vs dense scipy",
    )
    return 0

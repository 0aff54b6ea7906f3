"""Batch matching: sparse certified ``dispatch.assign.match`` vs dense scipy, same run.

The city is a deterministic 40 km square around Shanghai's centre. ``uniform`` spreads
orders and workers evenly; ``clustered`` puts most of both in dense districts (orders more
so than workers, which is where sparse matching gets hard) with a sparse suburban rest.
The baseline is what a user would reach for: the full travel-time matrix (same travel
model, same integer deci-second rounding, same unassigned penalty and travel bound, so the
objective is the same) solved by ``scipy.optimize.linear_sum_assignment``.

``surge`` is the adversarial case (BENCHMARKS.md 9): a 20 km square with workers spread
evenly and a third of the orders in one ~1 km hotspot holding a fifth as many workers as
those orders; ``hotspots`` has several such hotspots at once (see ``surge_city``).

Usage: daojia bench matching --orders N --workers M
       [--city uniform|clustered|surge|hotspots] [--surge-ratio R] [--cluster-m M]
       [--surge-share S] [--hotspots H] [--budget-s B] [--seed S]
       [--repeat R] [--dense-repeat R] [--no-dense] [--json]
"""

from __future__ import annotations

import argparse
import gc
import time
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray

from benchmarks._common import Timing, add_common_args, emit, machine, peak_rss_mb, timed
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


#: Half side of the surge cities' square (20 km across).
SURGE_HALF_SIDE_M = 10_000.0
#: Hotspots of the "hotspots" city unless ``--hotspots`` says otherwise.
DEFAULT_HOTSPOTS = 5


def surge_city(
    n_orders: int,
    n_workers: int,
    seed: int,
    *,
    hotspots: int = 1,
    share: float = 1.0 / 3.0,
    surge_ratio: float = 5.0,
    cluster_m: float = 1_000.0,
) -> tuple[OrderBatch, Fleet]:
    """A deterministic surge batch: demand concentrated beyond the supply that is near it.

    Workers are spread evenly over a 20 km square; ``share`` of the orders fall uniformly
    in ``hotspots`` disks of radius ``cluster_m`` (m), the rest evenly over the square.
    Workers are moved in or out of each disk until it holds one worker per
    ``surge_ratio`` of its orders (the rest of the fleet stays even), so most hotspot
    orders must be served from beyond it.
    """
    if hotspots < 1 or not 0.0 <= share <= 1.0 or surge_ratio <= 0 or cluster_m <= 0:
        raise ValueError("hotspots >= 1, 0 <= share <= 1, surge_ratio > 0, cluster_m > 0")
    rng = np.random.default_rng(seed)
    m_per_deg_lng = _M_PER_DEG_LAT * np.cos(np.radians(CENTRE_LAT))
    half = SURGE_HALF_SIDE_M
    centres = (
        np.zeros((1, 2)) if hotspots == 1 else rng.uniform(-0.6 * half, 0.6 * half, (hotspots, 2))
    )

    def in_disk(x: Any, y: Any, h: int) -> Any:
        return np.hypot(x - centres[h, 0], y - centres[h, 1]) <= cluster_m

    def outside_all(x: Any, y: Any) -> Any:
        out = np.ones(np.shape(x), dtype=np.bool_)
        for h in range(hotspots):
            out &= ~in_disk(x, y, h)
        return out

    def disk_points(n: int, h: int) -> tuple[Any, Any]:
        r = cluster_m * np.sqrt(rng.uniform(0.0, 1.0, n))
        a = rng.uniform(0.0, 2.0 * np.pi, n)
        return centres[h, 0] + r * np.cos(a), centres[h, 1] + r * np.sin(a)

    n_hot = round(n_orders * share)
    per_hot = np.bincount(np.arange(n_hot) % hotspots, minlength=hotspots)
    ox = [rng.uniform(-half, half, n_orders - n_hot)]
    oy = [rng.uniform(-half, half, n_orders - n_hot)]
    for h in range(hotspots):
        x, y = disk_points(int(per_hot[h]), h)
        ox.append(x)
        oy.append(y)
    perm = rng.permutation(n_orders)
    o_x, o_y = np.concatenate(ox)[perm], np.concatenate(oy)[perm]

    w_x = rng.uniform(-half, half, n_workers)
    w_y = rng.uniform(-half, half, n_workers)
    for h in range(hotspots):
        target = round(per_hot[h] / surge_ratio)
        inside = np.flatnonzero(in_disk(w_x, w_y, h))
        if inside.size > target:
            # Send the surplus elsewhere: uniform points outside every hotspot.
            for i in inside[target:].tolist():
                while True:
                    x, y = rng.uniform(-half, half, 2)
                    if outside_all(x, y):
                        w_x[i], w_y[i] = x, y
                        break
        elif inside.size < target:
            free = np.flatnonzero(outside_all(w_x, w_y))
            pick = rng.choice(free, size=min(target - inside.size, free.size), replace=False)
            w_x[pick], w_y[pick] = disk_points(pick.size, h)
    orders = OrderBatch.from_arrays(
        np.arange(n_orders, dtype=np.int64),
        CENTRE_LAT + o_y / _M_PER_DEG_LAT,
        CENTRE_LNG + o_x / m_per_deg_lng,
    )
    fleet = Fleet.from_arrays(
        np.arange(n_workers, dtype=np.int64) + 10_000_000,
        CENTRE_LAT + w_y / _M_PER_DEG_LAT,
        CENTRE_LNG + w_x / m_per_deg_lng,
    )
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
    args = _parser().parse_args(argv)
    hotspots = args.hotspots or (1 if args.city == "surge" else DEFAULT_HOTSPOTS)
    orders, fleet = _batch(args, hotspots)
    budget: dict[str, Any] = {} if args.budget_s is None else {"budget_s": args.budget_s}
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
            **budget,
        )

    gc.collect()
    cpu0 = time.process_time()
    timing, result = timed(ours, args.repeat)
    # CPU seconds per run beside wall time: the machines are shared (BENCHMARKS.md 2).
    ours_cpu_s = (time.process_time() - cpu0) / args.repeat
    rss_sparse = peak_rss_mb()

    out = _sparse_fields(args, hotspots, result, timing, ours_cpu_s)
    out["peak_rss_sparse_mb"] = rss_sparse
    out.update(_dense_fields(args, orders, fleet, travel, weights, result, timing, ours_cpu_s))
    out["peak_rss_mb"] = peak_rss_mb()
    out["machine"] = machine()
    emit(
        out,
        [{k: v for k, v in out.items() if k not in ("machine", "warnings")}],
        args.json,
        "matching: sparse certified vs dense scipy",
    )
    return 0


def _parser() -> argparse.ArgumentParser:
    """The command line of ``main`` (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="daojia bench matching", description=__doc__)
    parser.add_argument("--orders", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=20000)
    parser.add_argument(
        "--city", choices=("uniform", "clustered", "surge", "hotspots"), default="uniform"
    )
    parser.add_argument(
        "--surge-ratio",
        type=float,
        default=5.0,
        help="surge/hotspots: hotspot orders per worker inside the hotspot",
    )
    parser.add_argument(
        "--cluster-m", type=float, default=1000.0, help="surge/hotspots: hotspot radius, m"
    )
    parser.add_argument(
        "--surge-share",
        type=float,
        default=1.0 / 3.0,
        help="surge/hotspots: share of the orders inside hotspots",
    )
    parser.add_argument(
        "--hotspots",
        type=int,
        default=None,
        help=f"number of hotspots (surge: 1, hotspots: {DEFAULT_HOTSPOTS})",
    )
    parser.add_argument(
        "--budget-s", type=float, default=None, help="match's time budget, s (default: none)"
    )
    parser.add_argument(
        "--candidates", type=int, default=DEFAULT_CANDIDATES, help="K per order (initial)"
    )
    parser.add_argument("--max-travel-s", type=float, default=3600.0)
    parser.add_argument("--dense-repeat", type=int, default=1)
    parser.add_argument("--no-dense", action="store_true", help="skip the dense baseline")
    parser.add_argument("--solver", choices=("auto", "lapjv", "flow"), default="auto")
    add_common_args(parser)
    return parser


def _batch(args: argparse.Namespace, hotspots: int) -> tuple[OrderBatch, Fleet]:
    """The benchmark's batch for ``--city`` (``hotspots`` hotspots in a surge city)."""
    if args.city in ("surge", "hotspots"):
        return surge_city(
            args.orders,
            args.workers,
            args.seed,
            hotspots=hotspots,
            share=args.surge_share,
            surge_ratio=args.surge_ratio,
            cluster_m=args.cluster_m,
        )
    return city(args.orders, args.workers, args.city, args.seed)


def _sparse_fields(
    args: argparse.Namespace, hotspots: int, result: Assignment, timing: Timing, cpu_s: float
) -> dict[str, Any]:
    """The report's parameters and ``match``'s side of it (timings, certificate, cost)."""
    return {
        "benchmark": "matching",
        "orders": args.orders,
        "workers": args.workers,
        "seed": args.seed,
        "city": args.city,
        "candidates_per_order": args.candidates,
        **(
            {
                "surge_ratio": args.surge_ratio,
                "cluster_m": args.cluster_m,
                "surge_share": args.surge_share,
                "hotspots": hotspots,
            }
            if args.city in ("surge", "hotspots")
            else {}
        ),
        "budget_s": args.budget_s,
        "repeat": args.repeat,
        "candidates_s": result.candidates_s,
        "solve_s": result.solve_s,
        "certify_s": result.certify_s,
        "rounds": result.rounds,
        "total_s": timing.median,
        "total_min_s": timing.min,
        "total_max_s": timing.max,
        "total_cpu_s": cpu_s,
        "solver": result.solver,
        "candidate_pairs": result.n_candidate_pairs,
        "pairs": result.n_candidate_pairs,
        "gap_bound": getattr(result, "gap_bound", None),
        "assigned": result.assigned,
        "total_cost": result.objective / COST_SCALE,
        "certified": result.certified,
        "warnings": list(result.warnings),
    }


def _dense_fields(
    args: argparse.Namespace,
    orders: OrderBatch,
    fleet: Fleet,
    travel: TravelTimeModel,
    weights: CostWeights,
    result: Assignment,
    timing: Timing,
    ours_cpu_s: float,
) -> dict[str, Any]:
    """The dense baseline's side of the report, run unless skipped (None fields then)."""
    dense_bytes = 8.0 * args.orders * max(args.workers, 2 * args.orders)
    if args.no_dense or dense_bytes > DENSE_MAX_BYTES:
        return {
            "dense_s": None,
            "dense_cpu_s": None,
            "speedup_cpu": None,
            "dense_matrix_s": None,
            "dense_lsa_s": None,
            "dense_cost": None,
            "dense_assigned": None,
            "speedup": None,
            "speedup_vs_lsa_only": None,
            "gap_pct": None,
            "unassigned_that_dense_assigns": None,
            "dense_skipped": (
                "--no-dense" if args.no_dense else f"matrix needs {dense_bytes / 1e9:.1f} GB"
            ),
        }
    gc.collect()
    cpu0 = time.process_time()
    dense_timing, (dense_worker, dense_obj, matrix_s, lsa_s) = timed(
        lambda: dense_baseline(orders, fleet, travel, weights, args.max_travel_s),
        args.dense_repeat,
    )
    dense_cpu_s = (time.process_time() - cpu0) / args.dense_repeat
    ours_assigned = np.zeros(len(orders), dtype=np.bool_)
    ours_assigned[np.searchsorted(orders.ids, result.order_ids)] = True
    dense_assigned = dense_worker >= 0
    return {
        "dense_s": dense_timing.median,
        "dense_min_s": dense_timing.min,
        "dense_max_s": dense_timing.max,
        "dense_cost": dense_obj / COST_SCALE,
        "dense_assigned": int(dense_assigned.sum()),
        "dense_matrix_s": matrix_s,
        "dense_lsa_s": lsa_s,
        "speedup": dense_timing.median / timing.median,
        # CPU seconds per run on both sides: steadier than wall time when the
        # machine's other tenants are busy (BENCHMARKS.md 10).
        "dense_cpu_s": dense_cpu_s,
        "speedup_cpu": dense_cpu_s / max(ours_cpu_s, 1e-9),
        # The matrix dominates the baseline with a time-of-day travel model; this is
        # the ratio against the solve alone, for readers who want it.
        "speedup_vs_lsa_only": lsa_s / timing.median,
        "gap_pct": 100.0 * (result.objective - dense_obj) / max(dense_obj, 1),
        "unassigned_that_dense_assigns": int((dense_assigned & ~ours_assigned).sum()),
    }

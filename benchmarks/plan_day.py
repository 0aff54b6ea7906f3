"""plan_day on a generated city day against plain OR-Tools routing at the same time limit.

Both get the same visits (skills, 3-hour arrival windows), workers (shifts,
homes, skills) and the same conservative travel matrix; quality is visits
served, travel hours and dropped visits, checked here independently of
either solver (windows, skills, shift ends, and travel re-asked from the
travel model at each real departure time).

    daojia bench plan_day --visits 500 --workers 40 --time-limit 30
    daojia bench plan_day --visits 2000 --workers 150 --time-limit 120
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from benchmarks._common import add_common_args, emit, machine, peak_rss_mb

T0 = 1_764_036_000  # 10:00 in Shanghai


def city_day(seed: int, n_visits: int, n_workers: int) -> tuple[list[Any], list[Any]]:
    """Deterministic city day: visits and workers in a disc that grows with the workload."""
    from dispatch.schedule import Visit, WorkerDay

    rng = np.random.default_rng(seed)
    radius_deg = 0.03 * np.sqrt(max(n_workers, 1) / 10.0)
    visits = []
    for i in range(n_visits):
        ws = T0 + int(rng.integers(0, 9)) * 3600
        visits.append(
            Visit(
                id=i,
                lat=31.23 + float(rng.uniform(-radius_deg, radius_deg)),
                lng=121.47 + float(rng.uniform(-radius_deg, radius_deg)),
                duration_s=int(rng.choice([1800, 2700, 3600])),
                window_start=ws,
                window_end=ws + 3 * 3600,
                skills=int(rng.choice([0, 0, 1, 2])),
            )
        )
    workers = [
        WorkerDay(
            id=10_000 + k,
            shift_start=T0 - 1800,
            shift_end=T0 + 12 * 3600,
            start_lat=31.23 + float(rng.uniform(-radius_deg, radius_deg)),
            start_lng=121.47 + float(rng.uniform(-radius_deg, radius_deg)),
            skills=int(rng.choice([1, 2, 3, 3])),
        )
        for k in range(n_workers)
    ]
    return visits, workers


def check(
    routes: dict[int, list[tuple[int, int]]], visits: list[Any], workers: list[Any], travel: Any
) -> list[str]:
    """Independent check of (visit id, start) routes: windows, skills, rides, shift ends."""
    by_id = {v.id: v for v in visits}
    problems: list[str] = []
    seen: set[int] = set()
    for w in workers:
        stops = routes.get(w.id, [])
        here, free = (w.start_lat, w.start_lng), w.shift_start
        for vid, start in stops:
            v = by_id[vid]
            if vid in seen:
                problems.append(f"visit {vid} twice")
            seen.add(vid)
            ride = float(travel.seconds(here[0], here[1], v.lat, v.lng, free, mode=w.mode))
            if start + 1 < free + ride:
                problems.append(f"visit {vid}: ride does not fit")
            if not v.window_start <= start <= v.window_end:
                problems.append(f"visit {vid}: outside window")
            if v.skills & ~w.skills:
                problems.append(f"visit {vid}: worker {w.id} lacks skills")
            here, free = (v.lat, v.lng), start + v.duration_s
        back = float(travel.seconds(here[0], here[1], w.end_lat, w.end_lng, free, mode=w.mode))
        if stops and free + back > w.shift_end + 1:
            problems.append(f"worker {w.id}: home after shift end")
    return problems


def run_ours(
    visits: list[Any], workers: list[Any], travel: Any, limit_s: float, seed: int
) -> tuple[dict[int, list[tuple[int, int]]], dict[str, Any]]:
    """plan_day with the product objective."""
    from dispatch.schedule import Stop, plan_day

    plan = plan_day(visits, workers, travel=travel, stop=Stop(limit_s), seed=seed)
    routes = {r.worker_id: [(s.visit_id, s.start) for s in r.stops] for r in plan.routes}
    return routes, {"hit_time_limit": plan.hit_time_limit}


def run_ortools(
    visits: list[Any], workers: list[Any], travel: Any, limit_s: float, seed: int
) -> tuple[dict[int, list[tuple[int, int]]], dict[str, Any]]:
    """Plain OR-Tools routing: skills as allowed vehicles, windows, shifts, drop penalties.

    It plans on the same conservative matrix plan_day uses (built by the
    same code, so the comparison is about search, not travel data).
    """
    from ortools.constraint_solver import pywrapcp, routing_enums_pb2

    from dispatch.schedule import DEFAULT_DROP_PENALTY
    from dispatch.schedule.problem import build_space

    del seed
    space = build_space(travel, visits, workers)
    W, V = len(workers), len(visits)
    dur = space.duration[1]
    # Nodes: 0..W-1 starts, W..2W-1 ends, 2W.. visits (the break row is unused).
    n = 2 * W + V
    t0 = min(w.shift_start for w in workers)
    service = np.zeros(n, dtype=np.int64)
    service[2 * W :] = [v.duration_s for v in visits]
    transit = dur[:n, :n] + service[:, None]
    manager = pywrapcp.RoutingIndexManager(n, W, list(range(W)), list(range(W, 2 * W)))
    routing = pywrapcp.RoutingModel(manager)
    travel_idx = routing.RegisterTransitMatrix(dur[:n, :n].tolist())
    time_idx = routing.RegisterTransitMatrix(transit.tolist())
    routing.SetArcCostEvaluatorOfAllVehicles(travel_idx)
    horizon = max(w.shift_end for w in workers) - t0
    routing.AddDimension(time_idx, horizon, horizon, False, "time")
    tdim = routing.GetDimensionOrDie("time")
    for k, w in enumerate(workers):
        tdim.CumulVar(routing.Start(k)).SetRange(w.shift_start - t0, w.shift_end - t0)
        tdim.CumulVar(routing.End(k)).SetRange(w.shift_start - t0, w.shift_end - t0)
    for i, v in enumerate(visits):
        index = manager.NodeToIndex(2 * W + i)
        tdim.CumulVar(index).SetRange(max(v.window_start - t0, 0), v.window_end - t0)
        allowed = [k for k, w in enumerate(workers) if (v.skills & ~w.skills) == 0]
        # SetAllowedVehiclesForIndex's Span binding rejects lists; -1 keeps "unperformed".
        routing.VehicleVar(index).SetValues([-1, *allowed])
        routing.AddDisjunction([index], DEFAULT_DROP_PENALTY)
    params = pywrapcp.DefaultRoutingSearchParameters()
    params.first_solution_strategy = (
        routing_enums_pb2.FirstSolutionStrategy.PARALLEL_CHEAPEST_INSERTION
    )
    params.local_search_metaheuristic = (
        routing_enums_pb2.LocalSearchMetaheuristic.GUIDED_LOCAL_SEARCH
    )
    params.time_limit.FromMilliseconds(int(limit_s * 1000))
    sol = routing.SolveWithParameters(params)
    routes: dict[int, list[tuple[int, int]]] = {}
    if sol is None:
        return routes, {"hit_time_limit": True, "no_solution": True}
    for k, w in enumerate(workers):
        index = sol.Value(routing.NextVar(routing.Start(k)))
        stops = []
        while not routing.IsEnd(index):
            i = manager.IndexToNode(index) - 2 * W
            stops.append((visits[i].id, int(sol.Min(tdim.CumulVar(index))) + t0))
            index = sol.Value(routing.NextVar(index))
        routes[w.id] = stops
    return routes, {"hit_time_limit": True}


def _quality(
    routes: dict[int, list[tuple[int, int]]], visits: list[Any], workers: list[Any], travel: Any
) -> dict[str, Any]:
    served = sum(len(s) for s in routes.values())
    total = 0.0
    by_id = {v.id: v for v in visits}
    for w in workers:
        here, free = (w.start_lat, w.start_lng), w.shift_start
        for vid, start in routes.get(w.id, []):
            v = by_id[vid]
            total += float(travel.seconds(here[0], here[1], v.lat, v.lng, free, mode=w.mode))
            here, free = (v.lat, v.lng), start + v.duration_s
        if routes.get(w.id):
            total += float(
                travel.seconds(here[0], here[1], w.end_lat, w.end_lng, free, mode=w.mode)
            )
    problems = check(routes, visits, workers, travel)
    return {
        "served": served,
        "dropped": len(visits) - served,
        "travel_h": round(total / 3600.0, 2),
        "feasible": not problems,
        "first_problem": problems[0] if problems else "",
    }


def main(argv: list[str]) -> int:
    """Run the plan_day benchmark; prints a table or one JSON object."""
    parser = argparse.ArgumentParser(prog="daojia bench plan_day", description=__doc__)
    parser.add_argument("--visits", type=int, default=500)
    parser.add_argument("--workers", type=int, default=40)
    parser.add_argument("--time-limit", type=float, default=30.0, help="seconds per solve")
    parser.add_argument("--baseline", choices=["ortools", "none"], default="ortools")
    # Each run is time-limited, so one repeat is the default; quality is the figure.
    add_common_args(parser, repeat=1)
    args = parser.parse_args(argv)
    from geo.travel import HaversineTravelModel

    travel = HaversineTravelModel()
    visits, workers = city_day(args.seed, args.visits, args.workers)
    rows: list[dict[str, Any]] = []
    runs: dict[str, list[float]] = {}
    solvers = [("ours", run_ours)]
    if args.baseline == "ortools":
        solvers.append(("ortools", run_ortools))
    for name, fn in solvers:
        for rep in range(args.repeat):
            t = time.perf_counter()
            routes, facts = fn(visits, workers, travel, args.time_limit, args.seed + rep)
            elapsed = time.perf_counter() - t
            runs.setdefault(name, []).append(elapsed)
            rows.append(
                {
                    "solver": name,
                    "repeat": rep,
                    "runtime_s": round(elapsed, 2),
                    **_quality(routes, visits, workers, travel),
                    **facts,
                }
            )
    timing = {
        name: {"min_s": min(v), "median_s": float(np.median(v)), "max_s": max(v)}
        for name, v in runs.items()
    }
    speedup = None
    if "ortools" in timing:
        speedup = timing["ortools"]["median_s"] / timing["ours"]["median_s"]
    result = {
        "benchmark": "plan_day",
        "visits": args.visits,
        "workers": args.workers,
        "time_limit_s": args.time_limit,
        "seed": args.seed,
        "repeat": args.repeat,
        "runs": rows,
        "timing": timing,
        "speedup": speedup,
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "machine": machine(),
    }
    emit(
        result,
        rows,
        args.json,
        f"plan_day {args.visits} visits / {args.workers} workers at {args.time_limit:g} s",
    )
    return 0

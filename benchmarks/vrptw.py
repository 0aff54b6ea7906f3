"""Solomon VRPTW: plan_day ("ours") against plain OR-Tools, plain PyVRP and VROOM.

Every solver gets the same DIMACS-convention instance (edge = floor(10 ×
Euclidean), windows and service × 10, distance reported / 10) and the same
time limit; the gap is to the distance-only best-known solutions in
shared/data/solomon/bks.csv. Each solver's routes are checked for
feasibility here, independently of the solver.

    daojia bench vrptw --instances ../shared/data/solomon/instances --time-limit 10 --solver all
"""

from __future__ import annotations

import argparse
import csv
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from benchmarks._common import add_common_args, emit, machine, peak_rss_mb

REPO = Path(__file__).resolve().parents[1]
DEFAULT_INSTANCES = REPO / ".." / "shared" / "data" / "solomon" / "instances"
SOLVERS = ("ours", "ortools", "pyvrp", "vroom")


@dataclass(frozen=True)
class Instance:
    """One Solomon instance in integer DIMACS units (tenths)."""

    name: str
    dist: NDArray[np.int64]  # (n, n), node 0 is the depot
    demand: NDArray[np.int64]
    early: NDArray[np.int64]
    late: NDArray[np.int64]
    service: NDArray[np.int64]
    capacity: int
    vehicles: int

    @property
    def n(self) -> int:
        return int(self.dist.shape[0])


def read_instance(path: Path) -> Instance:
    """Read a VRPLIB Solomon file into DIMACS integer units."""
    import vrplib

    raw = vrplib.read_instance(str(path))
    xy = np.asarray(raw["node_coord"], dtype=np.float64)
    diff = xy[:, None, :] - xy[None, :, :]
    dist = np.floor(10.0 * np.sqrt((diff**2).sum(axis=2))).astype(np.int64)
    tw = np.asarray(raw["time_window"], dtype=np.float64)
    service = np.asarray(raw.get("service_time", 0), dtype=np.float64)
    service = np.broadcast_to(service, (xy.shape[0],)).copy()
    service[0] = 0.0
    return Instance(
        name=str(raw.get("name", path.stem)),
        dist=dist,
        demand=np.asarray(raw["demand"], dtype=np.int64),
        early=np.round(10 * tw[:, 0]).astype(np.int64),
        late=np.round(10 * tw[:, 1]).astype(np.int64),
        service=np.round(10 * service).astype(np.int64),
        capacity=int(raw["capacity"]),
        vehicles=int(raw.get("vehicles", xy.shape[0] - 1)),
    )


def check_routes(inst: Instance, routes: list[list[int]]) -> tuple[bool, int, str]:
    """Independent check: every customer once, capacity, windows; returns (ok, distance, why)."""
    seen = np.zeros(inst.n, dtype=np.int64)
    total = 0
    for r in routes:
        if not r:
            continue
        if int(inst.demand[r].sum()) > inst.capacity:
            return False, 0, f"route over capacity: {r}"
        t, prev = int(inst.early[0]), 0
        for c in r:
            seen[c] += 1
            t = max(t + int(inst.dist[prev, c]), int(inst.early[c]))
            if t > inst.late[c]:
                return False, 0, f"customer {c} starts at {t} > {inst.late[c]}"
            t += int(inst.service[c])
            total += int(inst.dist[prev, c])
            prev = c
        total += int(inst.dist[prev, 0])
        if t + inst.dist[prev, 0] > inst.late[0]:
            return False, 0, "route returns after the depot closes"
    if len([r for r in routes if r]) > inst.vehicles:
        return False, 0, "more routes than vehicles"
    if (seen[1:] != 1).any():
        return False, 0, f"customer {int(np.flatnonzero(seen[1:] != 1)[0]) + 1} not served once"
    return True, total, ""


def solve_ours(inst: Instance, limit_s: float, seed: int) -> list[list[int]]:
    """plan_day with a TravelMatrix and the distance-only objective."""
    from dispatch.schedule import Objective, Stop, TravelMatrix, Visit, WorkerDay, plan_day

    visits = [
        Visit(
            id=c,
            lat=0.0,
            lng=0.0,
            duration_s=int(inst.service[c]),
            window_start=int(inst.early[c]),
            window_end=int(inst.late[c]),
            demand=int(inst.demand[c]),
            node=c,
        )
        for c in range(1, inst.n)
    ]
    workers = [
        WorkerDay(
            id=k,
            shift_start=int(inst.early[0]),
            shift_end=int(inst.late[0]),
            start_lat=0.0,
            start_lng=0.0,
            capacity=inst.capacity,
            start_node=0,
        )
        for k in range(inst.vehicles)
    ]
    plan = plan_day(
        visits,
        workers,
        travel=TravelMatrix(inst.dist),
        stop=Stop(limit_s),
        seed=seed,
        objective=Objective(allow_drop=False),
    )
    return [list(r.visit_ids) for r in plan.routes]


def solve_pyvrp(inst: Instance, limit_s: float, seed: int) -> list[list[int]]:
    """Plain PyVRP: one vehicle type, required clients, its default solver."""
    import pyvrp
    from pyvrp.stop import MaxRuntime

    locs = [pyvrp.Location(x=float(i), y=0.0) for i in range(inst.n)]
    clients = [
        pyvrp.Client(
            location=c,
            delivery=[int(inst.demand[c])],
            service_duration=int(inst.service[c]),
            tw_early=int(inst.early[c]),
            tw_late=int(inst.late[c]),
        )
        for c in range(1, inst.n)
    ]
    depots = [pyvrp.Depot(location=0)]
    vt = [
        pyvrp.VehicleType(
            num_available=inst.vehicles,
            capacity=[inst.capacity],
            tw_early=int(inst.early[0]),
            tw_late=int(inst.late[0]),
        )
    ]
    data = pyvrp.ProblemData(locs, clients, depots, vt, [inst.dist], [inst.dist])  # type: ignore[list-item]
    res = pyvrp.solve(data, stop=MaxRuntime(limit_s), seed=seed, collect_stats=False)
    return [[a.idx + 1 for a in r if a.is_client()] for r in res.best.routes()]


def solve_ortools(inst: Instance, limit_s: float, seed: int) -> list[list[int]]:
    """Plain OR-Tools routing: parallel cheapest insertion + guided local search."""
    from ortools.constraint_solver import pywrapcp, routing_enums_pb2

    del seed  # OR-Tools routing search is deterministic
    manager = pywrapcp.RoutingIndexManager(inst.n, inst.vehicles, 0)
    routing = pywrapcp.RoutingModel(manager)
    dist = inst.dist
    service = inst.service

    def arc(i: int, j: int) -> int:
        return int(dist[manager.IndexToNode(i), manager.IndexToNode(j)])

    def time_cb(i: int, j: int) -> int:
        a, b = manager.IndexToNode(i), manager.IndexToNode(j)
        return int(service[a] + dist[a, b])

    arc_idx = routing.RegisterTransitCallback(arc)
    routing.SetArcCostEvaluatorOfAllVehicles(arc_idx)
    time_idx = routing.RegisterTransitCallback(time_cb)
    horizon = int(inst.late[0])
    routing.AddDimension(time_idx, horizon, horizon, False, "time")
    tdim = routing.GetDimensionOrDie("time")
    for c in range(1, inst.n):
        tdim.CumulVar(manager.NodeToIndex(c)).SetRange(int(inst.early[c]), int(inst.late[c]))
    for v in range(inst.vehicles):
        tdim.CumulVar(routing.Start(v)).SetRange(int(inst.early[0]), int(inst.late[0]))
        tdim.CumulVar(routing.End(v)).SetRange(int(inst.early[0]), int(inst.late[0]))
    demand = inst.demand
    dem_idx = routing.RegisterUnaryTransitCallback(lambda i: int(demand[manager.IndexToNode(i)]))
    routing.AddDimensionWithVehicleCapacity(
        dem_idx, 0, [inst.capacity] * inst.vehicles, True, "load"
    )
    params = pywrapcp.DefaultRoutingSearchParameters()
    params.first_solution_strategy = (
        routing_enums_pb2.FirstSolutionStrategy.PARALLEL_CHEAPEST_INSERTION
    )
    params.local_search_metaheuristic = (
        routing_enums_pb2.LocalSearchMetaheuristic.GUIDED_LOCAL_SEARCH
    )
    params.time_limit.FromMilliseconds(int(limit_s * 1000))
    sol = routing.SolveWithParameters(params)
    if sol is None:
        return []
    routes = []
    for v in range(inst.vehicles):
        idx = routing.Start(v)
        r = []
        idx = sol.Value(routing.NextVar(idx))
        while not routing.IsEnd(idx):
            r.append(manager.IndexToNode(idx))
            idx = sol.Value(routing.NextVar(idx))
        routes.append(r)
    return routes


def solve_vroom(inst: Instance, limit_s: float, seed: int) -> list[list[int]]:
    """VROOM (pyvroom) at exploration level 5 on one thread, stopped at the time limit."""
    import vroom

    del seed
    problem = vroom.Input()
    problem.set_durations_matrix(profile="car", matrix_input=inst.dist)
    for v in range(inst.vehicles):
        problem.add_vehicle(
            vroom.Vehicle(
                id=v,
                start=0,
                end=0,
                capacity=[inst.capacity],
                time_window=vroom.TimeWindow(int(inst.early[0]), int(inst.late[0])),
            )
        )
    for c in range(1, inst.n):
        problem.add_job(
            vroom.Job(
                id=c,
                location=c,
                default_service=int(inst.service[c]),
                delivery=[int(inst.demand[c])],
                time_windows=[vroom.TimeWindow(int(inst.early[c]), int(inst.late[c]))],
            )
        )
    sol = problem.solve(exploration_level=5, nb_threads=1, timeout=timedelta(seconds=limit_s))
    df = sol.routes
    routes: dict[int, list[int]] = {}
    for vid, typ, jid in zip(df["vehicle_id"], df["type"], df["id"], strict=True):
        if str(typ) == "job":
            routes.setdefault(int(vid), []).append(int(jid))
    return list(routes.values())


SOLVE: dict[str, Callable[[Instance, float, int], list[list[int]]]] = {
    "ours": solve_ours,
    "ortools": solve_ortools,
    "pyvrp": solve_pyvrp,
    "vroom": solve_vroom,
}


def read_bks(instances_dir: Path) -> dict[str, float]:
    """Best-known distances by instance name from bks.csv next to the instances folder."""
    path = instances_dir.parent / "bks.csv"
    if not path.exists():
        return {}
    with path.open() as fh:
        return {row["instance"]: float(row["distance"]) for row in csv.DictReader(fh)}


def run_one(
    inst: Instance, solver: str, limit_s: float, seed: int, bks: dict[str, float]
) -> dict[str, Any]:
    """Solve one instance with one solver and check the result independently."""
    t = time.perf_counter()
    try:
        routes = SOLVE[solver](inst, limit_s, seed)
        error = ""
    except Exception as exc:  # a reference solver failing is a result, not a crash
        routes, error = [], f"{type(exc).__name__}: {exc}"
    runtime = time.perf_counter() - t
    ok, total, why = check_routes(inst, routes) if routes else (False, 0, error or "no solution")
    distance = total / 10.0 if ok else None
    best = bks.get(inst.name)
    gap = 100.0 * (distance - best) / best if (distance is not None and best) else None
    return {
        "instance": inst.name,
        "solver": solver,
        "vehicles": len([r for r in routes if r]) if ok else None,
        "distance": distance,
        "gap_pct": None if gap is None else round(gap, 3),
        "runtime_s": round(runtime, 2),
        "feasible": ok,
        "note": why,
    }


def main(argv: list[str]) -> int:
    """Run the Solomon comparison; prints a table or one JSON object."""
    parser = argparse.ArgumentParser(prog="daojia bench vrptw", description=__doc__)
    parser.add_argument("--instances", type=Path, default=DEFAULT_INSTANCES)
    parser.add_argument("--time-limit", type=float, default=10.0, help="seconds per solve")
    parser.add_argument("--solver", choices=[*SOLVERS, "all"], default="all")
    parser.add_argument("--only", nargs="*", default=None, help="instance names to run")
    add_common_args(parser, repeat=1)
    args = parser.parse_args(argv)
    if args.seed == 0:
        args.seed = 1  # the README's anchors use seed 1
    paths = sorted(Path(args.instances).glob("*.vrp"))
    if args.only:
        wanted = {n.upper() for n in args.only}
        paths = [p for p in paths if p.stem.upper() in wanted]
    if not paths:
        parser.error(f"no .vrp files in {args.instances}")
    bks = read_bks(Path(args.instances))
    solvers = list(SOLVERS) if args.solver == "all" else [args.solver]
    rows = []
    for path in paths:
        inst = read_instance(path)
        for solver in solvers:
            for _ in range(max(args.repeat, 1)):
                rows.append(run_one(inst, solver, args.time_limit, args.seed, bks))
    summary = {}
    for solver in solvers:
        mine = [r for r in rows if r["solver"] == solver]
        gaps = [r["gap_pct"] for r in mine if r["gap_pct"] is not None]
        summary[solver] = {
            "mean_gap_pct": round(statistics.fmean(gaps), 3) if gaps else None,
            "worst_gap_pct": max(gaps) if gaps else None,
            "solved": len(gaps),
            "instances": len(mine),
            "infeasible_or_failed": len(mine) - len(gaps),
            "mean_runtime_s": round(statistics.fmean(r["runtime_s"] for r in mine), 2),
        }
    result = {
        "benchmark": "vrptw",
        "time_limit_s": args.time_limit,
        "seed": args.seed,
        "instances_dir": str(args.instances),
        "instances": rows,
        "summary": summary,
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "machine": machine(),
    }
    if args.json:
        emit(result, None, True, "vrptw")
    else:
        emit(result, rows, False, f"Solomon VRPTW at {args.time_limit:g} s (seed {args.seed})")
        emit(result, [{"solver": s, **v} for s, v in summary.items()], False, "mean gap per solver")
    return 0

"""Benchmark: a simulated city day, and a capacity sweep on Ray against running it serially.

1. City day: the example scenario scaled to ``--orders`` orders and ``--workers`` workers,
   simulated end to end in this process (one core) through the production dispatch code:
   on-demand orders through ``dispatch.match`` and the offer desk, booked ones through day
   plans (``dispatch.schedule.plan_day`` per partition of a district's workers, later
   bookings reserved with ``dispatch.slots``, disruptions repaired with
   ``dispatch.repair``). Target: 50,000 orders and 5,000 workers in <= 60 s. Reports wall
   and CPU time (min/median/max over ``--repeat``), orders per second, how many
   match/plan/slot/repair calls it took and the day's KPIs (quality beside speed).
2. Sweep: ``--sweep-points`` grid points (worker multipliers × auto/grab) at
   ``--sweep-orders``/``--sweep-workers``, once serially in this process (the baseline)
   and once as Ray tasks on a local Ray with ``--num-cpus``; ``speedup = serial_s /
   ray_s``. Ray start-up is reported separately and excluded (a warm-up task per CPU runs
   first), since a sweep user pays it once per session.

Run: ``daojia bench simulate [--orders 50000 --workers 5000] [--json]``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from benchmarks._common import add_common_args, emit, machine, peak_rss_mb, timed
from simulations.city import Scenario, generate, load_scenario
from simulations.engine import Policy, policy_with, simulate
from simulations.kpi import kpis
from simulations.sweep import SweepPoint, init_ray, run_grid

EXAMPLE = Path(__file__).resolve().parent.parent / "simulations" / "scenarios"
EXAMPLE = EXAMPLE / "shanghai_saturday.yaml"


def scaled_to(scenario: Scenario, orders: int, workers: int, load: float | None = None) -> Scenario:
    """The scenario with demand and fleet scaled to about ``orders`` and ``workers``.

    With ``load``, service durations are scaled too (never up) so that the day's service
    hours are about ``load`` × the fleet's shift hours (the example's own ratio is about
    0.8): at 10 orders per worker the example's 2-hour services would need twice the
    fleet, and a hopelessly overloaded day measures backlog handling, not dispatch.
    """
    base_orders = scenario.demand.orders_per_day * float(
        scenario.demand.weekday_multiplier.get(scenario.weekday, 1.0)
    )
    base_workers = sum(g.count for g in scenario.workers)
    duration = 1.0
    if load is not None:
        shares = sum(v.share for v in scenario.services)
        mean_h = sum(v.share * v.duration_min for v in scenario.services) / shares / 60
        shift_h = sum(g.count * (g.shift_end_h - g.shift_start_h) for g in scenario.workers)
        shift_h = shift_h / max(base_workers, 1)
        duration = min(load * workers * shift_h / (orders * mean_h), 1.0)
    return scenario.scaled(
        demand=orders / base_orders, workers=workers / base_workers, duration=duration
    )


def _sweep_points(n: int) -> list[SweepPoint]:
    modes = ("auto", "grab")
    per_mode = max(n // 2, 1)
    mults = [0.75 + 0.5 * i / max(per_mode - 1, 1) for i in range(per_mode)]
    return [SweepPoint(workers=m, mode=mode) for mode in modes for m in mults][:n]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="daojia bench simulate", description=__doc__)
    add_common_args(parser, repeat=1)
    parser.add_argument("--orders", type=int, default=50_000, help="orders in the city day")
    parser.add_argument("--workers", type=int, default=5_000, help="workers in the city day")
    parser.add_argument("--scenario", type=Path, default=EXAMPLE, help="scenario to scale")
    parser.add_argument("--sweep-points", type=int, default=8, help="grid points (0: skip)")
    parser.add_argument("--sweep-orders", type=int, default=2_000, help="orders per point")
    parser.add_argument("--sweep-workers", type=int, default=500, help="workers per point")
    parser.add_argument("--num-cpus", type=int, default=2, help="CPUs of the local Ray")
    parser.add_argument(
        "--batch-window", type=int, default=None, help="seconds (default: the scenario's)"
    )
    parser.add_argument(
        "--load", type=float, default=0.6, help="service hours / shift hours (scales durations)"
    )
    return parser


def _city_day(
    args: argparse.Namespace, scenario: Scenario
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Part 1: the scaled city day simulated ``--repeat`` times; the report and its row."""
    policy = Policy.from_dict(scenario.dispatch)
    if args.batch_window is not None:
        policy = policy_with(policy, batch_window_s=args.batch_window)
    ahead = int(scenario.dispatch.get("dispatch_ahead_s", 3600))
    day_scenario = scaled_to(scenario, args.orders, args.workers, args.load)
    city = generate(day_scenario, args.seed, dispatch_ahead_s=ahead)
    cpu0 = time.process_time()
    timing, result = timed(lambda: simulate(city, policy), args.repeat)
    # CPU seconds of this process per run: steadier than wall time on a shared machine.
    cpu_s = (time.process_time() - cpu0) / args.repeat
    day = kpis(result)
    out: dict[str, Any] = {
        "benchmark": "simulate",
        "seed": args.seed,
        "orders": city.n_orders,
        "workers": city.n_workers,
        "repeat": args.repeat,
        "load": args.load,
        "batch_window_s": policy.batch_window_s,
        "mean_service_min": float(city.expected_service_s.mean() / 60),
        "city_day": {
            **timing.as_dict(),
            "orders_per_s": city.n_orders / timing.median,
            "cpu_s": cpu_s,
            "target_s": 60.0,
            "match_calls": result.match_calls,
            "plan_calls": result.plan_calls,
            "slot_calls": result.slot_calls,
            "events": result.events,
            "booked_orders": int(day["booked_orders"]),
            "planned_visits": int(result.in_plan.sum()) if result.in_plan is not None else 0,
            "repairs": int(day["repairs"]),
            "visits_moved": int(day["visits_moved"]),
            "visits_dropped": int(day["visits_dropped"]),
            "booking_refused": int(day["booking_refused"]),
            "on_time_rate": day["on_time_rate"],
            "booked_on_time_rate": day["booked_on_time_rate"],
            "on_demand_on_time_rate": day["on_demand_on_time_rate"],
            "fill_rate": day["fill_rate"],
            "time_to_assign_p90_s": day["time_to_assign_p90_s"],
            "utilisation": day["utilisation"],
        },
    }
    row = {
        "case": f"city day {city.n_orders} orders / {city.n_workers} workers",
        "median_s": timing.median,
        "cpu_s": cpu_s,
        "orders_per_s": city.n_orders / timing.median,
        "match_calls": result.match_calls,
        "plan_calls": result.plan_calls,
        "repairs": int(day["repairs"]),
        "on_time_rate": day["on_time_rate"],
    }
    return out, row


def _sweep(
    args: argparse.Namespace, scenario: Scenario
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Part 2: the grid serially, then on a warmed local Ray; the report and its rows."""
    small = scaled_to(scenario, args.sweep_orders, args.sweep_workers, args.load)
    points = _sweep_points(args.sweep_points)
    t0 = time.perf_counter()
    serial = run_grid(small, points, backend="serial", seed=args.seed, show_progress=False)
    serial_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    init_ray(None, args.num_cpus)
    # Warm each worker process (imports, first solver call) before timing the sweep.
    run_grid(
        small.scaled(demand=0.05, workers=0.1),
        points[: args.num_cpus],
        backend="ray",
        seed=args.seed,
        show_progress=False,
    )
    ray_init_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    on_ray = run_grid(small, points, backend="ray", seed=args.seed, show_progress=False)
    ray_s = time.perf_counter() - t0
    same = all(a["on_time_rate"] == b["on_time_rate"] for a, b in zip(serial, on_ray, strict=True))
    report = {
        "points": len(points),
        "orders_per_point": serial[0]["n_orders"],
        "num_cpus": args.num_cpus,
        "serial_s": serial_s,
        "ray_s": ray_s,
        "speedup": serial_s / ray_s,
        "ray_init_s": ray_init_s,
        "same_kpis": same,
    }
    rows: list[dict[str, Any]] = [
        {"case": f"sweep {len(points)} points, serial (baseline)", "median_s": serial_s},
        {
            "case": f"sweep {len(points)} points, Ray {args.num_cpus} CPUs",
            "median_s": ray_s,
            "speedup": serial_s / ray_s,
        },
    ]
    return report, rows


def main(argv: list[str]) -> int:
    """Run the benchmark; prints a table or (``--json``) one JSON object."""
    args = _parser().parse_args(argv)
    scenario = load_scenario(args.scenario)
    out, row = _city_day(args, scenario)
    rows: list[dict[str, Any]] = [row]
    if args.sweep_points > 0:
        out["sweep"], sweep_rows = _sweep(args, scenario)
        rows.extend(sweep_rows)
    out["peak_rss_mb"] = peak_rss_mb()
    out["machine"] = machine()
    emit(out, rows, args.json, "simulate: city day and sweep")
    return 0

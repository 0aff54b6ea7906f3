"""Independent feasibility checker for day plans: re-derives every rule from the inputs.

It reads only the public result (routes, stops, dropped) and the inputs
(visits, workers, travel), and recomputes travel itself — from the
TravelMatrix or by asking the travel model at each actual departure time —
so a bug in plan_day's own timing or encoding cannot hide here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from dispatch.schedule import DayPlan, TravelMatrix, Visit, WorkerDay

#: Seconds of rounding slack when comparing with a float travel model.
TOLERANCE_S = 1


def _travel_s(
    travel: Any,
    a: tuple[float, float, int | None],
    b: tuple[float, float, int | None],
    at: int,
    mode: str,
) -> float:
    if isinstance(travel, TravelMatrix):
        assert a[2] is not None
        assert b[2] is not None
        return float(travel.duration_s[a[2], b[2]])
    if (a[0], a[1]) == (b[0], b[1]):
        return 0.0
    return float(travel.seconds(a[0], a[1], b[0], b[1], at, mode=mode))


def _break_overlap(worker: WorkerDay, lo: int, hi: int) -> int:
    return sum(max(0, min(hi, b.end) - max(lo, b.start)) for b in worker.breaks)


def check_plan(
    plan: DayPlan,
    visits: Sequence[Visit],
    workers: Sequence[WorkerDay],
    travel: Any,
    *,
    allow_lateness: bool = False,
) -> list[str]:
    """Every rule the plan breaks, as readable strings (empty when feasible)."""
    problems: list[str] = []
    by_id = {v.id: v for v in visits}
    worker_by_id = {w.id: w for w in workers}
    seen: dict[int, int] = {}
    for route in plan.routes:
        w = worker_by_id.get(route.worker_id)
        if w is None:
            problems.append(f"route for unknown worker {route.worker_id}")
            continue
        here = (w.start_lat, w.start_lng, w.start_node)
        free_at = w.shift_start
        load = 0
        for pos, s in enumerate(route.stops):
            v = by_id.get(s.visit_id)
            tag = f"worker {w.id} stop {pos} (visit {s.visit_id})"
            if v is None:
                problems.append(f"{tag}: unknown visit")
                continue
            seen[v.id] = seen.get(v.id, 0) + 1
            load += v.demand
            if (int(w.skills) & v.skills) != v.skills:
                problems.append(f"{tag}: worker lacks skills {v.skills & ~w.skills:#x}")
            if v.pinned_worker is not None and v.pinned_worker != w.id:
                problems.append(f"{tag}: pinned to worker {v.pinned_worker}")
            if v.pinned_start is not None and s.start != v.pinned_start:
                problems.append(f"{tag}: pinned start {v.pinned_start}, planned {s.start}")
            if s.end - s.start != v.duration_s:
                problems.append(f"{tag}: lasts {s.end - s.start} s, needs {v.duration_s}")
            if s.start < v.window_start and v.pinned_start is None:
                problems.append(f"{tag}: starts {s.start} before its window {v.window_start}")
            late = s.start - v.window_end
            if late > 0 and not v.fixed and not allow_lateness:
                problems.append(f"{tag}: starts {late} s after its window")
            if s.start < s.arrival:
                problems.append(f"{tag}: starts before arriving")
            if _break_overlap(w, s.start, s.end):
                problems.append(f"{tag}: service overlaps a break")
            there = (v.lat, v.lng, v.node)
            need = _travel_s(travel, here, there, free_at, w.mode)
            usable = s.start - free_at - _break_overlap(w, free_at, s.start)
            if not v.fixed and usable + TOLERANCE_S < need:
                problems.append(f"{tag}: {usable} s between jobs but the ride takes {need:.0f} s")
            if not v.fixed and not w.breaks and s.arrival + TOLERANCE_S < free_at + need:
                problems.append(f"{tag}: arrival {s.arrival} earlier than travel allows")
            if s.start < free_at and not v.fixed:
                problems.append(f"{tag}: starts before the previous job ends")
            here, free_at = there, s.end
        home = (w.end_lat, w.end_lng, w.end_node)
        back = _travel_s(travel, here, home, free_at, w.mode) if route.stops else 0.0
        fixed_only = all(by_id[s.visit_id].fixed for s in route.stops if s.visit_id in by_id)
        if route.stops and not fixed_only and free_at + back > w.shift_end + TOLERANCE_S:
            problems.append(
                f"worker {w.id}: home at {free_at + back:.0f} after shift end {w.shift_end}"
            )
        if route.stops and route.stops[0].start < w.shift_start:
            problems.append(f"worker {w.id}: first job before the shift starts")
        if w.capacity is not None and load > w.capacity:
            problems.append(f"worker {w.id}: load {load} over capacity {w.capacity}")
        if w.max_visits is not None and len(route.stops) > w.max_visits:
            problems.append(f"worker {w.id}: {len(route.stops)} visits over {w.max_visits}")
    dropped = [d.visit_id for d in plan.dropped]
    for vid, n in seen.items():
        if n > 1:
            problems.append(f"visit {vid} is served {n} times")
    for vid in dropped:
        if vid in seen:
            problems.append(f"visit {vid} is both served and dropped")
    for d in plan.dropped:
        if not d.detail:
            problems.append(f"visit {d.visit_id} dropped without a reason")
    missing = set(by_id) - set(seen) - set(dropped)
    if missing:
        problems.append(f"visits neither served nor dropped: {sorted(missing)[:5]}")
    total = sum(s.travel_s for r in plan.routes for s in r.stops)
    if total > plan.total_travel_s + TOLERANCE_S * max(1, len(seen)):
        problems.append(f"stop travel {total} exceeds the reported total {plan.total_travel_s}")
    return problems


def assert_feasible(
    plan: DayPlan,
    visits: Sequence[Visit],
    workers: Sequence[WorkerDay],
    travel: Any,
    *,
    allow_lateness: bool = False,
) -> None:
    """Fail with every broken rule listed."""
    problems = check_plan(plan, visits, workers, travel, allow_lateness=allow_lateness)
    assert not problems, "\n".join(problems[:20])


def city_day(
    seed: int,
    n_visits: int,
    n_workers: int,
    *,
    t0: int = 1_764_036_000,
    spread_deg: float = 0.05,
    skills: int = 2,
) -> tuple[list[Visit], list[WorkerDay]]:
    """A deterministic generated city day (Shanghai-ish): visits and workers."""
    rng = np.random.default_rng(seed)
    visits = []
    for i in range(n_visits):
        ws = t0 + int(rng.integers(0, 8)) * 3600
        visits.append(
            Visit(
                id=i,
                lat=31.23 + float(rng.uniform(-spread_deg, spread_deg)),
                lng=121.47 + float(rng.uniform(-spread_deg, spread_deg)),
                duration_s=int(rng.choice([1800, 3600, 5400])),
                window_start=ws,
                window_end=ws + 3 * 3600,
                skills=int(rng.integers(0, 1 << skills)) if rng.random() < 0.5 else 0,
            )
        )
    workers = [
        WorkerDay(
            id=1000 + k,
            shift_start=t0,
            shift_end=t0 + 12 * 3600,
            start_lat=31.23 + float(rng.uniform(-spread_deg, spread_deg)),
            start_lng=121.47 + float(rng.uniform(-spread_deg, spread_deg)),
            skills=int(rng.integers(1, 1 << skills)) if skills else 0,
        )
        for k in range(n_workers)
    ]
    return visits, workers

"""plan_day and insertion: every plan passes the independent checker; bad input is typed."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatch.errors import InvalidInput, UnknownSkill
from dispatch.schedule import (
    Break,
    DropReason,
    Objective,
    Stop,
    TravelMatrix,
    Visit,
    VisitOutsideShifts,
    VisitStatus,
    WorkerDay,
    insertion_options,
    plan_day,
    plan_with_insertion,
)
from geo.travel import HaversineTravelModel
from tests.dispatch.feasibility import assert_feasible, city_day

T0 = 1_764_036_000  # 2025-11-25 02:00 UTC = 10:00 in Shanghai
TRAVEL = HaversineTravelModel()
FAST = Stop(seconds=1.0, max_iterations=300)


@pytest.fixture(scope="module")
def day() -> tuple[list[Visit], list[WorkerDay]]:
    return city_day(seed=3, n_visits=40, n_workers=6)


@pytest.fixture(scope="module")
def plan(day):
    visits, workers = day
    return plan_day(visits, workers, travel=TRAVEL, stop=FAST, seed=1)


def test_city_plan_is_feasible_and_accounts_for_every_visit(plan, day) -> None:
    visits, workers = day
    assert_feasible(plan, visits, workers, TRAVEL)
    served = sum(len(r.stops) for r in plan.routes)
    assert served + plan.num_dropped == len(visits)
    assert served > len(visits) // 2
    assert plan.engine == "pyvrp"
    assert plan.total_lateness_s == 0


def test_totals_match_the_routes(plan) -> None:
    assert plan.total_travel_s == sum(r.travel_s for r in plan.routes)
    assert all(r.finish >= (r.stops[-1].end if r.stops else r.depart) for r in plan.routes)


def test_skill_nobody_has_is_dropped_with_reason(day) -> None:
    visits, workers = day
    rare = replace(visits[0], id=999, skills=1 << 10)
    plan = plan_day([*visits[:10], rare], workers, travel=TRAVEL, stop=FAST)
    dropped = {d.visit_id: d for d in plan.dropped}
    assert dropped[999].reason == DropReason.NO_SKILLED_WORKER
    assert_feasible(plan, [*visits[:10], rare], workers, TRAVEL)


def test_unreachable_visit_is_dropped_not_silently(day) -> None:
    visits, workers = day
    # 300 km away: inside the shift, but no e-bike gets there and back.
    far = replace(visits[0], id=998, lat=33.9, skills=0)
    plan = plan_day([*visits[:5], far], workers, travel=TRAVEL, stop=FAST)
    reasons = {d.visit_id: d.reason for d in plan.dropped}
    assert reasons[998] == DropReason.UNREACHABLE


def test_pinned_and_started_visits_stay(day) -> None:
    visits, workers = day
    w0, w1 = workers[0], workers[1]
    started = replace(
        visits[0], skills=0, status=VisitStatus.STARTED, pinned_worker=w1.id, pinned_start=T0 + 600
    )
    confirmed = replace(visits[1], skills=0, status=VisitStatus.CONFIRMED, pinned_worker=w0.id)
    sample = [started, confirmed, *visits[2:15]]
    plan = plan_day(sample, workers, travel=TRAVEL, stop=FAST)
    assert_feasible(plan, sample, workers, TRAVEL)
    assert plan.assignment()[started.id] == w1.id
    assert plan.stop_of(started.id).start == T0 + 600
    assert plan.route_of(w1.id).stops[0].visit_id == started.id
    assert plan.assignment().get(confirmed.id, w0.id) == w0.id


def test_replan_with_change_penalty_keeps_assignments(plan, day) -> None:
    visits, workers = day
    again = plan_day(
        visits, workers, travel=TRAVEL, stop=FAST, seed=7, current=plan, change_penalty=20_000
    )
    assert_feasible(again, visits, workers, TRAVEL)
    assert again.changed_assignments == 0
    free = plan_day(visits, workers, travel=TRAVEL, stop=FAST, seed=7)
    moved = sum(1 for v, w in plan.assignment().items() if free.assignment().get(v) != w)
    assert again.changed_assignments <= moved


def test_capacity_and_visit_limits_hold(day) -> None:
    visits, workers = day
    loaded = [replace(v, demand=3, skills=0) for v in visits[:20]]
    limited = [replace(w, capacity=9, max_visits=2) for w in workers]
    plan = plan_day(loaded, limited, travel=TRAVEL, stop=FAST)
    assert_feasible(plan, loaded, limited, TRAVEL)
    assert all(len(r.stops) <= 2 for r in plan.routes)
    assert plan.num_dropped >= 20 - 2 * len(limited)


def test_breaks_are_respected(day) -> None:
    visits, workers = day
    lunch = Break(T0 + 3 * 3600, T0 + 4 * 3600)
    with_break = [replace(w, breaks=(lunch,)) for w in workers[:3]]
    sample = [replace(v, skills=0) for v in visits[:15]]
    plan = plan_day(sample, with_break, travel=TRAVEL, stop=FAST)
    assert_feasible(plan, sample, with_break, TRAVEL)
    for r in plan.routes:
        for s in r.stops:
            assert s.end <= lunch.start or s.start >= lunch.end


def test_no_workers_means_every_visit_outside_shifts(day) -> None:
    visits, _ = day
    with pytest.raises(VisitOutsideShifts, match=f"visit {visits[0].id}"):
        plan_day(visits[:3], [], travel=TRAVEL, stop=FAST)


@pytest.mark.parametrize(
    ("change", "error", "fragment"),
    [
        ({"window_end": T0 - 10, "window_start": T0}, InvalidInput, "window_end"),
        ({"duration_s": -5}, InvalidInput, "duration_s"),
        ({"skills": -1}, InvalidInput, "skills"),
        ({"lat": 95.0}, InvalidInput, "lat"),
    ],
)
def test_malformed_visit_is_rejected_naming_it(change, error, fragment) -> None:
    base = {
        "id": 42,
        "lat": 31.2,
        "lng": 121.4,
        "duration_s": 3600,
        "window_start": T0,
        "window_end": T0 + 3600,
    }
    with pytest.raises(error, match=f"visit 42.*{fragment}|{fragment}"):
        Visit(**{**base, **change})


def test_visit_outside_every_shift_is_a_typed_error(day) -> None:
    visits, workers = day
    night = replace(visits[0], id=77, window_start=T0 + 20 * 3600, window_end=T0 + 21 * 3600)
    with pytest.raises(VisitOutsideShifts, match="visit 77"):
        plan_day([night], workers, travel=TRAVEL, stop=FAST)


def test_unknown_skill_is_a_typed_error(day) -> None:
    visits, workers = day
    odd = replace(visits[0], id=78, skills=1 << 5)
    with pytest.raises(UnknownSkill, match="visit 78"):
        plan_day([odd], workers, travel=TRAVEL, stop=FAST, known_skills=0b11)


def test_matrix_travel_needs_nodes(day) -> None:
    visits, workers = day
    with pytest.raises(InvalidInput, match="node"):
        plan_day(
            visits[:2], workers, travel=TravelMatrix(np.zeros((3, 3), dtype=np.int64)), stop=FAST
        )


def test_bad_stop_and_objective_are_rejected() -> None:
    with pytest.raises(InvalidInput, match="seconds"):
        Stop(seconds=0)
    with pytest.raises(InvalidInput, match="drop_penalty"):
        Objective(drop_penalty=-1)


def test_insertion_options_are_feasible_and_cheapest_first(plan, day) -> None:
    visits, workers = day
    new = Visit(
        id=500, lat=31.24, lng=121.46, duration_s=1800, window_start=T0, window_end=T0 + 10 * 3600
    )
    options = insertion_options(plan, new)
    assert len(options) > 0
    costs = [o.added_cost for o in options.options]
    assert costs == sorted(costs)
    assert len({o.worker_id for o in options.options}) == len(options)
    for option in options.options[:3]:
        after = plan_with_insertion(plan, new, option)
        assert_feasible(after, [*visits, new], workers, TRAVEL)
        stop = after.stop_of(500)
        assert stop is not None
        assert stop.worker_id == option.worker_id
        assert stop.start == option.start
        # Nothing else moved.
        assert {k: v for k, v in after.assignment().items() if k != 500} == plan.assignment()


def test_insertion_outside_every_shift_has_no_option(plan) -> None:
    late = Visit(
        id=501,
        lat=31.24,
        lng=121.46,
        duration_s=3600,
        window_start=T0 + 11 * 3600,
        window_end=T0 + 11 * 3600 + 600,
    )
    assert insertion_options(plan, late).best is None


def _solomon_subset(n: int) -> tuple[list[Visit], list[WorkerDay], TravelMatrix]:
    from benchmarks.vrptw import read_instance

    path = Path(__file__).resolve().parents[3] / "shared/data/solomon/instances/C101.vrp"
    if not path.exists():
        pytest.skip(f"Solomon data not found at {path}")
    inst = read_instance(path)
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
        for c in range(1, n + 1)
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
        for k in range(5)
    ]
    return visits, workers, TravelMatrix(inst.dist)


def test_solomon_subset_serves_everyone_with_matrix_travel() -> None:
    visits, workers, matrix = _solomon_subset(25)
    plan = plan_day(
        visits, workers, travel=matrix, stop=FAST, objective=Objective(allow_drop=False)
    )
    assert_feasible(plan, visits, workers, matrix)
    assert plan.num_dropped == 0
    assert plan.total_distance == plan.total_travel_s  # Solomon: distance is time


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 10_000), n_visits=st.integers(1, 12), n_workers=st.integers(1, 3))
def test_random_days_are_always_feasible(seed: int, n_visits: int, n_workers: int) -> None:
    visits, workers = city_day(seed, n_visits, n_workers, spread_deg=0.08)
    plan = plan_day(visits, workers, travel=TRAVEL, stop=Stop(0.3, max_iterations=100), seed=seed)
    assert_feasible(plan, visits, workers, TRAVEL)


def test_checker_catches_tampered_plans(plan, day) -> None:
    visits, workers = day
    route = next(r for r in plan.routes if len(r.stops) >= 2)
    first, second = route.stops[0], route.stops[1]
    # Second job starts the moment the first ends: no time to ride there.
    squeezed = replace(
        second, arrival=first.end, start=first.end, end=first.end + (second.end - second.start)
    )
    bad_route = replace(route, stops=(first, squeezed, *route.stops[2:]))
    tampered = replace(plan, routes=tuple(bad_route if r is route else r for r in plan.routes))
    with pytest.raises(AssertionError):
        assert_feasible(tampered, visits, workers, TRAVEL)
    # A visit silently missing is caught too.
    silent = (
        replace(plan, dropped=plan.dropped[1:])
        if plan.dropped
        else replace(
            plan,
            routes=tuple(replace(r, stops=r.stops[1:]) if r is route else r for r in plan.routes),
        )
    )
    with pytest.raises(AssertionError):
        assert_feasible(silent, visits, workers, TRAVEL)


def test_mixed_transport_modes_use_their_own_travel_times(day) -> None:
    visits, workers = day
    modes = ["car", "walk", "ebike"]
    mixed = [replace(w, mode=modes[k % 3]) for k, w in enumerate(workers)]
    sample = visits[:20]
    plan = plan_day(sample, mixed, travel=TRAVEL, stop=FAST)
    # The checker re-asks the model with each worker's own mode: a walker planned at
    # e-bike speed would fail here.
    assert_feasible(plan, sample, mixed, TRAVEL)


def test_travel_matrix_is_validated() -> None:
    with pytest.raises(InvalidInput, match="square"):
        TravelMatrix(np.zeros((2, 3), dtype=np.int64))
    with pytest.raises(InvalidInput, match=r"duration_s\[0, 1\]"):
        TravelMatrix(np.array([[0, -1], [1, 0]]))
    with pytest.raises(InvalidInput, match="distance"):
        TravelMatrix(np.zeros((2, 2), dtype=np.int64), distance=np.zeros((3, 3), dtype=np.int64))


def test_ride_after_a_break_starts_where_the_worker_was() -> None:
    home = (31.23, 121.47)
    far = (31.29, 121.47)  # ~6.7 km north: over 20 minutes by e-bike
    worker = WorkerDay(
        id=1,
        shift_start=T0,
        shift_end=T0 + 8 * 3600,
        start_lat=home[0],
        start_lng=home[1],
        breaks=(Break(T0 + 3600, T0 + 7200),),
    )
    before = Visit(id=1, lat=home[0], lng=home[1], duration_s=3600, window_start=T0, window_end=T0)
    after = Visit(
        id=2,
        lat=far[0],
        lng=far[1],
        duration_s=1800,
        window_start=T0 + 7200,
        window_end=T0 + 7200 + 300,
    )
    plan = plan_day([before, after], [worker], travel=TRAVEL, stop=FAST)
    assert_feasible(plan, [before, after], [worker], TRAVEL)
    # Lunch ends at 12:00 at the first customer's door: nobody is 20 minutes away by 12:05.
    assert [d.visit_id for d in plan.dropped] == [2]

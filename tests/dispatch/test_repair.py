"""Least-disruption repair: started visits never move, changes are few and explained."""

from __future__ import annotations

from dataclasses import replace

import pytest

from dispatch.errors import InvalidInput, UnknownOrder, UnknownWorker
from dispatch.repair import (
    ChangeKind,
    UrgentVisit,
    VisitCancelled,
    VisitOverran,
    WorkerAbsent,
    repair,
)
from dispatch.schedule import DayPlan, Stop, Visit, VisitStatus, plan_day
from geo.travel import HaversineTravelModel
from tests.dispatch.feasibility import assert_feasible, city_day

T0 = 1_764_036_000
TRAVEL = HaversineTravelModel()


def _in_progress(plan: DayPlan, now: int) -> DayPlan:
    """Mark what has begun by ``now`` as started, the next three hours as confirmed."""
    visits = {v.id: v for v in plan.visits}
    for route in plan.routes:
        for s in route.stops:
            v = visits[s.visit_id]
            if s.start <= now:
                visits[v.id] = replace(
                    v,
                    status=VisitStatus.STARTED,
                    pinned_worker=route.worker_id,
                    pinned_start=s.start,
                )
            elif s.start <= now + 3 * 3600:
                visits[v.id] = replace(
                    v, status=VisitStatus.CONFIRMED, pinned_worker=route.worker_id
                )
    return replace(plan, visits=tuple(visits.values()))


def _day(n_visits: int, n_workers: int, seconds: float, seed: int) -> DayPlan:
    visits, workers = city_day(seed=seed, n_visits=n_visits, n_workers=n_workers, spread_deg=0.06)
    plan = plan_day(visits, workers, travel=TRAVEL, stop=Stop(seconds), seed=seed)
    return _in_progress(plan, T0 + 3 * 3600)


def _events(plan: DayPlan) -> list[object]:
    started = [v for v in plan.visits if v.status == VisitStatus.STARTED]
    confirmed = [v for v in plan.visits if v.status == VisitStatus.CONFIRMED]
    busiest = max(plan.routes, key=lambda r: len(r.stops))
    now = T0 + 3 * 3600
    urgent = Visit(
        id=99_999,
        lat=31.235,
        lng=121.47,
        duration_s=3600,
        window_start=now + 1800,
        window_end=now + 4 * 3600,
    )
    return [
        WorkerAbsent(busiest.worker_id, now),
        VisitOverran(started[0].id, 75 * 60),
        UrgentVisit(urgent),
        VisitCancelled(confirmed[0].id),
    ]


def _check_repair(plan: DayPlan, event: object, seconds: float) -> None:
    result = repair(plan, event, stop=Stop(seconds), seed=1)
    new = result.plan
    assert_feasible(new, new.visits, new.workers, TRAVEL, allow_lateness=True)
    # Started visits keep worker and start.
    for v in plan.visits:
        if v.status == VisitStatus.STARTED:
            stop = new.stop_of(v.id)
            assert stop is not None
            assert stop.start == v.pinned_start
            assert new.assignment()[v.id] == v.pinned_worker
    # Changes reported = changes made, and no more than a full re-plan makes.
    before, after = plan.assignment(), new.assignment()
    moved = {v for v, w in before.items() if v in after and after[v] != w}
    lost = {v for v in before if v not in after and any(x.id == v for x in new.visits)}
    assert result.changed_assignments == len(moved | lost) == new.changed_assignments
    reported = {
        c.visit_id for c in result.changes if c.kind in (ChangeKind.REASSIGNED, ChangeKind.DROPPED)
    }
    assert reported == moved | lost
    full = plan_day(new.visits, new.workers, travel=TRAVEL, stop=Stop(seconds), seed=1)
    full_moved = sum(
        1
        for v, w in before.items()
        if any(x.id == v for x in new.visits) and full.assignment().get(v) != w
    )
    assert result.changed_assignments <= full_moved
    assert all(c.reason and c.detail for c in result.changes)


@pytest.fixture(scope="module")
def small() -> DayPlan:
    return _day(30, 5, 1.0, seed=5)


@pytest.mark.parametrize("kind", [0, 1, 2, 3])
def test_repair_small_day(small: DayPlan, kind: int) -> None:
    _check_repair(small, _events(small)[kind], 0.5)


@pytest.fixture(scope="module")
def big() -> DayPlan:
    return _day(200, 20, 4.0, seed=8)


@pytest.mark.slow
@pytest.mark.parametrize("kind", [0, 1, 2, 3])
def test_repair_200_visits_20_workers(big: DayPlan, kind: int) -> None:
    _check_repair(big, _events(big)[kind], 1.5)


def test_absent_worker_gets_nothing_after_leaving(small: DayPlan) -> None:
    busiest = max(small.routes, key=lambda r: len(r.stops))
    leave = T0 + 3 * 3600
    result = repair(small, WorkerAbsent(busiest.worker_id, leave), stop=Stop(0.5))
    route = result.plan.route_of(busiest.worker_id)
    assert all(s.start <= leave for s in route.stops)
    assert (
        any(
            c.kind == ChangeKind.REASSIGNED and c.from_worker == busiest.worker_id
            for c in result.changes
        )
        or result.plan.num_dropped > small.num_dropped
    )


def test_overrun_delays_but_keeps_confirmed_visits(small: DayPlan) -> None:
    started = next(v for v in small.visits if v.status == VisitStatus.STARTED)
    result = repair(small, VisitOverran(started.id, 20 * 60), stop=Stop(0.5))
    stop = result.plan.stop_of(started.id)
    assert stop is not None
    assert stop.end == started.pinned_start + started.duration_s + 1200
    assert result.changed_assignments <= 1


def test_urgent_visit_is_inserted_without_moving_others(small: DayPlan) -> None:
    urgent = _events(small)[2]
    result = repair(small, urgent, stop=Stop(0.5))
    assert result.plan.assignment().get(99_999) is not None
    assert result.changed_assignments == 0
    assert any(c.kind == ChangeKind.ADDED and c.visit_id == 99_999 for c in result.changes)


def test_cancel_removes_the_visit(small: DayPlan) -> None:
    event = _events(small)[3]
    result = repair(small, event, stop=Stop(0.5))
    assert event.visit_id not in {v.id for v in result.plan.visits}
    assert any(c.kind == ChangeKind.REMOVED for c in result.changes)


def test_bad_events_are_typed(small: DayPlan) -> None:
    with pytest.raises(UnknownWorker):
        repair(small, WorkerAbsent(-1, T0))
    with pytest.raises(UnknownOrder):
        repair(small, VisitCancelled(-1))
    with pytest.raises(InvalidInput, match="extra_s"):
        VisitOverran(1, 0)
    planned = next(v for v in small.visits if v.status != VisitStatus.STARTED)
    with pytest.raises(InvalidInput, match="started"):
        repair(small, VisitOverran(planned.id, 60))


def test_absence_leaving_a_visit_outside_every_shift_drops_it_with_reason() -> None:
    from dispatch.schedule import WorkerDay

    early = WorkerDay(
        id=1, shift_start=T0, shift_end=T0 + 6 * 3600, start_lat=31.23, start_lng=121.47
    )
    late = WorkerDay(
        id=2, shift_start=T0, shift_end=T0 + 12 * 3600, start_lat=31.23, start_lng=121.47
    )
    evening = Visit(
        id=5,
        lat=31.24,
        lng=121.48,
        duration_s=3600,
        window_start=T0 + 9 * 3600,
        window_end=T0 + 10 * 3600,
    )
    plan = plan_day([evening], [early, late], travel=TRAVEL, stop=Stop(0.3, max_iterations=50))
    assert plan.assignment()[5] == 2
    result = repair(plan, WorkerAbsent(2, T0 + 3600), stop=Stop(0.3, max_iterations=50))
    (dropped,) = result.plan.dropped
    assert dropped.visit_id == 5
    assert dropped.detail
    assert result.changed_assignments == 1
    assert [c.kind for c in result.changes] == [ChangeKind.DROPPED]

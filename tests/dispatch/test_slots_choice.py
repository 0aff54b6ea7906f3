"""The booking's worker choice: days as booked, the engine's pick, agreement with the slot list."""

from __future__ import annotations

from dataclasses import replace

import pytest

from dispatch.errors import InvalidInput
from dispatch.schedule import DayPlan, Stop, Visit, VisitStatus, WorkerDay, plan_day
from dispatch.slots import (
    ServiceRequest,
    Slot,
    available_slots,
    booked_plan,
    choose_worker,
)
from geo.travel import HaversineTravelModel
from tests.dispatch.feasibility import city_day

T0 = 1_764_036_000
DAY = (T0, T0 + 12 * 3600)
TRAVEL = HaversineTravelModel()
NOW = T0 - 86_400
WHERE = (31.235, 121.475)
SERVICE = ServiceRequest(duration_s=3600)
GRID = 1800


def _as_booked(plan: DayPlan) -> list[Visit]:
    """Every routed visit of ``plan`` as a confirmed visit pinned to its worker and start."""
    by_id = {v.id: v for v in plan.visits}
    return [
        replace(
            by_id[s.visit_id],
            window_start=s.start,
            window_end=s.start,
            skills=0,
            status=VisitStatus.CONFIRMED,
            pinned_worker=r.worker_id,
        )
        for r in plan.routes
        for s in r.stops
    ]


@pytest.fixture(scope="module")
def day() -> tuple[list[Visit], list[WorkerDay]]:
    visits, workers = city_day(seed=21, n_visits=16, n_workers=4, skills=0)
    plan = plan_day(visits, workers, travel=TRAVEL, stop=Stop(0.5, max_iterations=200))
    return _as_booked(plan), workers


def test_booked_plan_keeps_every_visit_where_and_when_it_was_booked(day) -> None:
    visits, workers = day
    plan = booked_plan(visits, workers, travel=TRAVEL)
    assert plan.num_dropped == 0
    assert plan.engine == "booked"
    assert plan.assignment() == {v.id: v.pinned_worker for v in visits}
    for v in visits:
        stop = plan.stop_of(v.id)
        assert stop is not None
        assert stop.start == v.window_start


def test_a_slot_is_listed_exactly_when_the_engine_finds_a_worker_for_it(day) -> None:
    visits, workers = day
    plan = booked_plan(visits, workers, travel=TRAVEL)
    listed = {s.start: s for s in available_slots(SERVICE, WHERE, DAY, plan, now=NOW)}
    assert listed
    unlisted = 0
    for start in range(DAY[0] + 2 * 3600, DAY[1], GRID):
        choice = choose_worker(SERVICE, WHERE, Slot(start, start + GRID, 0), plan, seed=7)
        workers_here = {o.worker_id for o in choice.options}
        if start in listed:
            assert len(workers_here) == listed[start].workers
            assert start <= choice.options[0].start <= start + GRID
        else:
            unlisted += 1
            assert choice.chosen is None
    assert unlisted  # the day is busy enough that some starts are not offered


def test_the_neighbours_of_a_slot_are_all_its_choice_depends_on(day) -> None:
    visits, workers = day
    full = booked_plan(visits, workers, travel=TRAVEL)
    checked = 0
    for start in range(DAY[0] + 2 * 3600, DAY[1] - 3600, GRID):
        slot = Slot(start, start + GRID, 0)
        near = booked_plan(
            visits, workers, travel=TRAVEL, around=(start, start + GRID + SERVICE.duration_s)
        )
        assert len(near.visits) < len(full.visits)
        a = choose_worker(SERVICE, WHERE, slot, full)
        b = choose_worker(SERVICE, WHERE, slot, near)
        # Rides priced over the slot's hours are never slower than over the whole day:
        # whoever the whole day lets take the slot, the trimmed day does too.
        assert {o.worker_id for o in a.options} <= {o.worker_id for o in b.options}
        checked += bool(a.options)
    assert checked > 3


def _empty_day(n: int) -> DayPlan:
    workers = [
        WorkerDay(id=10 + k, shift_start=DAY[0], shift_end=DAY[1], start_lat=31.235,
                  start_lng=121.475 + 0.0001 * k)
        for k in range(n)
    ]  # fmt: skip
    return booked_plan([], workers, travel=TRAVEL)


def test_the_choice_is_the_cheapest_without_a_seed_and_seeded_among_ties() -> None:
    plan = _empty_day(6)
    slot = Slot(DAY[0] + 3 * 3600, DAY[0] + 3 * 3600 + GRID, 0)
    plain = choose_worker(SERVICE, WHERE, slot, plan)
    costs = [o.added_cost for o in plain.options]
    assert costs == sorted(costs)
    assert len(plain.options) == 6
    # Same seed, same order; the six near-equal workers are spread over by the seed.
    same = [choose_worker(SERVICE, WHERE, slot, plan, seed=3).options for _ in range(2)]
    assert same[0] == same[1]
    firsts = {choose_worker(SERVICE, WHERE, slot, plan, seed=s).options[0].worker_id
              for s in range(20)}  # fmt: skip
    assert len(firsts) > 1
    # Outside the tie band the cheapest stays first whatever the seed.
    strict = {choose_worker(SERVICE, WHERE, slot, plan, seed=s, tie_cost=0).chosen
              for s in range(5)}  # fmt: skip
    assert len(strict) == 1


def test_the_preferred_worker_comes_first_when_they_can_take_it() -> None:
    plan = _empty_day(3)
    slot = Slot(DAY[0] + 3 * 3600, DAY[0] + 3 * 3600 + GRID, 0)
    choice = choose_worker(SERVICE, WHERE, slot, plan, seed=1, preferred_worker=12)
    assert choice.options[0].worker_id == 12
    nobody = choose_worker(SERVICE, WHERE, slot, plan, seed=1, preferred_worker=99)
    assert {o.worker_id for o in nobody.options} == {10, 11, 12}


def test_bad_input_names_the_field(day) -> None:
    visits, workers = day
    plan = _empty_day(1)
    slot = Slot(DAY[0] + 3 * 3600, DAY[0] + 3 * 3600 + GRID, 0)
    with pytest.raises(InvalidInput, match="tie_cost"):
        choose_worker(SERVICE, WHERE, slot, plan, tie_cost=-1)
    with pytest.raises(InvalidInput, match="pinned_worker"):
        booked_plan([replace(visits[0], pinned_worker=12345)], workers, travel=TRAVEL)
    with pytest.raises(InvalidInput, match="around"):
        booked_plan(visits, workers, travel=TRAVEL, around=(DAY[1], DAY[0]))

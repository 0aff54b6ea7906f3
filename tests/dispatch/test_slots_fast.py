"""The fast booked-day insertion path: the same choice as a booked day plan, without the plan."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from dispatch.booked import BookedDays, booked_days, booked_slots, choose_booked_worker
from dispatch.errors import InvalidInput
from dispatch.schedule import Break, Insertion, TravelMatrix, Visit, VisitStatus, WorkerDay
from dispatch.slots import (
    ServiceRequest,
    Slot,
    available_slots,
    booked_plan,
    choose_worker,
)
from geo.travel import HaversineTravelModel, TransportMode

T0 = 1_764_036_000  # 2025-11-25 02:00 UTC, 10:00 in Shanghai
DAY = (T0, T0 + 12 * 3600)
CENTRE = (31.235, 121.475)
GRID = 1800
#: Same speed at every hour: a booked day plan's slowest-departure travel is then exact.
FLAT = HaversineTravelModel(speed_mps={m: (4.0,) * 24 for m in TransportMode})
RUSH = HaversineTravelModel()
MODES = ("walk", "ebike", "car")


def _near(rng: np.random.Generator, spread: float = 0.02) -> tuple[float, float]:
    return CENTRE[0] + rng.uniform(-spread, spread), CENTRE[1] + rng.uniform(-spread, spread)


def random_booked_day(seed: int, n_workers: int = 5) -> tuple[list[WorkerDay], list[Visit]]:
    """Workers with skills, modes, sometimes a break, and visits booked with room between."""
    rng = np.random.default_rng(seed)
    workers: list[WorkerDay] = []
    visits: list[Visit] = []
    for k in range(n_workers):
        lo = T0 + int(rng.integers(0, 3)) * 1800
        hi = lo + int(rng.integers(7, 12)) * 3600
        cursor = lo + int(rng.integers(1, 5)) * 1800
        breaks: list[Break] = []
        mode = MODES[int(rng.integers(0, 3))]
        # Walkers stay close: every booked ride fits in the gap it was given.
        spread = 0.006 if mode == "walk" else 0.02
        # Every third day starts with an idle worker (only home and the shift).
        while cursor + 5400 < hi and not (seed % 3 == 0 and k == 0):
            if not breaks and rng.random() < 0.3:
                breaks.append(Break(cursor, cursor + 3600))
                cursor += 3600 + int(rng.integers(1, 5)) * 900
                continue
            lat, lng = _near(rng, spread)
            dur = int(rng.integers(1, 4)) * 1800
            visits.append(
                Visit(
                    id=len(visits) + 1,
                    lat=lat,
                    lng=lng,
                    duration_s=dur,
                    window_start=cursor,
                    window_end=cursor,
                    status=VisitStatus.CONFIRMED,
                    pinned_worker=100 + k,
                )
            )
            cursor += dur + int(rng.integers(2, 9)) * 900
        home = _near(rng, spread)
        workers.append(
            WorkerDay(
                id=100 + k,
                shift_start=lo,
                shift_end=hi,
                start_lat=home[0],
                start_lng=home[1],
                skills=int(rng.integers(0, 4)),
                breaks=tuple(breaks),
                mode=mode,
            )
        )
    rng.shuffle(visits)  # type: ignore[arg-type,unused-ignore]
    return workers, visits


def _key(options: tuple[Insertion, ...]) -> list[tuple[int, int, int, int, int]]:
    return [(o.worker_id, o.position, o.start, o.added_travel_s, o.added_cost) for o in options]


@pytest.mark.parametrize("seed", range(12))
def test_fast_choice_is_the_booked_plan_choice_when_travel_does_not_depend_on_the_hour(
    seed: int,
) -> None:
    workers, visits = random_booked_day(seed)
    plan = booked_plan(visits, workers, travel=FLAT)
    days = booked_days(workers, visits)
    rng = np.random.default_rng(1000 + seed)
    seen = 0
    for start in range(DAY[0], DAY[1], GRID):
        where = _near(rng, 0.01)
        service = ServiceRequest(duration_s=int(rng.integers(1, 4)) * 1800, skills=seed % 3)
        slot = Slot(start, start + GRID, 0)
        by_plan = choose_worker(service, where, slot, plan, seed=start, preferred_worker=102)
        fast = choose_booked_worker(
            service, where, slot, days, travel=FLAT, seed=start, preferred_worker=102
        )
        assert _key(fast.options) == _key(by_plan.options), start
        seen += len(fast.options)
    assert seen  # the days leave room: some slots are bookable


@pytest.mark.parametrize("seed", range(6))
def test_fast_slot_list_is_the_booked_plan_slot_list_and_lists_exactly_the_bookable(
    seed: int,
) -> None:
    workers, visits = random_booked_day(seed, n_workers=8)
    service = ServiceRequest(duration_s=3600)
    where = _near(np.random.default_rng(seed), 0.01)
    plan = booked_plan(visits, workers, travel=FLAT)
    days = booked_days(workers, visits)
    now = T0 - 3 * 3600
    fast = booked_slots(service, where, DAY, days, travel=FLAT, now=now)
    assert fast == available_slots(service, where, DAY, plan, now=now)
    for travel in (FLAT, RUSH):
        listed = {
            s.start: s.workers
            for s in booked_slots(service, where, DAY, days, travel=travel, now=now)
        }
        for start in range(DAY[0] + 2 * 3600, DAY[1], GRID):
            slot = Slot(start, start + GRID, 0)
            choice = choose_booked_worker(service, where, slot, days, travel=travel)
            assert len(choice.options) == listed.get(start, 0)
            for o in choice.options:
                assert start <= o.start <= start + GRID


@pytest.mark.parametrize("seed", range(6))
def test_with_rush_hours_every_worker_the_booked_plan_accepts_is_accepted(seed: int) -> None:
    """The plan times every ride at its slowest sampled departure; the fast path at the real one."""
    workers, visits = random_booked_day(seed)
    plan = booked_plan(visits, workers, travel=RUSH)
    days = booked_days(workers, visits)
    service = ServiceRequest(duration_s=5400)
    for start in range(DAY[0], DAY[1], GRID):
        slot = Slot(start, start + GRID, 0)
        by_plan = {o.worker_id: o for o in choose_worker(service, CENTRE, slot, plan).options}
        fast = {o.worker_id: o for o in choose_booked_worker(
            service, CENTRE, slot, days, travel=RUSH).options}  # fmt: skip
        assert set(by_plan) <= set(fast)
        for w, o in by_plan.items():
            if o.position == fast[w].position:
                assert fast[w].start <= o.start


def test_a_break_takes_no_visit_and_a_visit_after_it_leaves_when_it_ends() -> None:
    worker = WorkerDay(100, T0, T0 + 8 * 3600, *CENTRE, breaks=(Break(T0 + 3600, T0 + 7200),))
    days = booked_days([worker], [])
    service = ServiceRequest(duration_s=1800)
    found = {s.start for s in booked_slots(service, CENTRE, DAY, days, travel=FLAT, now=T0 - 86400)}
    # Like a booked day plan: nothing right before a break; from its end on (a slot
    # whose window reaches it), every slot whose visit is home by the shift end.
    assert min(found) == T0 + 5400
    assert max(found) == T0 + 8 * 3600 - 1800
    assert T0 + 3600 not in found


def _days(**change: Any) -> BookedDays:
    workers, visits = random_booked_day(4, n_workers=2)
    return replace(booked_days(workers, visits), **change)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"shift_end": np.array([T0, T0], dtype=np.int64) - 1}, "shift_end"),
        ({"home_lat": np.array([95.0, 31.0])}, "home_lat"),
        ({"mode": np.array([0], dtype=np.int64)}, "mode"),
        ({"mode": np.array([1, 7], dtype=np.int64)}, "mode"),
        ({"visit_offset": np.array([0, 1], dtype=np.int64)}, "visit_offset"),
        ({"break_start": np.array([1, 2, 3], dtype=np.int64)}, "break_start"),
    ],
)
def test_bad_days_name_the_field(change: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInput, match=field):
        _days(**change)


def test_unsorted_visits_and_a_visit_ending_before_it_starts_name_the_field() -> None:
    days = _days()
    n = int(days.visit_offset[1])
    assert n >= 2
    with pytest.raises(InvalidInput, match="visit_start"):
        replace(
            days,
            visit_start=days.visit_start[::-1].copy(),
            visit_end=days.visit_end[::-1] * 0 + 2**40,
        )
    with pytest.raises(InvalidInput, match="visit_end"):
        replace(days, visit_end=days.visit_start - 1)


def test_bad_request_names_the_argument() -> None:
    days = _days()
    service = ServiceRequest(duration_s=1800)
    slot = Slot(T0, T0 + GRID, 0)
    with pytest.raises(InvalidInput, match="location"):
        choose_booked_worker(service, (91.0, 0.0), slot, days, travel=FLAT)
    matrix: Any = TravelMatrix(np.zeros((1, 1), dtype=np.int64))
    with pytest.raises(InvalidInput, match="travel"):
        choose_booked_worker(service, CENTRE, slot, days, travel=matrix)
    with pytest.raises(InvalidInput, match="slot end"):
        choose_booked_worker(service, CENTRE, Slot(T0, T0 - 1, 0), days, travel=FLAT)
    with pytest.raises(InvalidInput, match="max_leg_s"):
        choose_booked_worker(service, CENTRE, slot, days, travel=FLAT, max_leg_s=0)
    with pytest.raises(InvalidInput, match="pinned_worker"):
        booked_days([], [Visit(1, *CENTRE, 60, T0, T0, pinned_worker=5)])

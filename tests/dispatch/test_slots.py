"""Bookable slots: every offered slot can be booked, unreachable places get none."""

from __future__ import annotations

import numpy as np
import pytest

from dispatch.errors import InvalidInput
from dispatch.schedule import Stop, Visit, insertion_options, plan_day
from dispatch.slots import (
    ServiceRequest,
    Slot,
    SlotUnavailable,
    available_slots,
    reserve_slot,
)
from geo.travel import HaversineTravelModel
from tests.dispatch.feasibility import assert_feasible, city_day

T0 = 1_764_036_000
DAY = (T0, T0 + 12 * 3600)
TRAVEL = HaversineTravelModel()
NOW = T0 - 86_400  # booking the day before
HOME = (31.235, 121.475)


@pytest.fixture(scope="module")
def plan():
    visits, workers = city_day(seed=11, n_visits=24, n_workers=5)
    return plan_day(visits, workers, travel=TRAVEL, stop=Stop(1.0, max_iterations=300))


def test_every_offered_slot_can_be_booked(plan) -> None:
    service = ServiceRequest(duration_s=2 * 3600)
    slots = available_slots(service, HOME, DAY, plan, now=NOW)
    assert slots
    for k, slot in enumerate(slots):
        booking = reserve_slot(service, HOME, slot, plan, visit_id=10_000 + k)
        assert slot.start <= booking.insertion.start <= slot.end
        assert_feasible(booking.plan, booking.plan.visits, plan.workers, TRAVEL)
        assert booking.plan.assignment()[10_000 + k] == booking.worker_id


def test_booking_offered_slots_one_by_one_never_fails() -> None:
    visits, workers = city_day(seed=12, n_visits=12, n_workers=3)
    plan = plan_day(visits, workers, travel=TRAVEL, stop=Stop(0.5, max_iterations=200))
    rng = np.random.default_rng(0)
    service = ServiceRequest(duration_s=3600)
    booked = 0
    for k in range(40):
        where = (31.23 + rng.uniform(-0.03, 0.03), 121.47 + rng.uniform(-0.03, 0.03))
        slots = available_slots(service, where, DAY, plan, now=NOW)
        if not slots:
            continue
        slot = slots[int(rng.integers(len(slots)))]
        plan = reserve_slot(service, where, slot, plan, visit_id=20_000 + k).plan
        booked += 1
    assert booked > 3
    assert_feasible(plan, plan.visits, workers, TRAVEL)
    assert sum(len(r.stops) for r in plan.routes) + plan.num_dropped == len(plan.visits)


def test_worker_less_district_gets_no_slots(plan) -> None:
    # 60 km away: every worker lives in the city centre.
    remote = (31.23 + 0.55, 121.47)
    assert available_slots(ServiceRequest(duration_s=3600), remote, DAY, plan, now=NOW) == ()
    with pytest.raises(SlotUnavailable):
        reserve_slot(
            ServiceRequest(duration_s=3600),
            remote,
            Slot(T0 + 3600, T0 + 5400, 1),
            plan,
            visit_id=30_000,
        )


def test_slots_respect_lead_time_and_shift_ends(plan) -> None:
    service = ServiceRequest(duration_s=3 * 3600)
    now = T0 + 2 * 3600
    slots = available_slots(service, HOME, DAY, plan, now=now, lead_time_s=3600)
    assert all(s.start >= now + 3600 for s in slots)
    last_shift_end = max(w.shift_end for w in plan.workers)
    assert all(s.start + service.duration_s <= last_shift_end for s in slots)
    assert all(s.workers >= 1 for s in slots)


def test_skill_nobody_has_gets_no_slots(plan) -> None:
    assert (
        available_slots(ServiceRequest(duration_s=1800, skills=1 << 9), HOME, DAY, plan, now=NOW)
        == ()
    )


def test_worker_count_matches_insertion_options(plan) -> None:
    service = ServiceRequest(duration_s=2 * 3600, skills=0b01)
    slots = available_slots(service, HOME, DAY, plan, now=NOW, max_leg_s=10**6)
    assert slots
    for slot in slots[:6]:
        probe = Visit(
            id=40_000,
            lat=HOME[0],
            lng=HOME[1],
            duration_s=service.duration_s,
            window_start=slot.start,
            window_end=slot.end,
            skills=service.skills,
        )
        assert len(insertion_options(plan, probe)) == slot.workers


def test_bad_requests_are_rejected(plan) -> None:
    with pytest.raises(InvalidInput, match="duration_s"):
        ServiceRequest(duration_s=0)
    with pytest.raises(InvalidInput, match="location"):
        available_slots(ServiceRequest(duration_s=60), (91.0, 0.0), DAY, plan, now=NOW)
    with pytest.raises(InvalidInput, match="granularity_s"):
        available_slots(ServiceRequest(duration_s=60), HOME, DAY, plan, now=NOW, granularity_s=0)

"""The engine: determinism, production dispatch calls, conservation of orders, policies."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import dispatch
import dispatch.assign
import dispatch.candidates
from simulations.city import CityDay
from simulations.engine import OrderOutcome, Policy, Ports, hash_u01, policy_with, simulate
from simulations.kpi import kpis, summary


def test_same_scenario_and_seed_give_identical_kpis(small_city: CityDay) -> None:
    policy = Policy()
    a, b = summary(simulate(small_city, policy)), summary(simulate(small_city, policy))
    a.pop("wall_s")
    b.pop("wall_s")
    assert a == pytest.approx(b, nan_ok=True, rel=0, abs=0)


def test_engine_calls_production_match(small_city: CityDay) -> None:
    calls: list[int] = []
    real = dispatch.assign.match

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(len(args[0]))
        return real(*args, **kwargs)

    result = simulate(small_city, Policy(), ports=Ports(match=spy))
    assert len(calls) == result.match_calls > 0
    assert sum(calls) >= result.matched_orders


def test_default_ports_are_production_functions() -> None:
    ports = Ports()
    assert ports.match is dispatch.assign.match
    assert ports.find_candidates is dispatch.candidates.find_candidates


def test_grab_mode_uses_production_candidates(small_city: CityDay) -> None:
    calls: list[int] = []
    real = dispatch.candidates.find_candidates

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    result = simulate(
        small_city, policy_with(Policy(), mode="grab"), ports=Ports(find_candidates=spy)
    )
    assert calls
    assert (result.outcome == OrderOutcome.SERVED).any()


@pytest.mark.parametrize("mode", ["auto", "grab"])
def test_every_order_ends_in_one_state_and_workers_never_double_book(
    small_city: CityDay, mode: str
) -> None:
    r = simulate(small_city, policy_with(Policy(), mode=mode))
    c = small_city
    served = r.outcome == OrderOutcome.SERVED
    assert served.sum() + (r.outcome != OrderOutcome.SERVED).sum() == c.n_orders
    assert (r.start_s[served] >= r.assigned_at[served]).all()
    assert (r.end_s[served] - r.start_s[served] == c.actual_service_s[served]).all()
    booked = served & (c.booked_start_s >= 0)
    assert (r.start_s[booked] >= c.booked_start_s[booked]).all(), "nobody starts before booking"
    # A worker's jobs never overlap: from assignment to end, one at a time.
    for w in np.unique(r.worker_row[served]):
        jobs = np.flatnonzero(served & (r.worker_row == w))
        order = jobs[np.argsort(r.assigned_at[jobs])]
        assert (r.assigned_at[order][1:] >= r.end_s[order][:-1]).all()
    # Skills respected.
    w = r.worker_row[served]
    assert ((c.required_skills[served] & ~c.worker_skills[w]) == 0).all()
    # No job was taken before the worker's shift started.
    assert (r.assigned_at[served] >= c.shift_start_s[w]).all()


def test_more_workers_serve_more_on_time(small_city: CityDay, small) -> None:  # type: ignore[no-untyped-def]
    from simulations.city import generate

    few = kpis(simulate(generate(small.scaled(workers=0.5)), Policy()))
    many = kpis(simulate(generate(small.scaled(workers=3.0)), Policy()))
    assert many["on_time_rate"] > few["on_time_rate"]
    assert many["utilisation"] < few["utilisation"]


def test_declines_and_timeouts_follow_worker_behaviour(small_city: CityDay) -> None:
    from dataclasses import replace

    eager = replace(
        small_city,
        decline_prob=np.zeros(small_city.n_workers),
        response_mean_s=np.full(small_city.n_workers, 1.0),
    )
    r = simulate(eager, Policy())
    assert r.declines.sum() == 0
    assert r.timeouts.sum() == 0
    picky = replace(small_city, decline_prob=np.full(small_city.n_workers, 0.5))
    r2 = simulate(picky, Policy())
    assert r2.declines.sum() > 0
    assert r2.offers.sum() > r.offers.sum()


def test_hash_u01_is_uniform_and_keyed() -> None:
    a = np.arange(20_000)
    u = hash_u01(7, a, a * 3 + 1, 1)
    assert u.min() >= 0
    assert u.max() < 1
    assert abs(u.mean() - 0.5) < 0.01
    assert not np.array_equal(u, hash_u01(8, a, a * 3 + 1, 1))
    assert not np.array_equal(u, hash_u01(7, a, a * 3 + 1, 2))
    np.testing.assert_array_equal(u, hash_u01(7, a, a * 3 + 1, 1))


def test_policy_from_dict_and_presets() -> None:
    p = Policy.from_dict({"mode": "grab", "weights": "travel_only", "batch_window_s": 10})
    assert p.mode == "grab"
    assert p.weights.rating_per_star == 0
    assert p.batch_window_s == 10
    assert policy_with(p, mode="auto").mode == "auto"
    from simulations.city import ScenarioError

    with pytest.raises(ScenarioError, match=r"dispatch\.weights\.travel_per_s"):
        Policy.from_dict({"weights": {"travel_per_s": -1}})
    with pytest.raises(ScenarioError, match="unknown preset"):
        Policy.from_dict({"weights": "nope"})


@pytest.fixture(scope="module")
def rough_city(small) -> CityDay:  # type: ignore[no-untyped-def]
    """The small day with many disruptions: sick calls, late trips, booked cancellations."""
    from dataclasses import replace

    from simulations.city import Disruptions, generate

    rough = replace(
        small.scaled(demand=2.0, workers=2.0),
        disruptions=Disruptions(sick_prob=0.2, delay_prob=0.3, delay_mean_min=40),
        customers=replace(small.customers, cancel_booked_prob=0.15),
    )
    return generate(rough, 3)


def _spy(calls: list[str], name: str, real: Any) -> Any:
    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(name)
        return real(*args, **kwargs)

    return spy


def test_engine_plans_books_and_repairs_through_production_functions(
    rough_city: CityDay,
) -> None:
    calls: list[str] = []
    real = Ports()
    ports = Ports(
        **{
            name: _spy(calls, name, getattr(real, name))
            for name in ("plan_day", "repair", "reserve_slot", "available_slots")
        }
    )
    policy = policy_with(Policy(), plan_at_h=6.0, plan_workers=20)
    r = simulate(rough_city, policy, ports=ports)
    assert calls.count("plan_day") == r.plan_calls > 0
    assert calls.count("reserve_slot") + calls.count("available_slots") == r.slot_calls > 0
    k = kpis(r)
    assert calls.count("repair") == k["repairs"] > 0
    assert k["visits_moved"] + k["visits_dropped"] > 0
    booked = rough_city.booked_start_s >= 0
    assert r.in_plan[booked].any()
    assert not r.in_plan[~booked].any(), "on-demand orders never enter a day plan"


def test_planned_days_keep_the_engine_invariants(rough_city: CityDay) -> None:
    r = simulate(rough_city, policy_with(Policy(), plan_at_h=6.0))
    c = rough_city
    served = r.outcome == OrderOutcome.SERVED
    assert (r.end_s[served] - r.start_s[served] == c.actual_service_s[served]).all()
    # Booked visits start within or after their slot (a customer may have taken a later one).
    booked = served & (c.booked_start_s >= 0)
    assert (r.start_s[booked] >= r.booked_start_s[booked]).all()
    assert (r.booked_start_s[booked] >= c.booked_start_s[booked]).all()
    assert (r.promised_s - r.booked_start_s == c.promised_s - c.booked_start_s).all()
    for w in np.unique(r.worker_row[served]):
        jobs = np.flatnonzero(served & (r.worker_row == w))
        order = jobs[np.argsort(r.assigned_at[jobs])]
        assert (r.assigned_at[order][1:] >= r.end_s[order][:-1]).all(), "a worker double-booked"
    # A worker who called in sick starts nothing afterwards.
    sick = c.sick_at_s != 0x7FFFFFFFFFFFFFFF
    for w in np.flatnonzero(sick):
        assert (r.assigned_at[served & (r.worker_row == w)] <= c.sick_at_s[w]).all()
    # Refused bookings were never served; every order ends in exactly one outcome.
    assert not (r.outcome == OrderOutcome.REFUSED)[~(c.booked_start_s >= 0)].any()
    a, b = summary(r), summary(simulate(rough_city, policy_with(Policy(), plan_at_h=6.0)))
    a.pop("wall_s")
    b.pop("wall_s")
    assert a == pytest.approx(b, nan_ok=True, rel=0, abs=0), "same day, same seed: same KPIs"


def test_policy_plan_knobs_are_validated() -> None:
    from simulations.city import ScenarioError

    with pytest.raises(ScenarioError, match="plan_at_h"):
        Policy.from_dict({"plan_at_h": -1})
    with pytest.raises(ScenarioError, match="repair_after_s"):
        Policy.from_dict({"repair_after_s": -5})
    with pytest.raises(ScenarioError, match="plan_iterations"):
        Policy.from_dict({"plan_iterations": 0})


def test_planning_travel_is_never_faster_than_the_day() -> None:
    from geo.travel import HaversineTravelModel
    from simulations.engine import PlanningTravel

    model = HaversineTravelModel()
    plan = PlanningTravel(model)
    rng = np.random.default_rng(0)
    lat1, lng1 = 31.2 + rng.random(50) * 0.1, 121.4 + rng.random(50) * 0.1
    lat2, lng2 = 31.2 + rng.random(50) * 0.1, 121.4 + rng.random(50) * 0.1
    for mode in ("walk", "ebike", "car"):
        planned = plan.seconds(lat1, lng1, lat2, lng2, 0, mode=mode)
        for hour in range(24):
            at = 1_795_795_200 + hour * 3600
            real = model.seconds(lat1, lng1, lat2, lng2, at, mode=mode)
            assert (planned >= real - 1e-6).all(), (mode, hour)
        grid = plan.matrix(lat1, lng1, lat2, lng2, 0, mode=mode)
        np.testing.assert_allclose(np.diag(grid), planned)
        # Asked again with the same arrays (another sampled departure): the same answer.
        np.testing.assert_array_equal(
            plan.seconds(lat1, lng1, lat2, lng2, 3600, mode=mode), planned
        )

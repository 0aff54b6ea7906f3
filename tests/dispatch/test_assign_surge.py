"""match() under surge: supply-sized neighbourhoods, warm rounds, the time budget and its
gap bound, always against the dense optimum (tests/dispatch/test_assign.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatch.assign import match
from dispatch.assign.supply import supply_reach
from dispatch.cost import CostWeights
from dispatch.errors import InvalidInput
from dispatch.model import Fleet, OrderBatch
from tests.dispatch.test_assign import (
    LAT0,
    LNG0,
    NOW,
    TRAVEL,
    assert_valid,
    dense_optimum,
    random_batch,
)

M_PER_DEG = 111_195.0


def surge_batch(
    seed: int,
    n: int,
    m: int,
    *,
    hot_share: float = 0.5,
    ratio: float = 5.0,
    hot_m: float = 400.0,
    half_m: float = 4000.0,
    constrained: bool = False,
) -> tuple[OrderBatch, Fleet]:
    """Workers even over a square of side 2·half_m; hot_share of the orders in a disk of
    radius hot_m that holds one worker per ``ratio`` of them (test-sized surge city)."""
    rng = np.random.default_rng(seed)
    kx = M_PER_DEG * math.cos(math.radians(LAT0))
    n_hot = round(n * hot_share)
    r = hot_m * np.sqrt(rng.uniform(0, 1, n_hot))
    a = rng.uniform(0, 2 * np.pi, n_hot)
    ox = np.concatenate([r * np.cos(a), rng.uniform(-half_m, half_m, n - n_hot)])
    oy = np.concatenate([r * np.sin(a), rng.uniform(-half_m, half_m, n - n_hot)])
    wx = rng.uniform(-half_m, half_m, m)
    wy = rng.uniform(-half_m, half_m, m)
    inside = np.hypot(wx, wy) <= hot_m
    # Keep round(n_hot / ratio) workers in the disk: move the others out to its rim.
    want = round(n_hot / ratio)
    extra = np.flatnonzero(inside)[want:]
    wx[extra] += np.sign(wx[extra] + 1e-9) * 2 * hot_m
    extra_in = max(want - int(inside.sum()), 0)
    out = np.flatnonzero(~inside)[:extra_in]
    wx[out] = rng.uniform(-hot_m, hot_m, out.size) * 0.7
    wy[out] = rng.uniform(-hot_m, hot_m, out.size) * 0.7
    extra: dict[str, object] = {}
    fleet_extra: dict[str, object] = {}
    if constrained:
        extra = {
            "required_skills": rng.integers(0, 2, n),
            "excluded_worker_ids": [
                rng.choice(m, size=rng.integers(0, min(m, 2) + 1), replace=False) + 1000
                for _ in range(n)
            ],
            "latest_start_s": NOW + rng.integers(600, 4000, n),
            "preferred_worker_id": np.where(rng.random(n) < 0.1, rng.integers(0, m, n) + 1000, -1),
        }
        fleet_extra = {
            "available": rng.random(m) < 0.95,
            "skills": rng.integers(0, 2, m),
            "rating": rng.uniform(3.0, 5.0, m),
        }
    orders = OrderBatch.from_arrays(
        np.arange(n) + 1,
        LAT0 + oy / M_PER_DEG,
        LNG0 + ox / kx,
        **extra,  # type: ignore[arg-type]
    )
    fleet = Fleet.from_arrays(
        np.arange(m) + 1000,
        LAT0 + wy / M_PER_DEG,
        LNG0 + wx / kx,
        **fleet_extra,  # type: ignore[arg-type]
    )
    return orders, fleet


def test_supply_reach_flags_the_hotspot_only() -> None:
    orders, fleet = surge_batch(1, 120, 400)
    reach = supply_reach(orders, fleet, 1, 30_000.0)
    hot = (
        np.hypot(
            (orders.lat - LAT0) * M_PER_DEG,
            (orders.lng - LNG0) * M_PER_DEG * math.cos(math.radians(LAT0)),
        )
        <= 400.0
    )
    assert (reach.radius_m[hot] > 0).all()
    assert (reach.competitors[hot] >= hot.sum()).all()
    # An even city of the same size: supply meets demand nearly everywhere (an order in a
    # corner of the square may see too few workers around it, as it should).
    even, even_fleet = surge_batch(1, 120, 400, hot_share=0.0, hot_m=1.0)
    assert (supply_reach(even, even_fleet, 1, 30_000.0).radius_m > 0).mean() < 0.05
    # More capacity per worker covers the hotspot sooner.
    assert (supply_reach(orders, fleet, 5, 30_000.0).radius_m[hot] < reach.radius_m[hot]).all()


@settings(max_examples=12, deadline=None)
@given(
    seed=st.integers(0, 100_000),
    ratio=st.sampled_from([3.0, 5.0, 10.0]),
    constrained=st.booleans(),
    travel_only=st.booleans(),
)
def test_surge_reaches_the_dense_optimum(
    seed: int, ratio: float, constrained: bool, travel_only: bool
) -> None:
    orders, fleet = surge_batch(seed, 80, 240, ratio=ratio, constrained=constrained)
    weights = CostWeights.travel_only() if travel_only else CostWeights()
    result = match(orders, fleet, weights=weights, travel=TRAVEL, now=NOW, dense_pairs=0)
    assert result.solver != "dense"
    assert_valid(result, orders, fleet, 1, 3600.0)
    assert result.certified
    assert result.gap_bound == 0.0
    assert result.objective == dense_optimum(orders, fleet, weights, 1, 3600.0)


def test_surge_with_capacity_reaches_the_dense_optimum() -> None:
    orders, fleet = surge_batch(4, 90, 60, ratio=8.0)
    weights = CostWeights.travel_only()
    result = match(orders, fleet, weights=weights, travel=TRAVEL, now=NOW, capacity=2)
    assert result.certified
    assert_valid(result, orders, fleet, 2, 3600.0)
    assert result.objective == dense_optimum(orders, fleet, weights, 2, 3600.0)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 100_000),
    n=st.integers(2, 30),
    m=st.integers(1, 30),
    k=st.integers(1, 3),
    surge=st.booleans(),
    capacity=st.sampled_from([1, 1, 2]),
)
def test_gap_bound_never_undercuts_the_true_gap(
    seed: int, n: int, m: int, k: int, surge: bool, capacity: int
) -> None:
    # A budget far below one round stops after the first: the answer is the first graph's
    # optimum, often not the true one, and the bound must still cover the distance.
    if surge:
        orders, fleet = surge_batch(seed, n, m, constrained=True)
    else:
        orders, fleet = random_batch(seed, n, m)
    weights = CostWeights.travel_only(unassigned=1200.0)
    result = match(
        orders,
        fleet,
        weights=weights,
        travel=TRAVEL,
        now=NOW,
        candidates_per_order=k,
        capacity=capacity,
        dense_pairs=0,
        budget_s=1e-9,
    )
    assert_valid(result, orders, fleet, capacity, 3600.0)
    best = dense_optimum(orders, fleet, weights, capacity, 3600.0)
    true_gap = (result.objective - best) / best
    assert result.gap_bound >= true_gap - 1e-12
    assert result.gap_bound >= 0.0
    if result.certified:
        assert result.objective == best
        assert result.gap_bound == 0.0
    else:
        assert any("time budget" in w for w in result.warnings)


def test_budget_stops_early_with_a_bound_and_a_warning() -> None:
    orders, fleet = surge_batch(2, 200, 500, ratio=8.0)
    weights = CostWeights.travel_only()
    full = match(orders, fleet, weights=weights, travel=TRAVEL, now=NOW, dense_pairs=0)
    cut = match(
        orders, fleet, weights=weights, travel=TRAVEL, now=NOW, dense_pairs=0, budget_s=1e-9
    )
    assert full.certified
    assert full.gap_bound == 0.0
    assert cut.rounds == 1
    assert cut.objective >= full.objective
    if not cut.certified:
        assert math.isfinite(cut.gap_bound)
        assert cut.gap_bound >= (cut.objective - full.objective) / full.objective
    roomy = match(
        orders, fleet, weights=weights, travel=TRAVEL, now=NOW, dense_pairs=0, budget_s=600.0
    )
    assert roomy.certified
    assert roomy.objective == full.objective


def test_gap_bound_is_zero_when_certified_and_infinite_when_not_certifying() -> None:
    orders, fleet = random_batch(3, 20, 40)
    assert match(orders, fleet, travel=TRAVEL, now=NOW).gap_bound == 0.0  # dense path
    assert match(orders, fleet, travel=TRAVEL, now=NOW, dense_pairs=0).gap_bound == 0.0
    unchecked = match(orders, fleet, travel=TRAVEL, now=NOW, certify=False)
    assert unchecked.gap_bound == math.inf


@pytest.mark.parametrize("budget", [0, -1.0, math.nan, math.inf, True, "1"])
def test_bad_budget(budget: object) -> None:
    orders, fleet = random_batch(0, 3, 3)
    with pytest.raises(InvalidInput, match="budget_s"):
        match(orders, fleet, travel=TRAVEL, now=NOW, budget_s=budget)  # type: ignore[arg-type]


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 100_000),
    at=st.integers(NOW - 86_400, NOW + 86_400),
    max_travel_s=st.sampled_from([600.0, 1800.0, 3600.0, 7200.0]),
)
def test_window_speed_bounds_every_eligible_trip(seed: int, at: int, max_travel_s: float) -> None:
    # The reserve's cost bounds and the gap bound divide distance by this speed: no trip
    # within the travel bound, leaving at ``at``, may be faster (straight-line).
    from dispatch.assign.solve import window_speed_mps
    from dispatch.candidates import CandidateSearch, fleet_index, pair_travel_s
    from geo.projection import haversine_m

    orders, fleet = random_batch(seed, 30, 40, spread=0.3)
    search = CandidateSearch(
        orders, fleet, TRAVEL, at, index=fleet_index(fleet), max_travel_s=max_travel_s
    )
    speed = window_speed_mps(search)
    assert 0 < speed <= search.speed_mps
    o = np.repeat(np.arange(30, dtype=np.int64), 40)
    w = np.tile(np.arange(40, dtype=np.int64), 30)
    ok = fleet.available[w]
    o, w = o[ok], w[ok]
    t = pair_travel_s(TRAVEL, orders, fleet, o, w, at)
    d = haversine_m(orders.lat[o], orders.lng[o], fleet.lat[w], fleet.lng[w])
    within = t <= max_travel_s
    assert (d[within] <= speed * t[within] * (1 + 1e-9) + 1e-6).all()

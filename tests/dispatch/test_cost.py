"""CostWeights validation and the per-term cost breakdown."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dispatch.cost import (
    COST_SCALE,
    TERMS,
    CostWeights,
    pair_costs,
    pair_total_int,
    to_int,
    unassigned_penalty,
)
from dispatch.errors import InvalidInput
from dispatch.model import Fleet, OrderBatch

NOW = 1_767_578_400


@pytest.mark.parametrize(
    "name", ["travel_per_s", "rating_per_star", "fairness_per_order", "unassigned"]
)
def test_negative_weight_names_field(name: str) -> None:
    with pytest.raises(InvalidInput, match=name):
        CostWeights(**{name: -1.0})


def test_non_finite_and_non_numeric_weights() -> None:
    with pytest.raises(InvalidInput, match="priority"):
        CostWeights(priority=math.nan)
    with pytest.raises(InvalidInput, match="reputation"):
        CostWeights(reputation="high")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="unassigned"):
        CostWeights(unassigned=0.0)


def test_weights_are_frozen() -> None:
    weights = CostWeights()
    with pytest.raises(AttributeError):
        weights.travel_per_s = 2.0  # type: ignore[misc]


def _batch() -> tuple[OrderBatch, Fleet]:
    orders = OrderBatch.from_arrays(
        [10, 11],
        [31.2, 31.2],
        [121.4, 121.4],
        priority=[0.0, 2.0],
        preferred_worker_id=[2, -1],
        latest_start_s=[NOW + 700, NOW + 100_000],
    )
    fleet = Fleet.from_arrays(
        [1, 2],
        [31.2, 31.2],
        [121.4, 121.4],
        rating=[4.0, 5.0],
        reputation=[0.5, 1.0],
        load_today=[3, 0],
        recent_earnings_fen=[20_000, 0],
    )
    return orders, fleet


def test_terms_sum_to_total_and_follow_their_features() -> None:
    orders, fleet = _batch()
    weights = CostWeights(fairness_per_100_yuan=5.0)
    o = np.array([0, 0, 1, 1])
    w = np.array([0, 1, 0, 1])
    travel = np.array([300.0, 200.0, 50.0, 80.0])
    costs = pair_costs(weights, orders, fleet, o, w, travel, NOW)
    summed = sum(costs.terms[t] for t in TERMS)
    np.testing.assert_allclose(summed, costs.total)
    np.testing.assert_array_equal(costs.total_int, to_int(costs.total))
    np.testing.assert_allclose(costs.terms["travel"], travel)
    assert costs.terms["rating"][0] == pytest.approx(weights.rating_per_star * 1.0)
    assert costs.terms["reputation"][0] == pytest.approx(weights.reputation * 0.5)
    raw, cap = 3 * weights.fairness_per_order + 2 * 5.0, weights.fairness_cap * weights.unassigned
    assert costs.terms["fairness"][0] == pytest.approx(cap * math.tanh(raw / cap))
    assert costs.terms["member_priority"].tolist() == [0.0, 0.0, -600.0, -600.0]
    assert costs.terms["preferred_worker"].tolist() == [0.0, -600.0, 0.0, 0.0]
    # Order 10 must start within 700 s: 300 s travel leaves 400 s slack, 200 s under the window.
    assert costs.terms["lateness_risk"][0] == pytest.approx(200.0)
    assert costs.terms["lateness_risk"][1] == pytest.approx(100.0)
    assert costs.terms["lateness_risk"][2] == 0.0


def test_travel_only_is_pure_travel() -> None:
    orders, fleet = _batch()
    o = np.array([0, 1])
    w = np.array([0, 1])
    travel = np.array([123.4, 56.7])
    costs = pair_costs(CostWeights.travel_only(), orders, fleet, o, w, travel, NOW)
    np.testing.assert_allclose(costs.total, travel)
    assert costs.total_int.tolist() == [1234, 567]


def test_unassigned_penalty_in_solver_units() -> None:
    assert unassigned_penalty(CostWeights(unassigned=90.0), 3).tolist() == [90 * COST_SCALE] * 3


def test_fairness_saturates_below_its_cap() -> None:
    weights = CostWeights()
    cap = weights.fairness_cap * weights.unassigned
    loads = [0, 1, 10, 120, 1000]
    orders = OrderBatch.from_arrays([1], [31.2], [121.4])
    fleet = Fleet.from_arrays(np.arange(5), [31.2] * 5, [121.4] * 5, load_today=loads)
    idx = np.arange(5, dtype=np.int64)
    fair = pair_costs(weights, orders, fleet, np.zeros(5, np.int64), idx, np.zeros(5), NOW)
    f = fair.terms["fairness"]
    assert f[0] == 0.0
    assert f[1] == pytest.approx(weights.fairness_per_order, rel=1e-3)  # linear while small
    assert (np.diff(f) > 0).all()
    assert f.max() <= cap < weights.unassigned
    with pytest.raises(InvalidInput, match="fairness_cap"):
        CostWeights(fairness_cap=1.0)


def test_unassigned_penalty_grows_with_urgency_faster_than_lateness_risk() -> None:
    weights = CostWeights()
    slack = np.array([100_000, 5000, 2000, 900, 500, 100])
    orders = OrderBatch.from_arrays(
        np.arange(6), [31.2] * 6, [121.4] * 6, latest_start_s=NOW + slack
    )
    fleet = Fleet.from_arrays([1], [31.2], [121.4])
    pen = unassigned_penalty(weights, 6, orders, NOW, 3600.0)
    assert pen[0] == weights.unassigned * COST_SCALE
    for travel in (0.0, 300.0, 3000.0):
        late = pair_costs(
            weights, orders, fleet, np.arange(6), np.zeros(6, np.int64), np.full(6, travel), NOW
        ).terms["lateness_risk"]
        # Penalty minus lateness risk never rises as the order gets more urgent.
        margin = pen / COST_SCALE - late
        assert (np.diff(margin) >= 0).all()
    with pytest.raises(InvalidInput, match="urgency"):
        CostWeights(urgency=0.5)


@pytest.mark.parametrize("travel_only", [False, True])
def test_pair_total_int_equals_pair_costs(travel_only: bool) -> None:
    rng = np.random.default_rng(3)
    n, m, k = 30, 40, 500
    orders = OrderBatch.from_arrays(
        np.arange(n),
        np.full(n, 31.2),
        np.full(n, 121.4),
        priority=rng.choice([0.0, 1.0, 2.5], n),
        preferred_worker_id=np.where(rng.random(n) < 0.5, rng.integers(0, m, n), -1),
        latest_start_s=np.where(rng.random(n) < 0.5, NOW + rng.integers(0, 3000, n), 2**63 - 1),
    )
    fleet = Fleet.from_arrays(
        np.arange(m),
        np.full(m, 31.2),
        np.full(m, 121.4),
        rating=rng.uniform(3, 5, m),
        reputation=rng.random(m),
        load_today=rng.integers(0, 200, m),
        recent_earnings_fen=rng.integers(0, 10**6, m),
    )
    weights = CostWeights.travel_only() if travel_only else CostWeights(fairness_per_100_yuan=7.0)
    o, w = rng.integers(0, n, k), rng.integers(0, m, k)
    t = rng.uniform(0, 3000, k)
    want = pair_costs(weights, orders, fleet, o, w, t, NOW).total_int
    np.testing.assert_array_equal(pair_total_int(weights, orders, fleet, o, w, t, NOW), want)

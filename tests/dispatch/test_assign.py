"""match(): valid, constraint-respecting, equal to the dense optimum, explainable."""

from __future__ import annotations

from typing import cast

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment

from dispatch.assign import DENSE_PAIRS, Assignment, UnassignedReason, match
from dispatch.candidates import hard_constraints, pair_travel_s
from dispatch.cost import TERMS, CostWeights, pair_costs, unassigned_penalty
from dispatch.errors import InvalidInput, UnknownOrder
from dispatch.model import Fleet, OrderBatch
from geo.travel import HaversineTravelModel, TravelTimeModel

NOW = 1_767_578_400
TRAVEL = cast(TravelTimeModel, HaversineTravelModel())
LAT0, LNG0 = 31.23, 121.47


def random_batch(
    seed: int, n: int, m: int, spread: float = 0.03, constrained: bool = True
) -> tuple[OrderBatch, Fleet]:
    """Orders and workers around Shanghai with random skills, scopes, exclusions, shifts."""
    rng = np.random.default_rng(seed)
    extra: dict[str, object] = {}
    fleet_extra: dict[str, object] = {}
    if constrained:
        excluded = [
            rng.choice(m, size=rng.integers(0, min(m, 2) + 1), replace=False) + 1000
            for _ in range(n)
        ]
        extra = {
            "required_skills": rng.integers(0, 4, n),
            "priority": rng.choice([0.0, 0.0, 1.0, 2.0], n),
            "preferred_worker_id": np.where(rng.random(n) < 0.3, rng.integers(0, m, n) + 1000, -1),
            "enterprise_id": np.where(rng.random(n) < 0.2, rng.integers(0, 2, n), -1),
            "excluded_worker_ids": excluded,
            "latest_start_s": NOW + rng.integers(300, 4000, n),
        }
        fleet_extra = {
            "available": rng.random(m) < 0.9,
            "skills": rng.integers(0, 4, m),
            "rating": rng.uniform(3.0, 5.0, m),
            "reputation": rng.uniform(0.0, 1.0, m),
            "load_today": rng.integers(0, 5, m),
            "enterprise_id": rng.integers(-1, 2, m),
            "shift_end_s": NOW + rng.integers(1800, 9000, m),
            "mode": rng.integers(0, 3, m),
        }
    orders = OrderBatch.from_arrays(
        np.arange(n) + 1,
        LAT0 + rng.uniform(-spread, spread, n),
        LNG0 + rng.uniform(-spread, spread, n),
        **extra,  # type: ignore[arg-type]
    )
    fleet = Fleet.from_arrays(
        np.arange(m) + 1000,
        LAT0 + rng.uniform(-spread, spread, m),
        LNG0 + rng.uniform(-spread, spread, m),
        **fleet_extra,  # type: ignore[arg-type]
    )
    return orders, fleet


def dense_optimum(
    orders: OrderBatch, fleet: Fleet, weights: CostWeights, capacity: int, max_travel_s: float
) -> int:
    """Brute-force objective: every pair costed, workers copied per capacity, LSA."""
    n, m = len(orders), len(fleet)
    o = np.repeat(np.arange(n, dtype=np.int64), m)
    w = np.tile(np.arange(m, dtype=np.int64), n)
    t = pair_travel_s(TRAVEL, orders, fleet, o, w, NOW)
    ok = hard_constraints(orders, fleet, o, w, t, NOW, max_travel_s)[2]
    cost = pair_costs(weights, orders, fleet, o, w, t, NOW).total_int.astype(np.float64)
    penalty = unassigned_penalty(weights, n, orders, NOW, max_travel_s).astype(np.float64)
    cost = np.where(ok, np.minimum(cost, penalty[o]), penalty[o]).reshape(n, m)
    # Order i's own "unassigned" column costs its penalty; the others are forbidden.
    own = np.full((n, n), np.inf)
    np.fill_diagonal(own, penalty)
    full = np.hstack([np.repeat(cost, capacity, axis=1), own])
    rows, cols = linear_sum_assignment(full)
    return int(full[rows, cols].sum())


def assert_valid(
    result: Assignment, orders: OrderBatch, fleet: Fleet, capacity: int, max_travel_s: float
) -> None:
    assert len(set(result.order_ids.tolist())) == result.assigned
    assert set(result.order_ids.tolist()).isdisjoint(result.unassigned_order_ids.tolist())
    assert result.assigned + result.unassigned_order_ids.size == len(orders)
    _, per_worker = np.unique(result.worker_ids, return_counts=True)
    assert (per_worker <= capacity).all()
    o = np.searchsorted(orders.ids, result.order_ids)
    w = fleet.rows_of(result.worker_ids)
    t = pair_travel_s(TRAVEL, orders, fleet, o, w, NOW)
    assert hard_constraints(orders, fleet, o, w, t, NOW, max_travel_s)[2].all()


@settings(max_examples=40)
@given(
    seed=st.integers(0, 100_000),
    n=st.integers(1, 12),
    m=st.integers(1, 15),
    capacity=st.sampled_from([1, 1, 2]),
    travel_only=st.booleans(),
    dense_pairs=st.sampled_from([0, DENSE_PAIRS]),
)
def test_matches_dense_optimum_and_respects_constraints(
    seed: int, n: int, m: int, capacity: int, travel_only: bool, dense_pairs: int
) -> None:
    orders, fleet = random_batch(seed, n, m)
    weights = (
        CostWeights.travel_only(unassigned=900.0) if travel_only else CostWeights(unassigned=1500.0)
    )
    result = match(
        orders,
        fleet,
        weights=weights,
        travel=TRAVEL,
        now=NOW,
        candidates_per_order=m,
        capacity=capacity,
        max_travel_s=1800.0,
        dense_pairs=dense_pairs,
    )
    assert result.solver == "dense" if dense_pairs else result.solver != "dense"
    assert_valid(result, orders, fleet, capacity, 1800.0)
    assert result.objective == dense_optimum(orders, fleet, weights, capacity, 1800.0)
    assert result.certified


@settings(max_examples=15)
@given(seed=st.integers(0, 100_000), k=st.integers(1, 3))
def test_certification_reaches_dense_optimum_from_few_candidates(seed: int, k: int) -> None:
    # Crowded orders with K far below what they need: only the dual-price loop can widen.
    orders, fleet = random_batch(seed, 25, 30, constrained=False)
    weights = CostWeights.travel_only(unassigned=1200.0)
    result = match(
        orders,
        fleet,
        weights=weights,
        travel=TRAVEL,
        now=NOW,
        candidates_per_order=k,
        dense_pairs=0,
    )
    assert result.certified
    assert result.objective == dense_optimum(orders, fleet, weights, 1, 3600.0)


def test_flow_and_lapjv_reach_the_same_optimum() -> None:
    for seed in range(5):
        orders, fleet = random_batch(seed, 40, 60)
        a = match(orders, fleet, travel=TRAVEL, now=NOW, solver="flow", candidates_per_order=4)
        b = match(orders, fleet, travel=TRAVEL, now=NOW, solver="lapjv", candidates_per_order=4)
        assert a.solver == "flow"
        assert b.solver == "lapjv"
        assert a.objective == b.objective
        assert a.certified
        assert b.certified


def test_explain_itemises_chosen_and_alternatives() -> None:
    orders, fleet = random_batch(7, 20, 60, constrained=False)
    fleet = Fleet.from_arrays(
        fleet.ids, fleet.lat, fleet.lng, rating=np.linspace(3, 5, 60), load_today=np.arange(60) % 4
    )
    result = match(orders, fleet, travel=TRAVEL, now=NOW, candidates_per_order=2)
    for oid in result.order_ids.tolist():
        why = result.explain(oid)
        assert why.chosen is not None
        assert why.chosen.worker_id == result.worker_of(oid)
        assert len(why.alternatives) >= 2
        i = int(np.flatnonzero(result.order_ids == oid)[0])
        assert why.chosen.total == pytest.approx(result.cost[i])
        for line in (why.chosen, *why.alternatives):
            assert set(line.terms) == set(TERMS)
            assert sum(line.terms.values()) == pytest.approx(line.total)
        # Alternatives are sorted, and each cheaper one went to another order.
        totals = [a.total for a in why.alternatives]
        assert totals == sorted(totals)
        for alt in why.alternatives:
            if alt.total < why.chosen.total - 1e-6:
                assert alt.assigned_to_order_id is not None
    with pytest.raises(UnknownOrder):
        result.explain(-5)


def test_unassigned_reasons() -> None:
    orders = OrderBatch.from_arrays(
        [1, 2, 3, 4],
        [LAT0, LAT0 + 1.0, LAT0, LAT0],
        [LNG0, LNG0, LNG0, LNG0],
        required_skills=[0, 0, 0b10, 0],
        enterprise_id=[-1, -1, -1, 9],
    )
    fleet = Fleet.from_arrays([100], [LAT0 + 0.001], [LNG0], skills=[0b01])
    result = match(orders, fleet, travel=TRAVEL, now=NOW)
    reasons = dict(
        zip(result.unassigned_order_ids.tolist(), result.unassigned_reasons, strict=True)
    )
    assert result.worker_of(1) == 100
    assert reasons == {
        2: UnassignedReason.NO_WORKER_IN_RANGE,
        3: UnassignedReason.NO_SKILLED_WORKER,
        4: UnassignedReason.NOT_ELIGIBLE,
    }
    two = OrderBatch.from_arrays([1, 2], [LAT0, LAT0 + 0.002], [LNG0, LNG0])
    outbid = match(two, fleet, travel=TRAVEL, now=NOW)
    assert outbid.unassigned_reasons == (UnassignedReason.OUTBID,)
    assert outbid.explain(int(outbid.unassigned_order_ids[0])).reason == "outbid"


def test_capacity_lets_one_worker_take_several() -> None:
    orders = OrderBatch.from_arrays([1, 2, 3], [LAT0] * 3, [LNG0] * 3)
    fleet = Fleet.from_arrays([100, 101], [LAT0 + 0.001, LAT0 + 0.02], [LNG0, LNG0])
    one = match(orders, fleet, travel=TRAVEL, now=NOW, weights=CostWeights.travel_only())
    three = match(
        orders,
        fleet,
        travel=TRAVEL,
        now=NOW,
        capacity=3,
        weights=CostWeights.travel_only(),
        dense_pairs=0,
    )
    assert sorted(one.worker_ids.tolist()) == [100, 101]
    assert three.worker_ids.tolist() == [100, 100, 100]
    assert three.solver == "flow"


def test_preferred_worker_wins_when_close_enough() -> None:
    orders = OrderBatch.from_arrays([1], [LAT0], [LNG0], preferred_worker_id=[101])
    fleet = Fleet.from_arrays([100, 101], [LAT0 + 0.001, LAT0 + 0.01], [LNG0, LNG0])
    assert match(orders, fleet, travel=TRAVEL, now=NOW).worker_of(1) == 101
    plain = match(orders, fleet, travel=TRAVEL, now=NOW, weights=CostWeights.travel_only())
    assert plain.worker_of(1) == 100


def test_skipping_certification_warns() -> None:
    orders, fleet = random_batch(1, 10, 20)
    result = match(orders, fleet, travel=TRAVEL, now=NOW, certify=False)
    assert not result.certified
    assert any("certification skipped" in w for w in result.warnings)


def test_empty_inputs() -> None:
    orders, fleet = random_batch(1, 3, 3)
    empty_fleet = Fleet.from_arrays([], [], [])
    result = match(orders, empty_fleet, travel=TRAVEL, now=NOW)
    assert result.assigned == 0
    assert set(result.unassigned_reasons) == {"no_worker_in_range"}
    none = match(OrderBatch.from_arrays([], [], []), fleet, travel=TRAVEL, now=NOW)
    assert none.assigned == 0
    assert none.certified


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"capacity": 0}, "capacity"),
        ({"solver": "simplex"}, "solver"),
        ({"solver": "lapjv", "capacity": 2}, "capacity"),
        ({"candidates_per_order": 0}, "candidates_per_order"),
        ({"max_travel_s": float("nan")}, "max_travel_s"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], pattern: str) -> None:
    orders, fleet = random_batch(1, 3, 3)
    with pytest.raises(InvalidInput, match=pattern):
        match(orders, fleet, travel=TRAVEL, now=NOW, **kwargs)  # type: ignore[arg-type]


def test_why_not_names_the_failed_rule_or_itemises_the_cost() -> None:
    orders = OrderBatch.from_arrays(
        [1, 2], [LAT0, LAT0 + 0.0005], [LNG0, LNG0], required_skills=[0b1, 0b1]
    )
    fleet = Fleet.from_arrays(
        [100, 101, 102], [LAT0 + 0.0003, LAT0 + 0.003, LAT0], [LNG0] * 3, skills=[1, 1, 0]
    )
    result = match(orders, fleet, travel=TRAVEL, now=NOW, weights=CostWeights.travel_only())
    assert result.why_not(1, 102).blocked_by == "skills"
    loser = 1 if result.worker_of(1) == 101 else 2
    answer = result.why_not(loser, 100)
    assert answer.blocked_by is None
    assert answer.line is not None
    assert answer.chosen is not None
    assert answer.line.total < answer.chosen.total  # closer, but needed by the other order
    assert answer.line.assigned_to_order_id == 3 - loser


@settings(max_examples=10)
@given(seed=st.integers(0, 100_000))
def test_why_not_agrees_with_hard_constraints(seed: int) -> None:
    orders, fleet = random_batch(seed, 6, 8)
    result = match(orders, fleet, travel=TRAVEL, now=NOW, max_travel_s=1800.0)
    o = np.repeat(np.arange(6, dtype=np.int64), 8)
    w = np.tile(np.arange(8, dtype=np.int64), 6)
    t = pair_travel_s(TRAVEL, orders, fleet, o, w, NOW)
    ok = hard_constraints(orders, fleet, o, w, t, NOW, 1800.0)[2]
    for i in range(o.size):
        answer = result.why_not(int(orders.ids[o[i]]), int(fleet.ids[w[i]]))
        assert (answer.blocked_by is None) == bool(ok[i])


def test_dual_prices_prove_optimal_and_reject_suboptimal_choices() -> None:
    from dispatch._solvers import Arcs, dual_prices

    arc_order = np.array([0, 0, 1, 1], dtype=np.int64)
    arc_worker = np.array([0, 1, 0, 1], dtype=np.int64)
    arc_cost = np.array([1, 10, 10, 1], dtype=np.int64)
    penalty = np.array([50, 50], dtype=np.int64)
    good = np.array([0, 3], dtype=np.int64)
    arcs = Arcs(2, 2, arc_order, arc_worker, arc_cost, penalty)
    u, v, ok = dual_prices(arcs, 1, good)
    assert ok
    assert (arc_cost - u[arc_order] + v[arc_worker] >= 0).all()
    assert int(u.sum()) - int(v.sum()) == 2  # strong duality: equals the primal cost
    swapped = np.array([1, 2], dtype=np.int64)
    assert not dual_prices(arcs, 1, swapped)[2]
    idle = np.array([-1, 3], dtype=np.int64)  # order 0 left out though worker 0 is free
    assert not dual_prices(arcs, 1, idle)[2]


@pytest.mark.parametrize("dense_pairs", [0, DENSE_PAIRS])
def test_busy_idle_worker_is_better_than_leaving_the_order_unassigned(dense_pairs: int) -> None:
    # 200 orders served today x 30 s used to cost 6000 s > the 3600 s penalty.
    orders = OrderBatch.from_arrays([1], [LAT0], [LNG0 + 0.01])
    fleet = Fleet.from_arrays([7], [LAT0], [LNG0], load_today=[200])
    weights = CostWeights()
    result = match(orders, fleet, weights=weights, travel=TRAVEL, now=NOW, dense_pairs=dense_pairs)
    assert result.worker_of(1) == 7
    assert result.certified
    line = result.explain(1).chosen
    assert line is not None
    assert line.terms["fairness"] < CostWeights().fairness_cap * CostWeights().unassigned


@pytest.mark.parametrize("dense_pairs", [0, DENSE_PAIRS])
def test_urgent_order_wins_a_contested_worker(dense_pairs: int) -> None:
    # Same place, one worker: the order near its latest start must win it (row 1, so row
    # order alone would not pick it).
    orders = OrderBatch.from_arrays(
        [1, 2],
        [LAT0, LAT0],
        [LNG0 + 0.01, LNG0 + 0.01],
        latest_start_s=[NOW + 20_000, NOW + 700],
    )
    fleet = Fleet.from_arrays([7], [LAT0], [LNG0])
    weights = CostWeights()
    result = match(orders, fleet, weights=weights, travel=TRAVEL, now=NOW, dense_pairs=dense_pairs)
    assert result.worker_of(2) == 7
    assert result.unassigned_order_ids.tolist() == [1]
    assert result.certified
    assert result.explain(1).unassigned_cost == CostWeights().unassigned
    assert result.explain(2).unassigned_cost > CostWeights().unassigned


@pytest.mark.parametrize("solver", ["lapjv", "flow", "auto"])
def test_exact_ties_go_to_the_oldest_orders(solver: str) -> None:
    orders = OrderBatch.from_arrays(np.arange(10) + 1, [LAT0] * 10, [LNG0 + 0.01] * 10)
    fleet = Fleet.from_arrays([7, 8], [LAT0, LAT0], [LNG0, LNG0])
    result = match(orders, fleet, weights=CostWeights(), travel=TRAVEL, now=NOW, solver=solver)
    assert (result.solver == "dense") == (solver == "auto")
    assert sorted(result.order_ids.tolist()) == [1, 2]
    assert result.certified


def test_tie_break_never_beats_a_strictly_cheaper_assignment() -> None:
    # The youngest order is 0.1 s (one cost unit) closer: it must still be chosen.
    lng = [LNG0 + 0.01] * 9 + [LNG0 + 0.01 - 1e-5]
    orders = OrderBatch.from_arrays(np.arange(10) + 1, [LAT0] * 10, lng)
    fleet = Fleet.from_arrays([7], [LAT0], [LNG0])
    weights = CostWeights.travel_only()
    result = match(orders, fleet, weights=weights, travel=TRAVEL, now=NOW)
    assert result.order_ids.tolist() == [10]


@settings(max_examples=25)
@given(seed=st.integers(0, 100_000), n=st.integers(1, 20), m=st.integers(1, 25))
def test_dense_and_sparse_paths_agree(seed: int, n: int, m: int) -> None:
    orders, fleet = random_batch(seed, n, m)
    weights = CostWeights(unassigned=1500.0)
    dense = match(orders, fleet, weights=weights, travel=TRAVEL, now=NOW)
    sparse = match(orders, fleet, weights=weights, travel=TRAVEL, now=NOW, dense_pairs=0)
    assert dense.solver == "dense"
    assert dense.certified
    assert sparse.certified
    assert dense.objective == sparse.objective
    assert dense.total_cost == pytest.approx(sparse.total_cost)
    assert sorted(dense.unassigned_reasons) == sorted(sparse.unassigned_reasons)
    for oid in orders.ids.tolist():
        a, b = dense.explain(oid), sparse.explain(oid)
        assert a.reason == b.reason
        assert a.unassigned_cost == b.unassigned_cost
        assert len(a.alternatives) == len(b.alternatives)


def test_dense_path_on_empty_inputs() -> None:
    orders, _fleet = random_batch(1, 3, 2)
    none_free = Fleet.from_arrays([1], [LAT0], [LNG0], available=[False])
    result = match(orders, none_free, travel=TRAVEL, now=NOW)
    assert result.solver == "dense"
    assert set(result.unassigned_reasons) == {"no_worker_in_range"}
    assert result.certified


def test_auto_solver_sends_big_parts_to_flow_with_the_same_optimum(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import dispatch._solvers as solvers

    calls: list[str] = []
    real_flow, real_lapjv = solvers.solve_flow, solvers.solve_matching
    monkeypatch.setattr(solvers, "_FLOW_ORDERS", 5)

    def flow(*args: object) -> object:
        calls.append("flow")
        return real_flow(*args)  # type: ignore[arg-type]

    def lapjv(*args: object) -> object:
        calls.append("lapjv")
        return real_lapjv(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(solvers, "solve_flow", flow)
    monkeypatch.setattr(solvers, "solve_matching", lapjv)
    for seed in range(4):
        orders, fleet = random_batch(seed, 60, 80, spread=0.01)
        auto = match(orders, fleet, travel=TRAVEL, now=NOW, dense_pairs=0)
        exact = match(orders, fleet, travel=TRAVEL, now=NOW, solver="lapjv")
        assert auto.objective == exact.objective
        assert auto.certified
    assert "flow" in calls


@settings(max_examples=50)
@given(values=st.lists(st.integers(0, 5000), max_size=300))
def test_compact_equals_unique_with_inverse(values: list[int]) -> None:
    from dispatch._ragged import compact

    arr = np.asarray(values, dtype=np.int64)
    uniq, inverse = compact(arr)
    want_u, want_i = np.unique(arr, return_inverse=True)
    np.testing.assert_array_equal(uniq, want_u)
    np.testing.assert_array_equal(inverse, want_i.reshape(-1))

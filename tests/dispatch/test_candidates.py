"""Candidate search: hard constraints filter pairs; the pool is complete within its radius."""

from __future__ import annotations

from typing import cast

import numpy as np
import pytest

from dispatch.candidates import (
    find_candidates,
    fleet_index,
    hard_constraints,
    pair_travel_s,
    speed_bound_mps,
)
from dispatch.errors import InvalidInput
from dispatch.model import Fleet, OrderBatch
from geo.projection import haversine_m
from geo.travel import HaversineTravelModel, TravelTimeModel

NOW = 1_767_578_400
TRAVEL = cast(TravelTimeModel, HaversineTravelModel())


def _one_order(**kw: object) -> OrderBatch:
    return OrderBatch.from_arrays([1], [31.2], [121.4], **kw)  # type: ignore[arg-type]


def _check(orders: OrderBatch, fleet: Fleet, max_travel_s: float = 3600.0) -> np.ndarray:
    o = np.zeros(len(fleet), dtype=np.int64)
    w = np.arange(len(fleet), dtype=np.int64)
    t = pair_travel_s(TRAVEL, orders, fleet, o, w, NOW)
    return hard_constraints(orders, fleet, o, w, t, NOW, max_travel_s)[2]


def _fleet(n: int = 2, **kw: object) -> Fleet:
    return Fleet.from_arrays(np.arange(n) + 100, [31.201] * n, [121.401] * n, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("order_kw", "fleet_kw"),
    [
        ({}, {"available": [True, False]}),
        ({"required_skills": [0b11]}, {"skills": [0b111, 0b001]}),
        ({"enterprise_id": [7]}, {"enterprise_id": [7, 8]}),
        ({"excluded_worker_ids": [[101]]}, {}),
        ({"service_s": [3600]}, {"shift_end_s": [NOW + 7200, NOW + 3600]}),
    ],
)
def test_each_hard_constraint_excludes_second_worker(
    order_kw: dict[str, object], fleet_kw: dict[str, object]
) -> None:
    assert _check(_one_order(**order_kw), _fleet(2, **fleet_kw)).tolist() == [True, False]


def test_latest_start_and_travel_bound() -> None:
    fleet = Fleet.from_arrays([1, 2], [31.2005, 31.3], [121.4, 121.4])
    assert _check(_one_order(latest_start_s=[NOW + 120]), fleet).tolist() == [True, False]
    assert _check(_one_order(), fleet, max_travel_s=600.0).tolist() == [True, False]


def test_speed_bound_is_an_upper_bound() -> None:
    rng = np.random.default_rng(0)
    fleet = Fleet.from_arrays(
        np.arange(50),
        31.2 + rng.uniform(-0.1, 0.1, 50),
        121.4 + rng.uniform(-0.1, 0.1, 50),
        mode=rng.integers(0, 3, 50),
    )
    orders = _one_order()
    w = np.arange(50, dtype=np.int64)
    t = pair_travel_s(TRAVEL, orders, fleet, np.zeros(50, dtype=np.int64), w, NOW)
    d = haversine_m(31.2, 121.4, fleet.lat, fleet.lng)
    assert (d <= t * speed_bound_mps(TRAVEL, fleet.mode) * 1.001).all()


def test_pool_has_k_eligible_and_is_complete_within_radius() -> None:
    rng = np.random.default_rng(4)
    n, m = 60, 400
    orders = OrderBatch.from_arrays(
        np.arange(n),
        31.2 + rng.uniform(-0.03, 0.03, n),
        121.4 + rng.uniform(-0.03, 0.03, n),
        required_skills=rng.integers(0, 4, n),
    )
    fleet = Fleet.from_arrays(
        np.arange(m) + 1000,
        31.2 + rng.uniform(-0.05, 0.05, m),
        121.4 + rng.uniform(-0.05, 0.05, m),
        skills=rng.integers(0, 4, m),
        available=rng.random(m) < 0.9,
    )
    pool = find_candidates(orders, fleet, TRAVEL, NOW, candidates_per_order=5)
    counts = np.bincount(pool.order_idx, minlength=n)
    assert ((counts >= 5) | (pool.radius_m >= pool.max_radius_m)).all()
    for row in range(n):
        o = np.full(m, row, dtype=np.int64)
        w = np.arange(m, dtype=np.int64)
        t = pair_travel_s(TRAVEL, orders, fleet, o, w, NOW)
        ok = hard_constraints(orders, fleet, o, w, t, NOW, 3600.0)[2]
        d = haversine_m(orders.lat[o], orders.lng[o], fleet.lat, fleet.lng)
        within = set(np.flatnonzero(ok & (d <= pool.radius_m[row])).tolist())
        got = set(pool.worker_idx[pool.order_idx == row].tolist())
        assert within <= got  # complete within the radius
        assert got <= set(np.flatnonzero(ok).tolist())  # and only eligible pairs
        assert len(got) == len(pool.worker_idx[pool.order_idx == row])  # no duplicates


def test_pool_offsets_are_csr() -> None:
    rng = np.random.default_rng(5)
    orders = OrderBatch.from_arrays(
        np.arange(10), 31.2 + rng.uniform(-0.01, 0.01, 10), [121.4] * 10
    )
    fleet = _fleet(30)
    pool = find_candidates(
        orders, fleet, TRAVEL, NOW, index=fleet_index(fleet), candidates_per_order=3
    )
    for row in range(10):
        lo, hi = pool.offsets[row], pool.offsets[row + 1]
        assert (pool.order_idx[lo:hi] == row).all()


def test_bad_parameters() -> None:
    with pytest.raises(InvalidInput, match="candidates_per_order"):
        find_candidates(_one_order(), _fleet(), TRAVEL, NOW, candidates_per_order=0)
    with pytest.raises(InvalidInput, match="max_travel_s"):
        find_candidates(_one_order(), _fleet(), TRAVEL, NOW, max_travel_s=-5.0)


def test_isolated_order_finds_workers_in_few_passes_and_stays_complete() -> None:
    # Every worker 5-10 km north: the order's own cell is empty. 1.6x growth from a
    # few cells took 11 passes; a coarser density and need-based growth take 2.
    rng = np.random.default_rng(0)
    m = 200
    orders = OrderBatch.from_arrays([1], [31.23], [121.47])
    fleet = Fleet.from_arrays(
        np.arange(m), 31.28 + rng.uniform(0, 0.05, m), 121.47 + rng.uniform(-0.05, 0.05, m)
    )
    pool = find_candidates(orders, fleet, TRAVEL, NOW, candidates_per_order=4)
    assert pool.rounds <= 3
    assert pool.n_pairs >= 4
    d = haversine_m(fleet.lat, fleet.lng, np.full(m, 31.23), np.full(m, 121.47))
    inside = set(np.flatnonzero(d <= pool.radius_m[0]).tolist())
    assert inside <= set(pool.worker_idx.tolist())

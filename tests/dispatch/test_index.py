"""WorkerIndex: radius queries equal brute force; moves, batches and removals stay consistent."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatch.errors import DuplicateId, InvalidInput, UnknownWorker
from dispatch.index import WorkerIndex
from geo.projection import haversine_m

LAT0, LNG0 = 31.23, 121.47


def _points(
    rng: np.random.Generator, n: int, spread: float = 0.05
) -> tuple[np.ndarray, np.ndarray]:
    return LAT0 + rng.uniform(-spread, spread, n), LNG0 + rng.uniform(-spread, spread, n)


def _brute(
    index_lat: np.ndarray, index_lng: np.ndarray, lat: float, lng: float, r: float
) -> set[int]:
    return set(np.flatnonzero(haversine_m(lat, lng, index_lat, index_lng) <= r).tolist())


def _assert_disk(
    got: set[int], lat: np.ndarray, lng: np.ndarray, o_lat: float, o_lng: float, r: float
) -> None:
    """Everything within r is found; nothing beyond r by more than the documented slack."""
    assert _brute(lat, lng, o_lat, o_lng, r) <= got
    assert got <= _brute(lat, lng, o_lat, o_lng, r * 1.005 + 1e-6)


@settings(max_examples=30)
@given(
    seed=st.integers(0, 10_000),
    radius=st.floats(0.0, 12_000.0),
    resolution=st.sampled_from([7, 8, 9, 10]),
)
def test_within_equals_brute_force(seed: int, radius: float, resolution: int) -> None:
    rng = np.random.default_rng(seed)
    lat, lng = _points(rng, 400)
    ids = np.arange(400) * 3 + 5
    index = WorkerIndex.from_arrays(ids, lat, lng, resolution=resolution)
    olat, olng = _points(rng, 20)
    origin, slots, dist = index.within(olat, olng, radius)
    for i in range(20):
        got = set(((index.ids_of(slots[origin == i]) - 5) // 3).tolist())
        _assert_disk(got, lat, lng, olat[i], olng[i], radius)
    assert (dist <= radius).all()
    assert (np.diff(origin) >= 0).all()


def test_per_origin_radii() -> None:
    rng = np.random.default_rng(1)
    lat, lng = _points(rng, 300)
    index = WorkerIndex.from_arrays(np.arange(300), lat, lng)
    radii = np.array([0.0, 500.0, 2000.0])
    origin, slots, _ = index.within([LAT0] * 3, [LNG0] * 3, radii)
    for i, r in enumerate(radii):
        _assert_disk(set(index.ids_of(slots[origin == i]).tolist()), lat, lng, LAT0, LNG0, r)


def test_moves_are_seen_by_queries() -> None:
    index = WorkerIndex.from_arrays([1, 2, 3], [LAT0] * 3, [LNG0] * 3)
    far = LAT0 + 0.2
    index.move(2, far, LNG0)
    _, slots, _ = index.within([LAT0], [LNG0], 100.0)
    assert sorted(index.ids_of(slots).tolist()) == [1, 3]
    index.move_many([1, 3, 1], [far, far, LAT0], [LNG0, LNG0, LNG0])  # last ping of 1 wins
    _, slots, _ = index.within([far], [LNG0], 100.0)
    assert sorted(index.ids_of(slots).tolist()) == [2, 3]
    lat, _lng = index.positions([1])
    assert lat[0] == pytest.approx(LAT0)


def test_batch_moves_match_single_moves() -> None:
    rng = np.random.default_rng(2)
    lat, lng = _points(rng, 500)
    ids = np.arange(500) + 100
    a = WorkerIndex.from_arrays(ids, lat, lng)
    b = WorkerIndex.from_arrays(ids, lat, lng)
    who = rng.integers(0, 500, 2000) + 100
    new_lat, new_lng = _points(rng, 2000)
    a.move_many(who, new_lat, new_lng)
    for w, x, y in zip(who.tolist(), new_lat.tolist(), new_lng.tolist(), strict=True):
        b.move(w, x, y)
    np.testing.assert_array_equal(a.cells(ids), b.cells(ids))
    _oa, sa, _ = a.within([LAT0], [LNG0], 1500.0)
    _ob, sb, _ = b.within([LAT0], [LNG0], 1500.0)
    assert sorted(a.ids_of(sa).tolist()) == sorted(b.ids_of(sb).tolist())


def test_remove_and_re_add() -> None:
    index = WorkerIndex.from_arrays([1, 2, 3], [LAT0] * 3, [LNG0] * 3)
    index.remove([2])
    assert len(index) == 2
    _, slots, _ = index.within([LAT0], [LNG0], 10.0)
    assert sorted(index.ids_of(slots).tolist()) == [1, 3]
    with pytest.raises(UnknownWorker):
        index.move(2, LAT0, LNG0)
    index.add([2, 4], [LAT0] * 2, [LNG0] * 2)
    _, slots, _ = index.within([LAT0], [LNG0], 10.0)
    assert sorted(index.ids_of(slots).tolist()) == [1, 2, 3, 4]


def test_typed_errors() -> None:
    index = WorkerIndex.from_arrays([1, 2], [LAT0] * 2, [LNG0] * 2)
    with pytest.raises(DuplicateId, match="2"):
        index.add([2], [LAT0], [LNG0])
    with pytest.raises(UnknownWorker, match="9"):
        index.move_many([1, 9], [LAT0] * 2, [LNG0] * 2)
    with pytest.raises(InvalidInput, match=r"lat\[0\]"):
        index.move_many([1], [np.nan], [LNG0])
    with pytest.raises(InvalidInput, match="resolution"):
        WorkerIndex(resolution=16)
    with pytest.raises(InvalidInput, match="radius_m"):
        index.within([LAT0], [LNG0], -1.0)


def test_disk_covers_requested_radius() -> None:
    index = WorkerIndex()
    radii = np.array([0.0, 10.0, 150.0, 700.0, 5000.0])
    assert (index.covered_radius_m(index.disk_k(radii)) >= radii).all()


def test_density_reflects_crowding() -> None:
    rng = np.random.default_rng(3)
    lat = np.concatenate(
        [LAT0 + rng.normal(0, 0.002, 500), LAT0 + 0.3 + rng.uniform(-0.05, 0.05, 50)]
    )
    lng = np.concatenate([LNG0 + rng.normal(0, 0.002, 500), LNG0 + rng.uniform(-0.05, 0.05, 50)])
    index = WorkerIndex.from_arrays(np.arange(550), lat, lng)
    dense, sparse, empty = index.density_per_m2([LAT0, LAT0 + 0.3, LAT0 - 1.0], [LNG0] * 3)
    assert dense > sparse > empty == 0.0


def test_cell_edge_cache_returns_the_same_edges() -> None:
    import h3.api.basic_int as h3i

    index = WorkerIndex()
    cells = np.asarray(
        [h3i.latlng_to_cell(31.2 + 0.01 * i, 121.4, 9) for i in range(5)], dtype=np.uint64
    )
    first = index._cell_edges(cells[:3])
    again = index._cell_edges(cells[::-1])
    assert again[::-1][:3].tolist() == first.tolist()
    want = [np.sqrt(h3i.cell_area(int(c), "m^2") / 2.598076211353316) for c in cells[::-1]]
    np.testing.assert_allclose(again, want)

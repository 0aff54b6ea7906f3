"""geo.cells against h3-py as the oracle: same cells, typed errors, vectorised shapes."""

from __future__ import annotations

import h3.api.basic_int as h3i
import numpy as np
import pytest
import shapely
from hypothesis import given
from hypothesis import strategies as st
from numpy.typing import NDArray

from geo import cells
from geo.errors import InvalidCoordinate, InvalidParameter, InvalidPolygon, ShapeMismatch

PENTAGONS_RES0 = [h for h in h3i.get_res0_cells() if h3i.is_pentagon(h)]


def oracle(lat: NDArray[np.float64], lng: NDArray[np.float64], res: int) -> NDArray[np.uint64]:
    return np.array(
        [h3i.latlng_to_cell(a, b, res) for a, b in zip(lat.tolist(), lng.tolist(), strict=True)],
        dtype=np.uint64,
    )


def assert_same_cells(lat: NDArray[np.float64], lng: NDArray[np.float64], res: int) -> None:
    got = cells.latlng_to_cells(lat, lng, res)
    want = oracle(lat, lng, res)
    assert isinstance(got, np.ndarray)
    assert got.dtype == np.uint64
    bad = np.flatnonzero(got != want)
    assert bad.size == 0, (
        f"res {res}: {bad.size} mismatches, first at lat={lat[bad[0]]!r} lng={lng[bad[0]]!r}: "
        f"{int(got[bad[0]]):#x} != {int(want[bad[0]]):#x}"
    )


@pytest.fixture(scope="module")
def global_points() -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    rng = np.random.default_rng(20261126)
    n = 20_000
    # Uniform on the sphere, plus exact poles and the antimeridian.
    lat = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, n)))
    lng = rng.uniform(-180.0, 180.0, n)
    lat[:4] = [90.0, -90.0, 0.0, 0.0]
    lng[:4] = [0.0, 0.0, 180.0, -180.0]
    return lat, lng


# --- latlng_to_cells: exactness --------------------------------------------------------------


@pytest.mark.parametrize("res", range(16))
def test_random_global_points_match_h3_at_every_resolution(
    global_points: tuple[NDArray[np.float64], NDArray[np.float64]], res: int
) -> None:
    assert_same_cells(*global_points, res)


@pytest.mark.parametrize("res", [0, 1, 5, 9, 12, 15])
def test_points_around_every_pentagon_match_h3(res: int) -> None:
    rng = np.random.default_rng(res)
    lats, lngs = [], []
    for base in PENTAGONS_RES0:
        for pent_res in (0, 4, 9, 15):
            pent = h3i.cell_to_center_child(base, pent_res)
            clat, clng = h3i.cell_to_latlng(pent)
            edge_deg = np.degrees(h3i.average_hexagon_edge_length(pent_res, "km") / 6371.0)
            for scale in (1e-9, 1e-6, 0.5, 2.0):
                lats.append(clat + rng.normal(0.0, edge_deg * scale, 40))
                lngs.append(clng + rng.normal(0.0, edge_deg * scale, 40))
            lats.append(np.array([clat]))
            lngs.append(np.array([clng]))
    lat = np.clip(np.concatenate(lats), -90.0, 90.0)
    lng = (np.concatenate(lngs) + 180.0) % 360.0 - 180.0
    assert_same_cells(lat, lng, res)


@pytest.mark.parametrize("res", [0, 3, 8, 11, 15])
def test_cell_centres_and_vertices_match_h3(res: int) -> None:
    rng = np.random.default_rng(100 + res)
    seeds = oracle(np.degrees(np.arcsin(rng.uniform(-1, 1, 300))), rng.uniform(-180, 180, 300), res)
    pts = []
    for h in seeds.tolist() + [h3i.cell_to_center_child(p, res) for p in PENTAGONS_RES0]:
        pts.append(h3i.cell_to_latlng(h))
        pts.extend(h3i.cell_to_boundary(h))
    lat, lng = np.array(pts).T
    assert_same_cells(lat, lng, res)


@pytest.mark.parametrize("res", [2, 7, 10, 15])
def test_points_near_icosahedron_face_edges_match_h3(res: int) -> None:
    # Face edges run between pentagon centres (icosahedron vertices); walk along each
    # great-circle arc between neighbouring pentagons and jitter off it by tiny amounts.
    centres = np.array([h3i.cell_to_latlng(p) for p in PENTAGONS_RES0])
    xyz = np.column_stack(
        [
            np.cos(np.radians(centres[:, 0])) * np.cos(np.radians(centres[:, 1])),
            np.cos(np.radians(centres[:, 0])) * np.sin(np.radians(centres[:, 1])),
            np.sin(np.radians(centres[:, 0])),
        ]
    )
    dots = xyz @ xyz.T
    rng = np.random.default_rng(7 + res)
    pts = []
    for i in range(12):
        for j in range(i + 1, 12):
            if dots[i, j] < 0.4:  # only icosahedron edges (neighbouring vertices, ~63.4 deg)
                continue
            t = rng.uniform(0.0, 1.0, 60)
            p = xyz[i][None, :] * (1 - t)[:, None] + xyz[j][None, :] * t[:, None]
            p += rng.normal(0.0, 1.0, p.shape) * rng.choice([0.0, 1e-15, 1e-12, 1e-9], 60)[:, None]
            pts.append(p / np.linalg.norm(p, axis=1, keepdims=True))
    p = np.concatenate(pts)
    lat = np.degrees(np.arcsin(np.clip(p[:, 2], -1, 1)))
    lng = np.degrees(np.arctan2(p[:, 1], p[:, 0]))
    assert len(lat) >= 30 * 60
    assert_same_cells(lat, lng, res)


@pytest.mark.parametrize("res", [0, 1, 8, 14, 15])
def test_points_near_icosahedron_face_centres_match_h3(res: int) -> None:
    # Face centres are where H3's own acos/azimuth lose digits; points a hair away
    # must still land in h3's cell. The centres are the normalised means of each
    # face's three vertices (pentagon centres).
    centres = np.array([h3i.cell_to_latlng(p) for p in PENTAGONS_RES0])
    xyz = np.column_stack(
        [
            np.cos(np.radians(centres[:, 0])) * np.cos(np.radians(centres[:, 1])),
            np.cos(np.radians(centres[:, 0])) * np.sin(np.radians(centres[:, 1])),
            np.sin(np.radians(centres[:, 0])),
        ]
    )
    near = (xyz @ xyz.T) > 0.4
    faces = [
        (i, j, k)
        for i in range(12)
        for j in range(i + 1, 12)
        for k in range(j + 1, 12)
        if near[i, j] and near[j, k] and near[i, k]
    ]
    assert len(faces) == 20
    rng = np.random.default_rng(50 + res)
    pts = []
    for i, j, k in faces:
        centre = xyz[i] + xyz[j] + xyz[k]
        centre /= np.linalg.norm(centre)
        scales = 10.0 ** rng.uniform(-15, -2, 80)
        p = centre[None, :] + rng.normal(0.0, 1.0, (80, 3)) * scales[:, None]
        pts.append(np.vstack([centre, p / np.linalg.norm(p, axis=1, keepdims=True)]))
    p = np.concatenate(pts)
    lat = np.degrees(np.arcsin(np.clip(p[:, 2], -1, 1)))
    lng = np.degrees(np.arctan2(p[:, 1], p[:, 0]))
    assert_same_cells(lat, lng, res)


@pytest.mark.parametrize("res", [0, 6, 13, 15])
def test_points_near_poles_and_antimeridian_match_h3(res: int) -> None:
    rng = np.random.default_rng(31 + res)
    n = 2000
    eps = 10.0 ** rng.uniform(-13, -1, n)
    lat = np.concatenate([90.0 - eps, -90.0 + eps, rng.uniform(-89.9, 89.9, 2 * n)])
    lng = np.concatenate(
        [
            rng.uniform(-180, 180, 2 * n),
            180.0 - eps,
            -180.0 + eps,
        ]
    )
    assert_same_cells(lat, lng, res)


@given(
    lat=st.floats(-90.0, 90.0, allow_nan=False),
    lng=st.floats(-180.0, 180.0, allow_nan=False),
    res=st.integers(0, 15),
)
def test_scalar_point_matches_h3(lat: float, lng: float, res: int) -> None:
    got = cells.latlng_to_cells(lat, lng, res)
    assert isinstance(got, int)
    assert got == h3i.latlng_to_cell(lat, lng, res)


def test_latlng_to_cells_keeps_shape_and_accepts_lists() -> None:
    lat = np.array([[31.23, 39.9], [22.54, 30.57]])
    lng = np.array([[121.47, 116.4], [114.06, 104.07]])
    got = cells.latlng_to_cells(lat, lng, 9)
    assert isinstance(got, np.ndarray)
    assert got.shape == (2, 2)
    assert got[1, 0] == h3i.latlng_to_cell(22.54, 114.06, 9)
    listed = cells.latlng_to_cells([31.23, 39.9], [121.47, 116.4], 9)
    assert isinstance(listed, np.ndarray)
    np.testing.assert_array_equal(listed, got[0])
    empty = cells.latlng_to_cells(np.empty(0), np.empty(0), 9)
    assert isinstance(empty, np.ndarray)
    assert empty.shape == (0,)
    assert empty.dtype == np.uint64


def test_latlng_to_cells_accepts_non_contiguous_and_float32_views() -> None:
    rng = np.random.default_rng(5)
    pts = rng.uniform(20.0, 40.0, (1000, 2))
    lat, lng = pts[:, 0], pts[:, 1] + 90.0  # strided views
    assert_same_cells(np.ascontiguousarray(lat), np.ascontiguousarray(lng), 10)
    np.testing.assert_array_equal(
        cells.latlng_to_cells(lat, lng, 10), oracle(lat.copy(), lng.copy(), 10)
    )
    lat32 = lat.astype(np.float32)
    np.testing.assert_array_equal(
        cells.latlng_to_cells(lat32, lng, 10), oracle(lat32.astype(np.float64), lng.copy(), 10)
    )


@pytest.mark.parametrize("bad_res", [-1, 16, 2.0, True, "9"])
def test_latlng_to_cells_rejects_bad_resolution(bad_res: object) -> None:
    with pytest.raises(InvalidParameter, match="res"):
        cells.latlng_to_cells(30.0, 120.0, bad_res)  # type: ignore[call-overload]


def test_latlng_to_cells_rejects_bad_points_naming_the_index() -> None:
    with pytest.raises(InvalidCoordinate, match=r"lat\[1\]"):
        cells.latlng_to_cells([30.0, 91.0], [120.0, 120.0], 5)
    with pytest.raises(InvalidCoordinate, match=r"lng\[2\]"):
        cells.latlng_to_cells([30.0, 30.0, 30.0], [120.0, 120.0, np.nan], 5)
    with pytest.raises(ShapeMismatch):
        cells.latlng_to_cells([30.0, 31.0], [120.0], 5)
    with pytest.raises(InvalidCoordinate, match="lat"):
        cells.latlng_to_cells(float("nan"), 120.0, 5)
    with pytest.raises(InvalidCoordinate, match="lng"):
        cells.latlng_to_cells(30.0, -180.5, 5)
    with pytest.raises(InvalidCoordinate, match="finite"):
        cells.latlng_to_cells(10**400, 120, 5)


# --- bit-level helpers --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_cells() -> NDArray[np.uint64]:
    rng = np.random.default_rng(11)
    lat = np.degrees(np.arcsin(rng.uniform(-1, 1, 400)))
    lng = rng.uniform(-180, 180, 400)
    res = rng.integers(0, 16, 400)
    out = [h3i.latlng_to_cell(a, b, int(r)) for a, b, r in zip(lat, lng, res, strict=True)]
    out += [h3i.cell_to_center_child(p, r) for p in PENTAGONS_RES0 for r in (0, 3, 15)]
    return np.array(out, dtype=np.uint64)


def test_get_resolution_matches_h3(sample_cells: NDArray[np.uint64]) -> None:
    got = cells.get_resolution(sample_cells)
    assert isinstance(got, np.ndarray)
    np.testing.assert_array_equal(got, [h3i.get_resolution(int(h)) for h in sample_cells])
    assert cells.get_resolution(int(sample_cells[0])) == h3i.get_resolution(int(sample_cells[0]))


def test_cell_to_parent_matches_h3_at_every_coarser_resolution(
    sample_cells: NDArray[np.uint64],
) -> None:
    fine = sample_cells[cells.get_resolution(sample_cells) == 15]
    assert fine.size > 0
    for res in range(16):
        got = cells.cell_to_parent(fine, res)
        assert isinstance(got, np.ndarray)
        np.testing.assert_array_equal(got, [h3i.cell_to_parent(int(h), res) for h in fine])
    assert cells.cell_to_parent(int(fine[0]), 4) == h3i.cell_to_parent(int(fine[0]), 4)


def test_cell_to_parent_rejects_finer_resolution() -> None:
    h = h3i.latlng_to_cell(31.2, 121.5, 5)
    with pytest.raises(InvalidParameter, match="finer"):
        cells.cell_to_parent([h], 6)


def test_cell_to_children_matches_h3() -> None:
    for h in [h3i.latlng_to_cell(31.2, 121.5, 7), h3i.cell_to_center_child(PENTAGONS_RES0[3], 2)]:
        got = cells.cell_to_children(h, h3i.get_resolution(h) + 2)
        assert got.dtype == np.uint64
        assert set(got.tolist()) == set(h3i.cell_to_children(h, h3i.get_resolution(h) + 2))
        assert np.all(np.diff(got.astype(np.float64)) >= 0)
    with pytest.raises(InvalidParameter, match="coarser"):
        cells.cell_to_children(h3i.latlng_to_cell(31.2, 121.5, 7), 6)


def test_is_valid_cell_matches_h3_on_random_and_corrupted_indexes(
    sample_cells: NDArray[np.uint64],
) -> None:
    rng = np.random.default_rng(3)
    random_ints = rng.integers(0, 2**63, 20_000, dtype=np.uint64)
    bits = np.uint64(1) << np.arange(64, dtype=np.uint64)
    flipped = (sample_cells[:, None] ^ bits[None, :]).reshape(-1)
    # Pentagons whose first non-zero digit is 1 are invalid (the deleted K sub-sequence).
    pent_k = [h3i.cell_to_center_child(p, 3) | (1 << (3 * 12)) for p in PENTAGONS_RES0]
    candidates = np.concatenate([random_ints, flipped, sample_cells, np.array(pent_k, np.uint64)])
    got = cells.is_valid_cell(candidates)
    assert isinstance(got, np.ndarray)
    want = np.array([h3i.is_valid_cell(int(h)) for h in candidates])
    np.testing.assert_array_equal(got, want)
    # the pure-numpy rules used when the extension is missing agree as well
    np.testing.assert_array_equal(cells._valid_mask_numpy(candidates), want)
    assert want.sum() > sample_cells.size  # the corrupted set holds both valid and invalid
    assert cells.is_valid_cell(0) is False
    assert cells.is_valid_cell(int(sample_cells[0])) is True


def test_invalid_cells_raise_naming_the_index() -> None:
    good = h3i.latlng_to_cell(31.2, 121.5, 9)
    with pytest.raises(cells.InvalidCell, match=r"cells\[1\].*0x0"):
        cells.get_resolution(np.array([good, 0], dtype=np.uint64))
    with pytest.raises(cells.InvalidCell, match=r"cells\[0\]"):
        cells.cell_to_parent([-5], 3)
    with pytest.raises(InvalidParameter):  # InvalidCell is an InvalidParameter and a ValueError
        cells.grid_disk(123, 1)
    with pytest.raises(ValueError, match="cell"):
        cells.cells_to_latlng(["nope"])


# --- centres, boundaries, grid ------------------------------------------------------------------


def test_cells_to_latlng_and_boundary_match_h3(sample_cells: NDArray[np.uint64]) -> None:
    lat, lng = cells.cells_to_latlng(sample_cells)
    want = np.array([h3i.cell_to_latlng(int(h)) for h in sample_cells])
    np.testing.assert_array_equal(lat, want[:, 0])
    np.testing.assert_array_equal(lng, want[:, 1])
    for h in [*sample_cells[:20].tolist(), h3i.cell_to_center_child(PENTAGONS_RES0[0], 4)]:
        blat, blng = cells.cell_to_boundary(h)
        np.testing.assert_array_equal(np.column_stack([blat, blng]), h3i.cell_to_boundary(h))


def test_grid_disk_ring_and_distance_match_h3() -> None:
    origin = h3i.latlng_to_cell(39.9, 116.4, 9)
    pent = h3i.cell_to_center_child(PENTAGONS_RES0[5], 6)
    for h in (origin, pent):
        for k in (0, 1, 3):
            disk = cells.grid_disk(h, k)
            assert disk.dtype == np.uint64
            assert set(disk.tolist()) == set(h3i.grid_disk(h, k))
            ring = cells.grid_ring(h, k)
            assert set(ring.tolist()) == set(h3i.grid_ring(h, k))
    disk = cells.grid_disk(origin, 4)
    dist = cells.grid_distance(origin, disk)
    assert isinstance(dist, np.ndarray)
    np.testing.assert_array_equal(dist, [h3i.grid_distance(origin, int(h)) for h in disk])
    assert dist.max() == 4
    far = h3i.latlng_to_cell(-33.9, 151.2, 9)
    assert cells.grid_distance(origin, far) == -1  # too far for H3's local IJ: -1, not a crash
    with pytest.raises(InvalidParameter, match="k must"):
        cells.grid_disk(origin, -1)


def test_grid_disks_is_the_concatenation_of_grid_disk() -> None:
    rng = np.random.default_rng(9)
    origins = cells.latlng_to_cells(rng.uniform(22, 40, 50), rng.uniform(104, 122, 50), 8)
    assert isinstance(origins, np.ndarray)
    origins = np.append(origins, np.uint64(h3i.cell_to_center_child(PENTAGONS_RES0[1], 8)))
    flat, offsets = cells.grid_disks(origins, 2)
    assert offsets.shape == (origins.size + 1,)
    assert offsets[0] == 0
    assert offsets[-1] == flat.size
    for i, h in enumerate(origins.tolist()):
        np.testing.assert_array_equal(flat[offsets[i] : offsets[i + 1]], cells.grid_disk(h, 2))
    empty_flat, empty_offsets = cells.grid_disks(np.empty(0, np.uint64), 1)
    assert empty_flat.size == 0
    np.testing.assert_array_equal(empty_offsets, [0])


# --- polygons -----------------------------------------------------------------------------------


@pytest.mark.parametrize("contain", ["center", "full", "overlap"])
def test_polygon_to_cells_matches_h3_shape_fill(contain: str) -> None:
    # A Shanghai-sized area with a hole, and a second island (MultiPolygon).
    outer = [(121.3, 31.1), (121.6, 31.1), (121.6, 31.35), (121.3, 31.35)]
    hole = [(121.4, 31.2), (121.45, 31.2), (121.45, 31.25), (121.4, 31.25)]
    island = shapely.Polygon([(121.7, 31.4), (121.8, 31.4), (121.75, 31.5)])
    geom = shapely.MultiPolygon([shapely.Polygon(outer, [hole]), island])
    got = cells.polygon_to_cells(geom, 8, contain=contain)  # type: ignore[arg-type]
    shape = h3i.geo_to_h3shape(geom.__geo_interface__)
    want = set(h3i.h3shape_to_cells_experimental(shape, 8, contain=contain))
    assert got.dtype == np.uint64
    assert set(got.tolist()) == want
    assert len(want) > 100
    lat, lng = cells.cells_to_latlng(got)
    # The fill lies where the polygon is, with lat/lng not swapped.
    assert 31.0 < lat.mean() < 31.5
    assert 121.2 < lng.mean() < 121.9


def test_polygon_containment_modes_nest() -> None:
    poly = shapely.Polygon([(116.2, 39.8), (116.5, 39.8), (116.5, 40.0), (116.2, 40.0)])
    full = set(cells.polygon_to_cells(poly, 7, contain="full").tolist())
    centre = set(cells.polygon_to_cells(poly, 7).tolist())
    overlap = set(cells.polygon_to_cells(poly, 7, contain="overlap").tolist())
    assert full < centre < overlap


def test_polygon_to_cells_rejects_bad_input() -> None:
    poly = shapely.Polygon([(116.2, 39.8), (116.5, 39.8), (116.5, 40.0)])
    with pytest.raises(InvalidParameter, match="contain"):
        cells.polygon_to_cells(poly, 7, contain="bbox")  # type: ignore[arg-type]
    with pytest.raises(InvalidParameter, match="res"):
        cells.polygon_to_cells(poly, 16)
    with pytest.raises(InvalidPolygon, match="Polygon"):
        cells.polygon_to_cells(shapely.Point(116.2, 39.8), 7)
    with pytest.raises(InvalidCoordinate, match="bounds"):
        cells.polygon_to_cells(shapely.Polygon([(0, 0), (400, 0), (0, 10)]), 3)
    assert cells.polygon_to_cells(shapely.Polygon(), 7).size == 0


# --- compiled path, threads and the pure fallback -----------------------------------------------


def test_pure_fallback_gives_the_same_cells(
    monkeypatch: pytest.MonkeyPatch,
    global_points: tuple[NDArray[np.float64], NDArray[np.float64]],
) -> None:
    lat, lng = global_points[0][:3000], global_points[1][:3000]
    fast = {res: cells.latlng_to_cells(lat, lng, res) for res in (0, 9, 15)}
    origins = np.append(fast[9][:200], np.uint64(h3i.cell_to_center_child(PENTAGONS_RES0[2], 9)))
    fast_centres = cells.cells_to_latlng(fast[15][:500].reshape(20, 25))
    fast_disks = cells.grid_disks(origins, 3)
    far = np.uint64(h3i.latlng_to_cell(-33.9, 151.2, 9))
    # each origin against the last cell of its own disk, and one pair too far apart
    flat, offsets = fast_disks
    pairs_b = np.append(flat[offsets[1:-1] - 1], far)
    fast_distances = cells.grid_distance(origins, pairs_b)
    assert fast_distances[-1] == -1
    assert ((fast_distances[:-1] >= 1) & (fast_distances[:-1] <= 3)).all()
    monkeypatch.setattr(cells, "_FAST", None)
    np.testing.assert_array_equal(cells.grid_distance(origins, pairs_b), fast_distances)
    for res, want in fast.items():
        np.testing.assert_array_equal(cells.latlng_to_cells(lat, lng, res), want)
        np.testing.assert_array_equal(cells.latlng_to_cells(lat, lng, res), oracle(lat, lng, res))
    assert cells.latlng_to_cells(31.2, 121.5, 9) == h3i.latlng_to_cell(31.2, 121.5, 9)
    slow_centres = cells.cells_to_latlng(fast[15][:500].reshape(20, 25))
    for slow_deg, fast_deg in zip(slow_centres, fast_centres, strict=True):
        assert slow_deg.shape == (20, 25)
        np.testing.assert_array_equal(slow_deg, fast_deg)
    slow_flat, slow_offsets = cells.grid_disks(origins, 3)
    np.testing.assert_array_equal(slow_flat, fast_disks[0])
    np.testing.assert_array_equal(slow_offsets, fast_disks[1])
    np.testing.assert_array_equal(
        cells.grid_disk(int(origins[-1]), 2), cells.grid_disks(origins[-1:], 2)[0]
    )


@pytest.mark.parametrize("threads", [1, 2, 3, 7])
def test_thread_counts_give_the_same_cells(
    global_points: tuple[NDArray[np.float64], NDArray[np.float64]], threads: int
) -> None:
    lat, lng = global_points
    got = cells.latlng_to_cells(lat, lng, 12, threads=threads)
    np.testing.assert_array_equal(got, oracle(lat, lng, 12))


@pytest.mark.parametrize("bad_threads", [0, -2, 1.5, True])
def test_latlng_to_cells_rejects_bad_thread_counts(bad_threads: object) -> None:
    with pytest.raises(InvalidParameter, match="threads"):
        cells.latlng_to_cells(30.0, 120.0, 9, threads=bad_threads)  # type: ignore[call-overload]


def test_compiled_path_refuses_points_on_cell_edges_and_is_exact_elsewhere() -> None:
    if cells._FAST is None:
        pytest.skip("geo._h3fast is not built here; the fallback tests cover the h3-py path")
    rng = np.random.default_rng(17)
    seeds = oracle(rng.uniform(20, 45, 200), rng.uniform(100, 125, 200), 15)
    # Cell vertices sit exactly on three cells' edges: the guard must send them to h3-py.
    verts = np.array([v for h in seeds.tolist() for v in h3i.cell_to_boundary(h)])
    lat = np.ascontiguousarray(verts[:, 0])
    lng = np.ascontiguousarray(verts[:, 1])
    out = np.empty(lat.size, dtype=np.uint64)
    refused = cells._FAST.latlng_to_cells(lat, lng, out, 15, 1)
    assert refused == int((out == 0).sum())
    assert refused > 0.9 * lat.size
    kept = out != 0
    np.testing.assert_array_equal(out[kept], oracle(lat[kept], lng[kept], 15))
    assert cells.default_threads(10) == 1
    assert cells.default_threads(10**9) >= 1


def test_vendored_h3_c_library_is_h3_py(
    global_points: tuple[NDArray[np.float64], NDArray[np.float64]],
) -> None:
    # The extension compiles its own copy of H3 (geo/_h3fast_vendor): it must be h3-py's.
    if cells._FAST is None:
        pytest.skip("geo._h3fast is not built here")
    lat, lng = global_points[0][:4000], global_points[1][:4000]
    out = np.empty(lat.size, dtype=np.uint64)
    for res in (0, 7, 15):
        assert cells._FAST.h3_latlng_to_cells(lat, lng, out, res) == 0
        np.testing.assert_array_equal(out, oracle(lat, lng, res))

"""geo.coords against the prcoords oracle, the mainland outline, round trips and bad input."""

from __future__ import annotations

import json
import math
from importlib import resources

import numpy as np
import prcoords
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray
from shapely.geometry import shape

from geo import _gcj, coords
from geo.coords import CoordType
from geo.errors import InvalidCoordinate, InvalidParameter, ShapeMismatch

# Bounding box of mainland China with a little sea around it (degrees).
LAT_RANGE = (17.5, 54.0)
LNG_RANGE = (73.0, 135.5)
POINTS_PER_DRAW = 2_500
DRAWS = 5  # 5 x 2,500 = 12,500 points inside the mainland per test
ORACLE_TOL_DEG = 1e-6
ROUND_TRIP_TOL_DEG = 1e-7

Array = NDArray[np.float64]


def mainland_points(seed: int, count: int = POINTS_PER_DRAW) -> tuple[Array, Array]:
    """``count`` uniform random WGS-84 points inside mainland China."""
    rng = np.random.default_rng(seed)
    lat_parts: list[Array] = []
    lng_parts: list[Array] = []
    have = 0
    while have < count:
        lat = rng.uniform(*LAT_RANGE, 4 * count)
        lng = rng.uniform(*LNG_RANGE, 4 * count)
        inside = coords.in_mainland_china(lat, lng)
        lat_parts.append(lat[inside])
        lng_parts.append(lng[inside])
        have += int(inside.sum())
    return np.concatenate(lat_parts)[:count], np.concatenate(lng_parts)[:count]


def oracle(fn: object, lat: Array, lng: Array) -> tuple[Array, Array]:
    """Apply a prcoords point function (``(lat, lon)`` tuples, no bbox check) to arrays."""
    out = np.array([fn((a, b), False) for a, b in zip(lat.tolist(), lng.tolist(), strict=True)])  # type: ignore[operator]
    return out[:, 0], out[:, 1]


def max_abs_diff(got: tuple[Array, Array], want: tuple[Array, Array]) -> float:
    return float(max(np.max(np.abs(got[0] - want[0])), np.max(np.abs(got[1] - want[1]))))


seeds = st.integers(min_value=0, max_value=2**32 - 1)


@settings(max_examples=DRAWS)
@given(seed=seeds)
def test_gcj02_matches_prcoords_both_ways(seed: int) -> None:
    lat, lng = mainland_points(seed)
    assert max_abs_diff(coords.wgs84_to_gcj02(lat, lng), oracle(prcoords.wgs_gcj, lat, lng)) <= (
        ORACLE_TOL_DEG
    )
    # Read the same points as GCJ-02. Where the exact pre-image falls outside the mainland (a
    # GCJ point within ~1 km of the border), the conversion leaves the point unchanged instead.
    want = oracle(prcoords.gcj_wgs_bored, lat, lng)
    pre_image_inside = coords.in_mainland_china(*want)
    got_lat, got_lng = coords.gcj02_to_wgs84(lat, lng)
    assert pre_image_inside.mean() > 0.99
    assert (
        max_abs_diff(
            (got_lat[pre_image_inside], got_lng[pre_image_inside]),
            (want[0][pre_image_inside], want[1][pre_image_inside]),
        )
        <= ORACLE_TOL_DEG
    )
    np.testing.assert_array_equal(got_lat[~pre_image_inside], lat[~pre_image_inside])
    np.testing.assert_array_equal(got_lng[~pre_image_inside], lng[~pre_image_inside])


@settings(max_examples=DRAWS)
@given(seed=seeds)
def test_bd09_matches_prcoords_both_ways(seed: int) -> None:
    lat, lng = mainland_points(seed)
    assert max_abs_diff(coords.gcj02_to_bd09(lat, lng), oracle(prcoords.gcj_bd, lat, lng)) <= (
        ORACLE_TOL_DEG
    )
    assert (
        max_abs_diff(coords.bd09_to_gcj02(lat, lng), oracle(prcoords.bd_gcj_bored, lat, lng))
        <= ORACLE_TOL_DEG
    )
    assert max_abs_diff(coords.wgs84_to_bd09(lat, lng), oracle(prcoords.wgs_bd, lat, lng)) <= (
        ORACLE_TOL_DEG
    )
    want = oracle(prcoords.bd_wgs_bored, lat, lng)
    keep = coords.in_mainland_china(*want)
    got_lat, got_lng = coords.bd09_to_wgs84(lat, lng)
    assert max_abs_diff((got_lat[keep], got_lng[keep]), (want[0][keep], want[1][keep])) <= (
        ORACLE_TOL_DEG
    )


@settings(max_examples=DRAWS)
@given(seed=seeds)
def test_round_trips_close_within_1e7_degree(seed: int) -> None:
    lat, lng = mainland_points(seed)
    assert max_abs_diff(coords.gcj02_to_wgs84(*coords.wgs84_to_gcj02(lat, lng)), (lat, lng)) <= (
        ROUND_TRIP_TOL_DEG
    )
    assert max_abs_diff(coords.bd09_to_wgs84(*coords.wgs84_to_bd09(lat, lng)), (lat, lng)) <= (
        ROUND_TRIP_TOL_DEG
    )
    assert max_abs_diff(coords.bd09_to_gcj02(*coords.gcj02_to_bd09(lat, lng)), (lat, lng)) <= (
        ROUND_TRIP_TOL_DEG
    )


@given(
    lat=st.floats(min_value=LAT_RANGE[0], max_value=LAT_RANGE[1]),
    lng=st.floats(min_value=LNG_RANGE[0], max_value=LNG_RANGE[1]),
)
def test_scalar_points_match_prcoords_inside_and_stay_put_outside(lat: float, lng: float) -> None:
    gcj = coords.wgs84_to_gcj02(lat, lng)
    assert isinstance(gcj[0], float)
    assert isinstance(gcj[1], float)
    if coords.in_mainland_china(lat, lng):
        want = prcoords.wgs_gcj((lat, lng), False)
        assert abs(gcj[0] - want.lat) <= ORACLE_TOL_DEG
        assert abs(gcj[1] - want.lon) <= ORACLE_TOL_DEG
        back = coords.gcj02_to_wgs84(*gcj)
        assert abs(back[0] - lat) <= ROUND_TRIP_TOL_DEG
        assert abs(back[1] - lng) <= ROUND_TRIP_TOL_DEG
    else:
        assert gcj == (lat, lng)


# (name, lat, lng) — well-known places, WGS-84.
OUTSIDE_MAINLAND = [
    ("Hong Kong, Central", 22.2819, 114.1581),
    ("Hong Kong, Tsim Sha Tsui", 22.2976, 114.1722),
    ("Hong Kong, Sheung Shui (2 km from Shenzhen)", 22.5011, 114.1281),
    ("Hong Kong, airport", 22.3080, 113.9185),
    ("Macao, Senado Square", 22.1935, 113.5395),
    ("Macao, Cotai", 22.1470, 113.5600),
    ("Taipei", 25.0330, 121.5654),
    ("Kinmen (2 km off Xiamen)", 24.4326, 118.3171),
    ("Tokyo", 35.6762, 139.6503),
    ("Seoul", 37.5665, 126.9780),
    ("Paris", 48.8566, 2.3522),
    ("antimeridian, equator", 0.0, 180.0),
    ("antimeridian, west", -16.5, -180.0),
    ("north pole", 90.0, 0.0),
]
INSIDE_MAINLAND = [
    ("Shenzhen, Futian CBD (3 km from Hong Kong)", 22.5333, 114.0550),
    ("Shenzhen, Luohu", 22.5480, 114.1310),
    ("Zhuhai, Gongbei (1 km from Macao)", 22.2280, 113.5520),
    ("Zhuhai, Hengqin", 22.1300, 113.5100),
    ("Beijing", 39.9042, 116.4074),
    ("Shanghai", 31.2304, 121.4737),
    ("Shanghai, Pudong airport", 31.1443, 121.8083),
    ("Harbin", 45.8038, 126.5350),
    ("Urumqi", 43.8256, 87.6168),
    ("Sanya", 18.2528, 109.5120),
    ("Lhasa", 29.6500, 91.1000),
    ("Xiamen island", 24.4798, 118.0894),
    ("Zhoushan", 29.9853, 122.2072),
]


@pytest.mark.parametrize(("name", "lat", "lng"), OUTSIDE_MAINLAND)
def test_points_outside_mainland_are_not_offset(name: str, lat: float, lng: float) -> None:
    assert coords.in_mainland_china(lat, lng) is False, name
    assert coords.wgs84_to_gcj02(lat, lng) == (lat, lng)
    assert coords.gcj02_to_wgs84(lat, lng) == (lat, lng)
    for kind in CoordType:
        if kind is not CoordType.BD09:
            assert coords.from_wgs84(lat, lng, kind) == (lat, lng)
            assert coords.to_wgs84(lat, lng, kind) == (lat, lng)
    # BD-09 is Baidu's transform of GCJ-02 and applies everywhere; GCJ-02 adds nothing here.
    assert coords.wgs84_to_bd09(lat, lng) == coords.gcj02_to_bd09(lat, lng)


@pytest.mark.parametrize(("name", "lat", "lng"), INSIDE_MAINLAND)
def test_points_inside_mainland_are_offset_like_prcoords(name: str, lat: float, lng: float) -> None:
    assert coords.in_mainland_china(lat, lng) is True, name
    got = coords.wgs84_to_gcj02(lat, lng)
    want = prcoords.wgs_gcj((lat, lng), False)
    assert got != (lat, lng)
    assert abs(got[0] - want.lat) <= ORACLE_TOL_DEG
    assert abs(got[1] - want.lon) <= ORACLE_TOL_DEG


def test_grid_accelerated_inside_test_equals_plain_polygon_test() -> None:
    text = resources.files("geo.data").joinpath("china_mainland.geojson").read_text("utf-8")
    outline = shape(json.loads(text)["geometry"])
    rng = np.random.default_rng(7)
    # Uniform points plus points jittered by up to ~100 m around every border vertex, where
    # the grid hands over to the exact test.
    border_xy = shapely.get_coordinates(outline.boundary)
    near = border_xy[rng.integers(0, len(border_xy), 50_000)] + rng.normal(0, 1e-3, (50_000, 2))
    lng = np.concatenate([rng.uniform(70.0, 140.0, 200_000), near[:, 0]])
    lat = np.concatenate([rng.uniform(15.0, 56.0, 200_000), near[:, 1]])
    got = coords.in_mainland_china(lat, lng)
    want = shapely.contains_xy(outline, lng, lat)
    np.testing.assert_array_equal(got, want)
    assert 0 < got.sum() < got.size


def test_scalar_and_array_forms_agree() -> None:
    lat, lng = mainland_points(3, 200)
    lat = np.concatenate([lat, [p[1] for p in OUTSIDE_MAINLAND]])
    lng = np.concatenate([lng, [p[2] for p in OUTSIDE_MAINLAND]])
    functions = [
        coords.wgs84_to_gcj02,
        coords.gcj02_to_wgs84,
        coords.gcj02_to_bd09,
        coords.bd09_to_gcj02,
        coords.wgs84_to_bd09,
        coords.bd09_to_wgs84,
    ]
    for fn in functions:
        array_lat, array_lng = fn(lat, lng)
        scalar = np.array([fn(float(a), float(b)) for a, b in zip(lat, lng, strict=True)])
        # Every point iterates on its own, so batching changes nothing, bit for bit.
        np.testing.assert_array_equal(scalar[:, 0], array_lat)
        np.testing.assert_array_equal(scalar[:, 1], array_lng)
    inside = coords.in_mainland_china(lat, lng)
    assert [
        coords.in_mainland_china(float(a), float(b)) for a, b in zip(lat, lng, strict=True)
    ] == (inside.tolist())


def test_large_batches_equal_small_batches_bit_for_bit() -> None:
    # Large inputs are processed in blocks; block edges must not show in the answers.
    rng = np.random.default_rng(9)
    n = 70_001
    lat = rng.uniform(*LAT_RANGE, n)
    lng = rng.uniform(*LNG_RANGE, n)
    functions = [
        coords.wgs84_to_gcj02,
        coords.gcj02_to_wgs84,
        coords.wgs84_to_bd09,
        coords.bd09_to_wgs84,
    ]
    for fn in functions:
        whole = fn(lat, lng)
        pieces = [fn(lat[i : i + 999], lng[i : i + 999]) for i in range(0, n, 999)]
        np.testing.assert_array_equal(whole[0], np.concatenate([p[0] for p in pieces]))
        np.testing.assert_array_equal(whole[1], np.concatenate([p[1] for p in pieces]))


def test_threaded_blocks_equal_one_block_bit_for_bit() -> None:
    # 300k points (some outside the mainland) cut into blocks shared out to threads must give
    # exactly what one kernel call over the whole array gives.
    rng = np.random.default_rng(13)
    n = 300_000
    lat = rng.uniform(*LAT_RANGE, n)
    lng = rng.uniform(*LNG_RANGE, n)
    inside = coords.in_mainland_china(lat, lng)
    assert 0.2 < inside.mean() < 0.8
    dlat, dlng = np.empty(n), np.empty(n)
    _gcj.offset_into(lat, lng, dlat, dlng, np.empty((_gcj.SCRATCH_ROWS, n)))
    want_lat = np.where(inside, lat + dlat, lat)
    want_lng = np.where(inside, lng + dlng, lng)
    for threads in (None, 1, 2, 3):
        got_lat, got_lng = coords.wgs84_to_gcj02(lat, lng, threads=threads)
        np.testing.assert_array_equal(got_lat, want_lat)
        np.testing.assert_array_equal(got_lng, want_lng)
    back = coords.gcj02_to_wgs84(want_lat, want_lng, threads=1)
    for threads in (None, 3):
        again = coords.gcj02_to_wgs84(want_lat, want_lng, threads=threads)
        np.testing.assert_array_equal(again[0], back[0])
        np.testing.assert_array_equal(again[1], back[1])
    round_trip = (back[0][inside], back[1][inside])
    assert max_abs_diff(round_trip, (lat[inside], lng[inside])) <= ROUND_TRIP_TOL_DEG


def reference_offset(lat: Array, lng: Array) -> tuple[Array, Array]:
    """The published GCJ-02 shift in degrees, one libm sine per term (as prcoords computes it)."""
    x, y, pi = lng - 105.0, lat - 35.0, math.pi
    sin = np.sin
    common = 2 * sin(x * 6 * pi) + 2 * sin(x * 2 * pi)
    dlat_m = (
        -100 + 2 * x + 3 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * np.sqrt(np.abs(x))
        + (common + 2 * sin(y * pi) + 4 * sin(y / 3 * pi) + 16 * sin(y / 12 * pi)
           + 32 * sin(y / 30 * pi)) * 20 / 3
    )  # fmt: skip
    dlng_m = (
        300 + x + 2 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * np.sqrt(np.abs(x))
        + (common + 2 * sin(x * pi) + 4 * sin(x / 3 * pi) + 15 * sin(x / 12 * pi)
           + 30 * sin(x / 30 * pi)) * 20 / 3
    )  # fmt: skip
    rad_lat = np.radians(lat)
    magic = 1 - 0.00669342162296594323 * np.sin(rad_lat) ** 2
    lat_deg_m = np.radians(6378245.0 * (1 - 0.00669342162296594323) / magic**1.5)
    lng_deg_m = np.radians(6378245.0 * np.cos(rad_lat) / np.sqrt(magic))
    return dlat_m / lat_deg_m, dlng_m / lng_deg_m


def test_offset_kernel_matches_the_libm_formula_everywhere() -> None:
    # The kernel's polynomial sin/cos and multiple-angle identities (after reducing longitude
    # by whole periods) stay within 1e-13 degree of one libm call per term, also far from China.
    rng = np.random.default_rng(17)
    n = 200_000
    lat = np.concatenate([rng.uniform(-89.0, 89.0, n), rng.uniform(*LAT_RANGE, n)])
    lng = np.concatenate([rng.uniform(-180.0, 180.0, n), rng.uniform(*LNG_RANGE, n)])
    dlat, dlng = np.empty(2 * n), np.empty(2 * n)
    _gcj.offset_into(lat, lng, dlat, dlng, np.empty((_gcj.SCRATCH_ROWS, 2 * n)))
    assert max_abs_diff((dlat, dlng), reference_offset(lat, lng)) <= 1e-13


@pytest.mark.parametrize("threads", [0, -1, True, 1.5, "2"])
def test_bad_thread_count_is_named(threads: object) -> None:
    for fn in (coords.wgs84_to_gcj02, coords.gcj02_to_wgs84, coords.bd09_to_wgs84):
        with pytest.raises(InvalidParameter, match=r"threads must be an int >= 1"):
            fn([39.9], [116.4], threads=threads)  # type: ignore[call-overload]
    assert coords.default_threads(1) == 1


def test_arrays_keep_their_shape_and_inputs_are_not_modified() -> None:
    lat, lng = mainland_points(5, 12)
    lat2, lng2 = lat.reshape(3, 4), lng.reshape(3, 4)
    before = (lat2.copy(), lng2.copy())
    for kind in CoordType:
        out_lat, out_lng = coords.to_wgs84(lat2, lng2, kind)
        assert out_lat.shape == (3, 4)
        assert out_lng.shape == (3, 4)
        assert out_lat is not lat2
    assert coords.in_mainland_china(lat2, lng2).shape == (3, 4)
    np.testing.assert_array_equal(lat2, before[0])
    np.testing.assert_array_equal(lng2, before[1])
    empty = coords.gcj02_to_wgs84(np.array([]), np.array([]))
    assert empty[0].shape == (0,)


def test_to_and_from_wgs84_dispatch_on_coord_type() -> None:
    lat, lng = mainland_points(11, 50)
    assert [k.value for k in CoordType] == ["wgs84", "gcj02", "bd09"]
    pairs = {
        "gcj02": (coords.wgs84_to_gcj02, coords.gcj02_to_wgs84),
        "bd09": (coords.wgs84_to_bd09, coords.bd09_to_wgs84),
    }
    for name, (forward, inverse) in pairs.items():
        for kind in (name, CoordType(name)):
            np.testing.assert_array_equal(
                coords.from_wgs84(lat, lng, kind)[0], forward(lat, lng)[0]
            )
            np.testing.assert_array_equal(coords.to_wgs84(lat, lng, kind)[1], inverse(lat, lng)[1])
    np.testing.assert_array_equal(coords.to_wgs84(lat, lng, "wgs84")[0], lat)
    np.testing.assert_array_equal(coords.from_wgs84(lat, lng, CoordType.WGS84)[1], lng)


@pytest.mark.parametrize(
    ("lat", "lng", "error", "message"),
    [
        (float("nan"), 116.0, InvalidCoordinate, r"lat must be finite"),
        (91.0, 116.0, InvalidCoordinate, r"lat .*90.*91"),
        (39.9, -181.0, InvalidCoordinate, r"lng .*180.*-181"),
        (39.9, float("inf"), InvalidCoordinate, r"lng must be finite.*inf"),
        ([39.9, 40.0, float("nan")], [116.0, 116.1, 116.2], InvalidCoordinate, r"lat\[2\]"),
        ([39.9, 40.0], [116.0, 200.0], InvalidCoordinate, r"lng\[1\].*200"),
        ([39.9, 40.0], [116.0, 116.1, 116.2], ShapeMismatch, r"\(2,\).*\(3,\)"),
        ("north", 116.0, InvalidCoordinate, r"lat must be numeric.*north"),
        (39.9, [116.0, "x"], InvalidCoordinate, r"lng must be numeric"),
    ],
)
def test_bad_input_raises_typed_error_naming_the_problem(
    lat: object, lng: object, error: type[Exception], message: str
) -> None:
    functions = [
        coords.wgs84_to_gcj02,
        coords.gcj02_to_wgs84,
        coords.gcj02_to_bd09,
        coords.bd09_to_gcj02,
        coords.wgs84_to_bd09,
        coords.bd09_to_wgs84,
        coords.in_mainland_china,
        lambda a, b: coords.to_wgs84(a, b, "gcj02"),
        lambda a, b: coords.from_wgs84(a, b, "bd09"),
    ]
    for fn in functions:
        with pytest.raises(error, match=message):
            fn(lat, lng)  # type: ignore[operator]
    assert issubclass(error, ValueError)


@pytest.mark.parametrize("coord_type", ["utm", "WGS-84", "", "gcj-02"])
def test_unknown_coord_type_is_named(coord_type: str) -> None:
    for fn in (coords.to_wgs84, coords.from_wgs84):
        with pytest.raises(
            InvalidParameter, match=rf"coord_type .*wgs84, gcj02, bd09.*'{coord_type}'"
        ):
            fn(39.9, 116.4, coord_type)

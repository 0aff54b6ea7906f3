"""Local metric projection and geodesic distance: accuracy against pyproj's geodesic, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.typing import NDArray
from pyproj import Geod

from geo.errors import InvalidCoordinate, ShapeMismatch
from geo.projection import (
    EARTH_RADIUS_M,
    LocalProjection,
    geodesic_m,
    haversine_m,
    haversine_one_m,
)

Array = NDArray[np.float64]

CITY_CENTRES = {
    "Shanghai": (31.2304, 121.4737),
    "Harbin": (45.8038, 126.5350),
    "Urumqi": (43.8256, 87.6168),
    "Sanya": (18.2528, 109.5120),
    "Beijing": (39.9042, 116.4074),
    "Lhasa": (29.6500, 91.1000),
}
RADIUS_M = 50_000.0
PAIRS = 5_000


def points_around(
    lat: float, lng: float, radius_m: float, n: int, seed: int
) -> tuple[Array, Array]:
    """``n`` points uniformly spread over the disc of ``radius_m`` around (lat, lng)."""
    rng = np.random.default_rng(seed)
    azimuth = rng.uniform(0.0, 360.0, n)
    distance = radius_m * np.sqrt(rng.uniform(0.0, 1.0, n))
    lng_out, lat_out, _ = Geod(ellps="WGS84").fwd(
        np.full(n, lng), np.full(n, lat), azimuth, distance
    )
    return np.asarray(lat_out), np.asarray(lng_out)


def reference_geodesic_m(lat1: Array, lng1: Array, lat2: Array, lng2: Array) -> Array:
    _, _, distance = Geod(ellps="WGS84").inv(lng1, lat1, lng2, lat2)
    return np.asarray(distance)


@pytest.mark.parametrize("city", sorted(CITY_CENTRES))
def test_planar_distance_within_0_1_percent_of_geodesic_within_50_km(city: str) -> None:
    lat0, lng0 = CITY_CENTRES[city]
    projection = LocalProjection.for_center(lat0, lng0)
    lat1, lng1 = points_around(lat0, lng0, RADIUS_M, PAIRS, seed=1)
    lat2, lng2 = points_around(lat0, lng0, RADIUS_M, PAIRS, seed=2)
    planar = projection.distance_m(lat1, lng1, lat2, lng2)
    geodesic = reference_geodesic_m(lat1, lng1, lat2, lng2)
    relative = np.abs(planar - geodesic) / geodesic
    assert relative.max() <= 1e-3
    # Distances from the centre are exact in an azimuthal equidistant projection.
    from_centre = projection.distance_m(lat0, lng0, lat1, lng1)
    np.testing.assert_allclose(
        from_centre, reference_geodesic_m(lat0 + 0 * lat1, lng0 + 0 * lng1, lat1, lng1), rtol=1e-9
    )


@pytest.mark.parametrize("city", sorted(CITY_CENTRES))
def test_forward_inverse_round_trip_within_1e9_degree(city: str) -> None:
    lat0, lng0 = CITY_CENTRES[city]
    projection = LocalProjection.for_center(lat0, lng0)
    lat, lng = points_around(lat0, lng0, 500_000.0, 2_000, seed=3)
    x, y = projection.forward(lat, lng)
    back_lat, back_lng = projection.inverse(x, y)
    assert np.abs(back_lat - lat).max() <= 1e-9
    assert np.abs(back_lng - lng).max() <= 1e-9
    assert projection.forward(lat0, lng0) == pytest.approx((0.0, 0.0), abs=1e-6)


def test_axes_point_east_and_north() -> None:
    projection = LocalProjection.for_center(31.2304, 121.4737)
    x_east, y_east = projection.forward(31.2304, 121.5737)
    x_north, y_north = projection.forward(31.3304, 121.4737)
    assert x_east > 9_000.0
    assert abs(y_east) < 100.0
    assert y_north > 11_000.0
    assert abs(x_north) < 1e-6


def test_for_center_caches_instances_and_scalars_give_floats() -> None:
    projection = LocalProjection.for_center(45.8038, 126.5350)
    assert LocalProjection.for_center(45.8038, 126.5350) is projection
    assert LocalProjection.for_center(45.8, 126.5350) is not projection
    assert projection == LocalProjection(45.8038, 126.5350)
    x, y = projection.forward(45.9, 126.6)
    assert isinstance(x, float)
    assert isinstance(y, float)
    lat, lng = projection.inverse(x, y)
    assert isinstance(lat, float)
    assert isinstance(lng, float)
    assert isinstance(projection.distance_m(45.8, 126.5, 45.9, 126.6), float)
    assert isinstance(geodesic_m(45.8, 126.5, 45.9, 126.6), float)
    with pytest.raises(AttributeError):
        projection.center_lat = 0.0  # type: ignore[misc]


def test_arrays_keep_shape_and_broadcast() -> None:
    projection = LocalProjection.for_center(39.9042, 116.4074)
    lat, lng = points_around(39.9042, 116.4074, 20_000.0, 12, seed=4)
    x, y = projection.forward(lat.reshape(3, 4), lng.reshape(3, 4))
    assert x.shape == (3, 4)
    assert y.shape == (3, 4)
    one_to_many = projection.distance_m(39.9042, 116.4074, lat, lng)
    many_to_many = projection.distance_m(np.full(12, 39.9042), np.full(12, 116.4074), lat, lng)
    np.testing.assert_array_equal(one_to_many, many_to_many)
    np.testing.assert_array_equal(
        geodesic_m(39.9042, 116.4074, lat, lng),
        reference_geodesic_m(np.full(12, 39.9042), np.full(12, 116.4074), lat, lng),
    )


def test_geodesic_of_one_degree_on_the_equator_is_the_semi_major_arc() -> None:
    semi_major_m = Geod(ellps="WGS84").a
    assert geodesic_m(0.0, 0.0, 0.0, 1.0) == pytest.approx(semi_major_m * np.pi / 180.0, rel=1e-12)


def test_haversine_within_0_5_percent_of_geodesic() -> None:
    # Over the platform's region (China and its neighbours, any distance) and within cities.
    # Globally the sphere's error reaches ~0.55 % on long meridional arcs near the equator.
    rng = np.random.default_rng(5)
    n = 20_000
    lat1, lat2 = rng.uniform(15.0, 55.0, (2, n))
    lng1, lng2 = rng.uniform(70.0, 140.0, (2, n))
    geodesic = geodesic_m(lat1, lng1, lat2, lng2)
    keep = geodesic > 1.0
    relative = np.abs(haversine_m(lat1, lng1, lat2, lng2)[keep] - geodesic[keep]) / geodesic[keep]
    assert relative.max() <= 5e-3
    for lat0, lng0 in CITY_CENTRES.values():
        lat, lng = points_around(lat0, lng0, RADIUS_M, 1_000, seed=6)
        local = geodesic_m(lat0, lng0, lat, lng)
        assert np.max(np.abs(haversine_m(lat0, lng0, lat, lng) - local) / local) <= 5e-3
    assert pytest.approx(6_371_008.8) == EARTH_RADIUS_M


@pytest.mark.parametrize(
    ("center", "error", "message"),
    [
        ((float("nan"), 121.0), InvalidCoordinate, r"center_lat must be finite"),
        ((91.0, 121.0), InvalidCoordinate, r"center_lat .*91"),
        ((31.0, -180.5), InvalidCoordinate, r"center_lng .*-180.5"),
        ((31.0, float("inf")), InvalidCoordinate, r"center_lng .*inf"),
        (("31", 121.0), InvalidCoordinate, r"center_lat must be a number"),
    ],
)
def test_bad_centre_is_rejected(
    center: tuple[object, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        LocalProjection(*center)  # type: ignore[arg-type]
    with pytest.raises(error, match=message):
        LocalProjection.for_center(*center)  # type: ignore[arg-type]


def test_bad_points_are_rejected_with_field_and_index() -> None:
    projection = LocalProjection.for_center(31.2304, 121.4737)
    with pytest.raises(InvalidCoordinate, match=r"lat\[1\] .*91"):
        projection.forward([31.0, 91.0], [121.0, 121.0])
    with pytest.raises(InvalidCoordinate, match=r"lng must be finite"):
        projection.forward(31.0, float("nan"))
    with pytest.raises(ShapeMismatch, match=r"\(2,\).*\(3,\)"):
        projection.forward([31.0, 31.1], [121.0, 121.1, 121.2])
    with pytest.raises(InvalidCoordinate, match=r"x_m\[2\] .*nan"):
        projection.inverse([0.0, 1.0, float("nan")], [0.0, 1.0, 2.0])
    with pytest.raises(InvalidCoordinate, match=r"y_m .*inf"):
        projection.inverse(0.0, float("inf"))
    with pytest.raises(InvalidCoordinate, match=r"x_m must be numeric"):
        projection.inverse("east", 0.0)
    with pytest.raises(ShapeMismatch, match=r"x_m and y_m"):
        projection.inverse([0.0, 1.0], [0.0])
    with pytest.raises(InvalidCoordinate, match=r"lat2\[0\] .*-95"):
        projection.distance_m(31.0, 121.0, [-95.0], [121.0])
    with pytest.raises(InvalidCoordinate, match=r"lng1 .*999"):
        geodesic_m(31.0, 999.0, 31.0, 121.0)
    with pytest.raises(ShapeMismatch, match=r"lat1 \(2,\).*lat2 \(3,\)"):
        geodesic_m([31.0, 31.1], 121.0, [31.0, 31.1, 31.2], 121.0)


def test_haversine_one_equals_the_array_path() -> None:
    rng = np.random.default_rng(11)
    n = 20_000
    lat1 = rng.uniform(-90.0, 90.0, n)
    lng1 = rng.uniform(-180.0, 180.0, n)
    lat1[:4], lng1[:4] = [90.0, -90.0, 0.0, 45.0], [0.0, 180.0, -180.0, 180.0]  # poles, edges
    lat2 = rng.uniform(-90.0, 90.0, n)
    lng2 = rng.uniform(-180.0, 180.0, n)
    kind = rng.integers(0, 5, n)
    near = kind == 1  # metres apart
    lat2[near] = np.clip(lat1[near] + rng.normal(0.0, 1e-4, near.sum()), -90.0, 90.0)
    lng2[near] = np.clip(lng1[near] + rng.normal(0.0, 1e-4, near.sum()), -180.0, 180.0)
    same = kind == 2
    lat2[same], lng2[same] = lat1[same], lng1[same]
    across = kind == 3  # across the antimeridian
    lng1[across] = 180.0 - rng.uniform(0.0, 0.01, across.sum())
    lng2[across] = -180.0 + rng.uniform(0.0, 0.01, across.sum())
    antipodal = kind == 4  # 100 m to 10 km short of the antipode
    sides = (2, antipodal.sum())
    miss = rng.uniform(1e-3, 0.1, sides) * rng.choice([-1.0, 1.0], sides)
    lat2[antipodal] = np.clip(-lat1[antipodal] + miss[0], -90.0, 90.0)
    lng2[antipodal] = np.where(lng1[antipodal] > 0, lng1[antipodal] - 180, lng1[antipodal] + 180)
    lng2[antipodal] = np.clip(lng2[antipodal] + miss[1], -180.0, 180.0)

    array = haversine_m(lat1, lng1, lat2, lng2)
    points = zip(*(a.tolist() for a in (lat1, lng1, lat2, lng2)), strict=True)
    one = [haversine_one_m(*p) for p in points]
    np.testing.assert_allclose(one, array, rtol=1e-9, atol=0.0)
    assert all(d == 0.0 for d in np.asarray(one)[same])
    assert np.asarray(one)[antipodal].min() > 0.999 * np.pi * EARTH_RADIUS_M

    # At the antipode itself h rounds to about 1, where arcsin's slope is unbounded: one
    # last-bit difference between numpy's and libm's sines moves the result by up to
    # 2R·sqrt(2 ulp) ≈ 0.3 m (≈1e-8 relative), in either implementation alike.
    lat_a = rng.uniform(-89.0, 89.0, 2000)
    lng_a = rng.uniform(-179.0, 0.0, 2000)
    exact = haversine_m(lat_a, lng_a, -lat_a, lng_a + 180.0)
    exact_one = [haversine_one_m(a, b, -a, b + 180.0) for a, b in zip(lat_a, lng_a, strict=True)]
    np.testing.assert_allclose(exact_one, exact, rtol=0.0, atol=0.5)


def test_haversine_one_gives_nan_like_the_array_path() -> None:
    with np.errstate(invalid="ignore"):
        for bad in (float("nan"), float("inf"), -float("inf")):
            assert np.isnan(haversine_m(bad, 0.0, 1.0, 1.0))
            assert math.isnan(haversine_one_m(bad, 0.0, 1.0, 1.0))
            assert math.isnan(haversine_one_m(1.0, 1.0, 0.0, bad))

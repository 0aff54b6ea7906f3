"""Service areas: GeoJSON reading and repair, typed rejections, and exact H3-accelerated lookup."""

from __future__ import annotations

import copy
import json
from typing import Any

import numpy as np
import pytest
import shapely
from numpy.typing import NDArray
from shapely.geometry import MultiPolygon, Polygon

from geo import cells as geo_cells
from geo.areas import AreaSet, ServiceArea
from geo.coords import from_wgs84
from geo.errors import InvalidCoordinate, InvalidParameter, InvalidPolygon

Array = NDArray[np.float64]
Ring = list[list[float]]

SHANGHAI = (31.2304, 121.4737)


def blob(lat: float, lng: float, radius_deg: float, vertices: int, seed: int) -> Ring:
    """A star-shaped (hence simple) counter-clockwise ring around (lat, lng), closed."""
    rng = np.random.default_rng(seed)
    angle = np.sort(rng.uniform(0.0, 2.0 * np.pi, vertices))
    radius = radius_deg * rng.uniform(0.5, 1.0, vertices)
    ring = [[lng + r * np.cos(a), lat + r * np.sin(a)] for r, a in zip(radius, angle, strict=True)]
    return [*ring, ring[0]]


def square(lat: float, lng: float, half: float) -> Ring:
    return [
        [lng - half, lat - half],
        [lng + half, lat - half],
        [lng + half, lat + half],
        [lng - half, lat + half],
        [lng - half, lat - half],
    ]


def feature(area_id: str, geometry: dict[str, Any], **properties: Any) -> dict[str, Any]:
    props = {"id": area_id, "name": f"Area {area_id}", **properties}
    return {"type": "Feature", "properties": props, "geometry": geometry}


def city_districts() -> dict[str, Any]:
    """Overlapping districts around Shanghai: blobs, one with a hole, one in two parts."""
    lat0, lng0 = SHANGHAI
    features = [
        feature(
            f"d{i}",
            {
                "type": "Polygon",
                "coordinates": [blob(lat0 + 0.05 * (i % 3), lng0 + 0.06 * (i // 3), 0.06, 60, i)],
            },
            rank=i,
        )
        for i in range(6)
    ]
    features.append(
        feature(
            "ring",
            {
                "type": "Polygon",
                "coordinates": [square(lat0, lng0, 0.08), square(lat0, lng0, 0.03)[::-1]],
            },
        )
    )
    features.append(
        feature(
            "islands",
            {
                "type": "MultiPolygon",
                "coordinates": [
                    [blob(lat0 - 0.1, lng0 - 0.1, 0.03, 20, 50)],
                    [blob(lat0 + 0.15, lng0 + 0.2, 0.04, 20, 51)],
                ],
            },
        )
    )
    return {"type": "FeatureCollection", "features": features}


def probe_points(areas: AreaSet, n: int, seed: int) -> tuple[Array, Array]:
    """Uniform points over the areas' extent plus points within ~10 m of every border."""
    rng = np.random.default_rng(seed)
    bounds = np.array([a.geometry.bounds for a in areas.areas])
    minx, miny = bounds[:, 0].min() - 0.02, bounds[:, 1].min() - 0.02
    maxx, maxy = bounds[:, 2].max() + 0.02, bounds[:, 3].max() + 0.02
    border = np.concatenate(
        [
            shapely.get_coordinates(shapely.segmentize(a.geometry.boundary, 1e-3))
            for a in areas.areas
        ]
    )
    near = border[rng.integers(0, len(border), n)] + rng.normal(0.0, 1e-4, (n, 2))
    lng = np.concatenate([rng.uniform(minx, maxx, n), near[:, 0]])
    lat = np.concatenate([rng.uniform(miny, maxy, n), near[:, 1]])
    return lat, lng


def plain_locate(areas: AreaSet, lat: Array, lng: Array) -> NDArray[np.int64]:
    """First area containing each point by testing every polygon (the reference)."""
    answer = np.full(lat.size, -1, dtype=np.int64)
    for i in reversed(range(len(areas))):
        answer[shapely.contains_xy(areas.areas[i].geometry, lng, lat)] = i
    return answer


@pytest.fixture(scope="module")
def districts() -> AreaSet:
    return AreaSet.from_geojson(city_districts())


# -- exact lookup --------------------------------------------------------------------------------


@pytest.mark.parametrize("res", [7, 8, 9])
def test_locate_equals_plain_polygon_test_near_borders_too(res: int) -> None:
    areas = AreaSet.from_geojson(city_districts(), cover_res=res)
    lat, lng = probe_points(areas, 60_000, seed=res)
    got = areas.locate(lat, lng)
    want = plain_locate(areas, lat, lng)
    np.testing.assert_array_equal(got, want)
    assert set(np.unique(want).tolist()) == set(range(-1, len(areas)))
    cover = areas.cover()
    assert cover.res == res
    assert cover.n_interior > 0
    assert cover.n_boundary > 0


def test_contains_equals_plain_polygon_test_for_every_area(districts: AreaSet) -> None:
    lat, lng = probe_points(districts, 20_000, seed=1)
    for area in districts.areas:
        np.testing.assert_array_equal(
            districts.contains(area.area_id, lat, lng),
            shapely.contains_xy(area.geometry, lng, lat),
        )


def test_areas_containing_lists_every_overlapping_area_in_order(districts: AreaSet) -> None:
    lat, lng = probe_points(districts, 5_000, seed=2)
    got = districts.areas_containing(lat, lng)
    assert len(got) == lat.size
    membership = np.column_stack(
        [shapely.contains_xy(a.geometry, lng, lat) for a in districts.areas]
    )
    ids = districts.area_ids
    assert got == [[ids[j] for j in np.flatnonzero(row)] for row in membership]
    assert any(len(row) >= 2 for row in got)  # the districts do overlap
    assert any(len(row) == 0 for row in got)


def test_interior_cells_are_wholly_inside_and_the_cover_catches_every_inside_point(
    districts: AreaSet,
) -> None:
    cover = districts.cover(8)
    lat, lng = probe_points(districts, 20_000, seed=3)
    point_cells = np.asarray(geo_cells.latlng_to_cells(lat, lng, 8))
    for i, area in enumerate(districts.areas):
        inside = shapely.contains_xy(area.geometry, lng, lat)
        in_interior = np.isin(point_cells, cover.interior_cells[i])
        in_cover = in_interior | np.isin(point_cells, cover.boundary_cells[i])
        assert inside[in_interior].all()
        assert in_cover[inside].all()
        for cell in cover.interior_cells[i][:50].tolist():
            cell_lat, cell_lng = geo_cells.cell_to_boundary(cell)
            assert shapely.contains_xy(area.geometry, cell_lng, cell_lat).all()


def test_scalar_queries_and_shapes(districts: AreaSet) -> None:
    lat0, lng0 = SHANGHAI
    index = districts.locate(lat0 + 0.05, lng0 + 0.001)
    assert isinstance(index, int)
    assert index == plain_locate(districts, np.array([lat0 + 0.05]), np.array([lng0 + 0.001]))[0]
    assert districts.contains("ring", lat0, lng0) is False  # in the hole
    assert districts.contains("ring", lat0 + 0.05, lng0) is True
    lat, lng = probe_points(districts, 6, seed=4)
    assert districts.locate(lat.reshape(3, 4), lng.reshape(3, 4)).shape == (3, 4)
    assert districts.contains("d0", lat.reshape(4, 3), lng.reshape(4, 3)).shape == (4, 3)
    assert districts.areas_containing(lat0 + 0.05, lng0) == [
        districts.areas_containing(np.array([lat0 + 0.05]), np.array([lng0]))[0]
    ]
    assert districts.locate(np.array([]), np.array([])).shape == (0,)
    far = districts.locate(np.array([0.0, 39.9]), np.array([0.0, 116.4]))
    np.testing.assert_array_equal(far, [-1, -1])


def test_empty_area_set_locates_nothing() -> None:
    empty = AreaSet(())
    np.testing.assert_array_equal(empty.locate([31.2, 31.3], [121.4, 121.5]), [-1, -1])
    assert empty.areas_containing([31.2], [121.4]) == [[]]


# -- reading GeoJSON -----------------------------------------------------------------------------


def test_reads_collection_feature_polygon_and_multipolygon_as_dict_or_text() -> None:
    collection = city_districts()
    from_text = AreaSet.from_geojson(json.dumps(collection))
    from_dict = AreaSet.from_geojson(collection)
    assert (
        from_text.area_ids
        == from_dict.area_ids
        == ("d0", "d1", "d2", "d3", "d4", "d5", "ring", "islands")
    )
    assert from_dict["d3"].name == "Area d3"
    assert from_dict["d3"].properties["rank"] == 3
    with pytest.raises(TypeError):
        from_dict["d3"].properties["rank"] = 4  # type: ignore[index]
    assert isinstance(from_dict["islands"].geometry, MultiPolygon)
    one = AreaSet.from_geojson(collection["features"][0])
    assert one.area_ids == ("d0",)
    bare = AreaSet.from_geojson(collection["features"][7]["geometry"])
    assert bare.area_ids == ("0",)
    assert bare.areas[0].name == "0"
    custom = AreaSet.from_geojson(
        {
            "type": "Feature",
            "id": 42,
            "properties": {"code": "SH-01", "title": "Jing'an"},
            "geometry": collection["features"][1]["geometry"],
        },
        id_property="code",
        name_property="title",
    )
    assert custom.area_ids == ("SH-01",)
    assert custom.areas[0].name == "Jing'an"
    fallback = AreaSet.from_geojson(
        {
            "type": "Feature",
            "id": 42,
            "properties": None,
            "geometry": bare.to_geojson()["features"][0]["geometry"],
        }
    )
    assert fallback.area_ids == ("42",)


def test_unclosed_ring_is_closed_and_clockwise_winding_is_fixed() -> None:
    lat0, lng0 = SHANGHAI
    closed = square(lat0, lng0, 0.05)
    hole = square(lat0, lng0, 0.01)
    unclosed_clockwise = closed[:-1][::-1]
    hole_counter_clockwise = hole  # RFC 7946 wants holes clockwise
    area = AreaSet.from_geojson(
        {"type": "Polygon", "coordinates": [unclosed_clockwise, hole_counter_clockwise]}
    ).areas[0]
    geometry = area.geometry
    assert isinstance(geometry, Polygon)
    assert geometry.exterior.is_ccw
    assert not geometry.interiors[0].is_ccw
    assert geometry.equals(Polygon(closed, [hole]))


def test_gcj02_and_bd09_input_give_the_same_area_as_wgs84() -> None:
    wgs = AreaSet.from_geojson(city_districts())
    lat, lng = probe_points(wgs, 20_000, seed=5)
    # Points within ~1 cm of a border may legitimately fall either side after conversion.
    near_border = np.zeros(lat.size, dtype=np.bool_)
    for area in wgs.areas:
        near_border |= shapely.distance(area.geometry.boundary, shapely.points(lng, lat)) < 1e-7
    for coord_type in ("gcj02", "bd09"):
        converted = copy.deepcopy(city_districts())
        for f in converted["features"]:
            polygons = (
                [f["geometry"]["coordinates"]]
                if f["geometry"]["type"] == "Polygon"
                else f["geometry"]["coordinates"]
            )
            for polygon in polygons:
                for ring in polygon:
                    xy = np.array(ring)
                    ring_lat, ring_lng = from_wgs84(xy[:, 1], xy[:, 0], coord_type)
                    ring[:] = np.column_stack([ring_lng, ring_lat]).tolist()
        other = AreaSet.from_geojson(converted, coord_type=coord_type)
        assert other.area_ids == wgs.area_ids
        for a, b in zip(wgs.areas, other.areas, strict=True):
            assert shapely.hausdorff_distance(a.geometry, b.geometry) <= 1e-7
        np.testing.assert_array_equal(
            other.locate(lat, lng)[~near_border], wgs.locate(lat, lng)[~near_border]
        )


def test_to_geojson_round_trips_in_every_coordinate_system(districts: AreaSet) -> None:
    again = AreaSet.from_geojson(districts.to_geojson())
    assert again.area_ids == districts.area_ids
    for a, b in zip(districts.areas, again.areas, strict=True):
        assert a.geometry.equals_exact(b.geometry, tolerance=1e-12)
        assert dict(b.properties) == {**a.properties, "id": a.area_id, "name": a.name}
    for coord_type in ("gcj02", "bd09"):
        out = districts.to_geojson(coord_type)
        first = np.array(out["features"][0]["geometry"]["coordinates"][0])
        assert np.abs(first - np.array(districts.areas[0].geometry.exterior.coords)).max() > 1e-3
        back = AreaSet.from_geojson(out, coord_type=coord_type)
        for a, b in zip(districts.areas, back.areas, strict=True):
            assert shapely.hausdorff_distance(a.geometry, b.geometry) <= 1e-7
    json.dumps(districts.to_geojson())  # plain JSON types only


# -- rejections ----------------------------------------------------------------------------------


def test_self_intersection_is_rejected_with_what_and_where() -> None:
    lat0, lng0 = SHANGHAI
    bowtie = [
        [lng0, lat0],
        [lng0 + 0.1, lat0 + 0.1],
        [lng0 + 0.1, lat0],
        [lng0, lat0 + 0.1],
        [lng0, lat0],
    ]
    collection = city_districts()
    collection["features"][1]["geometry"] = {"type": "Polygon", "coordinates": [bowtie]}
    with pytest.raises(
        InvalidPolygon, match=r"features\[1\]\.geometry is invalid: Self-intersection\[121\.52"
    ) as info:
        AreaSet.from_geojson(collection)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("geometry", "error", "message"),
    [
        (
            {"type": "Polygon", "coordinates": [[[121.4, 31.2], [121.5, 31.2], [121.4, 31.2]]]},
            InvalidPolygon,
            r"coordinates\[0\] has 2 distinct vertices",
        ),
        (
            {
                "type": "Polygon",
                "coordinates": [[[121.4, 31.2], [121.4, 31.2], [121.4, 31.2], [121.4, 31.2]]],
            },
            InvalidPolygon,
            r"1 distinct vertices",
        ),
        ({"type": "Polygon", "coordinates": []}, InvalidPolygon, r"geometry\.coordinates is empty"),
        ({"type": "Polygon", "coordinates": [[]]}, InvalidPolygon, r"coordinates\[0\] is empty"),
        ({"type": "MultiPolygon", "coordinates": []}, InvalidPolygon, r"coordinates is empty"),
        (
            {"type": "Point", "coordinates": [121.4, 31.2]},
            InvalidPolygon,
            r"Polygon or MultiPolygon, got type 'Point'",
        ),
        (
            {
                "type": "Polygon",
                "coordinates": [[[121.4, 31.2], [121.5, 31.2], [121.5, 91.0], [121.4, 31.2]]],
            },
            InvalidCoordinate,
            r"coordinates\[0\]\[2\] has lat 91",
        ),
        (
            {
                "type": "Polygon",
                "coordinates": [[[121.4, 31.2], [-181.0, 31.2], [121.5, 31.3], [121.4, 31.2]]],
            },
            InvalidCoordinate,
            r"coordinates\[0\]\[1\] has lng -181",
        ),
        (
            {
                "type": "Polygon",
                "coordinates": [
                    [[121.4, 31.2], [121.5, float("nan")], [121.5, 31.3], [121.4, 31.2]]
                ],
            },
            InvalidCoordinate,
            r"coordinates\[0\]\[1\] has lat nan",
        ),
        (
            {"type": "Polygon", "coordinates": [[[121.4, 31.2], [121.5, "x"], [121.5, 31.3]]]},
            InvalidCoordinate,
            r"coordinates\[0\] must be a list of \[lng, lat\]",
        ),
        (
            {
                "type": "MultiPolygon",
                "coordinates": [
                    [[[121.4, 31.2], [121.5, 31.2], [121.5, 31.3]]],
                    [[[121.4, 31.2], [121.5, 31.2]]],
                ],
            },
            InvalidPolygon,
            r"coordinates\[1\]\[0\] has 2 distinct",
        ),
    ],
)
def test_bad_geometry_is_rejected_naming_the_place(
    geometry: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        AreaSet.from_geojson({"type": "FeatureCollection", "features": [feature("a", geometry)]})
    assert issubclass(error, ValueError)


def test_overlapping_multipolygon_parts_are_rejected() -> None:
    lat0, lng0 = SHANGHAI
    geometry = {
        "type": "MultiPolygon",
        "coordinates": [[square(lat0, lng0, 0.05)], [square(lat0 + 0.02, lng0, 0.05)]],
    }
    with pytest.raises(InvalidPolygon, match=r"feature\.geometry is invalid: .*\["):
        AreaSet.from_geojson(feature("a", geometry))


def test_other_bad_input_is_rejected() -> None:
    good = city_districts()
    duplicated = copy.deepcopy(good)
    duplicated["features"][3]["properties"]["id"] = "d1"
    with pytest.raises(
        InvalidParameter, match=r"duplicate area id 'd1' at areas\[1\] and areas\[3\]"
    ):
        AreaSet.from_geojson(duplicated)
    with pytest.raises(InvalidParameter, match=r"coord_type .*'wgs-84'"):
        AreaSet.from_geojson(good, coord_type="wgs-84")
    with pytest.raises(InvalidPolygon, match=r"not valid JSON"):
        AreaSet.from_geojson("{not json")
    with pytest.raises(InvalidPolygon, match=r"GeoJSON type must be .*'Topology'"):
        AreaSet.from_geojson({"type": "Topology"})
    with pytest.raises(InvalidPolygon, match=r"features\[0\] has no geometry"):
        AreaSet.from_geojson(
            {"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {}}]}
        )
    with pytest.raises(InvalidParameter, match=r"cover_res must be within 0..15, got 16"):
        AreaSet.from_geojson(good, cover_res=16)
    areas = AreaSet.from_geojson(good)
    with pytest.raises(InvalidParameter, match=r"unknown area id 'nowhere'"):
        areas.contains("nowhere", 31.2, 121.4)
    with pytest.raises(InvalidCoordinate, match=r"lat\[1\]"):
        areas.locate([31.2, 95.0], [121.4, 121.4])
    with pytest.raises(InvalidParameter, match=r"res must be an int within 0..15"):
        areas.cover(-1)


def test_service_area_validates_its_fields() -> None:
    polygon = Polygon(square(*SHANGHAI, 0.01))
    with pytest.raises(InvalidParameter, match=r"area_id must be a non-empty string"):
        ServiceArea("", "x", polygon)
    with pytest.raises(
        InvalidPolygon, match=r"must be a shapely Polygon or MultiPolygon, got Point"
    ):
        ServiceArea("a", "x", shapely.Point(121.4, 31.2))
    with pytest.raises(InvalidPolygon, match=r"area 'a' is empty"):
        ServiceArea("a", "x", Polygon())
    with pytest.raises(InvalidCoordinate, match=r"WGS-84 lng/lat degrees"):
        ServiceArea("a", "x", Polygon([(0, 0), (200, 0), (200, 10)]))
    with pytest.raises(InvalidPolygon, match=r"Self-intersection"):
        ServiceArea("a", "x", Polygon([(0, 0), (1, 1), (1, 0), (0, 1)]))
    with pytest.raises(InvalidParameter, match=r"duplicate area id 'a'"):
        AreaSet((ServiceArea("a", "x", polygon), ServiceArea("a", "y", polygon)))

"""Service areas: GeoJSON in/out with coord_type, validation, tenant isolation."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from geo.coords import from_wgs84, to_wgs84
from tests.api.catalog.conftest import BOX_A, IN_A, Tenants, box

EN = {"Accept-Language": "en"}


def _ring(geojson: dict[str, Any]) -> np.ndarray:
    coords = geojson["coordinates"]
    while isinstance(coords[0][0], list):
        coords = coords[0]
    return np.asarray(coords, dtype=float)


def test_area_round_trips_in_wgs84_and_gcj02(client: TestClient, tenants: Tenants) -> None:
    wgs = client.get(f"/v1/catalog/areas/{tenants.area_a}").json()
    assert wgs["geojson"]["type"] == "Polygon"
    ring = _ring(wgs["geojson"])
    assert ring[:, 0].min() == pytest.approx(121.50)
    assert ring[:, 1].max() == pytest.approx(31.30)
    gcj = client.get(f"/v1/catalog/areas/{tenants.area_a}", params={"coord_type": "gcj02"}).json()
    gcj_ring = _ring(gcj["geojson"])
    exp_lat, exp_lng = from_wgs84(ring[:, 1], ring[:, 0], "gcj02")
    np.testing.assert_allclose(gcj_ring[:, 1], exp_lat, atol=1e-9)
    np.testing.assert_allclose(gcj_ring[:, 0], exp_lng, atol=1e-9)
    assert np.abs(gcj_ring - ring).max() > 1e-4  # GCJ-02 really is shifted


def test_area_posted_in_gcj02_is_stored_as_wgs84(client: TestClient, tenants: Tenants) -> None:
    gcj_box = box(121.0, 30.8, 121.1, 30.9)
    resp = client.post(
        "/v1/catalog/areas",
        json={
            "name": "松江",
            "coord_type": "gcj02",
            "geojson": {"type": "Feature", "geometry": gcj_box, "properties": {}},
        },
        headers=tenants.staff_a.headers,
    )
    assert resp.status_code == 201, resp.text
    stored = client.get(f"/v1/catalog/areas/{resp.json()['id']}").json()
    ring = _ring(stored["geojson"])
    src = _ring(gcj_box)
    exp_lat, exp_lng = to_wgs84(src[:, 1], src[:, 0], "gcj02")
    assert sorted(np.round(ring[:, 1], 9)) == sorted(np.round(exp_lat, 9))
    assert sorted(np.round(ring[:, 0], 9)) == sorted(np.round(exp_lng, 9))


COORDS = "coordinates must be [lng, lat] within range"
POLYGON = "not a valid polygon (see details)"


BAD_AREAS: list[tuple[dict[str, Any], str]] = [
    ({"type": "Point", "coordinates": [121.5, 31.2]}, POLYGON),
    ({"type": "Polygon", "coordinates": [[[121.5, 31.2], [121.6]]]}, COORDS),
    (
        {"type": "Polygon", "coordinates": [[[200, 31], [201, 31], [201, 32], [200, 31]]]},
        COORDS,
    ),
    # Collinear ring: no area.
    (
        {"type": "Polygon", "coordinates": [[[121, 31], [121.1, 31], [121.2, 31], [121, 31]]]},
        POLYGON,
    ),
    # Bow tie: self-intersecting.
    (
        {
            "type": "Polygon",
            "coordinates": [[[121, 31], [121.1, 31.1], [121.1, 31], [121, 31.1], [121, 31]]],
        },
        POLYGON,
    ),
    ({"type": "Polygon", "coordinates": "nope"}, POLYGON),
    ({"type": "FeatureCollection", "features": []}, "send exactly one area"),
]


def test_bad_geojson_is_422_translated(client: TestClient, tenants: Tenants) -> None:
    # One app for every case (a loop, not parametrize): the fixtures are the costly part.
    for geojson, reason_en in BAD_AREAS:
        body = {"name": "x", "geojson": geojson}
        en = client.post("/v1/catalog/areas", json=body, headers={**tenants.staff_a.headers, **EN})
        assert en.status_code == 422, (geojson, en.text)
        assert en.json()["code"] == "invalid_area"
        assert en.json()["message"] == f"Invalid service area polygon: {reason_en}", geojson
        if reason_en != "send exactly one area":
            assert en.json()["details"]["reason"]  # geo's precise reason, for the developer
        zh = client.post("/v1/catalog/areas", json=body, headers=tenants.staff_a.headers)
        assert zh.json()["message"].startswith("服务区域多边形无效："), geojson
    assert (
        client.get("/v1/catalog/areas", params={"enterprise_id": tenants.ent_a}).json()[0]["id"]
        == tenants.area_a
    )  # nothing half-created


def test_staff_cannot_change_another_enterprises_area(client: TestClient, tenants: Tenants) -> None:
    resp = client.patch(
        f"/v1/catalog/areas/{tenants.area_a}",
        json={"name": "taken over", "is_active": False},
        headers=tenants.staff_b.headers,
    )
    assert resp.status_code == 403
    area = client.get(f"/v1/catalog/areas/{tenants.area_a}").json()
    assert area["name"] == "浦东"
    assert area["is_active"] is True
    own = client.patch(
        f"/v1/catalog/areas/{tenants.area_a}",
        json={"geojson": box(121.5, 31.15, 121.6, 31.2)},
        headers=tenants.staff_a.headers,
    )
    assert own.status_code == 200
    # IN_A (31.22, 121.55) is outside the shrunken area now.
    covering = client.get("/v1/catalog/areas", params={"lat": IN_A[0], "lng": IN_A[1]}).json()
    assert covering == []


def test_areas_covering_a_point(client: TestClient, tenants: Tenants) -> None:
    covering = client.get("/v1/catalog/areas", params={"lat": IN_A[0], "lng": IN_A[1]}).json()
    assert [a["id"] for a in covering] == [tenants.area_a]
    listed = client.get("/v1/catalog/areas", params={"enterprise_id": tenants.ent_b}).json()
    assert [a["id"] for a in listed] == [tenants.area_b]
    assert client.get("/v1/catalog/areas/999999").status_code == 404
    assert BOX_A["type"] == "Polygon"

"""Address fixtures: one service area in Shanghai and two customers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.auth.models import Role
from tests.api.conftest import Account

#: Jing'an/Huangpu-ish box (WGS-84) and a point inside it, given as WGS-84 and GCJ-02.
AREA = {
    "type": "Polygon",
    "coordinates": [[[121.40, 31.18], [121.52, 31.18], [121.52, 31.28], [121.40, 31.28]]],
}
INSIDE_WGS = (31.2304, 121.4737)
BEIJING = (39.9042, 116.4074)


@pytest.fixture
def area_id(
    client: TestClient, make_user: Callable[..., Account], make_enterprise: Callable[[str], int]
) -> int:
    """An active service area covering central Shanghai."""
    ent = make_enterprise("addr-ent")
    staff = make_user(Role.STAFF, ent)
    resp = client.post(
        "/v1/catalog/areas", json={"name": "市中心", "geojson": AREA}, headers=staff.headers
    )
    assert resp.status_code == 201, resp.text
    return int(resp.json()["id"])


@pytest.fixture
def alice(make_user: Callable[..., Account]) -> Account:
    """A customer."""
    return make_user(Role.CUSTOMER)


@pytest.fixture
def bob(make_user: Callable[..., Account]) -> Account:
    """Another customer."""
    return make_user(Role.CUSTOMER)


def address_body(**overrides: Any) -> dict[str, Any]:
    """A valid address body (WGS-84 point inside AREA)."""
    body: dict[str, Any] = {
        "contact_name": "王女士",
        "contact_phone": "13800138000",
        "label": "家",
        "detail": "南京西路 100 号 8 楼",
        "lat": INSIDE_WGS[0],
        "lng": INSIDE_WGS[1],
        "coord_type": "wgs84",
    }
    body.update(overrides)
    return body

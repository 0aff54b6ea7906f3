"""Catalog fixtures: two enterprises with staff, an admin, a category and two Shanghai areas."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.auth.models import Role
from tests.api.conftest import Account

NAMES = {"zh-CN": "日常保洁", "en": "Home cleaning", "ja": "ハウスクリーニング", "ko": "청소"}


def box(min_lng: float, min_lat: float, max_lng: float, max_lat: float) -> dict[str, Any]:
    """A GeoJSON rectangle (lng, lat order)."""
    ring = [
        [min_lng, min_lat],
        [max_lng, min_lat],
        [max_lng, max_lat],
        [min_lng, max_lat],
        [min_lng, min_lat],
    ]
    return {"type": "Polygon", "coordinates": [ring]}


#: Pudong-ish (enterprise A) and Puxi-ish (enterprise B) boxes, WGS-84.
BOX_A = box(121.50, 31.15, 121.70, 31.30)
BOX_B = box(121.35, 31.15, 121.49, 31.30)
IN_A = (31.22, 121.55)
IN_B = (31.22, 121.42)
BEIJING = (39.9042, 116.4074)


@dataclass
class Tenants:
    """Two enterprises, their staff, an admin and a shared category."""

    admin: Account
    ent_a: int
    ent_b: int
    staff_a: Account
    staff_b: Account
    category_id: int
    area_a: int
    area_b: int


@pytest.fixture
def tenants(
    client: TestClient,
    make_user: Callable[..., Account],
    make_enterprise: Callable[[str], int],
) -> Tenants:
    """Enterprises A and B with one staff member and one service area each."""
    admin = make_user(Role.ADMIN)
    ent_a, ent_b = make_enterprise("ent-a"), make_enterprise("ent-b")
    staff_a, staff_b = make_user(Role.STAFF, ent_a), make_user(Role.STAFF, ent_b)
    cat = client.post(
        "/v1/catalog/categories",
        json={"code": "cleaning", "names": NAMES},
        headers=admin.headers,
    )
    assert cat.status_code == 201, cat.text
    area_a = client.post(
        "/v1/catalog/areas",
        json={"name": "浦东", "city": "上海", "geojson": BOX_A},
        headers=staff_a.headers,
    )
    assert area_a.status_code == 201, area_a.text
    area_b = client.post(
        "/v1/catalog/areas",
        json={"name": "浦西", "city": "上海", "geojson": BOX_B},
        headers=staff_b.headers,
    )
    assert area_b.status_code == 201, area_b.text
    return Tenants(
        admin,
        ent_a,
        ent_b,
        staff_a,
        staff_b,
        cat.json()["id"],
        area_a.json()["id"],
        area_b.json()["id"],
    )


@pytest.fixture
def make_service(client: TestClient, tenants: Tenants) -> Callable[..., dict[str, Any]]:
    """Create a service through the API as ``staff`` (default: staff of A)."""

    def make(staff: Account | None = None, **fields: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "category_id": tenants.category_id,
            "names": NAMES,
            "descriptions": {"zh-CN": "两小时上门保洁", "en": "Two hours of cleaning"},
            "price_fen": 12800,
            "duration_min": 120,
            "required_skills": ["cleaning"],
        }
        body.update(fields)
        resp = client.post(
            "/v1/catalog/services", json=body, headers=(staff or tenants.staff_a).headers
        )
        assert resp.status_code == 201, resp.text
        return dict(resp.json())

    return make

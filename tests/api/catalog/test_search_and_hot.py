"""Search by keyword/category/area/location, and hot services near a point."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth.models import Role
from api.core.db import utcnow
from api.orders.models import Order
from tests.api.catalog.conftest import BEIJING, IN_A, IN_B, Tenants
from tests.api.conftest import Account


def _ids(resp: Any) -> list[int]:
    assert resp.status_code == 200, resp.text
    return [item["id"] for item in resp.json()["items"]]


@pytest.fixture
def catalog(tenants: Tenants, make_service: Callable[..., dict[str, Any]]) -> dict[str, int]:
    """Three services: two of A (one popular), one of B."""
    a_clean = make_service(popularity=5)["id"]
    a_windows = make_service(
        names={"zh-CN": "擦玻璃", "en": "Window washing 100%"},
        descriptions={"zh-CN": "高层玻璃"},
        required_skills=["windows"],
        popularity=50,
    )["id"]
    b_clean = make_service(staff=tenants.staff_b, popularity=20)["id"]
    return {"a_clean": a_clean, "a_windows": a_windows, "b_clean": b_clean}


def test_keyword_search_any_language(client: TestClient, catalog: dict[str, int]) -> None:
    zh = _ids(client.get("/v1/catalog/services", params={"q": "保洁"}))
    assert sorted(zh) == sorted([catalog["a_clean"], catalog["b_clean"]])
    en = _ids(client.get("/v1/catalog/services", params={"q": "CLEANING"}))
    assert sorted(en) == sorted([catalog["a_clean"], catalog["b_clean"]])
    assert _ids(client.get("/v1/catalog/services", params={"q": "玻璃"})) == [catalog["a_windows"]]
    # LIKE wildcards in the keyword are literal characters.
    assert _ids(client.get("/v1/catalog/services", params={"q": "100%"})) == [catalog["a_windows"]]
    assert _ids(client.get("/v1/catalog/services", params={"q": "%"})) == [catalog["a_windows"]]
    assert _ids(client.get("/v1/catalog/services", params={"q": "nothing-like-this"})) == []


def test_filter_by_category_area_and_location(
    client: TestClient, tenants: Tenants, catalog: dict[str, int]
) -> None:
    all_ids = _ids(client.get("/v1/catalog/services", params={"category": "cleaning"}))
    assert len(all_ids) == 3
    assert all_ids[0] == catalog["a_windows"]  # most popular first
    unknown = client.get("/v1/catalog/services", params={"category": "nope"})
    assert unknown.status_code == 404
    in_a = _ids(client.get("/v1/catalog/services", params={"lat": IN_A[0], "lng": IN_A[1]}))
    assert sorted(in_a) == sorted([catalog["a_clean"], catalog["a_windows"]])
    by_area = _ids(client.get("/v1/catalog/services", params={"area_id": tenants.area_b}))
    assert by_area == [catalog["b_clean"]]
    nowhere = _ids(
        client.get("/v1/catalog/services", params={"lat": BEIJING[0], "lng": BEIJING[1]})
    )
    assert nowhere == []
    half = client.get("/v1/catalog/services", params={"lat": 31.2})
    assert half.status_code == 422
    assert half.json()["code"] == "invalid_coordinates"
    bad = client.get(
        "/v1/catalog/services", params={"lat": 95, "lng": 121}, headers={"Accept-Language": "en"}
    )
    assert bad.status_code == 422
    assert bad.json()["details"][0]["message"] == "Must be at most 90."


def test_search_pages(client: TestClient, catalog: dict[str, int]) -> None:
    page = client.get("/v1/catalog/services", params={"limit": 2, "offset": 2}).json()
    assert page["total"] == 3
    assert len(page["items"]) == 1
    assert client.get("/v1/catalog/services", params={"limit": 0}).status_code == 422


def test_hot_services_near_me_use_the_popularity_fallback_without_orders(
    client: TestClient, tenants: Tenants, catalog: dict[str, int]
) -> None:
    resp = client.get("/v1/catalog/services/hot", params={"lat": IN_B[0], "lng": IN_B[1]})
    assert resp.status_code == 200
    body = resp.json()
    assert body["ranking_basis"] == "popularity"
    assert body["area_ids"] == [tenants.area_b]
    assert [i["id"] for i in body["items"]] == [catalog["b_clean"]]
    near_a = client.get("/v1/catalog/services/hot", params={"lat": IN_A[0], "lng": IN_A[1]}).json()
    assert [(i["id"], i["rank"], i["score"]) for i in near_a["items"]] == [
        (catalog["a_windows"], 1, 50),
        (catalog["a_clean"], 2, 5),
    ]
    far = client.get("/v1/catalog/services/hot", params={"lat": BEIJING[0], "lng": BEIJING[1]})
    assert far.json()["items"] == []


def test_hot_services_rank_by_recent_paid_orders_when_orders_exist(
    client: TestClient,
    run_db: Any,
    tenants: Tenants,
    catalog: dict[str, int],
    make_user: Callable[..., Account],
) -> None:
    customer = make_user(Role.CUSTOMER)
    now = utcnow()
    rows = (
        [(catalog["a_clean"], now - timedelta(days=1))] * 3
        + [(catalog["a_windows"], now - timedelta(days=2))]
        # Too old and unpaid orders do not count.
        + [(catalog["a_windows"], now - timedelta(days=45))] * 5
        + [(catalog["a_windows"], None)] * 5
    )

    async def create(session: AsyncSession) -> None:
        for n, (service_id, paid_at) in enumerate(rows):
            slot = now + timedelta(days=1, hours=n)
            session.add(
                Order(
                    order_no=f"HOT{os.getpid()}{n:04d}",
                    customer_id=customer.id,
                    enterprise_id=tenants.ent_a,
                    service_id=service_id,
                    service_area_id=tenants.area_a,
                    status="PENDING_SERVICE" if paid_at else "PENDING_PAYMENT",
                    slot_start=slot,
                    slot_end=slot + timedelta(hours=2),
                    duration_min=120,
                    price_fen=10_000,
                    amount_fen=10_000,
                    lat=IN_A[0],
                    lng=IN_A[1],
                    paid_at=paid_at,
                )
            )

    run_db(create)
    body = client.get("/v1/catalog/services/hot", params={"lat": IN_A[0], "lng": IN_A[1]}).json()
    assert body["ranking_basis"] == "paid_orders_30d"
    # Paid orders outrank the operators' popularity (a_windows has 50, a_clean 5).
    assert [(i["id"], i["score"]) for i in body["items"]] == [
        (catalog["a_clean"], 3),
        (catalog["a_windows"], 1),
    ]
    # Area B has no paid orders yet: it still shows its services, by popularity.
    near_b = client.get("/v1/catalog/services/hot", params={"lat": IN_B[0], "lng": IN_B[1]})
    assert near_b.json()["ranking_basis"] == "popularity"

"""Categories and services: localisation, validation, tenant isolation, details."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from tests.api.catalog.conftest import NAMES, Tenants

EN = {"Accept-Language": "en"}


def test_categories_are_localised_and_admin_only(client: TestClient, tenants: Tenants) -> None:
    zh = client.get("/v1/catalog/categories").json()
    assert [c["name"] for c in zh] == ["日常保洁"]
    assert (
        client.get("/v1/catalog/categories", headers={"Accept-Language": "ja"}).json()[0]["name"]
        == "ハウスクリーニング"
    )
    denied = client.post(
        "/v1/catalog/categories",
        json={"code": "repair", "names": {"zh-CN": "维修"}},
        headers=tenants.staff_a.headers,
    )
    assert denied.status_code == 403
    dup = client.post(
        "/v1/catalog/categories",
        json={"code": "cleaning", "names": {"zh-CN": "保洁"}},
        headers=tenants.admin.headers,
    )
    assert dup.status_code == 409
    no_zh = client.post(
        "/v1/catalog/categories",
        json={"code": "repair", "names": {"en": "Repair"}},
        headers={**tenants.admin.headers, **EN},
    )
    assert no_zh.status_code == 422
    assert no_zh.json()["details"][0]["message"] == (
        "Give the text in zh-CN (required) and optionally en, ja, ko."
    )
    bad_locale = client.post(
        "/v1/catalog/categories",
        json={"code": "repair", "names": {"zh-CN": "维修", "fr": "Réparation"}},
        headers=tenants.admin.headers,
    )
    assert bad_locale.status_code == 422
    assert bad_locale.json()["details"][0]["message"] == (
        "请提供简体中文文本（必填），以及可选的英文、日文、韩文。"
    )


def test_service_details_in_four_languages_with_honest_reviews(
    client: TestClient, make_service: Callable[..., dict[str, Any]]
) -> None:
    created = make_service()
    sid = created["id"]
    for locale, name in NAMES.items():
        got = client.get(f"/v1/catalog/services/{sid}", headers={"Accept-Language": locale})
        assert got.status_code == 200
        assert got.json()["name"] == name
    detail = client.get(f"/v1/catalog/services/{sid}", headers=EN).json()
    assert detail["price_fen"] == 12800
    assert detail["duration_min"] == 120
    assert detail["description"] == "Two hours of cleaning"
    assert detail["category_code"] == "cleaning"
    assert detail["review_summary"] == {"count": 0, "average_rating": None}
    # ko has no description: falls back to zh-CN rather than an empty string.
    ko = client.get(f"/v1/catalog/services/{sid}", headers={"Accept-Language": "ko"}).json()
    assert ko["description"] == "两小时上门保洁"


def test_unknown_service_is_404_translated(client: TestClient) -> None:
    zh = client.get("/v1/catalog/services/424242")
    assert zh.status_code == 404
    assert zh.json() == {"code": "service_not_found", "message": "服务不存在。", "details": None}
    assert client.get("/v1/catalog/services/424242", headers=EN).json()["message"] == (
        "Service not found."
    )
    assert client.get("/v1/catalog/services/abc").status_code == 404
    assert client.get(f"/v1/catalog/services/{2**63}").status_code == 422


def test_staff_cannot_touch_another_enterprises_services(
    client: TestClient, tenants: Tenants, make_service: Callable[..., dict[str, Any]]
) -> None:
    svc_b = make_service(staff=tenants.staff_b)
    assert svc_b["enterprise_id"] == tenants.ent_b
    patch = client.patch(
        f"/v1/catalog/services/{svc_b['id']}",
        json={"price_fen": 1},
        headers={**tenants.staff_a.headers, **EN},
    )
    assert patch.status_code == 403
    assert patch.json()["message"] == "This belongs to another enterprise."
    assert client.get(f"/v1/catalog/services/{svc_b['id']}").json()["price_fen"] == 12800
    for_b = client.post(
        "/v1/catalog/services",
        json={
            "enterprise_id": tenants.ent_b,
            "category_id": tenants.category_id,
            "names": {"zh-CN": "偷偷上架"},
            "price_fen": 100,
            "duration_min": 60,
        },
        headers=tenants.staff_a.headers,
    )
    assert for_b.status_code == 403
    # Their own: fine; and an admin may edit anyone's.
    own = client.patch(
        f"/v1/catalog/services/{svc_b['id']}",
        json={"price_fen": 9900},
        headers=tenants.staff_b.headers,
    )
    assert own.status_code == 200
    assert own.json()["price_fen"] == 9900
    by_admin = client.patch(
        f"/v1/catalog/services/{svc_b['id']}",
        json={"is_active": False},
        headers=tenants.admin.headers,
    )
    assert by_admin.status_code == 200
    assert client.get(f"/v1/catalog/services/{svc_b['id']}").status_code == 404


def test_customers_and_anonymous_cannot_create_services(
    client: TestClient, tenants: Tenants, make_user: Callable[..., Any]
) -> None:
    body = {"category_id": tenants.category_id, "names": NAMES, "price_fen": 1, "duration_min": 60}
    assert client.post("/v1/catalog/services", json=body).status_code == 401
    customer = make_user()
    assert (
        client.post("/v1/catalog/services", json=body, headers=customer.headers).status_code == 403
    )


def test_service_validation(client: TestClient, tenants: Tenants) -> None:
    base = {
        "category_id": tenants.category_id,
        "names": NAMES,
        "price_fen": 100,
        "duration_min": 60,
    }
    headers = {**tenants.staff_a.headers, **EN}
    zero = client.post("/v1/catalog/services", json={**base, "price_fen": 0}, headers=headers)
    assert zero.status_code == 422
    assert zero.json()["details"][0]["message"] == "Must be greater than 0."
    frac = client.post("/v1/catalog/services", json={**base, "price_fen": 12.5}, headers=headers)
    assert frac.status_code == 422
    skills = client.post(
        "/v1/catalog/services", json={**base, "required_skills": ["Bad Skill!"]}, headers=headers
    )
    assert skills.status_code == 422
    unknown_cat = client.post(
        "/v1/catalog/services", json={**base, "category_id": 999999}, headers=headers
    )
    assert unknown_cat.status_code == 404
    assert unknown_cat.json()["code"] == "category_not_found"
    admin_no_ent = client.post(
        "/v1/catalog/services", json=base, headers={**tenants.admin.headers, **EN}
    )
    assert admin_no_ent.status_code == 400
    assert admin_no_ent.json()["message"] == "Choose the enterprise (enterprise_id)."

"""Saved addresses: GCJ-02 in and out, WGS-84 + H3 stored, area checks, ownership, defaults."""

from __future__ import annotations

import math
from typing import Any

import h3
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.addresses.models import Address
from api.auth.models import Role
from geo.coords import from_wgs84, to_wgs84
from tests.api.addresses.conftest import BEIJING, INSIDE_WGS, address_body
from tests.api.conftest import Account

EN = {"Accept-Language": "en"}


def _stored(run_db: Any, address_id: int) -> Address:
    async def load(session):  # type: ignore[no-untyped-def]
        return (await session.execute(select(Address).where(Address.id == address_id))).scalar_one()

    return run_db(load)


def test_gcj02_from_wx_get_location_is_stored_as_wgs84(
    client: TestClient, run_db: Any, area_id: int, alice: Account
) -> None:
    gcj_lat, gcj_lng = from_wgs84(INSIDE_WGS[0], INSIDE_WGS[1], "gcj02")
    resp = client.post(
        "/v1/addresses",
        json=address_body(lat=gcj_lat, lng=gcj_lng, coord_type="gcj02"),
        headers=alice.headers,
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["service_area_ids"] == [area_id]
    assert body["is_default"] is True  # the first address is the default
    assert body["coord_type"] == "wgs84"
    row = _stored(run_db, body["id"])
    exp_lat, exp_lng = to_wgs84(gcj_lat, gcj_lng, "gcj02")
    assert row.lat == pytest.approx(exp_lat, abs=1e-9)
    assert row.lng == pytest.approx(exp_lng, abs=1e-9)
    assert math.dist((row.lat, row.lng), INSIDE_WGS) < 1e-5  # ~1 m
    assert row.h3_cell == h3.str_to_int(h3.latlng_to_cell(row.lat, row.lng, 9))
    assert body["h3_cell"] == format(row.h3_cell, "x")

    as_gcj = client.get(
        f"/v1/addresses/{body['id']}", params={"coord_type": "gcj02"}, headers=alice.headers
    ).json()
    assert as_gcj["coord_type"] == "gcj02"
    assert as_gcj["lat"] == pytest.approx(gcj_lat, abs=1e-6)
    assert as_gcj["lng"] == pytest.approx(gcj_lng, abs=1e-6)


def test_bd09_input_is_converted_too(
    client: TestClient, run_db: Any, area_id: int, alice: Account
) -> None:
    bd_lat, bd_lng = from_wgs84(INSIDE_WGS[0], INSIDE_WGS[1], "bd09")
    resp = client.post(
        "/v1/addresses",
        json=address_body(lat=bd_lat, lng=bd_lng, coord_type="bd09"),
        headers=alice.headers,
    )
    assert resp.status_code == 201
    row = _stored(run_db, resp.json()["id"])
    assert math.dist((row.lat, row.lng), INSIDE_WGS) < 1e-5


def test_outside_every_area_is_422_translated_and_not_stored(
    client: TestClient, area_id: int, alice: Account
) -> None:
    body = address_body(lat=BEIJING[0], lng=BEIJING[1])
    zh = client.post("/v1/addresses", json=body, headers=alice.headers)
    assert zh.status_code == 422
    assert zh.json()["code"] == "outside_service_area"
    assert zh.json()["message"] == "抱歉，该地址不在我们的服务范围内。"
    en = client.post("/v1/addresses", json=body, headers={**alice.headers, **EN})
    assert en.json()["message"] == "Sorry, this address is outside our service areas."
    assert client.get("/v1/addresses", headers=alice.headers).json() == []


MALFORMED: list[tuple[str, Any, str, str, str]] = [
    (
        "lat",
        91,
        "invalid_latitude",
        "纬度必须在 -90 到 90 之间。",
        "Latitude must be between -90 and 90.",
    ),
    (
        "lng",
        -181,
        "invalid_longitude",
        "经度必须在 -180 到 180 之间。",
        "Longitude must be between -180 and 180.",
    ),
    ("lat", "north", "float_parsing", "必须是数字。", "Must be a number."),
    (
        "coord_type",
        "wgs-84",
        "enum",
        "必须是以下之一：'wgs84', 'gcj02' or 'bd09'。",
        "Must be one of: 'wgs84', 'gcj02' or 'bd09'.",
    ),
    (
        "contact_phone",
        "12345",
        "invalid_phone",
        "请输入有效的中国大陆手机号。",
        "Enter a valid mainland China mobile number.",
    ),
]


def test_malformed_input_is_422_translated(
    client: TestClient, area_id: int, alice: Account
) -> None:
    for field, value, error_type, zh, en in MALFORMED:
        body = address_body(**{field: value})
        resp = client.post("/v1/addresses", json=body, headers=alice.headers)
        assert resp.status_code == 422, (field, value)
        detail = resp.json()["details"][0]
        assert detail["loc"] == ["body", field]
        assert detail["type"] == error_type
        assert detail["message"] == zh
        resp_en = client.post("/v1/addresses", json=body, headers={**alice.headers, **EN})
        assert resp_en.json()["details"][0]["message"] == en
    assert client.get("/v1/addresses", headers=alice.headers).json() == []


def test_nan_latitude_is_rejected(client: TestClient, area_id: int, alice: Account) -> None:
    # Python's json (and Starlette's request.json) accept the NaN literal: we must not.
    resp = client.post(
        "/v1/addresses",
        content=b'{"contact_name": "a", "contact_phone": "13800138000", "detail": "x", '
        b'"lat": NaN, "lng": 121.47}',
        headers={**alice.headers, "Content-Type": "application/json"},
    )
    assert resp.status_code == 422
    assert resp.json()["details"][0]["type"] in ("invalid_latitude", "finite_number")


def test_customers_cannot_read_or_change_each_others_addresses(
    client: TestClient, area_id: int, alice: Account, bob: Account
) -> None:
    mine = client.post("/v1/addresses", json=address_body(), headers=alice.headers).json()
    url = f"/v1/addresses/{mine['id']}"
    read = client.get(url, headers={**bob.headers, **EN})
    assert read.status_code == 404
    assert read.json()["message"] == "Address not found."
    assert client.patch(url, json={"detail": "hijacked"}, headers=bob.headers).status_code == 404
    assert client.delete(url, headers=bob.headers).status_code == 404
    assert client.get("/v1/addresses", headers=bob.headers).json() == []
    still = client.get(url, headers=alice.headers).json()
    assert still["detail"] == mine["detail"]
    assert client.get(url).status_code == 401


def test_one_default_address_at_a_time(client: TestClient, area_id: int, alice: Account) -> None:
    first = client.post("/v1/addresses", json=address_body(), headers=alice.headers).json()
    second = client.post(
        "/v1/addresses", json=address_body(label="公司", is_default=True), headers=alice.headers
    ).json()
    third = client.post(
        "/v1/addresses", json=address_body(label="父母家"), headers=alice.headers
    ).json()
    assert (first["is_default"], second["is_default"], third["is_default"]) == (True, True, False)
    listed = client.get("/v1/addresses", headers=alice.headers).json()
    assert [a["id"] for a in listed if a["is_default"]] == [second["id"]]
    assert listed[0]["id"] == second["id"]
    client.patch(f"/v1/addresses/{third['id']}", json={"is_default": True}, headers=alice.headers)
    listed = client.get("/v1/addresses", headers=alice.headers).json()
    assert [a["id"] for a in listed if a["is_default"]] == [third["id"]]


def test_update_moves_the_point_and_rechecks_the_area(
    client: TestClient, run_db: Any, area_id: int, alice: Account
) -> None:
    created = client.post("/v1/addresses", json=address_body(), headers=alice.headers).json()
    url = f"/v1/addresses/{created['id']}"
    moved = client.patch(
        url,
        json={"lat": 31.20, "lng": 121.45, "contact_phone": "+86 139 0000 0000"},
        headers=alice.headers,
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["contact_phone"] == "13900000000"
    assert moved.json()["contact_phone_masked"] == "139****0000"
    row = _stored(run_db, created["id"])
    assert (row.lat, row.lng) == (31.20, 121.45)
    outside = client.patch(url, json={"lat": BEIJING[0], "lng": BEIJING[1]}, headers=alice.headers)
    assert outside.status_code == 422
    assert _stored(run_db, created["id"]).lat == 31.20  # unchanged: bad input loses nothing
    half = client.patch(url, json={"lat": 31.21}, headers={**alice.headers, **EN})
    assert half.status_code == 422
    assert half.json()["details"][0]["message"] == "This field is required."


def test_delete(client: TestClient, area_id: int, alice: Account) -> None:
    created = client.post("/v1/addresses", json=address_body(), headers=alice.headers).json()
    assert client.delete(f"/v1/addresses/{created['id']}", headers=alice.headers).status_code == 204
    assert client.get(f"/v1/addresses/{created['id']}", headers=alice.headers).status_code == 404


def test_address_becomes_uncovered_when_its_area_is_deactivated(
    client: TestClient, area_id: int, alice: Account, make_user: Any
) -> None:
    created = client.post("/v1/addresses", json=address_body(), headers=alice.headers).json()
    admin = make_user(Role.ADMIN)
    off = client.patch(
        f"/v1/catalog/areas/{area_id}", json={"is_active": False}, headers=admin.headers
    )
    assert off.status_code == 200
    again = client.get(f"/v1/addresses/{created['id']}", headers=alice.headers).json()
    assert again["service_area_ids"] == []


def test_database_keeps_one_default_even_when_requests_race(
    client: TestClient, run_db: Any, area_id: int, alice: Account
) -> None:
    from api.addresses import service

    first = client.post("/v1/addresses", json=address_body(), headers=alice.headers).json()
    assert first["is_default"] is True

    async def second_default(session: Any) -> None:
        # What a concurrent request that skipped _clear_default would write.
        session.add(
            Address(
                user_id=alice.id,
                contact_name="x",
                contact_phone="13800138000",
                detail="y",
                lat=INSIDE_WGS[0],
                lng=INSIDE_WGS[1],
                h3_cell=first["h3_cell"] and int(first["h3_cell"], 16),
                is_default=True,
            )
        )
        await service._commit_or_conflict(session)

    with pytest.raises(service.DefaultAddressRace):
        run_db(second_default)
    listed = client.get("/v1/addresses", headers=alice.headers).json()
    assert [a["id"] for a in listed if a["is_default"]] == [first["id"]]

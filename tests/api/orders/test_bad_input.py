"""Bad booking input is a 4xx with a translated message, shown in zh-CN and en."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient

from tests.api.orders.world import World, local_slot

CJK = re.compile(r"[\u4e00-\u9fff]")


def _cases(w: World) -> dict[str, tuple[Callable[[TestClient, dict[str, str]], Any], int, str]]:
    def booking(**over: Any) -> dict[str, Any]:
        return {"service_id": w.service_a, "address_id": w.alice_address,
                "slot_start": w.slot(10), **over}  # fmt: skip

    def post(body: Any) -> Callable[[TestClient, dict[str, str]], Any]:
        return lambda c, h: c.post("/v1/orders", json=body, headers=h)

    yesterday = (local_slot(w.day, 10) - timedelta(days=2)).isoformat()

    def slots(**params: Any) -> Callable[[TestClient, dict[str, str]], Any]:
        base = {"service_id": w.service_a, "date": w.day.isoformat()}
        return lambda c, h: c.get("/v1/orders/slots", params={**base, **params}, headers=h)

    return {
        "out_of_area": (post(booking(address_id=w.alice_far_address)), 422, "outside_service_area"),
        "past_slot": (post(booking(slot_start=yesterday)), 422, "slot_in_past"),
        "off_grid": (post(booking(slot_start=w.slot(10, 7))), 422, "slot_invalid"),
        "unknown_service": (post(booking(service_id=987654)), 404, "service_not_found"),
        "malformed_lat": (slots(lat="north", lng=121.5), 422, "validation_error"),
        "lat_out_of_range": (slots(lat=91, lng=121.5), 422, "validation_error"),
        "half_a_point": (slots(lat=31.2), 422, "invalid_coordinates"),
        "oversized_body": (post(booking(note="x" * 70_000)), 413, "payload_too_large"),
        "wrong_content_type": (
            lambda c, h: c.post(
                "/v1/orders", content=b"service_id=1", headers={**h, "Content-Type": "text/plain"}
            ),
            415,
            "unsupported_media_type",
        ),
    }


def test_bad_input_is_4xx_translated(client: TestClient, world: World) -> None:
    for name, (call, status, code) in _cases(world).items():
        messages = {}
        for locale in ("zh-CN", "en"):
            resp = call(client, {**world.alice.headers, "Accept-Language": locale})
            assert resp.status_code == status, (name, resp.text)
            body = resp.json()
            assert body["code"] == code, name
            assert resp.headers["Content-Language"] == locale
            messages[locale] = body["message"]
        assert CJK.search(messages["zh-CN"]), (name, messages)
        assert not CJK.search(messages["en"]), (name, messages)

"""The whole booking path against a real server process over HTTP, on SQLite and PostGIS.

register → login → hot services → slots → book → pay (sandbox page, signed callback) →
待服务 → cancel with refund; the relay delivers the inbox messages on the way.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.api.e2e.server import free_port, fresh_database, running_server, seed, server_env

#: A point in the demo's 徐汇 district (served by both demo enterprises).
POINT = (31.15, 121.55)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_register_to_refund_over_http(backend: str, tmp_path: Path) -> None:
    port = free_port()
    with fresh_database(backend, tmp_path, "path") as url:
        env = server_env(url, tmp_path, port, DAOJIA_RELAY_INTERVAL_S="0.3")
        seed(env)
        with running_server(env, port) as base, httpx.Client(base_url=base, timeout=60) as http:
            phone, password = "13912345678", "Booking-e2e-1"
            reg = http.post("/v1/auth/register", json={"phone": phone, "password": password})
            assert reg.status_code == 201, reg.text
            login = http.post("/v1/auth/login", json={"phone": phone, "password": password})
            assert login.status_code == 200, login.text
            auth = {"Authorization": f"Bearer {login.json()['access_token']}"}

            hot = http.get("/v1/catalog/services/hot", params={"lat": POINT[0], "lng": POINT[1]})
            assert hot.status_code == 200, hot.text
            cleaning = next(
                s for s in hot.json()["items"] if "保洁" in s["name"] and s["price_fen"] == 9900
            )
            address = http.post(
                "/v1/addresses",
                json={"contact_name": "王女士", "contact_phone": "13912345678",
                      "detail": "徐汇区某路 8 号", "lat": POINT[0], "lng": POINT[1]},
                headers=auth,
            )  # fmt: skip
            assert address.status_code == 201, address.text
            address_id = address.json()["id"]

            day = (datetime.now(ZoneInfo("Asia/Shanghai")) + timedelta(days=2)).date()
            slots = http.get(
                "/v1/orders/slots",
                params={"service_id": cleaning["id"], "date": day.isoformat(),
                        "address_id": address_id},
                headers=auth,
            )  # fmt: skip
            assert slots.status_code == 200, slots.text
            assert slots.json()["slots"], "the demo seed must make slots exist"
            first = slots.json()["slots"][0]

            booked = http.post(
                "/v1/orders",
                json={"service_id": cleaning["id"], "address_id": address_id,
                      "slot_start": first["start"]},
                headers={**auth, "Idempotency-Key": "e2e-1"},
            )  # fmt: skip
            assert booked.status_code == 201, booked.text
            order = booked.json()
            assert order["status"] == "pending_payment"
            assert order["worker"] is not None

            pay = http.post(f"/v1/orders/{order['id']}/payments", json={}, headers=auth)
            assert pay.status_code == 200, pay.text
            pay_url = pay.json()["pay_url"]
            assert pay_url.startswith(base)
            page = http.get(pay_url)
            assert page.status_code == 200
            assert "沙箱支付" in page.text
            trade = pay.json()["out_trade_no"]
            paid = http.post(
                "/v1/payments/sandbox/pay",
                content=f"out_trade_no={trade}",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            assert paid.status_code == 200
            assert paid.headers["X-Payment-Outcome"] == "paid"

            now = http.get(f"/v1/orders/{order['id']}", headers=auth).json()
            assert now["status"] == "pending_service"
            assert now["status_label"] == "待服务"

            cancel = http.post(
                f"/v1/orders/{order['id']}/cancel", json={"reason": "e2e"}, headers=auth
            )
            assert cancel.status_code == 200, cancel.text
            assert cancel.json()["status"] == "cancelled"
            assert cancel.json()["refunded_fen"] == order["amount_fen"]

            # The embedded relay delivers to the inbox (created, paid, cancelled).
            deadline = time.monotonic() + 30
            topics: list[str] = []
            while time.monotonic() < deadline:
                inbox = http.get("/v1/notifications", headers=auth).json()
                topics = sorted(i["topic"] for i in inbox["items"])
                if len(topics) >= 3:
                    break
                time.sleep(0.3)
            assert topics == ["cancelled", "created", "paid"]

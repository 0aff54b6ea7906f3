"""Booking: quote, slots, book with a held worker, pay, cancel with refund, rules, history."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api.notifications.models import OutboxMessage
from api.orders.models import OrderEvent, WorkerReservation
from api.payments.models import Payment, PaymentEvent, Refund
from tests.api.orders.world import World, book, pay_sandbox


def _count(run_db: Any, model: Any, *where: Any) -> int:
    async def go(session: Any) -> int:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)))

    return int(run_db(go))


def test_book_pay_cancel_refund(client: TestClient, world: World, run_db: Any) -> None:
    resp = book(client, world)
    assert resp.status_code == 201, resp.text
    order = resp.json()
    assert order["status"] == "pending_payment"
    assert order["status_label"] == "待支付"
    assert order["worker"] is not None
    assert order["amount_fen"] >= 9900
    oid = order["id"]
    assert _count(run_db, WorkerReservation, WorkerReservation.order_id == oid,
                  WorkerReservation.status == "held") == 1  # fmt: skip

    assert pay_sandbox(client, world, oid) == "paid"
    paid = client.get(f"/v1/orders/{oid}", headers=world.alice.headers).json()
    assert paid["status"] == "pending_service"
    assert paid["dispatch_status"] == "awaiting_dispatch"
    assert _count(run_db, WorkerReservation, WorkerReservation.order_id == oid,
                  WorkerReservation.status == "confirmed") == 1  # fmt: skip
    assert _count(run_db, PaymentEvent, PaymentEvent.order_id == oid) == 1

    cancelled = client.post(f"/v1/orders/{oid}/cancel", json={"reason": "plans changed"},
                            headers=world.alice.headers)  # fmt: skip
    assert cancelled.status_code == 200, cancelled.text
    body = cancelled.json()
    assert body["status"] == "cancelled"
    assert body["refunded_fen"] == paid["amount_fen"]  # well before the cut-off: free
    assert _count(run_db, Refund, Refund.order_id == oid, Refund.status == "succeeded") == 1
    assert _count(run_db, WorkerReservation, WorkerReservation.order_id == oid,
                  WorkerReservation.status == "released") == 1  # fmt: skip
    events = client.get(f"/v1/orders/{oid}/events", headers=world.alice.headers).json()
    assert [e["event"] for e in events] == ["created", "paid", "cancelled"]
    # Every transition wrote its outbox messages (inbox + wechat) in the same transaction.
    assert _count(run_db, OutboxMessage, OutboxMessage.order_id == oid) == 2 * len(events)
    # Cancelling again is an illegal transition: 409, nothing changes.
    again = client.post(f"/v1/orders/{oid}/cancel", json={}, headers=world.alice.headers)
    assert again.status_code == 409
    assert again.json()["code"] == "illegal_transition"
    assert _count(run_db, OrderEvent, OrderEvent.order_id == oid) == 3


def test_each_worker_is_booked_once_per_slot(client: TestClient, world: World) -> None:
    codes = [book(client, world).status_code for _ in range(len(world.workers_a) + 1)]
    assert codes == [201] * len(world.workers_a) + [409]
    taken = book(client, world, headers={"Accept-Language": "en"})
    assert taken.json()["code"] == "slot_taken"
    assert "taken" in taken.json()["message"]
    # Back-to-back works: another slot later the same day is free again.
    assert book(client, world, hour=14).status_code == 201


def test_slots_and_quote(client: TestClient, world: World) -> None:
    resp = client.get(
        "/v1/orders/slots",
        params={"service_id": world.service_a, "date": world.day.isoformat(),
                "address_id": world.alice_address},
        headers=world.alice.headers,
    )  # fmt: skip
    assert resp.status_code == 200, resp.text
    slots = resp.json()["slots"]
    assert slots, "workers with shifts must produce slots"
    starts = {s["start"] for s in slots}
    ten = world.slot(10).replace("+00:00", "Z")
    assert ten in starts
    assert all(s["available_workers"] >= 1 for s in slots)
    q = client.get("/v1/orders/quote", params={"service_id": world.service_a,
                                                "slot_start": world.slot(19)})  # fmt: skip
    assert q.status_code == 200
    lines = {x["code"] for x in q.json()["lines"]}
    assert "evening" in lines
    assert q.json()["amount_fen"] == sum(x["amount_fen"] for x in q.json()["lines"])


def test_idempotency_key_on_create(client: TestClient, world: World) -> None:
    key = {"Idempotency-Key": "k-123"}
    first = book(client, world, headers=key)
    second = book(client, world, headers=key)
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] == second.json()["id"]
    other = book(client, world, hour=14, headers=key)
    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_key_reused"
    listed = client.get("/v1/orders", headers=world.alice.headers).json()
    assert listed["total"] == 1


def test_unpaid_orders_expire_and_release_the_worker(
    client: TestClient, world: World, run_db: Any
) -> None:
    from datetime import timedelta

    from api.core.db import utcnow
    from api.orders.service import expire_unpaid

    oid = book(client, world).json()["id"]
    maker = client.app.state.sessionmaker  # type: ignore[attr-defined]
    assert client.portal is not None
    assert client.portal.call(lambda: expire_unpaid(maker, now=utcnow())) == 0
    later = utcnow() + timedelta(minutes=16)
    assert client.portal.call(lambda: expire_unpaid(maker, now=later)) == 1
    order = client.get(f"/v1/orders/{oid}", headers=world.alice.headers).json()
    assert order["status"] == "cancelled"
    assert _count(run_db, WorkerReservation, WorkerReservation.order_id == oid,
                  WorkerReservation.status == "released") == 1  # fmt: skip
    pay = client.post(f"/v1/orders/{oid}/payments", json={}, headers=world.alice.headers)
    assert pay.status_code == 409
    assert _count(run_db, Payment) == 0


def test_full_lifecycle_and_after_sales(client: TestClient, world: World) -> None:
    oid = book(client, world).json()["id"]
    pay_sandbox(client, world, oid)
    worker_id = client.get(f"/v1/orders/{oid}", headers=world.alice.headers).json()["worker"]["id"]
    account = next(acc for wid, acc in world.workers_a if wid == worker_id)
    # Starting before arriving is illegal.
    early = client.post(f"/v1/orders/{oid}/progress", json={"action": "start"},
                        headers=account.headers)  # fmt: skip
    assert early.status_code == 409
    for action, status in [("accept", "accepted"), ("depart", "en_route"),
                           ("arrive", "arrived")]:  # fmt: skip
        r = client.post(f"/v1/orders/{oid}/progress", json={"action": action},
                        headers=account.headers)  # fmt: skip
        assert r.status_code == 200, r.text
        assert r.json()["dispatch_status"] == status
    assert client.post(f"/v1/orders/{oid}/progress", json={"action": "start"},
                       headers=account.headers).json()["status"] == "in_service"  # fmt: skip
    # Cancelling in service is not allowed.
    assert client.post(f"/v1/orders/{oid}/cancel", json={},
                       headers=world.alice.headers).status_code == 409  # fmt: skip
    done = client.post(f"/v1/orders/{oid}/progress", json={"action": "complete"},
                       headers=account.headers)  # fmt: skip
    assert done.json()["status"] == "completed"
    req = client.post(f"/v1/orders/{oid}/refund-request", json={"reason": "not clean"},
                      headers=world.alice.headers)  # fmt: skip
    assert req.json()["aftersales_status"] == "refund_requested"
    ok = client.post(f"/v1/orders/{oid}/refund-decision", json={"approve": True},
                     headers=world.staff_a.headers)  # fmt: skip
    assert ok.status_code == 200, ok.text
    assert ok.json()["aftersales_status"] == "refunded"
    assert ok.json()["refunded_fen"] == ok.json()["amount_fen"]


def test_history_filters_and_paging(client: TestClient, world: World) -> None:
    ids = [book(client, world, hour=h).json()["id"] for h in (9, 12, 15)]
    pay_sandbox(client, world, ids[0])
    h = world.alice.headers
    assert client.get("/v1/orders", headers=h).json()["total"] == 3
    paid = client.get("/v1/orders", params={"status": "pending_service"}, headers=h).json()
    assert [o["id"] for o in paid["items"]] == [ids[0]]
    page = client.get("/v1/orders", params={"limit": 2, "offset": 2}, headers=h).json()
    assert len(page["items"]) == 1
    assert page["total"] == 3
    day = world.day.isoformat()
    same_day = client.get("/v1/orders", params={"date_from": day, "date_to": day}, headers=h)
    assert same_day.json()["total"] == 3
    other_service = client.get("/v1/orders", params={"service_id": world.service_b}, headers=h)
    assert other_service.json()["total"] == 0


def test_share_link_and_rebook(client: TestClient, world: World) -> None:
    order = book(client, world).json()
    share = client.post(f"/v1/orders/{order['id']}/share", json={}, headers=world.alice.headers)
    assert share.status_code == 200
    shared = client.get(share.json()["path"])
    assert shared.status_code == 200
    text = shared.text
    assert "13800138000" not in text
    assert "张三" not in text
    assert "某路" not in text
    forged = share.json()["token"][:-2] + "AA"
    assert client.get(f"/v1/orders/shared/{forged}").status_code == 404
    again = client.post(f"/v1/orders/{order['id']}/rebook", json={"slot_start": world.slot(15)},
                        headers=world.alice.headers)  # fmt: skip
    assert again.status_code == 201, again.text
    assert again.json()["worker"]["id"] == order["worker"]["id"]
    assert again.json()["service_id"] == order["service_id"]


def test_paid_orders_rank_hot_services(client: TestClient, world: World) -> None:
    """The catalog's hot ranking reads real paid orders once the orders table exists."""
    oid = book(client, world).json()["id"]
    unpaid = book(client, world, hour=14).json()["id"]
    assert unpaid != oid
    pay_sandbox(client, world, oid)
    hot = client.get("/v1/catalog/services/hot", params={"lat": 31.23, "lng": 121.48}).json()
    assert hot["ranking_basis"] == "paid_orders_30d"
    scores = {item["id"]: item["score"] for item in hot["items"]}
    assert scores[world.service_a] == 1  # the unpaid order does not count

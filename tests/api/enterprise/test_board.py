"""Enterprise dispatch board: tenant scoping for every endpoint and role, filters and paging,
manual assign/reassign (offers withdrawn, skills, availability, both workers notified),
decision explanations, the timeline, live workers and the daily settlement."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.notifications.models import OutboxMessage
from api.orders import state
from api.orders.models import WorkerReservation
from api.orders.service import lock_order
from api.orders.state import OrderEventType
from api.tenants.models import Worker
from tests.api.dispatcher.conftest import Clock, offers_of, online, order_row, paid_order, tick
from tests.api.orders.world import World

NEAR = (31.225, 121.475)


def _endpoints(oid: int, wid: int, day: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    return [
        ("GET", "/v1/enterprise/orders", None),
        ("GET", "/v1/enterprise/workers", None),
        ("GET", f"/v1/enterprise/orders/{oid}/decisions", None),
        ("GET", f"/v1/enterprise/orders/{oid}/events", None),
        ("GET", f"/v1/enterprise/settlement?day={day}", None),
        ("POST", f"/v1/enterprise/orders/{oid}/assign", {"worker_id": wid}),
    ]


def test_every_endpoint_by_role(client: TestClient, world: World, run_db: Any) -> None:
    oid = paid_order(client, world, run_db, hour=10)
    wid = world.workers_a[0][0]
    day = world.day.isoformat()
    roles = {
        "customer": (world.alice.headers, 403),
        "worker": (world.workers_a[0][1].headers, 403),
        "staff_b": (world.staff_b.headers, None),
    }
    for method, url, body in _endpoints(oid, wid, day):
        assert client.request(method, url, json=body).status_code == 401, url
        for who, (headers, expected) in roles.items():
            resp = client.request(method, url, json=body, headers=headers)
            if expected is not None:
                assert resp.status_code == expected, (who, url)
            elif "/orders/" in url:
                # Another tenant's order id is simply not there.
                assert resp.status_code == 404, (who, url)
                assert resp.json()["code"] == "order_not_found"
            else:
                assert resp.status_code == 200, (who, url)
    # Staff B's lists do not contain A's orders or workers.
    listed = client.get("/v1/enterprise/orders", headers=world.staff_b.headers).json()
    assert oid not in [o["id"] for o in listed["items"]]
    b_workers = client.get("/v1/enterprise/workers", headers=world.staff_b.headers).json()
    assert [w["id"] for w in b_workers] == [world.worker_b[0]]
    # Staff A and the admin see and act on A's order.
    for headers in (world.staff_a.headers, world.admin.headers):
        for method, url, body in _endpoints(oid, wid, day)[:-1]:
            assert client.request(method, url, json=body, headers=headers).status_code == 200
    for headers, worker_id in (
        (world.admin.headers, wid),
        (world.staff_a.headers, world.workers_a[1][0]),
    ):
        resp = client.post(
            f"/v1/enterprise/orders/{oid}/assign", json={"worker_id": worker_id}, headers=headers
        )
        assert resp.status_code == 200, resp.text
        assert resp.json()["worker_id"] == worker_id
    # A's staff cannot hand A's order to B's worker: 404 as for any foreign id.
    foreign = client.post(
        f"/v1/enterprise/orders/{oid}/assign",
        json={"worker_id": world.worker_b[0]},
        headers=world.staff_a.headers,
    )
    assert foreign.status_code == 404
    assert foreign.json()["code"] == "worker_not_found"


def test_filters_and_paging(client: TestClient, world: World, run_db: Any) -> None:
    paid = [paid_order(client, world, run_db, hour=h) for h in (9, 11, 13)]
    h = world.staff_a.headers
    page = client.get("/v1/enterprise/orders?limit=2&offset=0", headers=h).json()
    assert page["total"] == 3
    assert [o["id"] for o in page["items"]] == paid[:2]
    rest = client.get("/v1/enterprise/orders?limit=2&offset=2", headers=h).json()
    assert [o["id"] for o in rest["items"]] == paid[2:]
    q = f"status=pending_service&dispatch_status=awaiting_dispatch&service_id={world.service_a}"
    assert client.get(f"/v1/enterprise/orders?{q}", headers=h).json()["total"] == 3
    assert (
        client.get("/v1/enterprise/orders?dispatch_status=offered", headers=h).json()["total"] == 0
    )
    day = world.day.isoformat()
    ranged = client.get(f"/v1/enterprise/orders?date_from={day}&date_to={day}", headers=h)
    assert ranged.json()["total"] == 3
    assert client.get("/v1/enterprise/orders?date_to=2000-01-01", headers=h).json()["total"] == 0
    assert client.get("/v1/enterprise/orders?status=bogus", headers=h).status_code == 422
    assert client.get("/v1/enterprise/orders?limit=0", headers=h).status_code == 422


def test_manual_assign_overrides_dispatch_and_reassign_notifies_both(
    client: TestClient, world: World, run_db: Any, clock: Clock
) -> None:
    oid = paid_order(client, world, run_db, hour=10)
    for i, (_, acc) in enumerate(world.workers_a):
        online(client, acc.headers, NEAR[0] + 0.002 * i, NEAR[1])
    assert tick(client, clock).offered == 1
    offered_to = offers_of(run_db, oid)[0].worker_id
    other = next(w for w, _ in world.workers_a if w != offered_to)
    h = world.staff_a.headers
    resp = client.post(f"/v1/enterprise/orders/{oid}/assign", json={"worker_id": other}, headers=h)
    assert resp.status_code == 200, resp.text
    assert [o.state for o in offers_of(run_db, oid)] == ["withdrawn"]
    row = order_row(run_db, oid)
    assert (row.worker_id, row.dispatch_status) == (other, "accepted")
    again = client.post(f"/v1/enterprise/orders/{oid}/assign", json={"worker_id": other}, headers=h)
    assert again.status_code == 409
    assert again.json()["code"] == "already_assigned"
    # Reassign to the worker who had the offer: both are told.
    moved = client.post(
        f"/v1/enterprise/orders/{oid}/assign", json={"worker_id": offered_to}, headers=h
    )
    assert moved.status_code == 200, moved.text
    assert order_row(run_db, oid).worker_id == offered_to

    async def messages(session: AsyncSession) -> list[tuple[int, str]]:
        rows = await session.execute(
            select(OutboxMessage.user_id, OutboxMessage.topic)
            .where(
                OutboxMessage.order_id == oid, OutboxMessage.topic.in_(("assigned", "unassigned"))
            )
            .order_by(OutboxMessage.id)
        )
        return [(int(u), str(t)) for u, t in rows.all()]

    users = {w: acc.id for w, acc in world.workers_a}
    assert run_db(messages) == [
        (users[other], "assigned"),
        (users[offered_to], "assigned"),
        (users[other], "unassigned"),
    ]
    events = client.get(f"/v1/enterprise/orders/{oid}/events", headers=h).json()
    assert [e["event"] for e in events] == ["created", "paid", "offered", "accepted", "reassigned"]
    decisions = client.get(f"/v1/enterprise/orders/{oid}/decisions", headers=h).json()
    assert [d["mode"] for d in decisions] == ["auto", "manual", "manual"]
    assert decisions[0]["worker_id"] == offered_to
    assert decisions[0]["cost"]["terms"]
    assert decisions[0]["alternatives"]
    board = {w["id"]: w for w in client.get("/v1/enterprise/workers", headers=h).json()}
    assert board[offered_to]["current_order_id"] == oid
    assert board[offered_to]["state"] == "busy"
    assert board[offered_to]["last_ping_age_s"] is not None
    assert board[other]["current_order_id"] is None


def test_skill_and_availability_checks(client: TestClient, world: World, run_db: Any) -> None:
    first = paid_order(client, world, run_db, hour=10)
    second = paid_order(client, world, run_db, hour=10, who=world.bob)

    async def holders(session: AsyncSession) -> dict[int, int]:
        rows = await session.execute(
            select(WorkerReservation.order_id, WorkerReservation.worker_id).where(
                WorkerReservation.order_id.in_((first, second))
            )
        )
        return {int(o): int(w) for o, w in rows.all()}

    held = run_db(holders)
    # The worker holding the first order's time cannot also take the second one.
    wid = held[first]
    other = next(w for w, _ in world.workers_a if w != wid)
    h = world.staff_a.headers
    ok = client.post(f"/v1/enterprise/orders/{first}/assign", json={"worker_id": wid}, headers=h)
    assert ok.status_code == 200, ok.text
    busy = client.post(f"/v1/enterprise/orders/{second}/assign", json={"worker_id": wid}, headers=h)
    assert busy.status_code == 409
    assert busy.json()["code"] == "worker_booked"  # addressed to staff, not the worker
    assert order_row(run_db, second).dispatch_status == "awaiting_dispatch"

    async def deskill(session: AsyncSession) -> None:
        worker = await session.get(Worker, other)
        assert worker is not None
        worker.skills = []
        await session.commit()

    run_db(deskill)
    lacking = client.post(
        f"/v1/enterprise/orders/{second}/assign",
        json={"worker_id": other},
        headers={**h, "Accept-Language": "zh-CN"},
    )
    assert lacking.status_code == 422
    assert lacking.json()["code"] == "worker_lacks_skills"
    assert "cleaning" in lacking.json()["message"]
    assert "技能" in lacking.json()["message"]


@pytest.mark.parametrize("refund_fen", [0, 500])
def test_daily_settlement_per_worker(
    client: TestClient, world: World, run_db: Any, refund_fen: int
) -> None:
    oid = paid_order(client, world, run_db, hour=10)
    wid = world.workers_a[0][0]
    h = world.staff_a.headers
    assert (
        client.post(
            f"/v1/enterprise/orders/{oid}/assign", json={"worker_id": wid}, headers=h
        ).status_code
        == 200
    )

    async def finish(session: AsyncSession) -> int:
        order = await lock_order(session, oid)
        now = order.slot_start
        for event in (
            OrderEventType.DEPARTED, OrderEventType.ARRIVED,
            OrderEventType.STARTED, OrderEventType.COMPLETED,
        ):  # fmt: skip
            await state.apply(session, order, event, actor_id=None, now=now)
        order.refunded_fen = refund_fen
        await session.commit()
        return order.amount_fen

    amount = run_db(finish)
    day = world.day.isoformat()
    body = client.get(f"/v1/enterprise/settlement?day={day}", headers=h).json()
    assert body["workers"] == [
        {
            "worker_id": wid,
            "display_name": "师傅1",
            "completed_orders": 1,
            "amount_fen": amount,
            "refunded_fen": refund_fen,
        }
    ]
    assert (
        client.get(f"/v1/enterprise/settlement?day={day}", headers=world.staff_b.headers).json()[
            "workers"
        ]
        == []
    )
    assert client.get("/v1/enterprise/settlement?day=2000-01-01", headers=h).json()["workers"] == []


def test_dispatch_settings_are_validated_stored_and_scoped(
    client: TestClient, world: World
) -> None:
    h = world.staff_a.headers
    url = "/v1/enterprise/dispatch-settings"
    assert client.get(url).status_code == 401
    assert client.get(url, headers=world.alice.headers).status_code == 403
    assert client.get(url, headers=world.workers_a[0][1].headers).status_code == 403
    defaults = client.get(url, headers=h).json()
    assert defaults["mode"] == "auto"
    assert defaults["accept_timeout_s"] == 30
    assert defaults["weights"]["travel_per_s"] == 1.0
    wanted = {
        "mode": "grab",
        "batch_window_s": 1.5,
        "accept_timeout_s": 45,
        "grab_window_s": 90,
        "weights": {"travel_per_s": 2.0, "fairness_per_order": 10.0},
    }
    saved = client.put(url, json=wanted, headers=h)
    assert saved.status_code == 200, saved.text
    assert saved.json()["weights"]["travel_per_s"] == 2.0
    assert saved.json()["weights"]["rating_per_star"] == 120.0  # default kept
    assert client.get(url, headers=h).json() == saved.json()
    # Staff B sees B's (defaults); A's enterprise id is not theirs: 404.
    assert client.get(url, headers=world.staff_b.headers).json()["mode"] == "auto"
    foreign = client.get(f"{url}?enterprise_id={world.ent_a}", headers=world.staff_b.headers)
    assert foreign.status_code == 404
    assert (
        client.put(
            f"{url}?enterprise_id={world.ent_a}", json=wanted, headers=world.staff_b.headers
        ).status_code
        == 404
    )
    # The admin names the enterprise.
    admin = client.get(f"{url}?enterprise_id={world.ent_a}", headers=world.admin.headers)
    assert admin.json() == saved.json()
    assert client.get(url, headers=world.admin.headers).status_code == 404
    for bad in (
        {"accept_timeout_s": 0},
        {"batch_window_s": 0},
        {"weights": {"travel_per_s": -1}},
        {"weights": {"no_such_term": 1}},
        {"weights": {"fairness_cap": 1.5}},
        {"mode": "bogus"},
    ):
        resp = client.put(url, json=bad, headers={**h, "Accept-Language": "ja"})
        assert resp.status_code == 422, bad
    assert client.get(url, headers=h).json() == saved.json()


def test_the_dispatcher_uses_the_enterprise_settings(
    client: TestClient, world: World, run_db: Any, clock: Clock
) -> None:
    put = client.put(
        "/v1/enterprise/dispatch-settings",
        json={"accept_timeout_s": 45, "weights": {"travel_per_s": 2.0}},
        headers=world.staff_a.headers,
    )
    assert put.status_code == 200, put.text
    oid = paid_order(client, world, run_db, hour=10)
    for i, (_, acc) in enumerate(world.workers_a):
        online(client, acc.headers, NEAR[0] + 0.002 * i, NEAR[1])
    assert tick(client, clock).offered == 1
    offer = offers_of(run_db, oid)[0]
    assert (offer.expires_at - offer.offered_at).total_seconds() == 45
    clock.advance(31)
    assert tick(client, clock).expired == 0  # the default 30 s would have expired it
    clock.advance(15)
    assert tick(client, clock).expired == 1

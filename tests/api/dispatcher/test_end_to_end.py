"""End to end over HTTP + WebSocket: workers online and pinging, paid orders dispatched
automatically, scripted accept/decline, re-offers, a customer watching the ETA fall, and
every order reaching 已完成 — on SQLite + in-process live layer and PostgreSQL + Redis.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth.models import Role
from api.dispatcher.models import DispatchDecision
from tests.api.conftest import Account
from tests.api.dispatcher.conftest import (
    Clock,
    offers_of,
    online,
    order_row,
    paid_order,
    ping,
    tick,
)
from tests.api.orders.world import World, build_world

STEPS = 10  # pings from start to door, 30 s apart (~5 m/s for ~1.5 km)
STEP_S = 30.0
# Slots tomorrow: four or five workers' worth at 9:00 and 12:00 (a 2 h visit and the ride
# fit between), fewer at 15:00, so every order has a free worker besides the one that
# declines. Shifts start at 08:00 at home: an 08:00 visit would leave no time to ride
# there (the slot engine prices real rides).
HOURS = (9, 9, 9, 9, 12, 12, 12, 12, 15, 15)


def _drive(
    client: TestClient,
    worker: Account,
    clock: Clock,
    start: tuple[float, float],
    dest: tuple[float, float],
) -> None:
    for k in range(1, STEPS + 1):
        clock.advance(STEP_S)
        lat = start[0] + (dest[0] - start[0]) * k / STEPS
        lng = start[1] + (dest[1] - start[1]) * k / STEPS
        body = ping(client, worker.headers, clock, lat, lng)
        assert body["accepted"] == 1, body


def _run(
    client: TestClient,
    run_db: Any,
    clock: Clock,
    w: World,
    n_orders: int,
) -> None:
    customers = [w.alice, w.bob]
    order_ids = [
        paid_order(client, w, run_db, hour=HOURS[i % len(HOURS)], who=customers[i % 2])
        for i in range(n_orders)
    ]
    workers = w.workers_a
    positions: dict[int, tuple[float, float]] = {}
    for i, (worker_id, acc) in enumerate(workers):
        # Within ~1.5 km of both customers' addresses, spread out.
        positions[worker_id] = (31.215 + 0.003 * (i % 5), 121.465 + 0.003 * (i // 5))
        online(client, acc.headers, *positions[worker_id])
    by_id = dict(workers)
    decliner = workers[0][0]
    declined: set[int] = set()
    watched: int | None = None
    eta_seen: list[float] = []

    for _round in range(6 * n_orders):
        if all(order_row(run_db, o).status == "completed" for o in order_ids):
            break
        tick(client, clock)
        # Everyone answers their offers first (no time passes), then the visits happen.
        jobs: list[tuple[int, Account, int]] = []
        for worker_id, acc in workers:
            resp = client.get("/v1/worker/offers", headers=acc.headers)
            assert resp.status_code == 200, resp.text
            for offer in resp.json():
                assert offer["seconds_left"] > 0
                order = offer["order"]
                assert "****" in (order["contact_phone_masked"] or "****")
                if worker_id == decliner and not declined:
                    r = client.post(
                        f"/v1/worker/offers/{offer['offer_id']}/decline",
                        json={"reason": "too_far"},
                        headers=acc.headers,
                    )
                    assert r.status_code == 200, r.text
                    declined.add(order["id"])
                    continue
                r = client.post(
                    f"/v1/worker/offers/{offer['offer_id']}/accept", json={}, headers=acc.headers
                )
                assert r.status_code == 200, r.text
                nav = r.json()["navigation"]
                assert nav["amap_uri"].startswith("https://uri.amap.com/navigation?to=")
                jobs.append((worker_id, acc, order["id"]))
        for worker_id, acc, oid in jobs:
            assert client.post(
                f"/v1/worker/orders/{oid}/depart", json={}, headers=acc.headers
            ).is_success
            row = order_row(run_db, oid)
            customer = w.alice if row.customer_id == w.alice.id else w.bob
            dest = (row.lat, row.lng)
            if watched is None:
                watched = oid
                token = customer.headers["Authorization"].removeprefix("Bearer ")
                with client.websocket_connect(f"/v1/orders/{oid}/track?token={token}") as ws:
                    first = ws.receive_json()
                    assert first["type"] == "status"
                    assert first["dispatch_status"] == "en_route"
                    _drive(client, acc, clock, positions[worker_id], dest)
                    for _ in range(STEPS):
                        msg = ws.receive_json()
                        while msg["type"] != "position":
                            msg = ws.receive_json()
                        eta_seen.append(msg["eta_s"])
            else:
                _drive(client, acc, clock, positions[worker_id], dest)
            positions[worker_id] = dest
            r = client.post(f"/v1/worker/orders/{oid}/arrive", json={}, headers=acc.headers)
            assert r.status_code == 200, r.text
            code = client.get(f"/v1/orders/{oid}/service-code", headers=customer.headers)
            assert code.status_code == 200, code.text
            r = client.post(
                f"/v1/worker/orders/{oid}/start",
                json={"code": code.json()["code"]},
                headers=acc.headers,
            )
            assert r.status_code == 200, r.text
            r = client.post(f"/v1/worker/orders/{oid}/complete", json={}, headers=acc.headers)
            assert r.status_code == 200, r.text
            assert r.json()["status"] == "completed"
        clock.advance(5)

    for oid in order_ids:
        assert order_row(run_db, oid).status == "completed", oid
    # The declined order went to someone else, after the decliner was passed over.
    assert declined
    for oid in declined:
        rows = offers_of(run_db, oid)
        assert rows[0].state == "declined"
        assert rows[0].worker_id == decliner
        assert rows[-1].state == "accepted"
        assert rows[-1].worker_id != decliner
        assert order_row(run_db, oid).worker_id in by_id

    async def decisions(session: AsyncSession) -> int:
        return int(await session.scalar(select(func.count(DispatchDecision.id))) or 0)

    assert run_db(decisions) >= n_orders + len(declined)
    # The customer saw the ETA fall as the worker came closer, down to (almost) nothing.
    assert len(eta_seen) == STEPS
    assert all(b <= a for a, b in itertools.pairwise(eta_seen)), eta_seen
    assert eta_seen[-1] < eta_seen[0]


def test_workers_serve_paid_orders_end_to_end(
    client: TestClient, make_user: Any, make_enterprise: Any, run_db: Any, clock: Clock
) -> None:
    w = build_world(make_user, make_enterprise, run_db, n_workers=5)
    _run(client, run_db, clock, w, n_orders=10)


@pytest.mark.slow
def test_fifty_workers_hundred_orders(
    client: TestClient, make_user: Any, make_enterprise: Any, run_db: Any, clock: Clock
) -> None:
    w = build_world(make_user, make_enterprise, run_db, n_workers=50)
    _run(client, run_db, clock, w, n_orders=100)


def test_roles_other_than_worker_cannot_use_the_worker_api(
    client: TestClient, make_user: Any, clock: Clock
) -> None:
    customer = make_user(Role.CUSTOMER)
    resp = client.get("/v1/worker/offers", headers=customer.headers)
    assert resp.status_code == 403
    assert resp.json()["code"] == "not_a_worker"

"""Worker flow: ping validation, offer timeouts and re-offers, the grab pool, geofenced
arrival, the service code with its lockout, completion photos, the day view."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import anyio
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth.models import User
from api.core.errors import Conflict
from api.core.settings import Settings
from api.dispatcher import offer_flow
from api.dispatcher.models import DispatchDecision, OfferMode
from api.notifications.models import OutboxMessage
from api.orders.models import OrderEvent
from api.tenants.models import Worker
from dispatch.cost import TERMS
from geo.coords import from_wgs84
from tests.api.dispatcher.conftest import (
    Clock,
    offers_of,
    online,
    order_row,
    paid_order,
    ping,
    tick,
)
from tests.api.orders.world import World

NEAR = (31.225, 121.475)  # ~1 km from Alice's address (31.23, 121.48)
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def _live_position(client: TestClient, worker_id: int) -> tuple[float, float]:
    app: Any = client.app
    assert client.portal is not None
    pos = client.portal.call(app.state.live.state.get_positions, [worker_id])
    assert bool(pos.found[0])
    return float(pos.lat[0]), float(pos.lng[0])


def test_pings_are_validated_one_by_one(client: TestClient, world: World, clock: Clock) -> None:
    worker_id, acc = world.workers_a[0]
    online(client, acc.headers, *NEAR)
    now = clock.advance(10).timestamp()
    resp = client.post(
        "/v1/worker/pings",
        json={
            "pings": [
                {"lat": 31.2252, "lng": 121.4752, "ts": now - 5},  # fine
                {"lat": 95.0, "lng": 121.47, "ts": now - 4},  # out of range
                {"lat": 31.2253, "lng": 121.4753, "ts": now - 10_000},  # stale
                {"lat": 31.2253, "lng": 121.4753, "ts": now + 3600},  # from the future
                {"lat": 39.90, "lng": 116.40, "ts": now - 3},  # Beijing 2 s later
                {"lat": 31.2254, "lng": 121.4754, "ts": now - 1, "accuracy_m": 8},  # fine
            ]
        },
        headers=acc.headers,
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert [r["reason"] for r in body["results"]] == [
        None,
        "out_of_range",
        "stale",
        "future",
        "impossible_jump",
        None,
    ]
    assert body["accepted"] == 2
    lat, lng = _live_position(client, worker_id)
    assert abs(lat - 31.2254) < 1e-9
    assert abs(lng - 121.4754) < 1e-9
    # A GCJ-02 fix is stored as WGS-84.
    clock.advance(10)
    g_lat, g_lng = from_wgs84(31.2255, 121.4755, "gcj02")
    resp = client.post(
        "/v1/worker/pings",
        json={
            "coord_type": "gcj02",
            "pings": [{"lat": g_lat, "lng": g_lng, "ts": clock.now.timestamp()}],
        },
        headers=acc.headers,
    )
    assert resp.json()["accepted"] == 1
    lat, lng = _live_position(client, worker_id)
    assert abs(lat - 31.2255) < 1e-6
    assert abs(lng - 121.4755) < 1e-6
    # Garbage never becomes a 500.
    resp = client.post("/v1/worker/pings", json={"pings": [{"lat": "x"}]}, headers=acc.headers)
    assert resp.status_code == 422


def test_a_bad_ping_batch_is_a_clear_4xx(client: TestClient, world: World) -> None:
    _, acc = world.workers_a[0]
    ts = 1_800_000_000.0
    resp = client.post(
        "/v1/worker/pings",
        json={"pings": [{"lat": 31.2, "lng": 121.4, "ts": ts}, {"lat": "x", "lng": 121.4}]},
        headers={**acc.headers, "Accept-Language": "en"},
    )
    assert resp.status_code == 422
    details = resp.json()["details"]
    assert {tuple(d["loc"]) for d in details} == {
        ("body", "pings", "1", "lat"),
        ("body", "pings", "1", "ts"),
    }
    assert all(d["message"] for d in details)
    too_many = [{"lat": 31.2, "lng": 121.4, "ts": ts}] * 101
    resp = client.post("/v1/worker/pings", json={"pings": too_many}, headers=acc.headers)
    assert resp.status_code == 422
    assert [d["loc"] for d in resp.json()["details"]] == [["body", "pings"]]
    json_headers = {**acc.headers, "Content-Type": "application/json"}
    resp = client.post("/v1/worker/pings", content=b'{"pings": [', headers=json_headers)
    assert (resp.status_code, resp.json()["code"]) == (400, "malformed_json")
    resp = client.post("/v1/worker/pings", content=b"", headers=json_headers)
    assert (resp.status_code, resp.json()["code"]) == (422, "validation_error")
    resp = client.post("/v1/worker/pings", content=b"lat=1", headers=acc.headers)
    assert resp.status_code == 415


def test_the_ping_batch_is_documented(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    body = schema["paths"]["/v1/worker/pings"]["post"]["requestBody"]
    ref = body["content"]["application/json"]["schema"]["$ref"]
    components = schema["components"]["schemas"]
    pings_in = components[ref.rsplit("/", 1)[1]]
    item_ref = pings_in["properties"]["pings"]["items"]["$ref"]
    assert set(components[item_ref.rsplit("/", 1)[1]]["properties"]) >= {"lat", "lng", "ts"}
    ok = schema["paths"]["/v1/worker/pings"]["post"]["responses"]["200"]
    assert ok["content"]["application/json"]["schema"]["$ref"].endswith("/PingsOut")


def test_going_online_needs_a_position(client: TestClient, world: World, clock: Clock) -> None:
    _, acc = world.workers_a[1]
    resp = client.post("/v1/worker/presence", json={"online": True}, headers=acc.headers)
    assert resp.status_code == 422
    assert resp.json()["code"] == "location_required"
    online(client, acc.headers, *NEAR)
    resp = client.post("/v1/worker/presence", json={"online": False}, headers=acc.headers)
    assert resp.json()["state"] == "offline"


def test_an_expired_offer_goes_to_another_worker(
    client: TestClient, world: World, run_db: Any, clock: Clock
) -> None:
    oid = paid_order(client, world, run_db, hour=10)
    for i, (_, acc) in enumerate(world.workers_a):
        online(client, acc.headers, NEAR[0] + 0.002 * i, NEAR[1])
    assert tick(client, clock).offered == 1
    first = offers_of(run_db, oid)[0]
    assert order_row(run_db, oid).dispatch_status == "offered"
    by_id = dict(world.workers_a)
    listed = client.get("/v1/worker/offers", headers=by_id[first.worker_id].headers).json()
    assert [o["order"]["id"] for o in listed] == [oid]
    assert 0 < listed[0]["seconds_left"] <= 30
    clock.advance(31)
    report = tick(client, clock)
    assert report.expired == 1
    assert report.offered == 1
    rows = offers_of(run_db, oid)
    assert [r.state for r in rows] == ["expired", "offered"]
    assert rows[1].worker_id != first.worker_id
    late = client.post(
        f"/v1/worker/offers/{first.id}/accept", json={}, headers=by_id[first.worker_id].headers
    )
    assert late.status_code == 409
    assert late.json()["code"] == "offer_gone"

    async def decisions(session: AsyncSession) -> list[DispatchDecision]:
        rows = await session.scalars(
            select(DispatchDecision).where(DispatchDecision.order_id == oid)
        )
        return list(rows)

    made = run_db(decisions)
    assert [d.worker_id for d in made] == [r.worker_id for r in rows]
    assert made[0].cost["worker_id"] == first.worker_id
    assert set(made[0].cost["terms"]) == set(TERMS)
    # The runner-up of the first decision is an itemised line of another worker.
    assert made[0].alternatives
    assert made[0].alternatives[0]["worker_id"] != first.worker_id
    assert made[0].total_cost is not None


def test_a_declined_offer_goes_back_to_awaiting_dispatch_and_to_someone_else(
    client: TestClient, world: World, run_db: Any, clock: Clock
) -> None:
    oid = paid_order(client, world, run_db, hour=10)
    for i, (_, acc) in enumerate(world.workers_a):
        online(client, acc.headers, NEAR[0] + 0.002 * i, NEAR[1])
    assert tick(client, clock).offered == 1
    first = offers_of(run_db, oid)[0]
    by_id = dict(world.workers_a)
    declined = client.post(
        f"/v1/worker/offers/{first.id}/decline",
        json={"reason": "too far"},
        headers=by_id[first.worker_id].headers,
    )
    assert declined.status_code in (200, 204), declined.text
    assert order_row(run_db, oid).dispatch_status == "awaiting_dispatch"

    async def lapse_rows(session: AsyncSession) -> tuple[list[str], int]:
        events = await session.scalars(
            select(OrderEvent.event).where(OrderEvent.order_id == oid).order_by(OrderEvent.id)
        )
        lapsed = await session.scalars(
            select(OutboxMessage).where(
                OutboxMessage.order_id == oid, OutboxMessage.topic == "offer_lapsed"
            )
        )
        return list(events), len(list(lapsed))

    events, lapse_messages = run_db(lapse_rows)
    assert events[-2:] == ["offered", "offer_lapsed"]
    assert lapse_messages == 0  # internal: the customer is not told
    clock.advance(1)
    assert tick(client, clock).offered == 1
    rows = offers_of(run_db, oid)
    assert [r.state for r in rows] == ["declined", "offered"]
    assert rows[1].worker_id != first.worker_id
    assert order_row(run_db, oid).dispatch_status == "offered"


def test_grab_pool_first_claim_wins_then_falls_back_to_auto(
    client: TestClient, world: World, run_db: Any, clock: Clock, settings: Settings
) -> None:
    settings.grab_window_s = 60
    claimed_order = paid_order(client, world, run_db, hour=10)
    lapsing_order = paid_order(client, world, run_db, hour=14)
    for _, acc in world.workers_a:
        online(client, acc.headers, *NEAR)
    online(client, world.worker_b[1].headers, *NEAR)
    assert tick(client, clock).opened == 2
    (w1, a1), (w2, _a2) = world.workers_a[0], world.workers_a[1]
    pool = client.get("/v1/worker/grab-pool", headers=a1.headers).json()
    assert {p["order"]["id"] for p in pool} == {claimed_order, lapsing_order}
    # Another enterprise's worker does not see the pool.
    assert client.get("/v1/worker/grab-pool", headers=world.worker_b[1].headers).json() == []
    offer_id = next(p["offer_id"] for p in pool if p["order"]["id"] == claimed_order)
    app: Any = client.app

    async def race() -> list[object]:
        outcomes: list[object] = []

        async def one(worker_id: int) -> None:
            async with app.state.sessionmaker() as session:
                worker = await session.get(Worker, worker_id)
                user = await session.get(User, worker.user_id)
                try:
                    order = await offer_flow.take_offer(
                        session, app.state.live, worker, user, offer_id, OfferMode.GRAB,
                        settings=settings, now=clock.now,
                    )  # fmt: skip
                    outcomes.append(order.worker_id)
                except Conflict as exc:
                    outcomes.append(exc.code)

        async with anyio.create_task_group() as tg:
            tg.start_soon(one, w1)
            tg.start_soon(one, w2)
        return outcomes

    assert client.portal is not None
    outcomes = client.portal.call(race)
    winners = [o for o in outcomes if isinstance(o, int)]
    assert len(winners) == 1
    assert sorted(map(str, outcomes)) == sorted([str(winners[0]), "offer_gone"])
    assert order_row(run_db, claimed_order).worker_id == winners[0]
    assert order_row(run_db, claimed_order).dispatch_status == "accepted"

    async def claim_decisions(session: AsyncSession) -> list[DispatchDecision]:
        rows = await session.scalars(
            select(DispatchDecision).where(DispatchDecision.order_id == claimed_order)
        )
        return list(rows)

    (decision,) = run_db(claim_decisions)  # the claim is stored with its cost line
    assert (decision.mode, decision.reason, decision.worker_id) == ("grab", "claimed", winners[0])
    assert decision.cost["worker_id"] == winners[0]
    assert decision.cost["terms"]["travel"] >= 0
    again = client.post(f"/v1/worker/grab-pool/{offer_id}/claim", json={}, headers=a1.headers)
    assert again.status_code == 409
    # Nobody claims the other one: after the window it is auto-assigned.
    clock.advance(61)
    report = tick(client, clock)
    assert report.lapsed == 1
    assert report.offered == 1
    assert [(r.mode, r.state) for r in offers_of(run_db, lapsing_order)] == [
        ("grab", "lapsed"),
        ("auto", "offered"),
    ]


def _accepted(client: TestClient, world: World, run_db: Any, clock: Clock) -> tuple[int, Any]:
    oid = paid_order(client, world, run_db, hour=10)
    for _, acc in world.workers_a:
        online(client, acc.headers, *NEAR)
    tick(client, clock)
    offer = offers_of(run_db, oid)[0]
    acc = dict(world.workers_a)[offer.worker_id]
    resp = client.post(f"/v1/worker/offers/{offer.id}/accept", json={}, headers=acc.headers)
    assert resp.status_code == 200, resp.text
    assert resp.json()["contact_phone_masked"] == "138****8000"
    wx = resp.json()["navigation"]["wx_open_location"]
    g_lat, g_lng = from_wgs84(31.23, 121.48, "gcj02")
    assert abs(wx["latitude"] - g_lat) < 1e-5
    assert abs(wx["longitude"] - g_lng) < 1e-5
    return oid, acc


def test_arrive_geofence_service_code_lockout_and_photos(
    client: TestClient, world: World, run_db: Any, clock: Clock, settings: Settings
) -> None:
    oid, acc = _accepted(client, world, run_db, clock)
    assert client.post(f"/v1/worker/orders/{oid}/depart", json={}, headers=acc.headers).is_success
    clock.advance(60)
    ping(client, acc.headers, clock, 31.2255, 121.4755)
    far = client.post(f"/v1/worker/orders/{oid}/arrive", json={}, headers=acc.headers)
    assert far.status_code == 422
    assert far.json()["code"] == "not_at_address"
    assert far.json()["details"]["distance_m"] > settings.arrive_radius_m
    clock.advance(240)
    ping(client, acc.headers, clock, 31.2299, 121.4799)
    assert client.post(f"/v1/worker/orders/{oid}/arrive", json={}, headers=acc.headers).is_success
    code = client.get(f"/v1/orders/{oid}/service-code", headers=world.alice.headers).json()["code"]
    # Bob cannot read Alice's code.
    assert (
        client.get(f"/v1/orders/{oid}/service-code", headers=world.bob.headers).status_code == 404
    )
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(settings.service_code_max_failures):
        r = client.post(f"/v1/worker/orders/{oid}/start", json={"code": wrong}, headers=acc.headers)
        assert r.status_code == 422
        assert r.json()["code"] == "wrong_service_code"
    locked = client.post(f"/v1/worker/orders/{oid}/start", json={"code": code}, headers=acc.headers)
    assert locked.status_code == 429
    assert locked.json()["code"] == "service_code_locked"
    clock.advance(settings.service_code_lockout_s + 1)
    ok = client.post(f"/v1/worker/orders/{oid}/start", json={"code": code}, headers=acc.headers)
    assert ok.status_code == 200, ok.text
    assert ok.json()["status"] == "in_service"
    bad = client.post(
        f"/v1/worker/orders/{oid}/complete",
        json={"photos": [base64.b64encode(b"GIF89a....").decode()]},
        headers=acc.headers,
    )
    assert bad.status_code == 422
    assert bad.json()["code"] == "bad_photo"
    done = client.post(
        f"/v1/worker/orders/{oid}/complete",
        json={"photos": [base64.b64encode(PNG).decode()]},
        headers=acc.headers,
    )
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "completed"
    stored = list((Path(settings.var_dir) / "photos" / str(oid)).iterdir())
    assert [p.read_bytes() for p in stored] == [PNG]
    day = client.get(
        "/v1/worker/day", params={"on": world.day.isoformat()}, headers=acc.headers
    ).json()
    assert [o["id"] for o in day["orders"]] == [oid]


def test_a_worker_cannot_act_on_someone_elses_job(
    client: TestClient, world: World, run_db: Any, clock: Clock
) -> None:
    oid, acc = _accepted(client, world, run_db, clock)
    other = next(a for _, a in world.workers_a if a.id != acc.id)
    for action in ("depart", "arrive", "complete"):
        r = client.post(f"/v1/worker/orders/{oid}/{action}", json={}, headers=other.headers)
        assert r.status_code == 404
        assert r.json()["code"] == "job_not_found"

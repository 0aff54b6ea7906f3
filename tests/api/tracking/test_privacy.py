"""Who may watch an order, what they see, and that nobody sees the position after completion."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from api.tracking.models import OrderTrack
from api.tracking.service import channel
from geo.coords import from_wgs84
from tests.api.conftest import Account
from tests.api.dispatcher.conftest import Clock, offers_of, online, paid_order, ping, tick
from tests.api.orders.world import World

NEAR = (31.225, 121.475)


def _token(acc: Account) -> str:
    return acc.headers["Authorization"].removeprefix("Bearer ")


def _en_route(client: TestClient, world: World, run_db: Any, clock: Clock) -> tuple[int, Account]:
    oid = paid_order(client, world, run_db, hour=10)
    for _, acc in world.workers_a:
        online(client, acc.headers, *NEAR)
    tick(client, clock)
    offer = offers_of(run_db, oid)[0]
    acc = dict(world.workers_a)[offer.worker_id]
    assert client.post(
        f"/v1/worker/offers/{offer.id}/accept", json={}, headers=acc.headers
    ).is_success
    assert client.post(f"/v1/worker/orders/{oid}/depart", json={}, headers=acc.headers).is_success
    clock.advance(30)
    assert ping(client, acc.headers, clock, 31.226, 121.476)["accepted"] == 1
    return oid, acc


def _close_code(client: TestClient, url: str, **kw: Any) -> int:
    with pytest.raises(WebSocketDisconnect) as info, client.websocket_connect(url, **kw) as ws:
        ws.receive_json()
    return int(info.value.code)


def _finish(
    client: TestClient, run_db: Any, clock: Clock, oid: int, worker: Account, customer: Account
) -> None:
    clock.advance(300)
    ping(client, worker.headers, clock, 31.2299, 121.4799)
    assert client.post(
        f"/v1/worker/orders/{oid}/arrive", json={}, headers=worker.headers
    ).is_success
    code = client.get(f"/v1/orders/{oid}/service-code", headers=customer.headers).json()["code"]
    assert client.post(
        f"/v1/worker/orders/{oid}/start", json={"code": code}, headers=worker.headers
    ).is_success
    assert client.post(
        f"/v1/worker/orders/{oid}/complete", json={}, headers=worker.headers
    ).is_success


def _until_closed(ws: Any) -> tuple[list[dict[str, Any]], int]:
    """Every message until the server closes the socket, and the close code."""
    out: list[dict[str, Any]] = []
    while True:
        try:
            out.append(ws.receive_json())
        except WebSocketDisconnect as exc:
            return out, int(exc.code)


def test_only_customer_worker_and_their_staff_may_watch(
    client: TestClient, world: World, run_db: Any, clock: Clock
) -> None:
    oid, worker = _en_route(client, world, run_db, clock)
    url = f"/v1/orders/{oid}/track"
    other_worker = next(a for _, a in world.workers_a if a.id != worker.id)
    for intruder in (world.bob, other_worker, world.staff_b, world.worker_b[1]):
        assert _close_code(client, f"{url}?token={_token(intruder)}") == 4403
    assert _close_code(client, url) == 4401
    assert _close_code(client, f"{url}?token=not-a-token") == 4401
    sse = client.get(f"{url}/sse", headers=world.bob.headers)
    assert sse.status_code == 403
    assert sse.json()["code"] == "tracking_forbidden"

    for viewer in (world.alice, worker, world.staff_a):
        with client.websocket_connect(f"{url}?token={_token(viewer)}") as ws:
            status = ws.receive_json()
            position = ws.receive_json()
        assert status["type"] == "status"
        assert status["dispatch_status"] == "en_route"
        assert position["type"] == "position"
        assert position["coord_type"] == "wgs84"
        assert abs(position["lat"] - 31.226) < 1e-9
        assert position["eta_s"] > 0
    # The token may ride in Sec-WebSocket-Protocol instead; GCJ-02 on request.
    with client.websocket_connect(
        f"{url}?coord_type=gcj02", subprotocols=["bearer", _token(world.alice)]
    ) as ws:
        assert ws.accepted_subprotocol == "bearer"
        ws.receive_json()
        position = ws.receive_json()
    g_lat, g_lng = from_wgs84(31.226, 121.476, "gcj02")
    assert position["coord_type"] == "gcj02"
    assert abs(position["lat"] - g_lat) < 1e-9
    assert abs(position["lng"] - g_lng) < 1e-9


def test_stream_ends_at_completion_and_the_position_is_gone(
    client: TestClient, world: World, run_db: Any, clock: Clock
) -> None:
    oid, worker = _en_route(client, world, run_db, clock)
    url = f"/v1/orders/{oid}/track"
    seen: list[dict[str, Any]] = []
    with client.websocket_connect(f"{url}?token={_token(world.alice)}") as ws:
        seen.append(ws.receive_json())
        seen.append(ws.receive_json())
        _finish(client, run_db, clock, oid, worker, world.alice)
        rest, close_code = _until_closed(ws)
    assert close_code == 1000
    seen.extend(rest)
    statuses = [m for m in seen if m["type"] == "status"]
    assert statuses[-1]["status"] == "completed"
    assert statuses[-1]["final"] is True
    assert [m["dispatch_status"] for m in statuses[1:-1]] == ["arrived", None]

    for viewer in (world.alice, worker, world.staff_a):
        assert _close_code(client, f"{url}?token={_token(viewer)}") == 4410
        sse = client.get(f"{url}/sse", headers=viewer.headers)
        assert sse.status_code == 410
    assert (
        client.get(f"/v1/orders/{oid}/service-code", headers=world.alice.headers).status_code == 404
    )

    async def stored(session: Any) -> tuple[Any, ...]:
        track = await session.get(OrderTrack, oid)
        return (track.last_lat, track.last_lng, track.eta_state)

    assert run_db(stored) == (None, None, None)


def test_sse_streams_the_same_messages_until_completion(
    client: TestClient, world: World, run_db: Any, clock: Clock
) -> None:
    oid, worker = _en_route(client, world, run_db, clock)
    app: Any = client.app
    result: dict[str, Any] = {}

    def watch() -> None:
        resp = client.get(f"/v1/orders/{oid}/track/sse", headers=world.alice.headers)
        result["status"] = resp.status_code
        result["type"] = resp.headers["content-type"]
        result["body"] = resp.text

    thread = threading.Thread(target=watch)
    thread.start()
    assert client.portal is not None
    # Wait until the stream subscribed (a keepalive reaches one subscriber), then finish.
    for _ in range(10_000):
        got = client.portal.call(app.state.live.broker.publish, channel(oid), {"type": "keepalive"})
        if got:
            break
        threading.Event().wait(0.01)
    _finish(client, run_db, clock, oid, worker, world.alice)
    thread.join()
    assert result["status"] == 200
    assert result["type"].startswith("text/event-stream")
    events = [
        json.loads(line.removeprefix("data: "))
        for line in result["body"].splitlines()
        if line.startswith("data: ")
    ]
    assert events[0]["type"] == "status"
    assert events[1]["type"] == "position"
    assert events[-1]["status"] == "completed"
    assert events[-1]["final"] is True

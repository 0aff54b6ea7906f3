"""What the customer sees is what is true: one plausibility rule for ingest, tracker, arrival.

A replayed e-bike ride with a mid-ride stretch at car speed (the worker took a taxi):
the stream follows within two fixes and says it re-anchored, its ETA and distance follow
the position, and arrival is decided on the very position the stream shows.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi.testclient import TestClient

from api.core.settings import Settings
from geo.projection import haversine_one_m
from tests.api.dispatcher.conftest import Clock, ping
from tests.api.orders.world import World
from tests.api.tracking.test_privacy import _en_route, _token

DEST = (31.23, 121.48)  # Alice's address
STEP_S = 10.0


def _north(lat: float, metres: float) -> float:
    return lat + metres / 111_320.0


def _positions(ws: Any) -> dict[str, Any]:
    """The next position message (stale markers and keepalives skipped)."""
    while True:
        msg: dict[str, Any] = ws.receive_json()
        if msg["type"] == "position":
            return msg


def _arrive(client: TestClient, oid: int, headers: dict[str, str]) -> Any:
    return client.post(f"/v1/worker/orders/{oid}/arrive", json={}, headers=headers)


def test_a_car_speed_stretch_is_followed_within_two_fixes_and_arrival_agrees(
    client: TestClient, world: World, run_db: Any, clock: Clock, settings: Settings
) -> None:
    oid, worker = _en_route(client, world, run_db, clock)  # at (31.226, 121.476)
    url = f"/v1/orders/{oid}/track?token={_token(world.alice)}"
    lng = 121.48
    with client.websocket_connect(url) as ws:
        ws.receive_json()  # status
        _positions(ws)  # the snapshot's position
        # Ride to a start ~6.7 km south of the address at e-bike pace.
        clock.advance(600)
        lat = 31.17
        assert ping(client, worker.headers, clock, lat, lng)["accepted"] == 1
        _positions(ws)
        shown_since_move: list[int] = []
        fixes = [(5.0, 4), (25.0, 12), (5.0, 4)]  # (m/s, fixes): bike, taxi, bike
        for speed, n in fixes:
            for _ in range(n):
                clock.advance(STEP_S)
                lat = _north(lat, speed * STEP_S)
                body = ping(client, worker.headers, clock, lat, lng)
                if body["accepted"] == 0:
                    assert body["results"][0]["reason"] == "impossible_jump"
                    shown_since_move.append(0)
                    continue
                msg = _positions(ws)
                shown_since_move.append(1)
                # The stream shows this very fix, and its numbers follow it.
                assert (msg["lat"], msg["lng"]) == (lat, lng)
                assert not msg["stale"]
                assert msg["age_s"] == 0
                want = haversine_one_m(lat, lng, *DEST)
                assert math.isclose(msg["distance_m"], want, rel_tol=1e-6)
                # Arrival judges the same position: refused while the stream shows it far.
                far = _arrive(client, oid, worker.headers)
                assert far.status_code == 422
                assert far.json()["details"]["distance_m"] == round(want)
        # At car speed on an e-bike every other fix is held back, never two in a row:
        # the stream shows the new position within two fixes.
        assert "00" not in "".join(map(str, shown_since_move))
        assert shown_since_move.count(0) >= 4
    # Re-anchoring is said on the stream: replay the taxi stretch once more and look.
    with client.websocket_connect(url) as ws:
        ws.receive_json()
        _positions(ws)
        clock.advance(STEP_S)
        jumped = _north(lat, 3000.0)  # 3 km in 10 s: a phone that slept, or a bad fix
        assert ping(client, worker.headers, clock, jumped, lng)["accepted"] == 0
        clock.advance(STEP_S)
        jumped = _north(jumped, 50.0)
        assert ping(client, worker.headers, clock, jumped, lng)["accepted"] == 1
        msg = _positions(ws)
        assert msg.get("reanchored") is True
        assert (msg["lat"], msg["lng"]) == (jumped, lng)
    # Ride to the door: accepted only once the position shown is inside the geofence.
    door = (31.2299, 121.4799)
    clock.advance(600)
    assert ping(client, worker.headers, clock, *door)["accepted"] == 1
    assert haversine_one_m(*door, *DEST) <= settings.arrive_radius_m
    assert _arrive(client, oid, worker.headers).is_success


def test_a_single_stray_fix_never_moves_what_the_customer_sees(
    client: TestClient, world: World, run_db: Any, clock: Clock
) -> None:
    oid, worker = _en_route(client, world, run_db, clock)
    url = f"/v1/orders/{oid}/track?token={_token(world.alice)}"
    with client.websocket_connect(url) as ws:
        ws.receive_json()
        before = _positions(ws)
        clock.advance(STEP_S)
        assert ping(client, worker.headers, clock, 31.30, 121.476)["accepted"] == 0  # 8 km off
        clock.advance(STEP_S)
        # Back on the track: accepted from the kept position, the stray one is forgotten.
        assert ping(client, worker.headers, clock, 31.2262, 121.476)["accepted"] == 1
        msg = _positions(ws)
        assert (msg["lat"], msg["lng"]) == (31.2262, 121.476)
        assert not msg.get("reanchored")
        assert before["lat"] == 31.226


def test_a_position_older_than_the_stale_limit_is_marked_and_does_not_count_for_arrival(
    client: TestClient, world: World, run_db: Any, clock: Clock, settings: Settings
) -> None:
    oid, worker = _en_route(client, world, run_db, clock)
    clock.advance(STEP_S)
    door = (31.2299, 121.4799)
    # Far from the door for an e-bike in 10 s: walk there over ten minutes instead.
    clock.advance(600)
    assert ping(client, worker.headers, clock, *door)["accepted"] == 1
    clock.advance(settings.position_stale_s + 1)
    url = f"/v1/orders/{oid}/track?token={_token(world.alice)}"
    with client.websocket_connect(url) as ws:
        ws.receive_json()
        snap = _positions(ws)
    assert snap["stale"] is True
    assert snap["age_s"] > settings.position_stale_s
    late = _arrive(client, oid, worker.headers)
    assert late.status_code == 422
    assert late.json()["code"] == "no_recent_location"


def test_a_silent_stream_says_once_that_its_position_went_stale(
    client: TestClient,
    world: World,
    run_db: Any,
    clock: Clock,
    settings: Settings,
    monkeypatch: Any,
) -> None:
    from api.tracking import router

    monkeypatch.setattr(router, "KEEPALIVE_S", 0.05)
    oid, _worker = _en_route(client, world, run_db, clock)
    with client.websocket_connect(f"/v1/orders/{oid}/track?token={_token(world.alice)}") as ws:
        ws.receive_json()
        live = _positions(ws)
        assert live["stale"] is False
        assert ws.receive_json()["type"] == "keepalive"  # still fresh: nothing said
        clock.advance(settings.position_stale_s + 5)
        seen = [ws.receive_json() for _ in range(3)]
    assert seen[0]["type"] == "stale"
    assert seen[0]["ts"] == live["ts"]
    assert seen[0]["age_s"] > settings.position_stale_s
    # Said once, not at every keepalive after it.
    assert [m["type"] for m in seen[1:]] == ["keepalive", "keepalive"]

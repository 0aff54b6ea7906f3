"""Positions reach watchers first; tracker rows are written behind, batched, never resurrected."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.tracking.models import OrderTrack
from api.tracking.service import TrackWriter
from tests.api.dispatcher.conftest import Clock, ping
from tests.api.orders.world import World
from tests.api.tracking.test_privacy import _en_route, _finish, _token


@pytest.fixture
def writer(client: TestClient) -> TrackWriter:
    """The app's writer, made to wait for an explicit flush (no timer fires in a test)."""
    app: Any = client.app
    w: TrackWriter = app.state.track_writer
    w.interval_s = 3600.0
    return w


def _flush(client: TestClient, writer: TrackWriter) -> int:
    assert client.portal is not None
    return int(client.portal.call(writer.flush))


def _stored(run_db: Any, oid: int) -> tuple[Any, Any, Any]:
    async def read(session: Any) -> tuple[Any, Any, Any]:
        track = await session.get(OrderTrack, oid)
        return track.last_lat, track.last_lng, track.eta_state

    result: tuple[Any, Any, Any] = run_db(read)
    return result


def test_a_ping_is_published_and_served_before_it_is_written(
    client: TestClient, world: World, run_db: Any, clock: Clock, writer: TrackWriter
) -> None:
    oid, worker = _en_route(client, world, run_db, clock)
    _flush(client, writer)
    before = _stored(run_db, oid)
    url = f"/v1/orders/{oid}/track?token={_token(world.alice)}"
    with client.websocket_connect(url) as ws:
        ws.receive_json()  # status
        ws.receive_json()  # the position of _en_route's ping
        clock.advance(10)
        assert ping(client, worker.headers, clock, 31.2265, 121.4762)["accepted"] == 1
        live = ws.receive_json()
    assert (live["type"], live["lat"], live["lng"]) == ("position", 31.2265, 121.4762)
    # Not in the database yet, but a new watcher's snapshot already has it.
    assert _stored(run_db, oid) == before
    assert writer.pending(oid) is not None
    with client.websocket_connect(url) as ws:
        ws.receive_json()
        snap = ws.receive_json()
    assert (snap["lat"], snap["lng"], snap["eta_s"]) == (31.2265, 121.4762, live["eta_s"])
    # The next ping continues the queued tracker state, not the stored one.
    clock.advance(10)
    assert ping(client, worker.headers, clock, 31.2270, 121.4765)["accepted"] == 1
    queued = writer.pending(oid)
    assert queued is not None
    assert queued["eta_state"]["t"] == clock.now.timestamp()
    assert _flush(client, writer) == 1
    lat, lng, eta_state = _stored(run_db, oid)
    assert (lat, lng) == (31.2270, 121.4765)
    assert eta_state == json.loads(json.dumps(queued["eta_state"]))  # tuples come back as lists
    assert writer.pending(oid) is None


def test_a_late_flush_never_brings_back_a_cleared_position(
    client: TestClient, world: World, run_db: Any, clock: Clock, writer: TrackWriter
) -> None:
    oid, worker = _en_route(client, world, run_db, clock)
    # _finish pings at the door (queued, not written), then arrives, starts, completes.
    _finish(client, run_db, clock, oid, worker, world.alice)
    assert writer.pending(oid) is not None
    _flush(client, writer)
    assert _stored(run_db, oid) == (None, None, None)


def test_one_flush_writes_many_rows_and_skips_orders_not_sharing(
    client: TestClient, world: World, run_db: Any, clock: Clock, writer: TrackWriter
) -> None:
    oid, worker = _en_route(client, world, run_db, clock)
    clock.advance(10)
    assert ping(client, worker.headers, clock, 31.2265, 121.4762)["accepted"] == 1
    queued = writer.pending(oid)
    assert queued is not None
    # Another order's row in the same flush (an executemany): an order that does not exist.
    writer.put({**queued, "order_id": oid + 10_000})
    assert client.portal is not None
    assert _flush(client, writer) == 2
    assert _stored(run_db, oid)[:2] == (31.2265, 121.4762)


def test_writer_rejects_a_useless_interval() -> None:
    with pytest.raises(ValueError, match="interval_s"):
        TrackWriter(None, interval_s=0)  # type: ignore[arg-type]

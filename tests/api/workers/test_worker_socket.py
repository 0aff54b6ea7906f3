"""The worker's location socket ``/v1/worker/live`` and the per-process trip cache behind pings."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from api.orders.models import Order
from api.tenants.models import Worker
from api.tracking.trips import TripCache
from tests.api.dispatcher.conftest import Clock, ping
from tests.api.orders.world import World
from tests.api.tracking.test_privacy import _en_route, _finish, _token


def _batch(clock: Clock, lat: float, lng: float, **extra: Any) -> dict[str, Any]:
    return {"pings": [{"lat": lat, "lng": lng, "ts": clock.now.timestamp()}], **extra}


def _trips(client: TestClient) -> TripCache:
    """The app's trip cache, once it keeps entries (PostgreSQL: once LISTEN is up)."""
    app: Any = client.app
    cache: TripCache = app.state.trips
    if app.state.trip_listener is not None:
        assert client.portal is not None
        client.portal.call(asyncio.wait_for, app.state.trip_listener.connected.wait(), 10.0)
    assert cache.enabled
    return cache


def test_pings_over_the_socket_reach_the_watcher(
    client: TestClient, world: World, run_db: Any, clock: Clock
) -> None:
    oid, worker = _en_route(client, world, run_db, clock)
    track = f"/v1/orders/{oid}/track?token={_token(world.alice)}"
    with (
        client.websocket_connect(track) as watcher,
        client.websocket_connect(f"/v1/worker/live?token={_token(worker)}") as live,
    ):
        assert watcher.receive_json()["type"] == "status"
        first = watcher.receive_json()  # the position of _en_route's ping
        for step, (lat, lng) in enumerate([(31.2265, 121.4762), (31.2275, 121.4770)], start=1):
            clock.advance(10)
            live.send_json(_batch(clock, lat, lng, id=f"b{step}"))
            ack = live.receive_json()
            assert ack == {
                "type": "ack",
                "id": f"b{step}",
                "accepted": 1,
                "results": [{"index": 0, "accepted": True, "reason": None}],
            }
            got = watcher.receive_json()
            assert (got["type"], got["lat"], got["lng"]) == ("position", lat, lng)
            assert got["eta_s"] < first["eta_s"]  # closer, sooner
            first = got
        # A fix that cannot be is refused with its reason, over the same socket.
        clock.advance(1)
        far = {"lat": 35.0, "lng": 121.0, "ts": clock.now.timestamp()}
        live.send_json({"id": 3, "pings": [far]})
        ack = live.receive_json()
        assert (ack["id"], ack["accepted"], ack["results"][0]["reason"]) == (
            3,
            0,
            "impossible_jump",
        )


def test_the_socket_admits_only_active_workers(
    client: TestClient, world: World, run_db: Any, clock: Clock
) -> None:
    _oid, worker = _en_route(client, world, run_db, clock)
    for url, code in [
        ("/v1/worker/live", 4401),
        ("/v1/worker/live?token=not-a-token", 4401),
        (f"/v1/worker/live?token={_token(world.alice)}", 4403),  # a customer
    ]:
        with pytest.raises(WebSocketDisconnect) as info, client.websocket_connect(url) as ws:
            ws.receive_json()
        assert info.value.code == code, url
    # The token may also come as the subprotocol pair (browsers cannot set headers).
    with client.websocket_connect("/v1/worker/live", subprotocols=["bearer", _token(worker)]) as ws:
        assert ws.accepted_subprotocol == "bearer"
        clock.advance(5)
        ws.send_json(_batch(clock, 31.2262, 121.4761))
        assert ws.receive_json()["accepted"] == 1


def test_a_worker_deactivated_while_connected_is_closed_out(
    client: TestClient, world: World, run_db: Any, clock: Clock
) -> None:
    _oid, worker = _en_route(client, world, run_db, clock)
    with client.websocket_connect(f"/v1/worker/live?token={_token(worker)}") as live:
        clock.advance(5)
        live.send_json(_batch(clock, 31.2262, 121.4761))
        assert live.receive_json()["accepted"] == 1

        async def deactivate(session: Any) -> None:
            (await session.get(Worker, worker_id)).is_active = False

        worker_id = next(w for w, a in world.workers_a if a.id == worker.id)
        run_db(deactivate)
        clock.advance(5)
        live.send_json(_batch(clock, 31.2263, 121.4762))
        with pytest.raises(WebSocketDisconnect) as info:
            live.receive_json()
        assert info.value.code == 4403


@pytest.mark.parametrize(
    ("locale", "message"), [("en", "Some fields are invalid."), ("zh-CN", None)]
)
def test_a_bad_batch_gets_a_translated_error_and_the_socket_stays_open(
    client: TestClient,
    world: World,
    run_db: Any,
    clock: Clock,
    locale: str,
    message: str | None,
) -> None:
    _oid, worker = _en_route(client, world, run_db, clock)
    with client.websocket_connect(
        f"/v1/worker/live?token={_token(worker)}", headers={"Accept-Language": locale}
    ) as live:
        live.send_text("{not json")
        err = live.receive_json()
        assert (err["type"], err["code"]) == ("error", "validation_error")
        if message is not None:
            assert err["message"] == message
        else:
            assert err["message"]
            assert err["message"] != "Some fields are invalid."
        live.send_json({"pings": []})
        err = live.receive_json()
        assert err["details"][0]["loc"][-1] == "pings"
        clock.advance(5)
        live.send_json(_batch(clock, 31.2262, 121.4761))
        assert live.receive_json()["accepted"] == 1


def test_the_trip_cache_forgets_an_order_when_it_ends(
    client: TestClient, world: World, run_db: Any, clock: Clock
) -> None:
    cache = _trips(client)
    oid, worker = _en_route(client, world, run_db, clock)
    uid = worker.id
    clock.advance(5)
    ping(client, worker.headers, clock, 31.2262, 121.4761)
    ctx = cache.get(uid)
    assert ctx is not None
    assert [t.order_id for t in ctx.trips] == [oid]
    _finish(client, run_db, clock, oid, worker, world.alice)
    # The commits that moved the order dropped the entry in this process at once.
    assert cache.get(uid) is None
    clock.advance(5)
    ping(client, worker.headers, clock, 31.2299, 121.4799)
    ctx = cache.get(uid)
    assert ctx is None or ctx.trips == ()  # no trip any more: nothing to publish


def test_another_process_commit_reaches_the_cache_through_notify(
    client: TestClient, world: World, run_db: Any, clock: Clock, db_url: str
) -> None:
    if not db_url.startswith("postgresql"):
        # SQLite serves one process: its own session hooks are the whole story (above).
        assert _trips(client).enabled
        return
    cache = _trips(client)
    oid, worker = _en_route(client, world, run_db, clock)
    clock.advance(5)
    ping(client, worker.headers, clock, 31.2262, 121.4761)
    assert cache.get(worker.id) is not None

    async def foreign_write() -> None:
        # A raw connection: no session hook of this process sees it, only the trigger.
        conn = await asyncpg.connect(db_url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            await conn.execute("UPDATE orders SET dispatch_status = 'arrived' WHERE id = $1", oid)
        finally:
            await conn.close()

    asyncio.run(foreign_write())
    deadline = time.monotonic() + 10.0
    while cache.get(worker.id) is not None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert cache.get(worker.id) is None

    async def status(session: Any) -> str:
        return str((await session.get(Order, oid)).dispatch_status)

    assert run_db(status) == "arrived"


def test_the_cache_refuses_a_load_that_raced_an_invalidation() -> None:
    from api.tracking.trips import PingContext, Trip

    cache = TripCache()
    ticket = cache.ticket()
    cache.invalidate_workers([7])
    assert not cache.store(PingContext(1, 7, (Trip(5, 31.0, 121.0),)), ticket)
    assert cache.get(1) is None
    ticket = cache.ticket()
    cache.invalidate_workers([8])  # another worker: no reason to refuse
    assert cache.store(PingContext(1, 7, ()), ticket)
    assert cache.get(1) is not None
    cache.apply_notification("u:1")
    assert cache.get(1) is None
    ticket = cache.ticket()
    cache.apply_notification("garbage")  # unreadable: everything goes
    assert not cache.store(PingContext(1, 7, ()), ticket)
    cache.set_enabled(False)
    assert not cache.store(PingContext(1, 7, ()), cache.ticket())


def test_cache_entries_expire() -> None:
    from api.tracking.trips import PingContext

    now = [0.0]
    cache = TripCache(ttl_s=30.0, clock=lambda: now[0])
    assert cache.store(PingContext(1, 7, ()), cache.ticket())
    now[0] = 29.9
    assert cache.get(1) is not None
    now[0] = 30.0
    assert cache.get(1) is None

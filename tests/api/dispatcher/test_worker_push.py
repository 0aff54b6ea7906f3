"""Push to workers over ``/v1/worker/live``, tested with a real uvicorn server and a real
WebSocket client: the offer made by ``Dispatcher.run_once``, its withdrawal on cancel, staff
assignment and reassignment, a worker's own accept; an offline worker's WeChat message
instead; and, on Redis, a socket on one app instance fed by a dispatcher in another.

The server runs on the TestClient's event loop (same app, engine and broker), so the test
drives the dispatcher and the clock as the other dispatch tests do.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import select
from websockets.sync.client import ClientConnection, connect

from api.app import create_app
from api.auth.models import SocialIdentity
from api.core.broker import worker_channel
from api.core.i18n import translate
from api.core.settings import Settings
from api.notifications.models import OutboxMessage
from api.notifications.relay import relay_once
from api.notifications.wechat import SubscribeConfig, WeChatSubscribeSender
from tests.api.conftest import Account
from tests.api.dispatcher.conftest import Clock, offers_of, online, order_row, paid_order, tick
from tests.api.e2e.server import free_port
from tests.api.orders.world import World

NEAR = (31.225, 121.475)  # ~1 km from Alice's address


@contextmanager
def serving(client: TestClient) -> Iterator[str]:
    """The client's app behind a real uvicorn server on its event loop; yields ``ws://...``."""
    assert client.portal is not None
    port = free_port()
    config = uvicorn.Config(
        client.app, host="127.0.0.1", port=port, lifespan="off", log_config=None,
        log_level="warning",
    )  # fmt: skip
    server = uvicorn.Server(config)
    done = client.portal.start_task_soon(server.serve)
    deadline = time.monotonic() + 30
    while not server.started:
        if done.done():
            done.result()  # a startup failure surfaces here
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"ws://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        done.result(timeout=30)


@pytest.fixture
def server(client: TestClient) -> Iterator[str]:
    """``ws://`` base URL of the app under a real server."""
    with serving(client) as base:
        yield base


def _token(acc: Account) -> str:
    return acc.headers["Authorization"].removeprefix("Bearer ")


@contextmanager
def live(base: str, acc: Account, clock: Clock) -> Iterator[ClientConnection]:
    """A worker's socket, ready: one ping acked, so its channel is subscribed and the
    open offers it had were sent (the socket reads pings only after that)."""
    with connect(f"{base}/v1/worker/live?token={_token(acc)}") as ws:
        ping = {
            "id": "ready",
            "pings": [{"lat": NEAR[0], "lng": NEAR[1], "ts": clock.now.timestamp()}],
        }
        ws.send(json.dumps(ping))
        ack = receive(ws)
        assert (ack["type"], ack["id"]) == ("ack", "ready")
        yield ws


def receive(ws: ClientConnection) -> dict[str, Any]:
    """The socket's next text as JSON (the timeout only stops a broken test hanging)."""
    got: dict[str, Any] = json.loads(ws.recv(timeout=20))
    return got


def _rows(run_db: Any, topic_prefix: str = "worker_") -> list[tuple[int, str, str, dict[str, Any]]]:
    async def go(session: Any) -> list[tuple[int, str, str, dict[str, Any]]]:
        rows = await session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.topic.startswith(topic_prefix))
            .order_by(OutboxMessage.id)
        )
        return [(m.user_id, m.topic, m.status, m.payload) for m in rows]

    result: list[tuple[int, str, str, dict[str, Any]]] = run_db(go)
    return result


def _sender(calls: list[dict[str, Any]]) -> WeChatSubscribeSender:
    def upstream(request: httpx.Request) -> httpx.Response:
        calls.append(json.loads(request.content))
        return httpx.Response(200, json={"errcode": 0, "errmsg": "ok"})

    return WeChatSubscribeSender(
        SubscribeConfig(
            base_url="https://wechat.test", access_token="t", template_id="tpl-customer",
            worker_template_id="tpl-worker",
        ),
        httpx.AsyncClient(transport=httpx.MockTransport(upstream)),
    )  # fmt: skip


def _relay(client: TestClient, sender: WeChatSubscribeSender, clock: Clock) -> dict[str, int]:
    app: Any = client.app
    assert client.portal is not None
    report = client.portal.call(
        lambda: relay_once(
            app.state.sessionmaker, sender=sender, now=clock.now, presence=app.state.live.broker
        )
    )
    return report.counts


def _link_wechat(run_db: Any, acc: Account, openid: str) -> None:
    async def link(session: Any) -> None:
        session.add(SocialIdentity(user_id=acc.id, provider="wechat", appid="wx", openid=openid))

    run_db(link)


def test_a_connected_worker_gets_the_offer_at_once_and_no_wechat_message(
    client: TestClient, world: World, run_db: Any, clock: Clock, server: str
) -> None:
    oid = paid_order(client, world, run_db, hour=10)
    worker_id, acc = world.workers_a[0]
    online(client, acc.headers, *NEAR)  # the only worker online: the offer is theirs
    _link_wechat(run_db, acc, "o-worker")
    with live(server, acc, clock) as ws:
        assert tick(client, clock).offered == 1
        offer = offers_of(run_db, oid)[0]
        order = order_row(run_db, oid)
        assert receive(ws) == {
            "type": "offer",
            "offer_id": offer.id,
            "mode": "auto",
            "expires_at": offer.expires_at.isoformat(),
            "order_id": oid,
            "order_no": order.order_no,
            "service_id": world.service_a,
            "slot_start": order.slot_start.isoformat(),
            "duration_min": order.duration_min,
        }
        # The WeChat message was written with the offer; the relay sees the live socket.
        calls: list[dict[str, Any]] = []
        assert _relay(client, _sender(calls), clock).get("live") == 1
        assert calls == []
        assert [(u, t, s) for u, t, s, _ in _rows(run_db)] == [(acc.id, "worker_offer", "live")]
        # The worker's own accept is pushed to the socket too, but not sent by WeChat.
        resp = client.post(f"/v1/worker/offers/{offer.id}/accept", json={}, headers=acc.headers)
        assert resp.status_code == 200, resp.text
        got = receive(ws)
        assert (got["type"], got["order_id"], got["offer_id"]) == ("assigned", oid, None)
    assert [t for _, t, _, _ in _rows(run_db)] == ["worker_offer"]
    assert worker_id == offer.worker_id


def test_a_cancelled_order_withdraws_the_offer_on_the_socket(
    client: TestClient, world: World, run_db: Any, clock: Clock, server: str
) -> None:
    oid = paid_order(client, world, run_db, hour=10)
    _, acc = world.workers_a[0]
    online(client, acc.headers, *NEAR)
    with live(server, acc, clock) as ws:
        tick(client, clock)
        offer_id = receive(ws)["offer_id"]
        resp = client.post(f"/v1/orders/{oid}/cancel", json={}, headers=world.alice.headers)
        assert resp.status_code == 200, resp.text
        got = receive(ws)
        assert (got["type"], got["offer_id"], got["order_id"], got["reason"]) == (
            "withdrawn",
            offer_id,
            oid,
            "cancelled",
        )
    # An unanswered offer going away is not worth the worker's one WeChat authorisation.
    assert [t for _, t, _, _ in _rows(run_db)] == ["worker_offer"]


def test_staff_assignment_and_reassignment_reach_both_workers(
    client: TestClient, world: World, run_db: Any, clock: Clock, server: str
) -> None:
    oid = paid_order(client, world, run_db, hour=10)
    (first, acc1), (second, acc2) = world.workers_a[0], world.workers_a[1]
    online(client, acc1.headers, *NEAR)
    staff = world.staff_a.headers
    with live(server, acc1, clock) as ws1, live(server, acc2, clock) as ws2:
        # Connected but off duty: the dispatcher must offer the order to the first worker.
        off = client.post("/v1/worker/presence", json={"online": False}, headers=acc2.headers)
        assert off.json()["state"] == "offline"
        assert tick(client, clock).offered == 1
        assert offers_of(run_db, oid)[0].worker_id == first
        offer_id = receive(ws1)["offer_id"]
        resp = client.post(
            f"/v1/enterprise/orders/{oid}/assign", json={"worker_id": second}, headers=staff
        )
        assert resp.status_code == 200, resp.text
        got = receive(ws2)
        assert (got["type"], got["order_id"], got["offer_id"]) == ("assigned", oid, None)
        got = receive(ws1)
        assert (got["type"], got["offer_id"], got["reason"]) == (
            "withdrawn",
            offer_id,
            "reassigned",
        )
        back = client.post(
            f"/v1/enterprise/orders/{oid}/assign", json={"worker_id": first}, headers=staff
        )
        assert back.status_code == 200, back.text
        got = receive(ws1)
        assert (got["type"], got["order_id"]) == ("assigned", oid)
        got = receive(ws2)
        assert (got["type"], got["order_id"], got["offer_id"], got["reason"]) == (
            "withdrawn",
            oid,
            None,
            "reassigned",
        )
    # Staff made them: each is also a WeChat message (sent only if the socket is gone).
    assert [(u, t) for u, t, _, _ in _rows(run_db)] == [
        (acc1.id, "worker_offer"),
        (acc2.id, "worker_assigned"),
        (acc1.id, "worker_assigned"),
        (acc2.id, "worker_withdrawn"),
    ]


def test_an_offline_worker_gets_a_wechat_subscribe_message_instead(
    client: TestClient, world: World, run_db: Any, clock: Clock, server: str
) -> None:
    oid = paid_order(client, world, run_db, hour=10)
    _, acc = world.workers_a[0]
    online(client, acc.headers, *NEAR)  # on duty, but the app has no socket open
    _link_wechat(run_db, acc, "o-worker")
    assert tick(client, clock).offered == 1
    offer = offers_of(run_db, oid)[0]
    [(user_id, topic, status, payload)] = _rows(run_db)
    assert (user_id, topic, status) == (acc.id, "worker_offer", "pending")
    calls: list[dict[str, Any]] = []
    assert _relay(client, _sender(calls), clock) == {"delivered": 1}
    [body] = calls
    assert body == {
        "touser": "o-worker",
        "template_id": "tpl-worker",
        "page": f"pages/worker/offers?order_id={oid}&offer_id={offer.id}",
        "data": {
            "thing1": {"value": translate("New job offer", "zh-CN")},
            "character_string2": {"value": payload["order_no"]},
            "time3": {"value": payload["slot_start"][:16].replace("T", " ")},
        },
        "miniprogram_state": "formal",
        "lang": "zh_CN",
    }
    assert body["data"]["thing1"]["value"] == "您有新的派单"
    # Opening the app later: the socket starts with the open offer.
    with connect(f"{server}/v1/worker/live?token={_token(acc)}") as ws:
        got = receive(ws)
        assert (got["type"], got["offer_id"], got["order_id"]) == ("offer", offer.id, oid)


@pytest.mark.postgres_only
def test_the_offer_reaches_a_socket_held_by_another_app_instance_over_redis(
    client: TestClient,
    world: World,
    run_db: Any,
    clock: Clock,
    server: str,
    settings: Settings,
    backend: str,
) -> None:
    assert backend == "postgresql"  # SQLite runs one process on the in-process broker
    oid = paid_order(client, world, run_db, hour=10)
    worker_id, acc = world.workers_a[0]
    online(client, acc.headers, *NEAR)  # live state is in Redis: both instances see it
    other = create_app(settings)
    with TestClient(other) as second, live(server, acc, clock) as ws:
        app: Any = second.app
        assert second.portal is not None
        # The socket's process subscribes the worker's channel; the other does not.
        channel = worker_channel(worker_id)
        assert second.portal.call(app.state.live.broker.subscribers, channel) == 1
        report = second.portal.call(app.state.dispatcher.run_once, clock.now)
        assert report.offered == 1
        offer = offers_of(run_db, oid)[0]
        got = receive(ws)
        assert (got["type"], got["offer_id"], got["order_id"]) == ("offer", offer.id, oid)
        assert second.portal.call(app.state.worker_push.drain) is None
        assert app.state.worker_push.published == 1


def test_an_expired_offer_is_withdrawn_on_the_socket(
    client: TestClient, world: World, run_db: Any, clock: Clock, server: str
) -> None:
    oid = paid_order(client, world, run_db, hour=10)
    _, acc = world.workers_a[0]
    online(client, acc.headers, *NEAR)
    with live(server, acc, clock) as ws:
        tick(client, clock)
        offer_id = receive(ws)["offer_id"]
        clock.advance(31)  # past the 30 s accept timeout
        assert tick(client, clock).expired == 1
        got = receive(ws)
        assert (got["type"], got["offer_id"], got["order_id"], got["reason"]) == (
            "withdrawn",
            offer_id,
            oid,
            "expired",
        )
    assert [o.state for o in offers_of(run_db, oid)] == ["expired"]

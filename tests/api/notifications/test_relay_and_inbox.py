"""Outbox relay: at-least-once delivery to the inbox (idempotent by outbox id), WeChat
subscribe messages (43101 recorded, not retried; failures retried with backoff), inbox API."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api.auth.models import SocialIdentity
from api.core.db import utcnow
from api.notifications.models import InboxMessage, OutboxMessage
from api.notifications.relay import backoff, relay_once
from api.notifications.wechat import SubscribeConfig, WeChatSubscribeSender, thing
from tests.api.orders.world import World, book


def _relay(client: TestClient, sender: Any = None, now: Any = None) -> dict[str, int]:
    maker = client.app.state.sessionmaker  # type: ignore[attr-defined]
    assert client.portal is not None
    report = client.portal.call(lambda: relay_once(maker, sender=sender, now=now))
    return report.counts


def _outbox(run_db: Any) -> list[tuple[str, str, int]]:
    async def go(session: Any) -> list[tuple[str, str, int]]:
        rows = await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))
        return [(m.channel, m.status, m.attempts) for m in rows]

    return run_db(go)


def test_inbox_delivery_is_once_per_outbox_message(
    client: TestClient, world: World, run_db: Any
) -> None:
    oid = book(client, world).json()["id"]
    client.post(f"/v1/orders/{oid}/cancel", json={}, headers=world.alice.headers)
    counts = _relay(client)
    # Two events (created, cancelled) x two channels; WeChat is not configured: skipped.
    assert counts == {"delivered": 2, "skipped": 2}
    assert _relay(client) == {}

    async def redeliver(session: Any) -> None:
        # Simulate a crash after delivery but before the outbox row was marked: at-least-once.
        for m in await session.scalars(select(OutboxMessage)):
            m.status = "pending"

    run_db(redeliver)
    _relay(client)

    async def inbox_count(session: Any) -> int:
        return int(await session.scalar(select(func.count()).select_from(InboxMessage)))

    assert run_db(inbox_count) == 2

    h = {**world.alice.headers, "Accept-Language": "en"}
    inbox = client.get("/v1/notifications", headers=h).json()
    assert inbox["unread"] == 2
    assert [i["title"] for i in inbox["items"]] == [
        "Order cancelled",
        "Order placed, awaiting payment",
    ]
    first = inbox["items"][0]["id"]
    assert client.post(f"/v1/notifications/{first}/read", json={}, headers=h).json() == {
        "marked": 1
    }
    assert client.post(f"/v1/notifications/{first}/read", json={}, headers=h).json() == {
        "marked": 0
    }
    # Bob cannot read or mark Alice's messages.
    assert client.get("/v1/notifications", headers=world.bob.headers).json()["items"] == []
    assert client.post(f"/v1/notifications/{first}/read", json={},
                       headers=world.bob.headers).status_code == 404  # fmt: skip
    assert client.post("/v1/notifications/read-all", json={}, headers=h).json() == {"marked": 1}


def test_wechat_subscribe_refusal_is_final_and_failures_retry(
    client: TestClient, world: World, run_db: Any
) -> None:
    calls: list[dict[str, Any]] = []
    answers = iter([503, 43101])

    def upstream(request: httpx.Request) -> httpx.Response:
        calls.append(json.loads(request.content))
        answer = next(answers)
        if answer == 503:
            return httpx.Response(503, text="busy")
        return httpx.Response(200, json={"errcode": answer, "errmsg": "user refuse to accept"})

    async def link(session: Any) -> None:
        session.add(
            SocialIdentity(user_id=world.alice.id, provider="wechat", appid="wx", openid="o-a")
        )

    run_db(link)
    book(client, world)
    sender = WeChatSubscribeSender(
        SubscribeConfig(base_url="https://wechat.test", access_token="t", template_id="tpl"),
        httpx.AsyncClient(transport=httpx.MockTransport(upstream)),
    )
    now = utcnow()
    assert _relay(client, sender, now) == {"delivered": 1, "retry": 1}
    assert ("wechat", "pending", 1) in _outbox(run_db)
    # Not due yet: nothing is sent before the backoff has passed.
    assert _relay(client, sender, now + timedelta(seconds=1)) == {}
    assert _relay(client, sender, now + backoff(1)) == {"refused": 1}
    assert ("wechat", "refused", 2) in _outbox(run_db)
    assert _relay(client, sender, now + timedelta(hours=2)) == {}
    assert len(calls) == 2
    assert calls[0]["touser"] == "o-a"
    assert all(len(v["value"]) <= 20 for c in calls for k, v in c["data"].items() if "thing" in k)


def test_thing_values_are_at_most_20_characters() -> None:
    assert thing("短") == "短"
    long = "保洁服务" * 10
    assert len(thing(long)) == 20
    assert thing(long).endswith("…")

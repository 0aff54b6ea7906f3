"""WeChat subscribe messages to workers: sent only while the worker has no live socket
(presence = a subscriber of the worker's channel), dropped when the offer is over, 43101
final, a presence failure retried; titles fit WeChat's 20-character ``thing`` in every locale."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.auth.models import SocialIdentity
from api.core.broker import worker_channel
from api.core.db import utcnow
from api.core.i18n import translate
from api.core.settings import SUPPORTED_LOCALES
from api.notifications.models import OutboxMessage
from api.notifications.outbox import WorkerTopic, worker_row
from api.notifications.relay import relay_once
from api.notifications.texts import topic_title
from api.notifications.wechat import THING_MAX, SubscribeConfig, WeChatSubscribeSender
from tests.api.orders.world import World, book


class _Upstream:
    """The WeChat API as the tests script it: answers ``errcodes`` in turn, records bodies."""

    def __init__(self, *errcodes: int) -> None:
        self.errcodes = list(errcodes)
        self.calls: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(json.loads(request.content))
        return httpx.Response(200, json={"errcode": self.errcodes.pop(0), "errmsg": "x"})

    def sender(self) -> WeChatSubscribeSender:
        config = SubscribeConfig(
            base_url="https://wechat.test", access_token="t", template_id="tpl"
        )
        return WeChatSubscribeSender(config, httpx.AsyncClient(transport=httpx.MockTransport(self)))


class _RedisDown:
    """Presence whose backend is unreachable."""

    async def subscribers(self, channel: str) -> int:
        raise ConnectionError(f"cannot reach Redis for {channel}")


def _offer_message(
    client: TestClient, world: World, run_db: Any, *, expires: datetime, now: datetime
) -> int:
    """A worker_offer message for worker A0 about a booked order; returns the worker id."""
    order_id = int(book(client, world).json()["id"])
    worker_id, acc = world.workers_a[0]

    async def add(session: Any) -> None:
        if (
            await session.scalar(select(SocialIdentity.id).where(SocialIdentity.user_id == acc.id))
            is None
        ):
            session.add(SocialIdentity(user_id=acc.id, provider="wechat", appid="wx", openid="o-w"))
        payload = {
            "worker_id": worker_id, "order_id": order_id, "order_no": f"NO{order_id}",
            "slot_start": "2030-01-02T03:04:00+00:00", "service_id": world.service_a,
            "offer_id": 77, "expires_at": expires.isoformat(),
        }  # fmt: skip
        session.add(OutboxMessage(**worker_row(acc.id, WorkerTopic.OFFER, payload, now=now)))

    run_db(add)
    return worker_id


def _relay(client: TestClient, sender: WeChatSubscribeSender, *, presence: Any, now: datetime,
           subscribed: int | None = None) -> dict[str, int]:  # fmt: skip
    """One relay pass; with ``subscribed`` set, while that worker's socket channel is open."""
    app: Any = client.app
    maker = app.state.sessionmaker

    async def go() -> dict[str, int]:
        if subscribed is None:
            return (await relay_once(maker, sender=sender, now=now, presence=presence)).counts
        async with app.state.live.broker.subscribe(worker_channel(subscribed)):
            return (await relay_once(maker, sender=sender, now=now, presence=presence)).counts

    assert client.portal is not None
    return client.portal.call(go)


def test_a_worker_with_a_socket_gets_no_wechat_one_without_does(
    client: TestClient, world: World, run_db: Any
) -> None:
    now = utcnow()
    broker = client.app.state.live.broker  # type: ignore[attr-defined]
    upstream = _Upstream(0)
    worker_id = _offer_message(client, world, run_db, expires=now + timedelta(seconds=30), now=now)
    counts = _relay(client, upstream.sender(), presence=broker, now=now, subscribed=worker_id)
    assert counts.get("live") == 1
    assert upstream.calls == []
    _offer_message(client, world, run_db, expires=now + timedelta(seconds=30), now=now)
    assert _relay(client, upstream.sender(), presence=broker, now=now).get("delivered") == 1
    [body] = upstream.calls
    # No worker template configured: the order template, the worker app's offer page.
    assert (body["touser"], body["template_id"]) == ("o-w", "tpl")
    assert body["page"].startswith("pages/worker/offers?order_id=")
    assert body["page"].endswith("&offer_id=77")
    assert body["data"]["thing1"]["value"] == translate("New job offer", "zh-CN")


def test_an_offer_over_before_the_relay_ran_is_not_sent(
    client: TestClient, world: World, run_db: Any
) -> None:
    now = utcnow()
    upstream = _Upstream()
    _offer_message(client, world, run_db, expires=now - timedelta(seconds=1), now=now)
    assert _relay(client, upstream.sender(), presence=None, now=now).get("skipped") == 1
    assert upstream.calls == []


def test_a_refusal_is_final_and_an_unknown_presence_is_retried(
    client: TestClient, world: World, run_db: Any
) -> None:
    now = utcnow()
    upstream = _Upstream(43101)
    _offer_message(client, world, run_db, expires=now + timedelta(minutes=5), now=now)
    # Redis unreachable: whether the worker has a socket is unknown; try again later.
    assert _relay(client, upstream.sender(), presence=_RedisDown(), now=now).get("retry") == 1
    assert upstream.calls == []
    later = now + timedelta(seconds=30)
    assert _relay(client, upstream.sender(), presence=None, now=later).get("refused") == 1
    assert _relay(client, upstream.sender(), presence=None, now=later + timedelta(hours=1)) == {}
    assert len(upstream.calls) == 1


def test_worker_titles_fit_a_wechat_thing_in_every_locale() -> None:
    for topic in WorkerTopic:
        msgid = topic_title(topic.value)
        assert msgid != topic_title("no-such-topic"), topic
        for locale in SUPPORTED_LOCALES:
            text = translate(msgid, locale)
            assert 0 < len(text) <= THING_MAX, (topic, locale, text)
            assert locale == "en" or text != msgid, (topic, locale)

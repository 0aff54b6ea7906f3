"""Provider callbacks through the HTTP endpoints, signed with test keys (doubles.py).

For WeChat Pay and Alipay: a genuine callback pays the order; a forged signature, a
tampered amount, an unknown order and a replay are each rejected or idempotent, and
the bad ones leave the order and the ledger (payments, payment_events) unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api.auth.models import SocialIdentity
from api.core.db import utcnow
from api.orders.models import OrderEvent
from api.payments.models import Payment, PaymentEvent
from api.payments.providers import (
    AlipayConfig,
    AlipayProvider,
    ProviderName,
    WeChatPayConfig,
    WeChatPayProvider,
)
from tests.api.orders.world import World, book, world
from tests.api.payments.doubles import (
    APPID,
    FakeWeChatGateway,
    WeChatPlatform,
    alipay_notify_params,
    signed_alipay_form,
    transaction_resource,
)

__all__ = ["world"]


@pytest.fixture
def wechat_app(
    client: TestClient,
    wechat_config: WeChatPayConfig,
    wechat_gateway: FakeWeChatGateway,
) -> None:
    """WeChat Pay configured in the running app, talking to the fake gateway."""
    wechat_gateway.now = utcnow
    http = httpx.AsyncClient(transport=wechat_gateway.transport())
    provider = WeChatPayProvider(wechat_config, http, base_url="https://wechatpay.test")
    client.app.state.payment_providers[ProviderName.WECHATPAY] = provider  # type: ignore[attr-defined]


@pytest.fixture
def alipay_app(client: TestClient, alipay_config: AlipayConfig) -> None:
    """Alipay configured in the running app (order strings need no network)."""
    provider = AlipayProvider(alipay_config, httpx.AsyncClient())
    client.app.state.payment_providers[ProviderName.ALIPAY] = provider  # type: ignore[attr-defined]


def _ledger(run_db: Any, order_id: int) -> tuple[int, int, list[str]]:
    async def go(session: Any) -> tuple[int, int, list[str]]:
        events = await session.scalar(
            select(func.count()).select_from(PaymentEvent).where(PaymentEvent.order_id == order_id)
        )
        paid = await session.scalar(
            select(func.count())
            .select_from(Payment)
            .where(Payment.order_id == order_id, Payment.status == "succeeded")
        )
        log = list(
            await session.scalars(
                select(OrderEvent.event)
                .where(OrderEvent.order_id == order_id)
                .order_by(OrderEvent.id)
            )
        )
        return int(events), int(paid), log

    return run_db(go)


def _start(client: TestClient, w: World, provider: str) -> tuple[int, str, int]:
    order = book(client, w).json()
    resp = client.post(
        f"/v1/orders/{order['id']}/payments", json={"provider": provider}, headers=w.alice.headers
    )
    assert resp.status_code == 200, resp.text
    return order["id"], resp.json()["out_trade_no"], order["amount_fen"]


def _status(client: TestClient, w: World, order_id: int) -> str:
    return str(client.get(f"/v1/orders/{order_id}", headers=w.alice.headers).json()["status"])


@pytest.fixture
def wechat_world(world: World, run_db: Any, wechat_app: None) -> World:
    """The world, Alice signed in with WeChat (JSAPI needs her openid)."""

    async def link(session: Any) -> None:
        session.add(
            SocialIdentity(user_id=world.alice.id, provider="wechat", appid=APPID, openid="o-alice")
        )

    run_db(link)
    return world


def _wechat_notify(client: TestClient, signed: Any) -> httpx.Response:
    return client.post("/v1/payments/wechatpay/notify", content=signed.body, headers=signed.headers)


def test_wechat_genuine_then_replayed(
    client: TestClient, wechat_world: World, run_db: Any, pubkey_platform: WeChatPlatform
) -> None:
    w = wechat_world
    order_id, trade, amount = _start(client, w, "wechatpay")
    signed = pubkey_platform.notification(transaction_resource(trade, amount), now=utcnow())
    first = _wechat_notify(client, signed)
    assert first.status_code in (200, 204)
    assert _status(client, w, order_id) == "pending_service"
    assert _ledger(run_db, order_id) == (1, 1, ["created", "paid"])
    # WeChat resends the same event (new nonce and timestamp): success, no second effect.
    resent = pubkey_platform.notification(transaction_resource(trade, amount), now=utcnow())
    assert _wechat_notify(client, resent).status_code in (200, 204)
    assert _wechat_notify(client, signed).status_code in (200, 204)
    assert _ledger(run_db, order_id) == (1, 1, ["created", "paid"])


def test_wechat_forged_signature_changes_nothing(
    client: TestClient,
    wechat_world: World,
    run_db: Any,
    pubkey_platform: WeChatPlatform,
    attacker_key: rsa.RSAPrivateKey,
) -> None:
    order_id, trade, amount = _start(client, wechat_world, "wechatpay")
    body = pubkey_platform.envelope(transaction_resource(trade, amount))
    forged = pubkey_platform.sign(body, now=utcnow(), key=attacker_key)
    resp = _wechat_notify(client, forged)
    assert resp.status_code >= 400
    assert resp.json()["code"] == "FAIL"
    assert _status(client, wechat_world, order_id) == "pending_payment"
    assert _ledger(run_db, order_id) == (0, 0, ["created"])


def test_wechat_tampered_amount_changes_nothing(
    client: TestClient, wechat_world: World, run_db: Any, pubkey_platform: WeChatPlatform
) -> None:
    order_id, trade, _ = _start(client, wechat_world, "wechatpay")
    # Genuinely signed, but for one fen: it must not pay a 99-yuan order.
    signed = pubkey_platform.notification(transaction_resource(trade, 1), now=utcnow())
    resp = _wechat_notify(client, signed)
    assert resp.status_code >= 400
    assert _status(client, wechat_world, order_id) == "pending_payment"
    assert _ledger(run_db, order_id) == (0, 0, ["created"])


def test_wechat_unknown_order_changes_nothing(
    client: TestClient, wechat_world: World, run_db: Any, pubkey_platform: WeChatPlatform
) -> None:
    order_id, _trade, amount = _start(client, wechat_world, "wechatpay")
    signed = pubkey_platform.notification(
        transaction_resource("DJ000000000000NOSUCHW", amount), now=utcnow()
    )
    resp = _wechat_notify(client, signed)
    assert resp.status_code >= 400
    assert _ledger(run_db, order_id) == (0, 0, ["created"])

    async def total(session: Any) -> int:
        return int(await session.scalar(select(func.count()).select_from(PaymentEvent)))

    assert run_db(total) == 0


def _alipay_notify(client: TestClient, body: bytes) -> httpx.Response:
    return client.post(
        "/v1/payments/alipay/notify",
        content=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )


def _yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def test_alipay_genuine_then_replayed(
    client: TestClient, world: World, run_db: Any, alipay_app: None, alipay_key: rsa.RSAPrivateKey
) -> None:
    order_id, trade, amount = _start(client, world, "alipay")
    body = signed_alipay_form(alipay_key, alipay_notify_params(trade, _yuan(amount)))
    first = _alipay_notify(client, body)
    assert first.status_code == 200
    assert first.text == "success"
    assert _status(client, world, order_id) == "pending_service"
    again = _alipay_notify(client, body)
    assert again.text == "success"
    assert _ledger(run_db, order_id) == (1, 1, ["created", "paid"])


@pytest.mark.parametrize("case", ["forged", "tampered", "unknown"])
def test_alipay_bad_notifications_change_nothing(
    client: TestClient,
    world: World,
    run_db: Any,
    alipay_app: None,
    alipay_key: rsa.RSAPrivateKey,
    attacker_key: rsa.RSAPrivateKey,
    case: str,
) -> None:
    order_id, trade, amount = _start(client, world, "alipay")
    make: dict[str, Callable[[], bytes]] = {
        "forged": lambda: signed_alipay_form(
            attacker_key, alipay_notify_params(trade, _yuan(amount))
        ),
        "tampered": lambda: signed_alipay_form(alipay_key, alipay_notify_params(trade, "0.01")),
        "unknown": lambda: signed_alipay_form(
            alipay_key, alipay_notify_params("DJ00000000NOSUCHA", _yuan(amount))
        ),
    }
    resp = _alipay_notify(client, make[case]())
    assert resp.text != "success"
    assert _status(client, world, order_id) == "pending_payment"
    assert _ledger(run_db, order_id) == (0, 0, ["created"])


def test_sandbox_forged_callback_is_rejected(
    client: TestClient, world: World, run_db: Any, attacker_key: rsa.RSAPrivateKey
) -> None:
    order_id, trade, amount = _start(client, world, "sandbox")
    platform = WeChatPlatform(key=attacker_key, serial="PUB_KEY_ID_SANDBOXFAKE")
    signed = platform.notification(transaction_resource(trade, amount), now=utcnow())
    resp = client.post("/v1/payments/sandbox/notify", content=signed.body, headers=signed.headers)
    assert resp.status_code >= 400
    assert _ledger(run_db, order_id) == (0, 0, ["created"])


def test_query_fallback_reconciles_a_lost_notification(
    client: TestClient, world: World, run_db: Any
) -> None:
    order_id, trade, _ = _start(client, world, "sandbox")
    sandbox = client.app.state.payment_providers[ProviderName.SANDBOX]  # type: ignore[attr-defined]
    sandbox.pay(trade)  # paid at the provider, but the callback is "lost"
    assert _status(client, world, order_id) == "pending_payment"
    resp = client.post(f"/v1/orders/{order_id}/payments/reconcile", json={},
                       headers=world.alice.headers)  # fmt: skip
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"outcome": "paid", "status": "pending_service"}
    assert _ledger(run_db, order_id) == (1, 1, ["created", "paid"])

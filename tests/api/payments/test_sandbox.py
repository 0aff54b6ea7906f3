"""Sandbox: local payments whose callbacks go through the real WeChat v3 verification."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from wechatpayv3.core import Core

from api.payments.providers import (
    GatewayError,
    InvalidPaymentInput,
    NotificationKind,
    OrderMismatch,
    PaymentProvider,
    PaymentRequest,
    PaymentStatus,
    ProviderName,
    RefundRequest,
    ReplayWindowExceeded,
    SignatureInvalid,
    TradeNotFound,
    UnknownCertificate,
    check_against_order,
)
from api.payments.providers.sandbox import SandboxProvider
from api.payments.providers.wechatpay import WeChatPayProvider
from tests.api.payments.doubles import FIXED_NOW, private_pem

PAY_PAGE = "http://127.0.0.1:8000/v1/payments/sandbox/pay"
APIV3 = b"sandbox-apiv3-key-0123456789abcd"


@dataclass
class Clock:
    """A hand-moved clock (no sleeping, no wall time)."""

    now: datetime = FIXED_NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
def sandbox_key() -> rsa.RSAPrivateKey:
    """The sandbox's signing key (generated once for the module)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def clock() -> Clock:
    """The sandbox's clock."""
    return Clock()


@pytest.fixture
def sandbox(sandbox_key: rsa.RSAPrivateKey, clock: Clock) -> SandboxProvider:
    """A sandbox with a known key, so the library oracle can be configured with it."""
    return SandboxProvider(
        pay_page_url=PAY_PAGE, signing_key=sandbox_key, apiv3_key=APIV3, clock=clock
    )


ORDER = PaymentRequest("DJ20261126000001", 12_800, "日常保洁 2小时")


def test_provider_satisfies_protocol(sandbox: SandboxProvider) -> None:
    assert isinstance(sandbox, PaymentProvider)
    assert sandbox.name is ProviderName.SANDBOX


async def test_pay_flow_end_to_end(sandbox: SandboxProvider) -> None:
    intent = await sandbox.create_payment(ORDER)
    assert intent.pay_url is not None
    url = urlsplit(intent.pay_url)
    assert f"{url.scheme}://{url.netloc}{url.path}" == PAY_PAGE
    assert parse_qs(url.query) == {"out_trade_no": ["DJ20261126000001"]}
    assert (await sandbox.query(ORDER.out_trade_no)).status is PaymentStatus.PENDING

    callback = sandbox.pay(ORDER.out_trade_no, payer_id="o-demo")
    assert callback.headers["Wechatpay-Serial"] == sandbox.key_id
    note = sandbox.parse_notification(callback.headers, callback.body, now=FIXED_NOW)
    assert note.provider is ProviderName.SANDBOX
    assert note.kind is NotificationKind.PAYMENT
    assert note.amount_fen == 12_800
    assert note.payer_id == "o-demo"
    assert note.provider_txn_id is not None
    check_against_order(note, sandbox.expected(ORDER.out_trade_no, 12_800))
    with pytest.raises(OrderMismatch, match=r"amount\.total"):
        check_against_order(note, sandbox.expected(ORDER.out_trade_no, 12_900))

    queried = await sandbox.query(ORDER.out_trade_no)
    assert queried.status is PaymentStatus.SUCCEEDED
    assert queried.dedupe_key == note.dedupe_key


async def test_callbacks_are_genuine_wechat_v3(
    sandbox: SandboxProvider, sandbox_key: rsa.RSAPrivateKey
) -> None:
    """wechatpayv3, configured with the sandbox key as a WeChat Pay public key, accepts them."""
    await sandbox.create_payment(ORDER)
    callback = sandbox.pay(ORDER.out_trade_no)
    public_pem = (
        sandbox_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    core = Core(
        mchid="sandbox-mch",
        cert_serial_no="unused",
        private_key=private_pem(sandbox_key),
        apiv3_key=APIV3.decode(),
        public_key=public_pem,
        public_key_id=sandbox.key_id,
    )
    decoded = core.callback(dict(callback.headers), callback.body)
    assert decoded is not None
    assert decoded["resource"]["out_trade_no"] == ORDER.out_trade_no
    assert decoded["resource"]["amount"]["total"] == 12_800


async def test_resend_has_the_same_dedupe_key(sandbox: SandboxProvider, clock: Clock) -> None:
    await sandbox.create_payment(ORDER)
    first = sandbox.pay(ORDER.out_trade_no)
    clock.now = FIXED_NOW + timedelta(seconds=15)
    again = sandbox.pay(ORDER.out_trade_no)
    assert first.body != again.body  # fresh nonce and encryption
    one = sandbox.parse_notification(first.headers, first.body, now=FIXED_NOW)
    two = sandbox.parse_notification(again.headers, again.body, now=clock.now)
    assert one.dedupe_key == two.dedupe_key
    assert one.notification_id == two.notification_id


async def test_replayed_callback_is_rejected(sandbox: SandboxProvider) -> None:
    await sandbox.create_payment(ORDER)
    callback = sandbox.pay(ORDER.out_trade_no)
    with pytest.raises(ReplayWindowExceeded):
        sandbox.parse_notification(
            callback.headers, callback.body, now=FIXED_NOW + timedelta(minutes=5, seconds=1)
        )


async def test_tampered_callback_is_rejected(sandbox: SandboxProvider) -> None:
    await sandbox.create_payment(ORDER)
    callback = sandbox.pay(ORDER.out_trade_no)
    body = json.loads(callback.body)
    body["event_type"] = "TRANSACTION.SUCCESS "
    with pytest.raises(SignatureInvalid):
        sandbox.parse_notification(
            callback.headers, json.dumps(body, ensure_ascii=False).encode(), now=FIXED_NOW
        )


async def test_another_sandbox_cannot_forge_callbacks(sandbox: SandboxProvider) -> None:
    """Keys are per instance: a callback minted elsewhere names an unknown key."""
    other = SandboxProvider(pay_page_url=PAY_PAGE, clock=lambda: FIXED_NOW)
    await other.create_payment(ORDER)
    forged = other.pay(ORDER.out_trade_no)
    with pytest.raises(UnknownCertificate):
        sandbox.parse_notification(forged.headers, forged.body, now=FIXED_NOW)


async def test_sandbox_callbacks_do_not_pass_as_wechat(
    sandbox: SandboxProvider, wechat: WeChatPayProvider
) -> None:
    await sandbox.create_payment(ORDER)
    callback = sandbox.pay(ORDER.out_trade_no)
    with pytest.raises(UnknownCertificate):
        wechat.parse_notification(callback.headers, callback.body, now=FIXED_NOW)


async def test_refund_flow(sandbox: SandboxProvider) -> None:
    await sandbox.create_payment(ORDER)
    with pytest.raises(GatewayError, match="not paid"):
        await sandbox.refund(RefundRequest(ORDER.out_trade_no, "RF1", 100, 12_800))
    sandbox.pay(ORDER.out_trade_no)
    result = await sandbox.refund(RefundRequest(ORDER.out_trade_no, "RF1", 5_000, 12_800))
    assert result.status is PaymentStatus.SUCCEEDED
    # Idempotent per out_refund_no, and never more than was paid.
    again = await sandbox.refund(RefundRequest(ORDER.out_trade_no, "RF1", 5_000, 12_800))
    assert again.refund_id == result.refund_id
    with pytest.raises(GatewayError) as err:
        await sandbox.refund(RefundRequest(ORDER.out_trade_no, "RF2", 7_801, 12_800))
    assert err.value.code == "NOT_ENOUGH"

    callback = sandbox.refund_callback(ORDER.out_trade_no, "RF1")
    note = sandbox.parse_notification(callback.headers, callback.body, now=FIXED_NOW)
    assert note.kind is NotificationKind.REFUND
    assert note.provider_txn_id == result.refund_id
    check_against_order(
        note, sandbox.expected(ORDER.out_trade_no, 5_000, kind=NotificationKind.REFUND)
    )
    assert (await sandbox.query(ORDER.out_trade_no)).status is PaymentStatus.REFUNDED


async def test_unknown_and_conflicting_trades(sandbox: SandboxProvider) -> None:
    with pytest.raises(TradeNotFound):
        sandbox.pay("DJ20269999999999")
    with pytest.raises(TradeNotFound):
        await sandbox.query("DJ20269999999999")
    await sandbox.create_payment(ORDER)
    await sandbox.create_payment(ORDER)  # same details: idempotent
    with pytest.raises(GatewayError) as err:
        await sandbox.create_payment(PaymentRequest(ORDER.out_trade_no, 1, "x"))
    assert err.value.code == "OUT_TRADE_NO_USED"
    with pytest.raises(InvalidPaymentInput, match="RF9"):
        sandbox.refund_callback(ORDER.out_trade_no, "RF9")


async def test_naive_clock_is_refused(sandbox_key: rsa.RSAPrivateKey) -> None:
    sandbox = SandboxProvider(
        pay_page_url=PAY_PAGE, signing_key=sandbox_key, clock=lambda: datetime(2026, 11, 26)
    )
    await sandbox.create_payment(ORDER)
    with pytest.raises(InvalidPaymentInput, match="timezone-aware"):
        sandbox.pay(ORDER.out_trade_no)

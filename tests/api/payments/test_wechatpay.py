"""WeChat Pay v3: notifications verified and decrypted from raw bytes, outbound calls signed."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wechatpayv3.core import Core
from wechatpayv3.utils import rsa_sign

from api.payments.providers import (
    DecryptionFailed,
    GatewayError,
    InvalidPaymentInput,
    MalformedNotification,
    NotificationKind,
    OrderMismatch,
    PaymentError,
    PaymentProvider,
    PaymentRequest,
    PaymentStatus,
    ProviderName,
    RefundRequest,
    ReplayWindowExceeded,
    SignatureInvalid,
    TradeNotFound,
    UnknownCertificate,
    UnsupportedAlgorithm,
    check_against_order,
    order_mismatch,
)
from api.payments.providers.wechatpay import WeChatPayConfig, WeChatPayProvider
from tests.api.payments.conftest import EXPIRED_CERT_SERIAL
from tests.api.payments.doubles import (
    APPID,
    FIXED_NOW,
    MCHID,
    PUB_KEY_ID,
    FakeWeChatGateway,
    WeChatPlatform,
    private_pem,
    refund_resource,
    transaction_resource,
)


def test_provider_satisfies_protocol(wechat: WeChatPayProvider) -> None:
    assert isinstance(wechat, PaymentProvider)
    assert wechat.name is ProviderName.WECHATPAY


# ---------------------------------------------------------------------------
# Valid notifications


def test_valid_payment_notification_verifies_and_decrypts(
    wechat: WeChatPayProvider, cert_platform: WeChatPlatform
) -> None:
    sent = cert_platform.notification(transaction_resource("DJ20261126000001", 12_800))
    note = wechat.parse_notification(sent.headers, sent.body, now=FIXED_NOW)
    assert note.provider is ProviderName.WECHATPAY
    assert note.kind is NotificationKind.PAYMENT
    assert note.out_trade_no == "DJ20261126000001"
    assert note.provider_txn_id == "4200000123202611261234567890"
    assert note.amount_fen == 12_800
    assert note.trade_state == "SUCCESS"
    assert note.status is PaymentStatus.SUCCEEDED
    assert (note.merchant_id, note.app_id) == (MCHID, APPID)
    assert note.payer_id == "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
    assert note.success_time == datetime(2026, 11, 26, 5, 58, 30, tzinfo=UTC)
    assert note.notification_id == "EV-2018022511223320873"
    assert note.event_type == "TRANSACTION.SUCCESS"
    assert note.raw["resource"]["trade_type"] == "JSAPI"
    check_against_order(note, wechat.expected("DJ20261126000001", 12_800))


def test_headers_are_case_insensitive(
    wechat: WeChatPayProvider, cert_platform: WeChatPlatform
) -> None:
    sent = cert_platform.notification(transaction_resource())
    lowered = {k.lower(): v for k, v in sent.headers.items()}
    assert wechat.parse_notification(lowered, sent.body, now=FIXED_NOW).amount_fen == 12_800


def test_public_key_id_serial_during_key_switch(
    wechat: WeChatPayProvider, cert_platform: WeChatPlatform, pubkey_platform: WeChatPlatform
) -> None:
    """Both kinds of serial verify with one configuration while WeChat switches keys."""
    old = cert_platform.notification(transaction_resource("DJ20261126000001"))
    new = pubkey_platform.notification(transaction_resource("DJ20261126000002"))
    assert new.headers["Wechatpay-Serial"].startswith("PUB_KEY_ID_")
    assert wechat.parse_notification(old.headers, old.body, now=FIXED_NOW).out_trade_no == (
        "DJ20261126000001"
    )
    assert wechat.parse_notification(new.headers, new.body, now=FIXED_NOW).out_trade_no == (
        "DJ20261126000002"
    )


def test_public_key_id_signed_with_certificate_key_is_rejected(
    wechat: WeChatPayProvider, pubkey_platform: WeChatPlatform, platform_cert_key: rsa.RSAPrivateKey
) -> None:
    """The serial picks the key: a cert-key signature under the PUB_KEY_ID_ serial fails."""
    body = pubkey_platform.envelope(transaction_resource())
    sent = pubkey_platform.sign(body, key=platform_cert_key)
    with pytest.raises(SignatureInvalid, match="PUB_KEY_ID_"):
        wechat.parse_notification(sent.headers, sent.body, now=FIXED_NOW)


def test_library_oracle_agrees_on_the_same_notification(
    wechat: WeChatPayProvider,
    pubkey_platform: WeChatPlatform,
    platform_pubkey_key: rsa.RSAPrivateKey,
    merchant_key: rsa.RSAPrivateKey,
) -> None:
    """wechatpayv3 (public-key mode, no network) decrypts our doubles to the same resource."""
    resource = transaction_resource("DJ20261126000009", 990)
    sent = pubkey_platform.notification(resource)
    public_pem = (
        platform_pubkey_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    core = Core(
        mchid=MCHID,
        cert_serial_no="unused",
        private_key=private_pem(merchant_key),
        apiv3_key=pubkey_platform.apiv3_key.decode(),
        public_key=public_pem,
        public_key_id=PUB_KEY_ID,
    )
    library = core.callback(sent.headers, sent.body)
    ours = wechat.parse_notification(sent.headers, sent.body, now=FIXED_NOW)
    assert library is not None
    assert library["resource"] == resource == ours.raw["resource"]


def test_refund_notification(wechat: WeChatPayProvider, cert_platform: WeChatPlatform) -> None:
    sent = cert_platform.notification(
        refund_resource(refund_fen=5_000), event_type="REFUND.SUCCESS"
    )
    note = wechat.parse_notification(sent.headers, sent.body, now=FIXED_NOW)
    assert note.kind is NotificationKind.REFUND
    assert note.amount_fen == 5_000
    assert note.provider_txn_id == "50000000382019052709732678859"
    assert note.payment_txn_id == "4200000123202611261234567890"
    assert note.out_refund_no == "RF20261126000001"
    assert note.status is PaymentStatus.SUCCEEDED
    assert note.app_id is None
    check_against_order(
        note, wechat.expected("DJ20261126000001", 5_000, kind=NotificationKind.REFUND)
    )
    with pytest.raises(OrderMismatch) as err:
        check_against_order(note, wechat.expected("DJ20261126000001", 5_000))
    assert err.value.field == "kind"


def test_abnormal_refund_is_not_a_success(
    wechat: WeChatPayProvider, cert_platform: WeChatPlatform
) -> None:
    sent = cert_platform.notification(
        refund_resource(refund_status="ABNORMAL"), event_type="REFUND.ABNORMAL"
    )
    note = wechat.parse_notification(sent.headers, sent.body, now=FIXED_NOW)
    assert note.status is PaymentStatus.ABNORMAL
    mismatch = order_mismatch(
        note, wechat.expected("DJ20261126000001", 5_000, kind=NotificationKind.REFUND)
    )
    assert mismatch is not None
    assert mismatch.field == "refund_status"


def test_refund_event_type_must_agree_with_status(
    wechat: WeChatPayProvider, cert_platform: WeChatPlatform
) -> None:
    sent = cert_platform.notification(
        refund_resource(refund_status="CLOSED"), event_type="REFUND.SUCCESS"
    )
    with pytest.raises(MalformedNotification, match="event_type"):
        wechat.parse_notification(sent.headers, sent.body, now=FIXED_NOW)


def test_dedupe_key_is_stable_across_redeliveries(
    wechat: WeChatPayProvider, cert_platform: WeChatPlatform
) -> None:
    """WeChat resends the same event with new nonce/timestamp: same key; a refund differs."""
    first = cert_platform.notification(transaction_resource())
    again = cert_platform.notification(
        transaction_resource(), now=FIXED_NOW + timedelta(seconds=15)
    )
    assert first.headers["Wechatpay-Nonce"] != again.headers["Wechatpay-Nonce"]
    key1 = wechat.parse_notification(first.headers, first.body, now=FIXED_NOW).dedupe_key
    key2 = wechat.parse_notification(
        again.headers, again.body, now=FIXED_NOW + timedelta(seconds=15)
    ).dedupe_key
    refund = cert_platform.notification(refund_resource(), event_type="REFUND.SUCCESS")
    key3 = wechat.parse_notification(refund.headers, refund.body, now=FIXED_NOW).dedupe_key
    assert key1 == key2 == "wechatpay:payment:4200000123202611261234567890:SUCCESS"
    assert key3 != key1


# ---------------------------------------------------------------------------
# Rejections


def test_forged_signature_is_rejected(
    wechat: WeChatPayProvider, cert_platform: WeChatPlatform, attacker_key: rsa.RSAPrivateKey
) -> None:
    sent = cert_platform.sign(cert_platform.envelope(transaction_resource()), key=attacker_key)
    with pytest.raises(SignatureInvalid):
        wechat.parse_notification(sent.headers, sent.body, now=FIXED_NOW)


def test_wechat_signature_probe_simply_fails(
    wechat: WeChatPayProvider, cert_platform: WeChatPlatform
) -> None:
    sent = cert_platform.notification(transaction_resource())
    headers = {**sent.headers, "Wechatpay-Signature": "WECHATPAY/SIGNTEST/" + "A" * 40}
    with pytest.raises(SignatureInvalid):
        wechat.parse_notification(headers, sent.body, now=FIXED_NOW)


@pytest.mark.parametrize(
    "serial",
    [
        "6157F09EFDC096DE15EBE81A47057A7232F1B8E1",  # a certificate we never loaded
        "PUB_KEY_ID_0119000001092025011400112233999999",  # a public key id we never loaded
        format(EXPIRED_CERT_SERIAL, "X"),  # loaded, but expired
    ],
)
def test_unknown_or_expired_serial_is_rejected(
    wechat: WeChatPayProvider, cert_platform: WeChatPlatform, serial: str
) -> None:
    sent = cert_platform.sign(cert_platform.envelope(transaction_resource()), serial=serial)
    with pytest.raises(UnknownCertificate, match=serial):
        wechat.parse_notification(sent.headers, sent.body, now=FIXED_NOW)


def test_expired_certificate_signed_by_its_own_key_is_still_rejected(
    wechat: WeChatPayProvider, expired_cert_key: rsa.RSAPrivateKey
) -> None:
    platform = WeChatPlatform(key=expired_cert_key, serial=format(EXPIRED_CERT_SERIAL, "X"))
    sent = platform.notification(transaction_resource())
    with pytest.raises(UnknownCertificate, match="expired"):
        wechat.parse_notification(sent.headers, sent.body, now=FIXED_NOW)


def test_tampered_body_is_rejected(
    wechat: WeChatPayProvider, cert_platform: WeChatPlatform
) -> None:
    sent = cert_platform.notification(transaction_resource())
    tampered = sent.body.replace(b"EV-2018022511223320873", b"EV-2018022511223320874")
    assert tampered != sent.body
    with pytest.raises(SignatureInvalid):
        wechat.parse_notification(sent.headers, tampered, now=FIXED_NOW)


def test_reserialised_body_is_rejected(
    wechat: WeChatPayProvider, cert_platform: WeChatPlatform
) -> None:
    """Same JSON, different bytes: verification is over the raw request bytes only."""
    sent = cert_platform.notification(transaction_resource())
    reserialised = json.dumps(json.loads(sent.body), ensure_ascii=False).encode()
    assert json.loads(reserialised) == json.loads(sent.body)
    with pytest.raises(SignatureInvalid):
        wechat.parse_notification(sent.headers, reserialised, now=FIXED_NOW)


def test_tampered_amount_is_caught_against_the_order(
    wechat: WeChatPayProvider, cert_platform: WeChatPlatform
) -> None:
    """A genuine notification for 1 fen must not pay a 128-yuan order."""
    sent = cert_platform.notification(transaction_resource("DJ20261126000001", 1))
    note = wechat.parse_notification(sent.headers, sent.body, now=FIXED_NOW)
    with pytest.raises(OrderMismatch) as err:
        check_against_order(note, wechat.expected("DJ20261126000001", 12_800))
    assert err.value.field == "amount.total"
    assert (err.value.expected, err.value.actual) == (12_800, 1)


@pytest.mark.parametrize(
    ("resource", "field"),
    [
        (transaction_resource("DJ20261126999999"), "out_trade_no"),
        (transaction_resource(mchid="1900000999"), "mchid"),
        (transaction_resource(appid="wx0000000000000000"), "appid"),
        (transaction_resource(trade_state="NOTPAY"), "trade_state"),
        (transaction_resource(trade_state="REFUND"), "trade_state"),
    ],
)
def test_order_mismatches_name_the_field(
    wechat: WeChatPayProvider, cert_platform: WeChatPlatform, resource: dict[str, Any], field: str
) -> None:
    sent = cert_platform.notification(resource)
    note = wechat.parse_notification(sent.headers, sent.body, now=FIXED_NOW)
    expected = wechat.expected("DJ20261126000001", 12_800)
    mismatch = order_mismatch(note, expected)
    assert mismatch is not None
    assert mismatch.field == field
    with pytest.raises(OrderMismatch, match=field):
        check_against_order(note, expected)


@pytest.mark.parametrize(
    "offset",
    [timedelta(minutes=-5, seconds=-1), timedelta(minutes=5, seconds=1), timedelta(hours=-24)],
)
def test_timestamp_outside_window_is_a_replay(
    wechat: WeChatPayProvider, cert_platform: WeChatPlatform, offset: timedelta
) -> None:
    sent = cert_platform.sign(
        cert_platform.envelope(transaction_resource()), now=FIXED_NOW + offset
    )
    with pytest.raises(ReplayWindowExceeded):
        wechat.parse_notification(sent.headers, sent.body, now=FIXED_NOW)


@pytest.mark.parametrize("offset", [timedelta(minutes=-5), timedelta(0), timedelta(minutes=5)])
def test_timestamp_inside_window_is_accepted(
    wechat: WeChatPayProvider, cert_platform: WeChatPlatform, offset: timedelta
) -> None:
    sent = cert_platform.sign(
        cert_platform.envelope(transaction_resource()), now=FIXED_NOW + offset
    )
    assert wechat.parse_notification(sent.headers, sent.body, now=FIXED_NOW).amount_fen == 12_800


def test_replay_of_a_forgery_is_reported_as_forgery(
    wechat: WeChatPayProvider, cert_platform: WeChatPlatform, attacker_key: rsa.RSAPrivateKey
) -> None:
    """The signature is checked before the window, so a stale forgery is SignatureInvalid."""
    sent = cert_platform.sign(
        cert_platform.envelope(transaction_resource()),
        now=FIXED_NOW - timedelta(hours=1),
        key=attacker_key,
    )
    with pytest.raises(SignatureInvalid):
        wechat.parse_notification(sent.headers, sent.body, now=FIXED_NOW)


@pytest.mark.parametrize("signature_type", ["WECHATPAY2-SM2-WITH-SM3", "HMAC-SHA256", ""])
def test_wrong_signature_type_is_rejected(
    wechat: WeChatPayProvider, cert_platform: WeChatPlatform, signature_type: str
) -> None:
    sent = cert_platform.sign(
        cert_platform.envelope(transaction_resource()), signature_type=signature_type
    )
    with pytest.raises(UnsupportedAlgorithm, match="Signature-Type"):
        wechat.parse_notification(sent.headers, sent.body, now=FIXED_NOW)


def test_absent_signature_type_header_falls_back_to_rsa(
    wechat: WeChatPayProvider, cert_platform: WeChatPlatform
) -> None:
    sent = cert_platform.sign(cert_platform.envelope(transaction_resource()), signature_type=None)
    assert "Wechatpay-Signature-Type" not in sent.headers
    assert wechat.parse_notification(sent.headers, sent.body, now=FIXED_NOW).amount_fen == 12_800


def test_wrong_resource_algorithm_is_rejected(
    wechat: WeChatPayProvider, cert_platform: WeChatPlatform
) -> None:
    body = cert_platform.envelope(transaction_resource(), algorithm="AEAD_SM4_GCM")
    sent = cert_platform.sign(body)
    with pytest.raises(UnsupportedAlgorithm, match="AEAD_SM4_GCM"):
        wechat.parse_notification(sent.headers, sent.body, now=FIXED_NOW)


def test_wrong_apiv3_key_fails_decryption(
    wechat: WeChatPayProvider, cert_platform: WeChatPlatform
) -> None:
    body = cert_platform.envelope(transaction_resource(), apiv3_key=b"X" * 32)
    sent = cert_platform.sign(body)
    with pytest.raises(DecryptionFailed):
        wechat.parse_notification(sent.headers, sent.body, now=FIXED_NOW)


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"[1, 2]", b'{"resource_type": "plain", "resource": {}}', b"\xff\xfe"],
)
def test_malformed_json_is_rejected(
    wechat: WeChatPayProvider, cert_platform: WeChatPlatform, body: bytes
) -> None:
    sent = cert_platform.sign(body)
    with pytest.raises(MalformedNotification):
        wechat.parse_notification(sent.headers, sent.body, now=FIXED_NOW)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r.pop("out_trade_no"), "out_trade_no"),
        (lambda r: r["amount"].update(total="12800"), "amount.total"),
        (lambda r: r["amount"].update(total=True), "amount.total"),
        (lambda r: r.update(trade_state="PAID"), "trade_state"),
        (lambda r: r.update(success_time="yesterday"), "success_time"),
    ],
)
def test_malformed_resource_fields_are_named(
    wechat: WeChatPayProvider, cert_platform: WeChatPlatform, mutate: object, message: str
) -> None:
    resource = transaction_resource()
    mutate(resource)  # type: ignore[operator]
    sent = cert_platform.notification(resource)
    with pytest.raises(MalformedNotification, match=message):
        wechat.parse_notification(sent.headers, sent.body, now=FIXED_NOW)


@pytest.mark.parametrize(
    ("header", "value", "error"),
    [
        ("Wechatpay-Signature", None, MalformedNotification),
        ("Wechatpay-Serial", None, MalformedNotification),
        ("Wechatpay-Nonce", None, MalformedNotification),
        ("Wechatpay-Timestamp", None, MalformedNotification),
        ("Wechatpay-Timestamp", "1.7e9", MalformedNotification),
        ("Wechatpay-Timestamp", "²", MalformedNotification),
        ("Wechatpay-Timestamp", "9" * 30, MalformedNotification),
        ("Wechatpay-Signature", "%%%not-base64%%%", SignatureInvalid),
    ],
)
def test_bad_headers_are_rejected(
    wechat: WeChatPayProvider,
    cert_platform: WeChatPlatform,
    header: str,
    value: str | None,
    error: type[PaymentError],
) -> None:
    sent = cert_platform.notification(transaction_resource())
    headers = dict(sent.headers)
    if value is None:
        del headers[header]
    else:
        headers[header] = value
    with pytest.raises(error, match="Wechatpay" if error is MalformedNotification else None):
        wechat.parse_notification(headers, sent.body, now=FIXED_NOW)


def test_unknown_event_type_is_rejected(
    wechat: WeChatPayProvider, cert_platform: WeChatPlatform
) -> None:
    sent = cert_platform.notification(transaction_resource(), event_type="COMPLAINT.CREATE")
    with pytest.raises(MalformedNotification, match=r"COMPLAINT\.CREATE"):
        wechat.parse_notification(sent.headers, sent.body, now=FIXED_NOW)


def test_naive_now_is_refused(wechat: WeChatPayProvider, cert_platform: WeChatPlatform) -> None:
    sent = cert_platform.notification(transaction_resource())
    with pytest.raises(InvalidPaymentInput, match="timezone-aware"):
        wechat.parse_notification(sent.headers, sent.body, now=FIXED_NOW.replace(tzinfo=None))


def test_every_error_is_a_payment_error_and_a_value_error() -> None:
    for cls in (
        SignatureInvalid,
        UnsupportedAlgorithm,
        ReplayWindowExceeded,
        MalformedNotification,
        UnknownCertificate,
        DecryptionFailed,
        OrderMismatch,
        GatewayError,
        TradeNotFound,
        InvalidPaymentInput,
    ):
        assert issubclass(cls, PaymentError)
        assert issubclass(cls, ValueError)


# ---------------------------------------------------------------------------
# Replies


def test_replies_follow_wechat_format(wechat: WeChatPayProvider) -> None:
    ok = wechat.success_response()
    assert ok.status_code in (200, 204)
    assert ok.body == b""
    bad = wechat.failure_response("签名错误")
    assert 400 <= bad.status_code < 500
    assert json.loads(bad.body) == {"code": "FAIL", "message": "签名错误"}
    assert bad.headers["Content-Type"].startswith("application/json")
    assert wechat.failure_response("db down", status_code=503).status_code == 503
    with pytest.raises(InvalidPaymentInput):
        wechat.failure_response("x", status_code=200)


# ---------------------------------------------------------------------------
# Outbound: prepay + JSAPI params, query, refund (the fake gateway checks signatures)


async def test_create_payment_returns_signed_jsapi_params(
    wechat: WeChatPayProvider, wechat_gateway: FakeWeChatGateway, merchant_key: rsa.RSAPrivateKey
) -> None:
    intent = await wechat.create_payment(
        PaymentRequest("DJ20261126000001", 12_800, "日常保洁 2小时", payer_id="oUpF8uMu")
    )
    assert wechat_gateway.rejected == []
    method, path, body = wechat_gateway.requests[-1]
    assert (method, path) == ("POST", "/v3/pay/transactions/jsapi")
    assert body["amount"] == {"total": 12_800, "currency": "CNY"}
    assert body["payer"] == {"openid": "oUpF8uMu"}
    assert body["description"] == "日常保洁 2小时"

    params = dict(intent.client_params)
    assert set(params) == {"timeStamp", "nonceStr", "package", "signType", "paySign"}
    assert params["package"] == f"prepay_id={intent.prepay_id}"
    assert params["signType"] == "RSA"
    assert params["timeStamp"] == str(int(FIXED_NOW.timestamp()))
    message = (
        f"{APPID}\n{params['timeStamp']}\n{params['nonceStr']}\n{params['package']}\n".encode()
    )
    merchant_key.public_key().verify(
        base64.b64decode(params["paySign"]), message, padding.PKCS1v15(), hashes.SHA256()
    )
    # PKCS#1 v1.5 is deterministic: the library's signer must produce the same paySign.
    assert params["paySign"] == rsa_sign(merchant_key, message.decode())
    with pytest.raises(InvalidSignature):
        merchant_key.public_key().verify(
            base64.b64decode(params["paySign"]),
            message.replace(b"prepay_id", b"prepay_iD"),
            padding.PKCS1v15(),
            hashes.SHA256(),
        )


async def test_create_payment_sends_time_expire_in_china_time(
    wechat: WeChatPayProvider, wechat_gateway: FakeWeChatGateway
) -> None:
    await wechat.create_payment(
        PaymentRequest(
            "DJ20261126000001",
            100,
            "x",
            payer_id="o1",
            expires_at=datetime(2026, 11, 26, 6, 30, tzinfo=UTC),
        )
    )
    assert wechat_gateway.requests[-1][2]["time_expire"] == "2026-11-26T14:30:00+08:00"


async def test_create_payment_needs_openid(wechat: WeChatPayProvider) -> None:
    with pytest.raises(InvalidPaymentInput, match="payer_id"):
        await wechat.create_payment(PaymentRequest("DJ20261126000001", 100, "x"))


async def test_requests_signed_with_another_key_are_refused_by_the_gateway(
    wechat_config: WeChatPayConfig,
    wechat_http: httpx.AsyncClient,
    wechat_gateway: FakeWeChatGateway,
    attacker_key: rsa.RSAPrivateKey,
) -> None:
    """The fake gateway's check can fail: a provider with the wrong merchant key is refused."""
    from dataclasses import replace

    wrong = WeChatPayProvider(
        replace(wechat_config, merchant_private_key=attacker_key),
        wechat_http,
        base_url="https://wechatpay.test",
        clock=lambda: FIXED_NOW,
    )
    with pytest.raises(GatewayError) as err:
        await wrong.create_payment(PaymentRequest("DJ20261126000001", 100, "x", payer_id="o1"))
    assert err.value.status_code == 401
    assert err.value.code == "SIGN_ERROR"
    assert wechat_gateway.rejected == ["signature does not verify"]


async def test_response_with_bad_signature_is_refused(
    wechat: WeChatPayProvider, wechat_gateway: FakeWeChatGateway, attacker_key: rsa.RSAPrivateKey
) -> None:
    wechat_gateway.sign_responses_with = attacker_key
    with pytest.raises(GatewayError, match="verification"):
        await wechat.create_payment(PaymentRequest("DJ20261126000001", 100, "x", payer_id="o1"))


async def test_query_follows_the_trade(
    wechat: WeChatPayProvider, wechat_gateway: FakeWeChatGateway
) -> None:
    await wechat.create_payment(PaymentRequest("DJ2026|1126*01", 12_800, "x", payer_id="o1"))
    unpaid = await wechat.query("DJ2026|1126*01")
    assert unpaid.status is PaymentStatus.PENDING
    assert unpaid.provider_txn_id is None
    assert unpaid.notification_id is None
    assert order_mismatch(unpaid, wechat.expected("DJ2026|1126*01", 12_800)) is not None

    wechat_gateway.trades["DJ2026|1126*01"].update(
        trade_state="SUCCESS", transaction_id="4200000123202611261234567890"
    )
    paid = await wechat.query("DJ2026|1126*01")
    assert wechat_gateway.rejected == []
    assert wechat_gateway.requests[-1][1] == (
        f"/v3/pay/transactions/out-trade-no/DJ2026%7C1126%2A01?mchid={MCHID}"
    )
    assert paid.status is PaymentStatus.SUCCEEDED
    check_against_order(paid, wechat.expected("DJ2026|1126*01", 12_800))
    # A query answer and the notification for the same payment dedupe together.
    assert paid.dedupe_key == "wechatpay:payment:4200000123202611261234567890:SUCCESS"


async def test_query_unknown_trade(wechat: WeChatPayProvider) -> None:
    with pytest.raises(TradeNotFound) as err:
        await wechat.query("DJ20260000000000")
    assert err.value.status_code == 404


async def test_refund_request_is_signed_and_typed(
    wechat: WeChatPayProvider, wechat_gateway: FakeWeChatGateway
) -> None:
    result = await wechat.refund(
        RefundRequest("DJ20261126000001", "RF20261126000001", 5_000, 12_800, reason="客户取消")
    )
    assert wechat_gateway.rejected == []
    method, path, body = wechat_gateway.requests[-1]
    assert (method, path) == ("POST", "/v3/refund/domestic/refunds")
    assert body["amount"] == {"refund": 5_000, "total": 12_800, "currency": "CNY"}
    assert body["reason"] == "客户取消"
    assert result.status is PaymentStatus.PROCESSING
    assert result.refund_fen == 5_000
    assert result.refund_id == "50000000382019052709732678859"


async def test_network_failure_is_a_gateway_error(wechat_config: WeChatPayConfig) -> None:
    def boom(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(boom)) as client:
        provider = WeChatPayProvider(wechat_config, client, clock=lambda: FIXED_NOW)
        with pytest.raises(GatewayError, match="ConnectError"):
            await provider.query("DJ20261126000001")


# ---------------------------------------------------------------------------
# Input validation


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"out_trade_no": "short"}, "out_trade_no"),
        ({"out_trade_no": "DJ 2026 1126"}, "out_trade_no"),
        ({"amount_fen": 0}, "amount_fen"),
        ({"amount_fen": True}, "amount_fen"),
        ({"amount_fen": 12.5}, "amount_fen"),
        ({"description": " "}, "description"),
        ({"description": "长" * 43}, "description"),
        ({"expires_at": datetime(2026, 11, 26)}, "expires_at"),
    ],
)
def test_payment_request_validation(kwargs: dict[str, Any], field: str) -> None:
    base = {"out_trade_no": "DJ20261126000001", "amount_fen": 100, "description": "x"}
    with pytest.raises(InvalidPaymentInput, match=field):
        PaymentRequest(**{**base, **kwargs})


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("DJ20261126000001", "RF 1", 100, 100), "out_refund_no"),
        (("DJ20261126000001", "RF1", 0, 100), "refund_fen"),
        (("DJ20261126000001", "RF1", 101, 100), "refund_fen"),
    ],
)
def test_refund_request_validation(args: tuple[Any, ...], field: str) -> None:
    with pytest.raises(InvalidPaymentInput, match=field):
        RefundRequest(*args)


def test_config_validation(wechat_config: WeChatPayConfig) -> None:
    from dataclasses import replace

    with pytest.raises(InvalidPaymentInput, match="apiv3_key"):
        replace(wechat_config, apiv3_key=b"short")
    with pytest.raises(InvalidPaymentInput, match="notify_url"):
        replace(wechat_config, notify_url="http://insecure.test/notify")


# ---------------------------------------------------------------------------
# Robustness: whatever arrives, the only exceptions are typed PaymentErrors

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
_resource_like = st.fixed_dictionaries(
    {},
    optional={
        "out_trade_no": _json | st.just("DJ20261126000001"),
        "transaction_id": _json | st.just("42000001"),
        "trade_state": _json | st.sampled_from(["SUCCESS", "NOTPAY"]),
        "mchid": _json | st.just(MCHID),
        "appid": _json | st.just(APPID),
        "amount": _json | st.fixed_dictionaries({"total": _json}),
        "payer": _json,
        "success_time": _json | st.just("2026-11-26T13:58:30+08:00"),
        "refund_id": _json,
        "refund_status": _json | st.just("SUCCESS"),
        "out_refund_no": _json,
    },
)
_FUZZ = settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])


@_FUZZ
@given(
    headers=st.dictionaries(
        st.sampled_from(
            [
                "Wechatpay-Signature",
                "Wechatpay-Timestamp",
                "Wechatpay-Nonce",
                "Wechatpay-Serial",
                "Wechatpay-Signature-Type",
            ]
        ),
        st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255), max_size=40),
    ),
    body=st.binary(max_size=200),
)
def test_arbitrary_requests_raise_only_payment_errors(
    wechat: WeChatPayProvider, headers: dict[str, str], body: bytes
) -> None:
    with pytest.raises(PaymentError):
        wechat.parse_notification(headers, body, now=FIXED_NOW)


@_FUZZ
@given(
    resource=_resource_like,
    event_type=st.sampled_from(["TRANSACTION.SUCCESS", "REFUND.SUCCESS", "REFUND.CLOSED"]),
)
def test_signed_odd_resources_raise_only_payment_errors(
    wechat: WeChatPayProvider,
    cert_platform: WeChatPlatform,
    resource: dict[str, Any],
    event_type: str,
) -> None:
    """Even a genuinely signed resource with odd types may only fail with a typed error."""
    sent = cert_platform.notification(resource, event_type=event_type)
    try:
        note = wechat.parse_notification(sent.headers, sent.body, now=FIXED_NOW)
    except PaymentError:
        return
    assert isinstance(note.out_trade_no, str)
    assert note.amount_fen is None or isinstance(note.amount_fen, int)


def test_keyring_from_settings_text(
    platform_cert_key: rsa.RSAPrivateKey,
    platform_pubkey_key: rsa.RSAPrivateKey,
    cert_platform: WeChatPlatform,
    pubkey_platform: WeChatPlatform,
) -> None:
    from api.payments.providers import PlatformKeyring
    from api.payments.providers.wechatpay import V3Verifier
    from tests.api.payments.conftest import CERT_SERIAL
    from tests.api.payments.doubles import APIV3_KEY, cert_pem, public_der_b64, self_signed_cert

    keyring = PlatformKeyring.from_text(
        certificates=[cert_pem(self_signed_cert(platform_cert_key, CERT_SERIAL))],
        public_key_id=PUB_KEY_ID,
        public_key=public_der_b64(platform_pubkey_key.public_key()),
    )
    verifier = V3Verifier(keyring, APIV3_KEY)
    for platform in (cert_platform, pubkey_platform):
        sent = platform.notification(transaction_resource())
        verifier.verify_signature(sent.headers, sent.body, now=FIXED_NOW)
    # Serials are hex numbers: case and leading zeros do not matter.
    sent = cert_platform.sign(b"{}", serial="00" + format(CERT_SERIAL, "x"))
    verifier.verify_signature(sent.headers, sent.body, now=FIXED_NOW)
    with pytest.raises(InvalidPaymentInput, match="together"):
        PlatformKeyring.from_text(public_key_id=PUB_KEY_ID)
    with pytest.raises(InvalidPaymentInput, match="at least one"):
        PlatformKeyring.from_text()
    with pytest.raises(InvalidPaymentInput, match="PUB_KEY_ID_"):
        PlatformKeyring.from_text(
            public_key_id="KEY1", public_key=public_der_b64(platform_pubkey_key.public_key())
        )

"""Alipay: notify forms verified with RSA2, order strings and gateway calls signed."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest
from alipay import AliPay
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.payments.providers import (
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
    SignatureInvalid,
    TradeNotFound,
    UnsupportedAlgorithm,
    check_against_order,
    order_mismatch,
)
from api.payments.providers.alipay import (
    AlipayConfig,
    AlipayProduct,
    AlipayProvider,
    yuan_to_fen,
)
from api.payments.providers.base import fen_to_yuan
from tests.api.payments.doubles import (
    ALIPAY_APP_ID,
    ALIPAY_NOTIFY_URL,
    ALIPAY_SELLER_ID,
    FIXED_NOW,
    FakeAlipayGateway,
    alipay_notify_params,
    alipay_sign_content,
    alipay_trade,
    private_pem,
    sign_b64,
    signed_alipay_form,
    verify_b64,
)

HEADERS = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}


def _public_pem(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def test_provider_satisfies_protocol(alipay: AlipayProvider) -> None:
    assert isinstance(alipay, PaymentProvider)
    assert alipay.name is ProviderName.ALIPAY


# ---------------------------------------------------------------------------
# Notify


def test_valid_notify_verifies(alipay: AlipayProvider, alipay_key: rsa.RSAPrivateKey) -> None:
    body = signed_alipay_form(alipay_key, alipay_notify_params("DJ20261126000001", "128.00"))
    note = alipay.parse_notification(HEADERS, body, now=FIXED_NOW)
    assert note.provider is ProviderName.ALIPAY
    assert note.kind is NotificationKind.PAYMENT
    assert note.out_trade_no == "DJ20261126000001"
    assert note.provider_txn_id == "2026112622001446880500937441"
    assert note.amount_fen == 12_800
    assert note.trade_state == "TRADE_SUCCESS"
    assert note.status is PaymentStatus.SUCCEEDED
    assert (note.merchant_id, note.app_id) == (ALIPAY_SELLER_ID, ALIPAY_APP_ID)
    assert note.payer_id == "2088102177846880"
    assert note.notification_id == "2026112600222135830093541419213530"
    assert note.raw["subject"] == "日常保洁 2小时"
    assert note.success_time is not None
    assert note.success_time.isoformat() == "2026-11-26T05:58:30+00:00"
    check_against_order(note, alipay.expected("DJ20261126000001", 12_800))


def test_sdk_oracle_accepts_the_same_notify(
    alipay_app_key: rsa.RSAPrivateKey, alipay_key: rsa.RSAPrivateKey
) -> None:
    """python-alipay-sdk agrees that our double is a correctly signed notify."""
    sdk = AliPay(
        appid=ALIPAY_APP_ID,
        app_private_key_string=private_pem(alipay_app_key),
        alipay_public_key_string=_public_pem(alipay_key),
    )
    form = dict(parse_qsl(signed_alipay_form(alipay_key, alipay_notify_params()).decode()))
    signature = form.pop("sign")
    assert sdk.verify(form, signature) is True


def test_trade_finished_also_counts_as_paid(
    alipay: AlipayProvider, alipay_key: rsa.RSAPrivateKey
) -> None:
    body = signed_alipay_form(alipay_key, alipay_notify_params(trade_status="TRADE_FINISHED"))
    note = alipay.parse_notification(HEADERS, body, now=FIXED_NOW)
    check_against_order(note, alipay.expected("DJ20261126000001", 12_800))


def test_forged_signature_is_rejected(
    alipay: AlipayProvider, alipay_app_key: rsa.RSAPrivateKey
) -> None:
    """Signed with a key that is not Alipay's (here: our own app key)."""
    body = signed_alipay_form(alipay_app_key, alipay_notify_params())
    with pytest.raises(SignatureInvalid):
        alipay.parse_notification(HEADERS, body, now=FIXED_NOW)


def test_tampered_body_is_rejected(alipay: AlipayProvider, alipay_key: rsa.RSAPrivateKey) -> None:
    body = signed_alipay_form(alipay_key, alipay_notify_params(total_amount="0.01"))
    tampered = body.replace(b"total_amount=0.01", b"total_amount=128.00")
    assert tampered != body
    with pytest.raises(SignatureInvalid):
        alipay.parse_notification(HEADERS, tampered, now=FIXED_NOW)


def test_tampered_amount_is_caught_against_the_order(
    alipay: AlipayProvider, alipay_key: rsa.RSAPrivateKey
) -> None:
    body = signed_alipay_form(alipay_key, alipay_notify_params(total_amount="0.01"))
    note = alipay.parse_notification(HEADERS, body, now=FIXED_NOW)
    with pytest.raises(OrderMismatch) as err:
        check_against_order(note, alipay.expected("DJ20261126000001", 12_800))
    assert err.value.field == "total_amount"
    assert (err.value.expected, err.value.actual) == (12_800, 1)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        (alipay_notify_params("DJ20261126999999"), "out_trade_no"),
        (alipay_notify_params(seller_id="2088000000000000"), "seller_id"),
        (alipay_notify_params(app_id="2021000000000000"), "app_id"),
        (alipay_notify_params(trade_status="WAIT_BUYER_PAY"), "trade_status"),
        (alipay_notify_params(trade_status="TRADE_CLOSED"), "trade_status"),
    ],
)
def test_order_mismatches_name_the_field(
    alipay: AlipayProvider, alipay_key: rsa.RSAPrivateKey, params: dict[str, str], field: str
) -> None:
    note = alipay.parse_notification(HEADERS, signed_alipay_form(alipay_key, params), now=FIXED_NOW)
    mismatch = order_mismatch(note, alipay.expected("DJ20261126000001", 12_800))
    assert mismatch is not None
    assert mismatch.field == field


@pytest.mark.parametrize("sign_type", ["RSA", "SM2", ""])
def test_wrong_sign_type_is_rejected(
    alipay: AlipayProvider, alipay_key: rsa.RSAPrivateKey, sign_type: str
) -> None:
    body = signed_alipay_form(alipay_key, alipay_notify_params(), sign_type=sign_type)
    with pytest.raises(UnsupportedAlgorithm, match="sign_type"):
        alipay.parse_notification(HEADERS, body, now=FIXED_NOW)


def _signed(key: rsa.RSAPrivateKey, params: dict[str, str]) -> bytes:
    return signed_alipay_form(key, params)


@pytest.mark.parametrize(
    ("make_body", "message"),
    [
        (lambda key: "total_amount=128.00&subject=日常".encode(), "urlencoded"),
        (lambda key: b"subject=%E6%97", "urlencoded"),
        (lambda key: b"no-equals-sign", "urlencoded"),
        (lambda key: _signed(key, alipay_notify_params()) + b"&app_id=x", "app_id"),
        (lambda key: urlencode(alipay_notify_params()).encode(), "sign"),
        (
            lambda key: _signed(
                key, {k: v for k, v in alipay_notify_params().items() if k != "out_trade_no"}
            ),
            "out_trade_no",
        ),
        (lambda key: _signed(key, alipay_notify_params(total_amount="12.345")), "total_amount"),
        (lambda key: _signed(key, alipay_notify_params(total_amount="-1.00")), "total_amount"),
        (lambda key: _signed(key, alipay_notify_params(trade_status="PAID")), "trade_status"),
        (lambda key: _signed(key, alipay_notify_params(charset="gbk")), "charset"),
        (lambda key: _signed(key, alipay_notify_params(gmt_payment="today")), "gmt_payment"),
    ],
)
def test_malformed_forms_are_rejected(
    alipay: AlipayProvider, alipay_key: rsa.RSAPrivateKey, make_body: Any, message: str
) -> None:
    with pytest.raises(MalformedNotification, match=message):
        alipay.parse_notification(HEADERS, make_body(alipay_key), now=FIXED_NOW)


def test_refund_notify_is_not_a_second_payment(
    alipay: AlipayProvider, alipay_key: rsa.RSAPrivateKey
) -> None:
    """A partial refund keeps TRADE_SUCCESS: it must be typed as a refund, not a payment."""
    params = alipay_notify_params(
        refund_fee="50.00", gmt_refund="2026-11-26 14:10:00", out_biz_no="RF20261126000001"
    )
    note = alipay.parse_notification(HEADERS, signed_alipay_form(alipay_key, params), now=FIXED_NOW)
    assert note.kind is NotificationKind.REFUND
    assert note.amount_fen == 5_000
    assert note.out_refund_no == "RF20261126000001"
    assert note.provider_txn_id == "2026112622001446880500937441/RF20261126000001"
    assert note.payment_txn_id == "2026112622001446880500937441"
    with pytest.raises(OrderMismatch) as err:
        check_against_order(note, alipay.expected("DJ20261126000001", 12_800))
    assert err.value.field == "kind"
    check_against_order(
        note, alipay.expected("DJ20261126000001", 5_000, kind=NotificationKind.REFUND)
    )


def test_dedupe_keys(alipay: AlipayProvider, alipay_key: rsa.RSAPrivateKey) -> None:
    """Resends share a key; TRADE_SUCCESS and the later TRADE_FINISHED do not."""
    success = signed_alipay_form(alipay_key, alipay_notify_params())
    resent = signed_alipay_form(alipay_key, alipay_notify_params(notify_time="2026-11-26 14:02:31"))
    finished = signed_alipay_form(alipay_key, alipay_notify_params(trade_status="TRADE_FINISHED"))
    keys = [
        alipay.parse_notification(HEADERS, body, now=FIXED_NOW).dedupe_key
        for body in (success, resent, finished)
    ]
    assert keys[0] == keys[1] == "alipay:payment:2026112622001446880500937441:TRADE_SUCCESS"
    assert keys[2] != keys[0]


def test_replies(alipay: AlipayProvider) -> None:
    ok = alipay.success_response()
    assert (ok.status_code, ok.body) == (200, b"success")
    bad = alipay.failure_response("amount mismatch")
    assert bad.body != b"success"
    assert bad.status_code >= 400


# ---------------------------------------------------------------------------
# Order string


async def test_order_string_is_signed_rsa2(
    alipay: AlipayProvider, alipay_app_key: rsa.RSAPrivateKey
) -> None:
    intent = await alipay.create_payment(
        PaymentRequest("DJ20261126000001", 12_800, "日常保洁 2小时")
    )
    assert intent.order_string is not None
    assert intent.pay_url is None
    params = dict(parse_qsl(intent.order_string, keep_blank_values=True))
    assert params["method"] == "alipay.trade.app.pay"
    assert params["app_id"] == ALIPAY_APP_ID
    assert params["sign_type"] == "RSA2"
    assert params["notify_url"] == ALIPAY_NOTIFY_URL
    assert params["timestamp"] == "2026-11-26 14:00:00"  # Beijing time
    biz = json.loads(params["biz_content"])
    assert biz == {
        "out_trade_no": "DJ20261126000001",
        "total_amount": "128.00",
        "subject": "日常保洁 2小时",
        "product_code": "QUICK_MSECURITY_PAY",
    }
    assert verify_b64(alipay_app_key.public_key(), alipay_sign_content(params), params["sign"])
    # The SDK, pointed at our app key, agrees on the signed content.
    sdk = AliPay(
        appid=ALIPAY_APP_ID,
        app_private_key_string=private_pem(alipay_app_key),
        alipay_public_key_string=_public_pem(alipay_app_key),
    )
    signature = params.pop("sign")
    assert sdk.verify(params, signature) is True
    assert (
        sdk.verify({**params, "biz_content": params["biz_content"].replace("128", "1")}, signature)
        is False
    )


async def test_page_pay_returns_a_gateway_url(
    alipay_config: AlipayConfig, alipay_http: httpx.AsyncClient
) -> None:
    provider = AlipayProvider(
        replace(alipay_config, product=AlipayProduct.PAGE, return_url="https://daojia.test/paid"),
        alipay_http,
        clock=lambda: FIXED_NOW,
    )
    intent = await provider.create_payment(PaymentRequest("DJ20261126000001", 1, "x"))
    assert intent.pay_url is not None
    assert intent.pay_url.startswith("https://openapi.alipay.test/gateway.do?")
    params = dict(parse_qsl(intent.pay_url.split("?", 1)[1]))
    assert params["return_url"] == "https://daojia.test/paid"
    assert json.loads(params["biz_content"])["total_amount"] == "0.01"


# ---------------------------------------------------------------------------
# Gateway: refund and query


async def test_refund_request_is_signed(
    alipay: AlipayProvider, alipay_gateway: FakeAlipayGateway
) -> None:
    alipay_gateway.trades["DJ20261126000001"] = alipay_trade(
        "DJ20261126000001", "128.00", "TRADE_SUCCESS"
    )
    result = await alipay.refund(
        RefundRequest("DJ20261126000001", "RF20261126000001", 5_000, 12_800, reason="客户取消")
    )
    assert alipay_gateway.rejected == []
    sent = alipay_gateway.requests[-1]
    assert sent["method"] == "alipay.trade.refund"
    assert sent["biz_content"] == {
        "out_trade_no": "DJ20261126000001",
        "refund_amount": "50.00",
        "out_request_no": "RF20261126000001",
        "refund_reason": "客户取消",
    }
    assert result.status is PaymentStatus.SUCCEEDED
    assert result.refund_fen == 5_000
    assert result.refund_id == "2026112622001446880500937441/RF20261126000001"


async def test_refund_of_unknown_trade(alipay: AlipayProvider) -> None:
    with pytest.raises(TradeNotFound) as err:
        await alipay.refund(RefundRequest("DJ20261126000001", "RF1", 100, 100))
    assert err.value.code == "ACQ.TRADE_NOT_EXIST"


async def test_gateway_refuses_a_wrong_app_key(
    alipay_config: AlipayConfig,
    alipay_http: httpx.AsyncClient,
    alipay_gateway: FakeAlipayGateway,
    alipay_key: rsa.RSAPrivateKey,
) -> None:
    """The fake gateway's check can fail: requests signed with another key are refused."""
    wrong = AlipayProvider(
        replace(alipay_config, app_private_key=alipay_key), alipay_http, clock=lambda: FIXED_NOW
    )
    with pytest.raises(GatewayError) as err:
        await wrong.query("DJ20261126000001")
    assert err.value.code == "isv.invalid-signature"
    assert alipay_gateway.rejected == ["invalid-signature"]


async def test_tampered_gateway_answer_is_refused(
    alipay: AlipayProvider, alipay_gateway: FakeAlipayGateway
) -> None:
    alipay_gateway.trades["DJ20261126000001"] = alipay_trade(
        "DJ20261126000001", "128.00", "TRADE_SUCCESS"
    )
    alipay_gateway.tamper_response = True
    with pytest.raises(GatewayError, match="verification"):
        await alipay.query("DJ20261126000001")


async def test_query(alipay: AlipayProvider, alipay_gateway: FakeAlipayGateway) -> None:
    alipay_gateway.trades["DJ20261126000001"] = alipay_trade(
        "DJ20261126000001", "128.00", "WAIT_BUYER_PAY"
    )
    pending = await alipay.query("DJ20261126000001")
    assert pending.status is PaymentStatus.PENDING
    assert order_mismatch(pending, alipay.expected("DJ20261126000001", 12_800)) is not None
    alipay_gateway.trades["DJ20261126000001"]["trade_status"] = "TRADE_SUCCESS"
    paid = await alipay.query("DJ20261126000001")
    assert paid.status is PaymentStatus.SUCCEEDED
    assert paid.notification_id is None
    check_against_order(paid, alipay.expected("DJ20261126000001", 12_800))
    with pytest.raises(OrderMismatch, match="total_amount"):
        check_against_order(paid, alipay.expected("DJ20261126000001", 12_801))


async def test_query_unknown_trade(alipay: AlipayProvider) -> None:
    with pytest.raises(TradeNotFound):
        await alipay.query("DJ20261126000001")


async def test_answer_without_signature_is_refused(alipay_config: AlipayConfig) -> None:
    node = {
        "code": "10000",
        "msg": "Success",
        **alipay_trade("DJ20261126000001", "1.00", "TRADE_SUCCESS"),
    }

    def unsigned(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"alipay_trade_query_response": node})

    async with httpx.AsyncClient(transport=httpx.MockTransport(unsigned)) as client:
        provider = AlipayProvider(alipay_config, client, clock=lambda: FIXED_NOW)
        with pytest.raises(GatewayError, match="verification"):
            await provider.query("DJ20261126000001")


async def test_signed_node_is_located_even_when_its_key_appears_in_a_string(
    alipay_config: AlipayConfig, alipay_key: rsa.RSAPrivateKey
) -> None:
    node = {
        "code": "10000",
        "msg": "Success",
        **alipay_trade("DJ20261126000001", "1.00", "TRADE_SUCCESS"),
    }
    node_text = json.dumps(node, separators=(",", ":"))
    text = (
        '{"note":"\\"alipay_trade_query_response\\": {}","alipay_trade_query_response":'
        + node_text
        + ',"sign":"'
        + sign_b64(alipay_key, node_text.encode())
        + '"}'
    )

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=text.encode())

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        provider = AlipayProvider(alipay_config, client, clock=lambda: FIXED_NOW)
        assert (await provider.query("DJ20261126000001")).amount_fen == 100


# ---------------------------------------------------------------------------
# Money and config


@given(st.integers(min_value=0, max_value=10**12))
def test_yuan_round_trip(amount_fen: int) -> None:
    assert yuan_to_fen(fen_to_yuan(amount_fen), "x") == amount_fen


@pytest.mark.parametrize("text", ["1.234", "01.00", "1.", ".5", "1e3", " 1.00", "-0.01", ""])
def test_bad_yuan_strings(text: str) -> None:
    with pytest.raises(MalformedNotification, match="total_amount"):
        yuan_to_fen(text, "total_amount")


def test_config_rejects_bad_keys_and_urls(alipay_key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(InvalidPaymentInput, match="public key"):
        AlipayConfig.from_strings(
            app_id=ALIPAY_APP_ID,
            seller_id=ALIPAY_SELLER_ID,
            app_private_key=private_pem(alipay_key),
            alipay_public_key="not a key!",
            notify_url=ALIPAY_NOTIFY_URL,
        )
    with pytest.raises(InvalidPaymentInput, match="notify_url"):
        AlipayConfig.from_strings(
            app_id=ALIPAY_APP_ID,
            seller_id=ALIPAY_SELLER_ID,
            app_private_key=private_pem(alipay_key),
            alipay_public_key=_public_pem(alipay_key),
            notify_url="http://daojia.test/notify",
        )


# ---------------------------------------------------------------------------
# Robustness

_FUZZ = settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])


@_FUZZ
@given(body=st.binary(max_size=300))
def test_arbitrary_bodies_raise_only_payment_errors(alipay: AlipayProvider, body: bytes) -> None:
    with pytest.raises(PaymentError):
        alipay.parse_notification(HEADERS, body, now=FIXED_NOW)


@_FUZZ
@given(
    overrides=st.dictionaries(
        st.sampled_from(
            [
                "out_trade_no",
                "trade_no",
                "trade_status",
                "total_amount",
                "refund_fee",
                "gmt_refund",
                "gmt_payment",
                "notify_id",
                "seller_id",
                "charset",
            ]
        ),
        st.text(max_size=12) | st.sampled_from(["TRADE_SUCCESS", "1.00", "2026-11-26 14:10:00"]),
    )
)
def test_signed_odd_forms_raise_only_payment_errors(
    alipay: AlipayProvider, alipay_key: rsa.RSAPrivateKey, overrides: dict[str, str]
) -> None:
    body = signed_alipay_form(alipay_key, {**alipay_notify_params(), **overrides})
    try:
        note = alipay.parse_notification(HEADERS, body, now=FIXED_NOW)
    except PaymentError:
        return
    assert note.amount_fen is not None
    assert note.amount_fen >= 0


@pytest.mark.parametrize(
    ("encoding", "fmt"),
    [
        (serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8),
        (serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL),
        (serialization.Encoding.DER, serialization.PrivateFormat.PKCS8),
        (serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL),
    ],
)
def test_private_keys_load_in_every_console_format(
    alipay_app_key: rsa.RSAPrivateKey,
    encoding: serialization.Encoding,
    fmt: serialization.PrivateFormat,
) -> None:
    """Alipay's key tool hands out PKCS#1 or PKCS#8, as PEM or as bare base64 DER."""
    import base64

    from api.payments.providers.keys import load_private_key

    raw = alipay_app_key.private_bytes(encoding, fmt, serialization.NoEncryption())
    text = (
        raw.decode() if encoding is serialization.Encoding.PEM else base64.b64encode(raw).decode()
    )
    loaded = load_private_key(text)
    assert loaded.private_numbers() == alipay_app_key.private_numbers()

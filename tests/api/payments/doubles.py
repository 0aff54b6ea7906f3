"""Test doubles for the payment providers: throwaway keys, real notifications, fake gateways.

Everything here is built from `cryptography` primitives independently of the code under
test (never through api.payments), so a format bug cannot hide on both sides. No key is
committed: every key pair and certificate is generated when the tests run.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID

FIXED_NOW = datetime(2026, 11, 26, 6, 0, 0, tzinfo=UTC)
MCHID = "1900000109"
APPID = "wxd678efh567hg6787"
MERCHANT_SERIAL = "3775B6A45ACD588826D15E583A95F5DD********".replace("*", "0")
APIV3_KEY = b"0123456789abcdef0123456789ABCDEF"
NOTIFY_URL = "https://daojia.test/v1/payments/wechatpay/notify"
PUB_KEY_ID = "PUB_KEY_ID_0119000001092025011400112233000042"


def new_rsa_key() -> rsa.RSAPrivateKey:
    """A fresh 2048-bit RSA key (what both providers require)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def self_signed_cert(
    key: rsa.RSAPrivateKey,
    serial: int,
    *,
    not_before: datetime = FIXED_NOW - timedelta(days=30),
    not_after: datetime = FIXED_NOW + timedelta(days=365),
) -> x509.Certificate:
    """A self-signed platform certificate with the given serial and validity window."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Tenpay.com Root CA (test)")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )


def cert_pem(cert: x509.Certificate) -> str:
    """PEM text of a certificate."""
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def private_pem(key: rsa.RSAPrivateKey) -> str:
    """PKCS#8 PEM of a private key."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def public_der_b64(key: rsa.RSAPublicKey) -> str:
    """Bare base64 SubjectPublicKeyInfo, the way Alipay's console hands keys out."""
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


def sign_b64(key: rsa.RSAPrivateKey, message: bytes) -> str:
    """base64 RSA PKCS#1 v1.5 SHA-256 signature."""
    return base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()


def verify_b64(key: rsa.RSAPublicKey, message: bytes, signature: str) -> bool:
    """True when `signature` is a valid RSA-SHA256 signature of `message`."""
    try:
        key.verify(base64.b64decode(signature), message, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


# ---------------------------------------------------------------------------
# WeChat Pay v3


def transaction_resource(
    out_trade_no: str = "DJ20261126000001",
    total_fen: int = 12_800,
    *,
    trade_state: str = "SUCCESS",
    mchid: str = MCHID,
    appid: str = APPID,
    transaction_id: str = "4200000123202611261234567890",
    openid: str = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
) -> dict[str, Any]:
    """A decrypted TRANSACTION.SUCCESS resource as WeChat documents it."""
    return {
        "appid": appid,
        "mchid": mchid,
        "out_trade_no": out_trade_no,
        "transaction_id": transaction_id,
        "trade_type": "JSAPI",
        "trade_state": trade_state,
        "trade_state_desc": "支付成功",
        "bank_type": "CMC",
        "attach": "",
        "success_time": "2026-11-26T13:58:30+08:00",
        "payer": {"openid": openid},
        "amount": {
            "total": total_fen,
            "payer_total": total_fen,
            "currency": "CNY",
            "payer_currency": "CNY",
        },
    }


def refund_resource(
    out_trade_no: str = "DJ20261126000001",
    refund_fen: int = 5_000,
    *,
    refund_status: str = "SUCCESS",
    refund_id: str = "50000000382019052709732678859",
) -> dict[str, Any]:
    """A decrypted REFUND.* resource (no appid in refund notifications)."""
    return {
        "mchid": MCHID,
        "out_trade_no": out_trade_no,
        "transaction_id": "4200000123202611261234567890",
        "out_refund_no": "RF20261126000001",
        "refund_id": refund_id,
        "refund_status": refund_status,
        "success_time": "2026-11-26T14:10:00+08:00",
        "user_received_account": "招商银行信用卡0403",
        "amount": {
            "total": 12_800,
            "refund": refund_fen,
            "payer_total": 12_800,
            "payer_refund": refund_fen,
        },
    }


@dataclass(frozen=True)
class SignedRequest:
    """Headers and raw body of a notification, ready for parse_notification."""

    headers: dict[str, str]
    body: bytes


@dataclass
class WeChatPlatform:
    """Plays WeChat Pay's side: encrypts resources and signs notifications/responses."""

    key: rsa.RSAPrivateKey
    serial: str
    apiv3_key: bytes = APIV3_KEY

    def envelope(
        self,
        resource: Mapping[str, Any],
        *,
        event_type: str = "TRANSACTION.SUCCESS",
        algorithm: str = "AEAD_AES_256_GCM",
        associated_data: str = "transaction",
        apiv3_key: bytes | None = None,
    ) -> bytes:
        """The notification body: the resource encrypted with AES-256-GCM, as raw JSON bytes."""
        nonce = secrets.token_hex(6)  # 12 ASCII chars = the 12-byte GCM nonce WeChat uses
        plaintext = json.dumps(resource, ensure_ascii=False).encode()
        ciphertext = AESGCM(apiv3_key or self.apiv3_key).encrypt(
            nonce.encode(), plaintext, associated_data.encode()
        )
        # WeChat's own formatting (spaces, key order) must survive: we sign these exact bytes.
        envelope = {
            "id": "EV-2018022511223320873",
            "create_time": "2026-11-26T13:58:31+08:00",
            "resource_type": "encrypt-resource",
            "event_type": event_type,
            "summary": "支付成功",
            "resource": {
                "original_type": "transaction" if event_type.startswith("TRANS") else "refund",
                "algorithm": algorithm,
                "ciphertext": base64.b64encode(ciphertext).decode(),
                "associated_data": associated_data,
                "nonce": nonce,
            },
        }
        return json.dumps(envelope, ensure_ascii=False, indent=1).encode()

    def sign(
        self,
        body: bytes,
        *,
        now: datetime = FIXED_NOW,
        serial: str | None = None,
        key: rsa.RSAPrivateKey | None = None,
        signature_type: str | None = "WECHATPAY2-SHA256-RSA2048",
    ) -> SignedRequest:
        """Sign `body` the v3 way: RSA-SHA256 over "ts\\nnonce\\nbody\\n"."""
        timestamp = str(int(now.timestamp()))
        nonce = secrets.token_hex(16)
        message = f"{timestamp}\n{nonce}\n".encode() + body + b"\n"
        headers = {
            "Wechatpay-Signature": sign_b64(key or self.key, message),
            "Wechatpay-Timestamp": timestamp,
            "Wechatpay-Nonce": nonce,
            "Wechatpay-Serial": serial or self.serial,
        }
        if signature_type is not None:
            headers["Wechatpay-Signature-Type"] = signature_type
        return SignedRequest(headers=headers, body=body)

    def notification(
        self,
        resource: Mapping[str, Any],
        *,
        event_type: str = "TRANSACTION.SUCCESS",
        now: datetime = FIXED_NOW,
    ) -> SignedRequest:
        """A complete, genuine notification."""
        return self.sign(self.envelope(resource, event_type=event_type), now=now)


_AUTH = re.compile(r"^WECHATPAY2-SHA256-RSA2048 (.+)$")
_AUTH_FIELD = re.compile(r'(\w+)="([^"]*)"')


@dataclass
class FakeWeChatGateway:
    """A WeChat Pay v3 API stand-in that checks request signatures like the real one.

    Every request must carry a valid `Authorization` signed by the merchant key over the
    exact method, path+query, body and a fresh timestamp; answers are signed by the
    platform key. `requests` records (method, raw path, parsed JSON body) of each call.
    """

    merchant_public_key: rsa.RSAPublicKey
    platform: WeChatPlatform
    now: Callable[[], datetime] = lambda: FIXED_NOW
    trades: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    sign_responses_with: rsa.RSAPrivateKey | None = None

    def transport(self) -> httpx.MockTransport:
        """The httpx transport to give the provider's AsyncClient."""
        return httpx.MockTransport(self.handle)

    def _reply(self, status: int, payload: Mapping[str, Any]) -> httpx.Response:
        body = json.dumps(payload, ensure_ascii=False).encode()
        signed = self.platform.sign(body, now=self.now(), key=self.sign_responses_with)
        headers = {**signed.headers, "Content-Type": "application/json"}
        return httpx.Response(status, content=body, headers=headers)

    def _reject(self, reason: str) -> httpx.Response:
        self.rejected.append(reason)
        return httpx.Response(
            401,
            json={"code": "SIGN_ERROR", "message": reason},
        )

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Check the signature, then route."""
        raw_path = request.url.raw_path.decode()
        body = request.content
        match = _AUTH.match(request.headers.get("Authorization", ""))
        if match is None:
            return self._reject("missing or wrong Authorization scheme")
        fields = dict(_AUTH_FIELD.findall(match.group(1)))
        if fields.get("mchid") != MCHID or fields.get("serial_no") != MERCHANT_SERIAL:
            return self._reject(f"wrong mchid/serial_no {fields}")
        if abs(int(fields["timestamp"]) - self.now().timestamp()) > 300:
            return self._reject("timestamp outside 5 minutes")
        message = (
            (
                f"{request.method}\n{raw_path}\n{fields['timestamp']}\n{fields['nonce_str']}\n"
            ).encode()
            + body
            + b"\n"
        )
        if not verify_b64(self.merchant_public_key, message, fields.get("signature", "")):
            return self._reject("signature does not verify")
        payload = json.loads(body) if body else None
        self.requests.append((request.method, raw_path, payload))
        return self._route(request.method, request.url.path, request.url.params, payload)

    def _route(
        self, method: str, path: str, params: httpx.QueryParams, payload: Any
    ) -> httpx.Response:
        if method == "POST" and path == "/v3/pay/transactions/jsapi":
            for name in ("appid", "mchid", "description", "out_trade_no", "notify_url"):
                if not payload.get(name):
                    return self._reply(400, {"code": "PARAM_ERROR", "message": f"no {name}"})
            if payload["mchid"] != MCHID or payload["appid"] != APPID:
                return self._reply(400, {"code": "APPID_MCHID_NOT_MATCH", "message": "no"})
            prepay_id = "wx" + secrets.token_hex(14)
            self.trades[payload["out_trade_no"]] = {
                **transaction_resource(
                    payload["out_trade_no"], payload["amount"]["total"], trade_state="NOTPAY"
                ),
                "prepay_id": prepay_id,
            }
            del self.trades[payload["out_trade_no"]]["transaction_id"]
            return self._reply(200, {"prepay_id": prepay_id})
        prefix = "/v3/pay/transactions/out-trade-no/"
        if method == "GET" and path.startswith(prefix):
            if params.get("mchid") != MCHID:
                return self._reply(400, {"code": "PARAM_ERROR", "message": "mchid"})
            trade = self.trades.get(path[len(prefix) :])
            if trade is None:
                return self._reply(404, {"code": "ORDER_NOT_EXIST", "message": "订单不存在"})
            return self._reply(200, {k: v for k, v in trade.items() if k != "prepay_id"})
        if method == "POST" and path == "/v3/refund/domestic/refunds":
            amount = payload["amount"]
            return self._reply(
                200,
                {
                    "refund_id": "50000000382019052709732678859",
                    "out_refund_no": payload["out_refund_no"],
                    "transaction_id": "4200000123202611261234567890",
                    "out_trade_no": payload["out_trade_no"],
                    "channel": "ORIGINAL",
                    "status": "PROCESSING",
                    "amount": {
                        "total": amount["total"],
                        "refund": amount["refund"],
                        "currency": amount["currency"],
                    },
                },
            )
        return self._reply(404, {"code": "NOT_FOUND", "message": path})


# ---------------------------------------------------------------------------
# Alipay

ALIPAY_APP_ID = "2021000123456789"
ALIPAY_SELLER_ID = "2088102146225135"
ALIPAY_NOTIFY_URL = "https://daojia.test/v1/payments/alipay/notify"


def alipay_sign_content(params: Mapping[str, str]) -> bytes:
    """Drop sign and sign_type, sort by key, join k=v with & (values not URL-encoded)."""
    items = sorted((k, v) for k, v in params.items() if k not in ("sign", "sign_type"))
    return "&".join(f"{k}={v}" for k, v in items).encode()


def alipay_notify_params(
    out_trade_no: str = "DJ20261126000001",
    total_amount: str = "128.00",
    *,
    trade_status: str = "TRADE_SUCCESS",
    app_id: str = ALIPAY_APP_ID,
    seller_id: str = ALIPAY_SELLER_ID,
    **extra: str,
) -> dict[str, str]:
    """The form fields of an asynchronous notify (unsigned)."""
    params = {
        "gmt_create": "2026-11-26 13:58:00",
        "charset": "utf-8",
        "gmt_payment": "2026-11-26 13:58:30",
        "notify_time": "2026-11-26 13:58:31",
        "subject": "日常保洁 2小时",
        "buyer_id": "2088102177846880",
        "invoice_amount": total_amount,
        "version": "1.0",
        "notify_id": "2026112600222135830093541419213530",
        "fund_bill_list": '[{"amount":"' + total_amount + '","fundChannel":"ALIPAYACCOUNT"}]',
        "notify_type": "trade_status_sync",
        "out_trade_no": out_trade_no,
        "total_amount": total_amount,
        "trade_status": trade_status,
        "trade_no": "2026112622001446880500937441",
        "auth_app_id": app_id,
        "receipt_amount": total_amount,
        "point_amount": "0.00",
        "app_id": app_id,
        "buyer_pay_amount": total_amount,
        "seller_id": seller_id,
    }
    params.update(extra)
    return params


def signed_alipay_form(
    key: rsa.RSAPrivateKey, params: Mapping[str, str], *, sign_type: str = "RSA2"
) -> bytes:
    """The urlencoded POST body Alipay sends, signed RSA2 over the sorted content."""
    signed = {**params, "sign_type": sign_type, "sign": sign_b64(key, alipay_sign_content(params))}
    return urlencode(signed).encode()


@dataclass
class FakeAlipayGateway:
    """An openapi gateway stand-in: verifies our RSA2 request signature, signs its answers."""

    app_public_key: rsa.RSAPublicKey
    alipay_key: rsa.RSAPrivateKey
    requests: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    trades: dict[str, dict[str, str]] = field(default_factory=dict)
    tamper_response: bool = False

    def transport(self) -> httpx.MockTransport:
        """The httpx transport to give the provider's AsyncClient."""
        return httpx.MockTransport(self.handle)

    def _answer(self, method: str, node: Mapping[str, Any]) -> httpx.Response:
        node_json = json.dumps(node, ensure_ascii=False, separators=(",", ":"))
        sign = sign_b64(self.alipay_key, node_json.encode())
        if self.tamper_response:
            node_json = node_json.replace('"code":"10000"', '"code":"10000","x":"1"')
        key = method.replace(".", "_") + "_response"
        text = '{"' + key + '":' + node_json + ',"sign":"' + sign + '"}'
        return httpx.Response(
            200, content=text.encode(), headers={"Content-Type": "text/html;charset=utf-8"}
        )

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Verify the signed form (query string or POST body), then route by `method`."""
        form = dict(parse_qsl(request.url.query.decode(), keep_blank_values=True))
        if request.content:
            form.update(parse_qsl(request.content.decode(), keep_blank_values=True))
        sign = form.get("sign", "")
        if form.get("sign_type") != "RSA2" or not verify_b64(
            self.app_public_key, alipay_sign_content(form), sign
        ):
            self.rejected.append("invalid-signature")
            return self._answer(
                form.get("method", "error"),
                {
                    "code": "40002",
                    "msg": "Invalid Arguments",
                    "sub_code": "isv.invalid-signature",
                    "sub_msg": "验签出错",
                },
            )
        if form.get("app_id") != ALIPAY_APP_ID:
            self.rejected.append("invalid-app-id")
            return self._answer(
                form["method"],
                {"code": "40002", "msg": "Invalid Arguments", "sub_code": "isv.invalid-app-id"},
            )
        biz = json.loads(form["biz_content"])
        self.requests.append({**form, "biz_content": biz})
        if form["method"] == "alipay.trade.refund":
            trade = self.trades.get(biz["out_trade_no"])
            if trade is None:
                return self._answer(
                    form["method"],
                    {
                        "code": "40004",
                        "msg": "Business Failed",
                        "sub_code": "ACQ.TRADE_NOT_EXIST",
                        "sub_msg": "交易不存在",
                    },
                )
            return self._answer(
                form["method"],
                {
                    "code": "10000",
                    "msg": "Success",
                    "trade_no": trade["trade_no"],
                    "out_trade_no": biz["out_trade_no"],
                    "buyer_logon_id": "159****5620",
                    "fund_change": "Y",
                    "refund_fee": biz["refund_amount"],
                    "send_back_fee": biz["refund_amount"],
                },
            )
        if form["method"] == "alipay.trade.query":
            trade = self.trades.get(biz["out_trade_no"])
            if trade is None:
                return self._answer(
                    form["method"],
                    {
                        "code": "40004",
                        "msg": "Business Failed",
                        "sub_code": "ACQ.TRADE_NOT_EXIST",
                        "sub_msg": "交易不存在",
                    },
                )
            return self._answer(form["method"], {"code": "10000", "msg": "Success", **trade})
        return self._answer(form["method"], {"code": "40004", "msg": "unknown method"})


def alipay_trade(out_trade_no: str, total_amount: str, status: str) -> dict[str, str]:
    """A trade as alipay.trade.query reports it."""
    return {
        "trade_no": "2026112622001446880500937441",
        "out_trade_no": out_trade_no,
        "buyer_logon_id": "159****5620",
        "trade_status": status,
        "total_amount": total_amount,
        "buyer_user_id": "2088102177846880",
        "send_pay_date": "2026-11-26 13:58:30",
    }

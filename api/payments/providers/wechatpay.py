"""WeChat Pay API v3: JSAPI (mini-program) payments, notifications, refunds and queries.

Verification is implemented here with `cryptography` rather than through
`wechatpayv3.WeChatPay.callback`, because the library (see INTEGRATIONS.md) does not
check the timestamp window, raises plain Exception/ValueError, fetches certificates
over the network inside the call and verifies a decoded str instead of raw bytes.
The formats are the library's and WeChat's: tests cross-check against wechatpayv3.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote, urlencode

import httpx
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from api.payments.providers import base
from api.payments.providers.keys import (
    PlatformKeyring,
    load_private_key,
    rsa_sha256_sign,
    rsa_sha256_verify,
)

SIGNATURE_TYPE = "WECHATPAY2-SHA256-RSA2048"
RESOURCE_ALGORITHM = "AEAD_AES_256_GCM"
DEFAULT_BASE_URL = "https://api.mch.weixin.qq.com"
CHINA_TZ = timezone(timedelta(hours=8))
_UNIX_SECONDS = re.compile(r"^[0-9]{1,11}$")

H_SIGNATURE = "wechatpay-signature"
H_TIMESTAMP = "wechatpay-timestamp"
H_NONCE = "wechatpay-nonce"
H_SERIAL = "wechatpay-serial"
H_SIGNATURE_TYPE = "wechatpay-signature-type"

TRADE_STATES: Mapping[str, base.PaymentStatus] = {
    "SUCCESS": base.PaymentStatus.SUCCEEDED,
    "REFUND": base.PaymentStatus.REFUNDED,
    "NOTPAY": base.PaymentStatus.PENDING,
    "USERPAYING": base.PaymentStatus.PENDING,
    "CLOSED": base.PaymentStatus.CLOSED,
    "REVOKED": base.PaymentStatus.CLOSED,
    "PAYERROR": base.PaymentStatus.FAILED,
}
REFUND_STATES: Mapping[str, base.PaymentStatus] = {
    "SUCCESS": base.PaymentStatus.SUCCEEDED,
    "PROCESSING": base.PaymentStatus.PROCESSING,
    "CLOSED": base.PaymentStatus.CLOSED,
    "ABNORMAL": base.PaymentStatus.ABNORMAL,
}


def utc_now() -> datetime:
    """The wall clock as an aware UTC datetime (the default provider clock)."""
    return datetime.now(UTC)


def new_nonce() -> str:
    """A 32-character random nonce (WeChat allows up to 32)."""
    return secrets.token_hex(16)


def _canonical_json(value: Mapping[str, Any]) -> bytes:
    # The exact bytes we sign are the bytes we send: compact, UTF-8, no ASCII escaping.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _to_rfc3339(moment: datetime) -> str:
    return moment.astimezone(CHINA_TZ).isoformat(timespec="seconds")


# ---------------------------------------------------------------------------
# Message-level crypto: verification (ours) and signing (the sandbox's sender side).


def signed_message(timestamp: str, nonce: str, raw_body: bytes) -> bytes:
    """The bytes a v3 notification/response signature covers: ts\\nnonce\\nbody\\n."""
    return timestamp.encode() + b"\n" + nonce.encode() + b"\n" + raw_body + b"\n"


def decrypt_resource(apiv3_key: bytes, resource: Mapping[str, Any]) -> bytes:
    """AES-256-GCM-decrypt a notification `resource`; DecryptionFailed if it does not verify."""
    algorithm = resource.get("algorithm")
    if algorithm != RESOURCE_ALGORITHM:
        raise base.UnsupportedAlgorithm(
            f"resource.algorithm must be {RESOURCE_ALGORITHM}, got {algorithm!r}"
        )
    nonce = resource.get("nonce")
    ciphertext = resource.get("ciphertext")
    associated_data = resource.get("associated_data") or ""
    if not isinstance(nonce, str) or not nonce:
        raise base.MalformedNotification("resource.nonce is missing")
    if not isinstance(ciphertext, str) or not ciphertext:
        raise base.MalformedNotification("resource.ciphertext is missing")
    if not isinstance(associated_data, str):
        raise base.MalformedNotification("resource.associated_data must be a string")
    try:
        data = base64.b64decode(ciphertext, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise base.MalformedNotification("resource.ciphertext is not base64") from exc
    try:
        return AESGCM(apiv3_key).decrypt(nonce.encode(), data, associated_data.encode())
    except (InvalidTag, ValueError) as exc:
        raise base.DecryptionFailed(
            "resource does not decrypt with the APIv3 key (wrong key or corrupted data)"
        ) from exc


def encrypt_resource(
    apiv3_key: bytes, plaintext: bytes, *, nonce: str, associated_data: str, original_type: str
) -> dict[str, str]:
    """Build an encrypted `resource` object exactly as WeChat Pay sends it."""
    ciphertext = AESGCM(apiv3_key).encrypt(nonce.encode(), plaintext, associated_data.encode())
    return {
        "algorithm": RESOURCE_ALGORITHM,
        "ciphertext": base64.b64encode(ciphertext).decode("ascii"),
        "nonce": nonce,
        "associated_data": associated_data,
        "original_type": original_type,
    }


def signature_headers(
    private_key: rsa.RSAPrivateKey, serial: str, raw_body: bytes, *, timestamp: int, nonce: str
) -> dict[str, str]:
    """The Wechatpay-* headers a platform key holder attaches to a body it sends."""
    return {
        "Wechatpay-Signature": rsa_sha256_sign(
            private_key, signed_message(str(timestamp), nonce, raw_body)
        ),
        "Wechatpay-Timestamp": str(timestamp),
        "Wechatpay-Nonce": nonce,
        "Wechatpay-Serial": serial,
        "Wechatpay-Signature-Type": SIGNATURE_TYPE,
    }


class V3Verifier:
    """Verifies v3 signatures against configured keys and decrypts notification resources.

    Order of checks: headers present → signature type → key by serial → RSA signature
    over the raw bytes → timestamp window. The window is checked after the signature so
    ReplayWindowExceeded always means "genuine but stale", never "forged".
    """

    def __init__(
        self,
        keyring: PlatformKeyring,
        apiv3_key: bytes,
        *,
        replay_window: timedelta = base.REPLAY_WINDOW,
    ) -> None:
        if len(apiv3_key) != 32:
            raise base.InvalidPaymentInput(f"APIv3 key must be 32 bytes, got {len(apiv3_key)}")
        if replay_window <= timedelta(0):
            raise base.InvalidPaymentInput(f"replay_window must be positive, got {replay_window}")
        self._keyring = keyring
        self._apiv3_key = apiv3_key
        self._window = replay_window

    def verify_signature(
        self, headers: Mapping[str, str], raw_body: bytes, *, now: datetime
    ) -> None:
        """Raise a PaymentError unless the headers sign raw_body with a configured key."""
        base.require_aware(now)
        if not isinstance(raw_body, bytes | bytearray):
            raise base.MalformedNotification(
                f"body must be the raw request bytes, got {type(raw_body).__name__}"
            )
        folded = base.lower_headers(headers)
        values: dict[str, str] = {}
        for name in (H_SIGNATURE, H_TIMESTAMP, H_NONCE, H_SERIAL):
            value = folded.get(name, "").strip()
            if not value:
                raise base.MalformedNotification(f"header {name.title()} is missing")
            values[name] = value
        # An absent type header is tolerated (older messages omit it; the RSA check
        # below still decides); a present but different one is refused outright.
        signature_type = folded.get(H_SIGNATURE_TYPE, SIGNATURE_TYPE).strip()
        if signature_type != SIGNATURE_TYPE:
            raise base.UnsupportedAlgorithm(
                f"Wechatpay-Signature-Type must be {SIGNATURE_TYPE}, got {signature_type!r}"
            )
        timestamp_text = values[H_TIMESTAMP]
        # ASCII digits only (str.isdigit() also admits "²", which int() rejects), and
        # few enough of them that datetime cannot overflow.
        if not _UNIX_SECONDS.match(timestamp_text):
            raise base.MalformedNotification(
                f"Wechatpay-Timestamp must be unix seconds, got {timestamp_text!r}"
            )
        public_key = self._keyring.lookup(values[H_SERIAL], now=now)
        message = signed_message(timestamp_text, values[H_NONCE], bytes(raw_body))
        if not rsa_sha256_verify(public_key, message, values[H_SIGNATURE]):
            raise base.SignatureInvalid(
                f"Wechatpay-Signature does not verify with key {values[H_SERIAL]}"
            )
        sent = datetime.fromtimestamp(int(timestamp_text), UTC)
        if abs(now - sent) > self._window:
            raise base.ReplayWindowExceeded(
                f"Wechatpay-Timestamp {timestamp_text} is {abs(now - sent)} from now "
                f"(allowed {self._window})"
            )

    def open_notification(
        self, headers: Mapping[str, str], raw_body: bytes, *, now: datetime
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Verify a notification and return (envelope, decrypted resource)."""
        self.verify_signature(headers, raw_body, now=now)
        envelope = _json_object(bytes(raw_body), "notification body")
        if envelope.get("resource_type") != "encrypt-resource":
            raise base.MalformedNotification(
                f"resource_type must be encrypt-resource, got {envelope.get('resource_type')!r}"
            )
        resource = envelope.get("resource")
        if not isinstance(resource, dict):
            raise base.MalformedNotification("resource must be an object")
        plaintext = decrypt_resource(self._apiv3_key, resource)
        return envelope, _json_object(plaintext, "decrypted resource")


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise base.MalformedNotification(f"{what} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise base.MalformedNotification(f"{what} must be a JSON object")
    return value


def _str_field(data: Mapping[str, Any], name: str, *, required: bool = True) -> str | None:
    value = data.get(name)
    if value is None or value == "":
        if required:
            raise base.MalformedNotification(f"field {name} is missing")
        return None
    if not isinstance(value, str):
        raise base.MalformedNotification(f"field {name} must be a string, got {value!r}")
    return value


def _fen_field(data: Mapping[str, Any], path: str, *, required: bool = True) -> int | None:
    outer, inner = path.split(".")
    container = data.get(outer)
    value = container.get(inner) if isinstance(container, dict) else None
    if value is None:
        if required:
            raise base.MalformedNotification(f"field {path} is missing")
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise base.MalformedNotification(f"field {path} must be a non-negative integer (fen)")
    return value


def _time_field(data: Mapping[str, Any], name: str) -> datetime | None:
    text = _str_field(data, name, required=False)
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise base.MalformedNotification(f"field {name} is not RFC 3339: {text!r}") from exc
    if moment.tzinfo is None:
        raise base.MalformedNotification(f"field {name} has no UTC offset: {text!r}")
    return moment.astimezone(UTC)


def payment_from_transaction(
    provider: base.ProviderName,
    transaction: Mapping[str, Any],
    *,
    envelope: Mapping[str, Any] | None = None,
) -> base.PaymentNotification:
    """Type a decrypted TRANSACTION resource or a query answer (same fields)."""
    from_notification = envelope is not None
    trade_state = _str_field(transaction, "trade_state")
    assert trade_state is not None
    status = TRADE_STATES.get(trade_state)
    if status is None:
        raise base.MalformedNotification(f"field trade_state has unknown value {trade_state!r}")
    payer = transaction.get("payer")
    payer_id = payer.get("openid") if isinstance(payer, dict) else None
    out_trade_no = _str_field(transaction, "out_trade_no")
    assert out_trade_no is not None
    return base.PaymentNotification(
        provider=provider,
        kind=base.NotificationKind.PAYMENT,
        out_trade_no=out_trade_no,
        # Unpaid trades (query answers) have no transaction id yet.
        provider_txn_id=_str_field(
            transaction,
            "transaction_id",
            required=from_notification or trade_state in ("SUCCESS", "REFUND"),
        ),
        amount_fen=_fen_field(transaction, "amount.total", required=from_notification),
        trade_state=trade_state,
        status=status,
        merchant_id=_str_field(transaction, "mchid"),
        app_id=_str_field(transaction, "appid"),
        payer_id=payer_id if isinstance(payer_id, str) and payer_id else None,
        success_time=_time_field(transaction, "success_time"),
        notification_id=_str_field(envelope, "id") if envelope is not None else None,
        event_type=_str_field(envelope, "event_type") if envelope is not None else None,
        raw={"envelope": dict(envelope), "resource": dict(transaction)}
        if envelope is not None
        else dict(transaction),
    )


def refund_from_resource(
    provider: base.ProviderName, refund: Mapping[str, Any], *, envelope: Mapping[str, Any]
) -> base.PaymentNotification:
    """Type a decrypted REFUND.* resource (it carries mchid but no appid)."""
    refund_status = _str_field(refund, "refund_status")
    assert refund_status is not None
    status = REFUND_STATES.get(refund_status)
    if status is None:
        raise base.MalformedNotification(f"field refund_status has unknown value {refund_status!r}")
    event_type = _str_field(envelope, "event_type")
    # The event type is outside the encrypted resource; both are signed, but they must
    # agree or one of them is not what WeChat meant.
    if event_type != f"REFUND.{refund_status}":
        raise base.MalformedNotification(
            f"event_type {event_type!r} disagrees with refund_status {refund_status!r}"
        )
    out_trade_no = _str_field(refund, "out_trade_no")
    assert out_trade_no is not None
    return base.PaymentNotification(
        provider=provider,
        kind=base.NotificationKind.REFUND,
        out_trade_no=out_trade_no,
        provider_txn_id=_str_field(refund, "refund_id"),
        amount_fen=_fen_field(refund, "amount.refund"),
        trade_state=refund_status,
        status=status,
        merchant_id=_str_field(refund, "mchid"),
        app_id=None,
        out_refund_no=_str_field(refund, "out_refund_no"),
        payment_txn_id=_str_field(refund, "transaction_id", required=False),
        success_time=_time_field(refund, "success_time"),
        notification_id=_str_field(envelope, "id"),
        event_type=event_type,
        raw={"envelope": dict(envelope), "resource": dict(refund)},
    )


def notification_from_v3(
    provider: base.ProviderName, envelope: Mapping[str, Any], resource: Mapping[str, Any]
) -> base.PaymentNotification:
    """Type a verified v3 notification by its event_type (TRANSACTION.* or REFUND.*)."""
    event_type = _str_field(envelope, "event_type")
    assert event_type is not None
    if event_type.startswith("TRANSACTION."):
        return payment_from_transaction(provider, resource, envelope=envelope)
    if event_type.startswith("REFUND."):
        return refund_from_resource(provider, resource, envelope=envelope)
    raise base.MalformedNotification(
        f"event_type {event_type!r} is neither TRANSACTION.* nor REFUND.*"
    )


def v3_success_response() -> base.HttpReply:
    """204 No Content: WeChat accepts 200 or 204 as "received"."""
    return base.HttpReply(status_code=204, body=b"")


def v3_failure_response(message: str, *, status_code: int = 400) -> base.HttpReply:
    """A 4xx/5xx with {"code": "FAIL", "message": ...}; WeChat will resend."""
    if not 400 <= status_code <= 599:
        raise base.InvalidPaymentInput(f"failure status_code must be 4xx/5xx, got {status_code}")
    return base.HttpReply(
        status_code=status_code,
        body=_canonical_json({"code": "FAIL", "message": message}),
        headers={"Content-Type": "application/json; charset=utf-8"},
    )


# ---------------------------------------------------------------------------
# Outbound: request signing and the JSAPI pay-params signature.


def build_authorization(
    *,
    method: str,
    url_path: str,
    body: bytes,
    mchid: str,
    serial_no: str,
    private_key: rsa.RSAPrivateKey,
    timestamp: int,
    nonce: str,
) -> str:
    """The v3 `Authorization` header for one request.

    Signs "METHOD\\nPATH?QUERY\\nTIMESTAMP\\nNONCE\\nBODY\\n" (body empty for GET) with the
    merchant private key; `url_path` is the path plus query as sent, without the host.
    """
    message = f"{method.upper()}\n{url_path}\n{timestamp}\n{nonce}\n".encode() + body + b"\n"
    signature = rsa_sha256_sign(private_key, message)
    return (
        f'{SIGNATURE_TYPE} mchid="{mchid}",nonce_str="{nonce}",signature="{signature}",'
        f'timestamp="{timestamp}",serial_no="{serial_no}"'
    )


def jsapi_pay_params(
    *,
    appid: str,
    prepay_id: str,
    private_key: rsa.RSAPrivateKey,
    timestamp: int,
    nonce: str,
) -> dict[str, str]:
    """The `wx.requestPayment` arguments for a prepay id.

    paySign is RSA-SHA256 with the merchant key over "appId\\ntimeStamp\\nnonceStr\\npackage\\n".
    """
    package = f"prepay_id={prepay_id}"
    message = f"{appid}\n{timestamp}\n{nonce}\n{package}\n".encode()
    return {
        "timeStamp": str(timestamp),
        "nonceStr": nonce,
        "package": package,
        "signType": "RSA",
        "paySign": rsa_sha256_sign(private_key, message),
    }


@dataclass(frozen=True)
class WeChatPayConfig:
    """Merchant configuration for WeChat Pay v3 (direct merchant, JSAPI/mini-program).

    `merchant_serial_no` is the serial of the merchant API certificate whose private key
    signs our requests; `platform_keys` holds every key WeChat may sign with (platform
    certificates and/or `PUB_KEY_ID_...`). `apiv3_key` is the 32-byte APIv3 key.
    """

    mchid: str
    appid: str
    merchant_serial_no: str
    merchant_private_key: rsa.RSAPrivateKey
    apiv3_key: bytes
    notify_url: str
    platform_keys: PlatformKeyring = field(compare=False)
    replay_window: timedelta = base.REPLAY_WINDOW

    def __post_init__(self) -> None:
        for name in ("mchid", "appid", "merchant_serial_no", "notify_url"):
            if not getattr(self, name):
                raise base.InvalidPaymentInput(f"WeChatPayConfig.{name} must not be empty")
        if not self.notify_url.startswith("https://"):
            raise base.InvalidPaymentInput(f"notify_url must be https, got {self.notify_url!r}")
        if len(self.apiv3_key) != 32:
            raise base.InvalidPaymentInput(
                f"WeChatPayConfig.apiv3_key must be 32 bytes, got {len(self.apiv3_key)}"
            )

    @classmethod
    def from_strings(
        cls,
        *,
        mchid: str,
        appid: str,
        merchant_serial_no: str,
        merchant_private_key_pem: str,
        apiv3_key: str,
        notify_url: str,
        platform_keys: PlatformKeyring,
    ) -> WeChatPayConfig:
        """Build from settings text (PEM private key, APIv3 key as its 32 ASCII chars)."""
        return cls(
            mchid=mchid,
            appid=appid,
            merchant_serial_no=merchant_serial_no,
            merchant_private_key=load_private_key(merchant_private_key_pem),
            apiv3_key=apiv3_key.encode(),
            notify_url=notify_url,
            platform_keys=platform_keys,
        )


class V3Callbacks(base.MerchantIds):
    """Notifications the WeChat Pay v3 way: verified by ``_verifier``, answered 204 or FAIL.

    WeChat Pay and the sandbox (which signs exactly like it) share this code path.
    """

    _verifier: V3Verifier

    def parse_notification(
        self, headers: Mapping[str, str], raw_body: bytes, *, now: datetime
    ) -> base.PaymentNotification:
        """Verify signature, key serial and ±5 min window, decrypt, and type the notification."""
        envelope, resource = self._verifier.open_notification(headers, raw_body, now=now)
        return notification_from_v3(self.name, envelope, resource)

    def success_response(self) -> base.HttpReply:
        """204 No Content."""
        return v3_success_response()

    def failure_response(self, message: str, *, status_code: int = 400) -> base.HttpReply:
        """4xx/5xx with {"code": "FAIL", "message": message}."""
        return v3_failure_response(message, status_code=status_code)


class WeChatPayProvider(base.Clocked, V3Callbacks):
    """WeChat Pay v3 JSAPI provider: prepay → wx.requestPayment params, notify, refund, query.

    Outbound calls go through the injected `httpx.AsyncClient` to `base_url` (tests run a
    fake gateway); their responses are verified with the same V3Verifier as notifications.
    """

    def __init__(
        self,
        config: WeChatPayConfig,
        http: httpx.AsyncClient,
        *,
        base_url: str = DEFAULT_BASE_URL,
        clock: Callable[[], datetime] = utc_now,
        nonce_factory: Callable[[], str] = new_nonce,
    ) -> None:
        self._config = config
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._clock = clock
        self._nonce = nonce_factory
        self._verifier = V3Verifier(
            config.platform_keys, config.apiv3_key, replay_window=config.replay_window
        )

    @property
    def name(self) -> base.ProviderName:
        """ProviderName.WECHATPAY."""
        return base.ProviderName.WECHATPAY

    def merchant_ids(self) -> tuple[str, str]:
        """Our mchid and appid."""
        return self._config.mchid, self._config.appid

    async def create_payment(self, order_ref: base.PaymentRequest) -> base.PaymentIntent:
        """POST /v3/pay/transactions/jsapi, then sign the wx.requestPayment params."""
        if order_ref.payer_id is None:
            raise base.InvalidPaymentInput("payer_id (the payer's openid) is required for JSAPI")
        body: dict[str, Any] = {
            "appid": self._config.appid,
            "mchid": self._config.mchid,
            "description": order_ref.description,
            "out_trade_no": order_ref.out_trade_no,
            "notify_url": self._config.notify_url,
            "amount": {"total": order_ref.amount_fen, "currency": "CNY"},
            "payer": {"openid": order_ref.payer_id},
        }
        if order_ref.expires_at is not None:
            body["time_expire"] = _to_rfc3339(order_ref.expires_at)
        answer = await self._call("POST", "/v3/pay/transactions/jsapi", body)
        prepay_id = answer.get("prepay_id")
        if not isinstance(prepay_id, str) or not prepay_id:
            raise base.GatewayError("prepay answer has no prepay_id")
        params = jsapi_pay_params(
            appid=self._config.appid,
            prepay_id=prepay_id,
            private_key=self._config.merchant_private_key,
            timestamp=int(self._now().timestamp()),
            nonce=self._nonce(),
        )
        return base.PaymentIntent(
            provider=self.name,
            out_trade_no=order_ref.out_trade_no,
            amount_fen=order_ref.amount_fen,
            client_params=params,
            prepay_id=prepay_id,
        )

    async def query(self, out_trade_no: str) -> base.PaymentNotification:
        """GET /v3/pay/transactions/out-trade-no/{no}?mchid=...; TradeNotFound if unknown."""
        base.check_out_trade_no(out_trade_no)
        path = (
            f"/v3/pay/transactions/out-trade-no/{quote(out_trade_no, safe='')}"
            f"?{urlencode({'mchid': self._config.mchid})}"
        )
        answer = await self._call("GET", path, None)
        return payment_from_transaction(self.name, answer)

    async def refund(self, request: base.RefundRequest) -> base.RefundResult:
        """POST /v3/refund/domestic/refunds; the final state also arrives as REFUND.*."""
        body: dict[str, Any] = {
            "out_trade_no": request.out_trade_no,
            "out_refund_no": request.out_refund_no,
            "notify_url": self._config.notify_url,
            "amount": {"refund": request.refund_fen, "total": request.total_fen, "currency": "CNY"},
        }
        if request.reason:
            body["reason"] = request.reason
        answer = await self._call("POST", "/v3/refund/domestic/refunds", body)
        status_text = answer.get("status")
        status = REFUND_STATES.get(status_text) if isinstance(status_text, str) else None
        if status is None:
            raise base.GatewayError(f"refund answer has unknown status {status_text!r}")
        refund_id = answer.get("refund_id")
        refund_fen = _fen_field(answer, "amount.refund", required=False)
        return base.RefundResult(
            provider=self.name,
            out_trade_no=request.out_trade_no,
            out_refund_no=request.out_refund_no,
            refund_id=refund_id if isinstance(refund_id, str) else None,
            refund_fen=refund_fen if refund_fen is not None else request.refund_fen,
            status=status,
            raw=answer,
        )

    async def _call(
        self, method: str, url_path: str, body: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        """Sign, send, check status and verify the response signature; return its JSON."""
        content = _canonical_json(body) if body is not None else b""
        now = self._now()
        authorization = build_authorization(
            method=method,
            url_path=url_path,
            body=content,
            mchid=self._config.mchid,
            serial_no=self._config.merchant_serial_no,
            private_key=self._config.merchant_private_key,
            timestamp=int(now.timestamp()),
            nonce=self._nonce(),
        )
        headers = {"Authorization": authorization, "Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            response = await self._http.request(
                method, self._base_url + url_path, content=content or None, headers=headers
            )
        except httpx.HTTPError as exc:
            raise base.GatewayError(f"{method} {url_path.split('?')[0]} failed: {exc!r}") from exc
        if not 200 <= response.status_code < 300:
            code, message = _error_fields(response)
            error_cls = base.TradeNotFound if code == "ORDER_NOT_EXIST" else base.GatewayError
            raise error_cls(
                f"{method} {url_path.split('?')[0]} answered {response.status_code} {code}: "
                f"{message}",
                status_code=response.status_code,
                code=code,
            )
        # A 2xx we did not verify could be anyone's: responses are signed like notifications.
        try:
            self._verifier.verify_signature(response.headers, response.content, now=self._now())
        except (
            base.SignatureInvalid,
            base.ReplayWindowExceeded,
            base.MalformedNotification,
        ) as exc:
            raise base.GatewayError(f"response to {method} failed verification: {exc}") from exc
        try:
            return _json_object(response.content, "response body")
        except base.MalformedNotification as exc:
            raise base.GatewayError(str(exc), status_code=response.status_code) from exc


def _error_fields(response: httpx.Response) -> tuple[str, str]:
    try:
        data = response.json()
    except ValueError:
        return "", response.text[:200]
    if not isinstance(data, dict):
        return "", response.text[:200]
    return str(data.get("code", "")), str(data.get("message", ""))

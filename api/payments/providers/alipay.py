"""Alipay (openapi, RSA2): signed order strings, async notify verification, refund and query.

Implemented with `cryptography` rather than python-alipay-sdk: the SDK signs with
pycryptodome, calls the gateway with blocking `urlopen`, and its `verify` mutates the
dict it is given and checks neither app_id, seller nor amount (INTEGRATIONS.md). The
formats are the SDK's and Alipay's; tests cross-check our signatures with the SDK.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from enum import StrEnum
from typing import Any
from urllib.parse import parse_qsl, quote_plus, urlencode

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa

from api.payments.providers import base
from api.payments.providers.keys import (
    load_private_key,
    load_public_key,
    rsa_sha256_sign,
    rsa_sha256_verify,
)

DEFAULT_GATEWAY_URL = "https://openapi.alipay.com/gateway.do"
SIGN_TYPE = "RSA2"
CHINA_TZ = timezone(timedelta(hours=8))
_YUAN = re.compile(r"^(0|[1-9]\d*)(\.\d{1,2})?$")
_ALIPAY_TIME = "%Y-%m-%d %H:%M:%S"

TRADE_STATUSES: Mapping[str, base.PaymentStatus] = {
    "WAIT_BUYER_PAY": base.PaymentStatus.PENDING,
    "TRADE_CLOSED": base.PaymentStatus.CLOSED,
    "TRADE_SUCCESS": base.PaymentStatus.SUCCEEDED,
    "TRADE_FINISHED": base.PaymentStatus.SUCCEEDED,
}


class AlipayProduct(StrEnum):
    """Which Alipay cashier the order string is for."""

    APP = "alipay.trade.app.pay"  # order string handed to the Alipay app SDK
    PAGE = "alipay.trade.page.pay"  # desktop web: redirect to gateway?order_string
    WAP = "alipay.trade.wap.pay"  # mobile web (H5): redirect to gateway?order_string


_PRODUCT_CODES: Mapping[AlipayProduct, str] = {
    AlipayProduct.APP: "QUICK_MSECURITY_PAY",
    AlipayProduct.PAGE: "FAST_INSTANT_TRADE_PAY",
    AlipayProduct.WAP: "QUICK_WAP_WAY",
}


def sign_content(params: Mapping[str, str]) -> str:
    """Alipay's string to sign: drop sign/sign_type, sort by key, join k=v with & (raw)."""
    return "&".join(
        f"{key}={params[key]}" for key in sorted(params) if key not in ("sign", "sign_type")
    )


def yuan_to_fen(text: str, field_name: str) -> int:
    """Parse an Alipay yuan amount ("12.34") into integer fen; MalformedNotification if not."""
    if not isinstance(text, str) or not _YUAN.match(text):
        raise base.MalformedNotification(f"field {field_name} must be a yuan amount, got {text!r}")
    return int(Decimal(text) * 100)


def _alipay_time(moment: datetime) -> str:
    return moment.astimezone(CHINA_TZ).strftime(_ALIPAY_TIME)


def _parse_alipay_time(text: str | None, field_name: str) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.strptime(text, _ALIPAY_TIME).replace(tzinfo=CHINA_TZ).astimezone(UTC)
    except ValueError as exc:
        raise base.MalformedNotification(f"field {field_name} is not a time: {text!r}") from exc


@dataclass(frozen=True)
class AlipayConfig:
    """Application configuration: our app id, seller (PID 2088...), keys and notify URL."""

    app_id: str
    seller_id: str
    app_private_key: rsa.RSAPrivateKey = field(compare=False)
    alipay_public_key: rsa.RSAPublicKey = field(compare=False)
    notify_url: str
    gateway_url: str = DEFAULT_GATEWAY_URL
    product: AlipayProduct = AlipayProduct.APP
    return_url: str | None = None

    def __post_init__(self) -> None:
        for name in ("app_id", "seller_id", "notify_url", "gateway_url"):
            if not getattr(self, name):
                raise base.InvalidPaymentInput(f"AlipayConfig.{name} must not be empty")
        if not self.notify_url.startswith("https://"):
            raise base.InvalidPaymentInput(f"notify_url must be https, got {self.notify_url!r}")

    @classmethod
    def from_strings(
        cls,
        *,
        app_id: str,
        seller_id: str,
        app_private_key: str,
        alipay_public_key: str,
        notify_url: str,
        gateway_url: str = DEFAULT_GATEWAY_URL,
    ) -> AlipayConfig:
        """Build from settings text; keys as PEM or the bare base64 the Alipay console shows."""
        return cls(
            app_id=app_id,
            seller_id=seller_id,
            app_private_key=load_private_key(app_private_key),
            alipay_public_key=load_public_key(alipay_public_key),
            notify_url=notify_url,
            gateway_url=gateway_url,
        )


def _utc_now() -> datetime:
    return datetime.now(UTC)


class AlipayProvider(base.Clocked, base.MerchantIds):
    """Alipay provider: RSA2-signed order strings, notify verification, refund and query.

    Gateway calls go through the injected `httpx.AsyncClient` to `config.gateway_url`.
    """

    def __init__(
        self,
        config: AlipayConfig,
        http: httpx.AsyncClient,
        *,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._config = config
        self._http = http
        self._clock = clock

    @property
    def name(self) -> base.ProviderName:
        """ProviderName.ALIPAY."""
        return base.ProviderName.ALIPAY

    def merchant_ids(self) -> tuple[str, str]:
        """Our seller_id and app_id."""
        return self._config.seller_id, self._config.app_id

    # -- signing -------------------------------------------------------------

    def _signed_params(
        self, method: str, biz_content: Mapping[str, Any], **extra: str
    ) -> dict[str, str]:
        params = {
            "app_id": self._config.app_id,
            "method": method,
            "format": "JSON",
            "charset": "utf-8",
            "sign_type": SIGN_TYPE,
            "timestamp": _alipay_time(self._now()),
            "version": "1.0",
            "biz_content": json.dumps(biz_content, ensure_ascii=False, separators=(",", ":")),
            **{key: value for key, value in extra.items() if value},
        }
        params["sign"] = rsa_sha256_sign(
            self._config.app_private_key, sign_content(params).encode()
        )
        return params

    async def create_payment(self, order_ref: base.PaymentRequest) -> base.PaymentIntent:
        """Build the signed order string (no network: Alipay's cashier creates the trade)."""
        biz: dict[str, Any] = {
            "out_trade_no": order_ref.out_trade_no,
            "total_amount": base.fen_to_yuan(order_ref.amount_fen),
            "subject": order_ref.description,
            "product_code": _PRODUCT_CODES[self._config.product],
        }
        if order_ref.expires_at is not None:
            biz["time_expire"] = _alipay_time(order_ref.expires_at)
        params = self._signed_params(
            self._config.product.value,
            biz,
            notify_url=self._config.notify_url,
            return_url=self._config.return_url or "",
        )
        # Sorted like the SDK, values URL-encoded; the signature covered the raw values.
        order_string = "&".join(f"{key}={quote_plus(params[key])}" for key in sorted(params))
        pay_url = (
            None
            if self._config.product is AlipayProduct.APP
            else f"{self._config.gateway_url}?{order_string}"
        )
        return base.PaymentIntent(
            provider=self.name,
            out_trade_no=order_ref.out_trade_no,
            amount_fen=order_ref.amount_fen,
            order_string=order_string,
            pay_url=pay_url,
        )

    # -- notify --------------------------------------------------------------

    def verify_form(self, raw_body: bytes) -> dict[str, str]:
        """Parse and RSA2-verify a notify form; return its fields (sign/sign_type removed)."""
        if not isinstance(raw_body, bytes | bytearray):
            raise base.MalformedNotification(
                f"body must be the raw request bytes, got {type(raw_body).__name__}"
            )
        try:
            text = bytes(raw_body).decode("ascii")
            pairs = parse_qsl(
                text, keep_blank_values=True, strict_parsing=True, encoding="utf-8", errors="strict"
            )
        except (UnicodeDecodeError, ValueError) as exc:
            raise base.MalformedNotification(
                f"notify body is not a urlencoded form: {exc}"
            ) from exc
        form: dict[str, str] = {}
        for key, value in pairs:
            if key in form:
                raise base.MalformedNotification(f"notify field {key} appears twice")
            form[key] = value
        charset = form.get("charset", "utf-8").lower()
        if charset not in ("utf-8", "utf8"):
            # We always ask for utf-8; a notify in another charset was not for our request.
            raise base.MalformedNotification(f"notify charset must be utf-8, got {charset!r}")
        signature = form.pop("sign", "")
        sign_type = form.pop("sign_type", "")
        if not signature:
            raise base.MalformedNotification("notify field sign is missing")
        if sign_type != SIGN_TYPE:
            raise base.UnsupportedAlgorithm(f"sign_type must be {SIGN_TYPE}, got {sign_type!r}")
        if not rsa_sha256_verify(
            self._config.alipay_public_key, sign_content(form).encode(), signature
        ):
            raise base.SignatureInvalid("notify sign does not verify with the Alipay public key")
        return form

    def parse_notification(
        self, headers: Mapping[str, str], raw_body: bytes, *, now: datetime
    ) -> base.PaymentNotification:
        """Verify the notify form (RSA2 over the sorted fields) and type it.

        No timestamp window: Alipay resends the same signed notify for ~25 h and documents
        no freshness check, so replays are absorbed by the dedupe key instead. `headers`
        is unused (everything Alipay signs is in the body) but kept for the protocol.
        """
        base.require_aware(now)
        form = self.verify_form(raw_body)
        return notification_from_form(form)

    def success_response(self) -> base.HttpReply:
        """200 with the exact body `success`."""
        return base.HttpReply(
            status_code=200, body=b"success", headers={"Content-Type": "text/plain; charset=utf-8"}
        )

    def failure_response(self, message: str, *, status_code: int = 400) -> base.HttpReply:
        """Any body but `success` makes Alipay resend; `message` stays in our logs only."""
        if not 400 <= status_code <= 599:
            raise base.InvalidPaymentInput(
                f"failure status_code must be 4xx/5xx, got {status_code}"
            )
        return base.HttpReply(
            status_code=status_code,
            body=b"fail",
            headers={"Content-Type": "text/plain; charset=utf-8"},
        )

    # -- gateway calls -------------------------------------------------------

    async def refund(self, request: base.RefundRequest) -> base.RefundResult:
        """alipay.trade.refund; code 10000 means refunded (synchronously)."""
        biz: dict[str, Any] = {
            "out_trade_no": request.out_trade_no,
            "refund_amount": base.fen_to_yuan(request.refund_fen),
            "out_request_no": request.out_refund_no,
        }
        if request.reason:
            biz["refund_reason"] = request.reason
        node = await self._call("alipay.trade.refund", biz)
        trade_no = node.get("trade_no")
        return base.RefundResult(
            provider=self.name,
            out_trade_no=request.out_trade_no,
            out_refund_no=request.out_refund_no,
            refund_id=f"{trade_no}/{request.out_refund_no}" if trade_no else None,
            refund_fen=request.refund_fen,
            status=base.PaymentStatus.SUCCEEDED,
            raw=node,
        )

    async def query(self, out_trade_no: str) -> base.PaymentNotification:
        """alipay.trade.query; TradeNotFound for ACQ.TRADE_NOT_EXIST.

        The answer carries neither app_id nor seller_id; they are ours by construction
        (the call is made with our app key and verified with Alipay's), so they are filled
        from the configuration for check_against_order.
        """
        base.check_out_trade_no(out_trade_no)
        node = await self._call("alipay.trade.query", {"out_trade_no": out_trade_no})
        try:
            return notification_from_form(
                {
                    **{k: v for k, v in node.items() if isinstance(v, str)},
                    "app_id": self._config.app_id,
                    "seller_id": self._config.seller_id,
                    "gmt_payment": str(node.get("send_pay_date", "")),
                },
                from_query=True,
            )
        except base.MalformedNotification as exc:
            raise base.GatewayError(f"alipay.trade.query answer: {exc}") from exc

    async def _call(self, method: str, biz_content: Mapping[str, Any]) -> dict[str, Any]:
        """POST a signed request; verify the response node's signature; return the node."""
        params = self._signed_params(method, biz_content)
        try:
            response = await self._http.post(
                self._config.gateway_url,
                content=urlencode(params).encode(),
                headers={"Content-Type": "application/x-www-form-urlencoded;charset=utf-8"},
            )
        except httpx.HTTPError as exc:
            raise base.GatewayError(f"{method} failed: {exc!r}") from exc
        if response.status_code != 200:
            raise base.GatewayError(
                f"{method} answered HTTP {response.status_code}", status_code=response.status_code
            )
        node_key = method.replace(".", "_") + "_response"
        text = response.content.decode("utf-8", errors="strict")
        node, node_text, signature = _response_node(text, node_key, method)
        code = str(node.get("code", ""))
        sub_code = str(node.get("sub_code", ""))
        if code != "10000":
            error_cls = (
                base.TradeNotFound if sub_code == "ACQ.TRADE_NOT_EXIST" else base.GatewayError
            )
            raise error_cls(
                f"{method} failed: {code} {node.get('msg', '')} {sub_code} "
                f"{node.get('sub_msg', '')}".strip(),
                status_code=response.status_code,
                code=sub_code or code,
            )
        if not signature or not rsa_sha256_verify(
            self._config.alipay_public_key, node_text.encode(), signature
        ):
            raise base.GatewayError(
                f"{method} answer failed verification with the Alipay public key"
            )
        return node


def _response_node(text: str, node_key: str, method: str) -> tuple[dict[str, Any], str, str]:
    """The response node, its exact raw text (what Alipay signed) and the signature."""
    try:
        whole = json.loads(text)
    except ValueError as exc:
        raise base.GatewayError(f"{method} answer is not JSON") from exc
    if not isinstance(whole, dict):
        raise base.GatewayError(f"{method} answer is not a JSON object")
    if node_key not in whole:
        error = whole.get("error_response")
        detail = error if isinstance(error, dict) else {}
        raise base.GatewayError(
            f"{method} answer has no {node_key}: {detail.get('code', '')} "
            f"{detail.get('sub_msg', detail.get('msg', ''))}".strip(),
            code=str(detail.get("sub_code", detail.get("code", ""))),
        )
    decoder = json.JSONDecoder()
    for match in re.finditer(r'"' + re.escape(node_key) + r'"\s*:\s*', text):
        try:
            value, end = decoder.raw_decode(text, match.end())
        except ValueError:
            continue
        # The key text may also occur inside a string; only the real member decodes equal.
        if value == whole[node_key] and isinstance(value, dict):
            signature = whole.get("sign")
            return value, text[match.end() : end], signature if isinstance(signature, str) else ""
    raise base.GatewayError(f"{method} answer: cannot locate the signed {node_key}")


def _required(form: Mapping[str, str], name: str) -> str:
    value = form.get(name, "")
    if not value:
        raise base.MalformedNotification(f"notify field {name} is missing")
    return value


def notification_from_form(
    form: Mapping[str, str], *, from_query: bool = False
) -> base.PaymentNotification:
    """Type a verified notify form (or a query node) as a payment or refund notification.

    A notify carrying `refund_fee`/`gmt_refund` reports a refund (partial refunds keep
    trade_status TRADE_SUCCESS, so it must never be read as a second payment).
    """
    trade_status = _required(form, "trade_status")
    status = TRADE_STATUSES.get(trade_status)
    if status is None:
        raise base.MalformedNotification(
            f"notify field trade_status has unknown value {trade_status!r}"
        )
    out_trade_no = _required(form, "out_trade_no")
    trade_no = form.get("trade_no") or None
    if not from_query and trade_no is None:
        raise base.MalformedNotification("notify field trade_no is missing")
    payer_id = form.get("buyer_id") or form.get("buyer_open_id") or form.get("buyer_user_id")
    common: dict[str, Any] = {
        "provider": base.ProviderName.ALIPAY,
        "out_trade_no": out_trade_no,
        "trade_state": trade_status,
        "merchant_id": form.get("seller_id") or None,
        "app_id": form.get("app_id") or None,
        "payer_id": payer_id or None,
        "notification_id": None if from_query else _required(form, "notify_id"),
        "event_type": None if from_query else form.get("notify_type") or None,
        "raw": dict(form),
    }
    refund_fee = form.get("refund_fee")
    if not from_query and (refund_fee or form.get("gmt_refund")):
        out_biz_no = form.get("out_biz_no") or form.get("gmt_refund", "")
        return base.PaymentNotification(
            kind=base.NotificationKind.REFUND,
            # One trade can be refunded several times; out_biz_no tells them apart.
            provider_txn_id=f"{trade_no}/{out_biz_no}",
            payment_txn_id=trade_no,
            amount_fen=yuan_to_fen(_required(form, "refund_fee"), "refund_fee"),
            status=base.PaymentStatus.SUCCEEDED,
            out_refund_no=form.get("out_biz_no") or None,
            success_time=_parse_alipay_time(form.get("gmt_refund"), "gmt_refund"),
            **common,
        )
    return base.PaymentNotification(
        kind=base.NotificationKind.PAYMENT,
        provider_txn_id=trade_no,
        amount_fen=yuan_to_fen(_required(form, "total_amount"), "total_amount"),
        status=status,
        success_time=_parse_alipay_time(form.get("gmt_payment"), "gmt_payment"),
        **common,
    )

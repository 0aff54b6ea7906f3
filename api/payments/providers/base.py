"""The provider-neutral payment protocol: values, errors and the order cross-check.

Every provider turns its own wire format into the same frozen values here, so the
service layer (orders moving to 待服务 on a verified success) never looks at
provider-specific fields except through `PaymentNotification.raw` for audit.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "PAID_TRADE_STATES",
    "REPLAY_WINDOW",
    "DecryptionFailed",
    "ExpectedPayment",
    "GatewayError",
    "HttpReply",
    "InvalidPaymentInput",
    "MalformedNotification",
    "NotificationKind",
    "OrderMismatch",
    "PaymentError",
    "PaymentIntent",
    "PaymentNotification",
    "PaymentProvider",
    "PaymentRequest",
    "PaymentStatus",
    "ProviderName",
    "RefundRequest",
    "RefundResult",
    "ReplayWindowExceeded",
    "SignatureInvalid",
    "TradeNotFound",
    "UnknownCertificate",
    "UnsupportedAlgorithm",
    "check_against_order",
    "order_mismatch",
]

# WeChat's and Alipay's out_trade_no rules intersect at this: 6-32 characters of
# letters, digits and _-|* (WeChat forbids anything else; Alipay allows 64).
_OUT_TRADE_NO = re.compile(r"^[A-Za-z0-9_\-|*]{6,32}$")
_OUT_REFUND_NO = re.compile(r"^[A-Za-z0-9_\-|*@]{1,64}$")

REPLAY_WINDOW = timedelta(minutes=5)
"""WeChat Pay's documented bound on |now - Wechatpay-Timestamp| for notifications."""


class ProviderName(StrEnum):
    """Which payment provider produced a value."""

    WECHATPAY = "wechatpay"
    ALIPAY = "alipay"
    SANDBOX = "sandbox"


class NotificationKind(StrEnum):
    """Whether a notification reports money coming in (payment) or going back (refund)."""

    PAYMENT = "payment"
    REFUND = "refund"


class PaymentStatus(StrEnum):
    """Provider trade/refund states normalised to what the service layer acts on."""

    SUCCEEDED = "succeeded"  # money moved (paid, or refund credited)
    PENDING = "pending"  # not paid yet / user still paying
    PROCESSING = "processing"  # refund accepted, not yet credited
    CLOSED = "closed"  # closed or revoked without (further) money movement
    FAILED = "failed"  # payment error
    REFUNDED = "refunded"  # paid, then (partly) refunded (WeChat trade_state REFUND)
    ABNORMAL = "abnormal"  # refund stuck (e.g. the payer's card was closed)


# ---------------------------------------------------------------------------
# Errors: one hierarchy, each a ValueError so a caller may catch either.


class PaymentError(ValueError):
    """Base class of every error raised by api/payments/providers."""


class InvalidPaymentInput(PaymentError):
    """Our own request (amount, trade number, clock) is malformed; the message names the field."""


class MalformedNotification(PaymentError):
    """A notification is missing a header/field or is not valid JSON/form; names the problem."""


class SignatureInvalid(PaymentError):
    """A signature does not verify against the key it claims (forged, tampered or a probe)."""


class UnsupportedAlgorithm(SignatureInvalid):
    """The signature type or encryption algorithm is not the one we accept."""


class UnknownCertificate(PaymentError):
    """The key serial (certificate serial or PUB_KEY_ID_...) is not configured, or has expired."""


class ReplayWindowExceeded(PaymentError):
    """A correctly signed message whose timestamp is too far from now (a replay or a bad clock)."""


class DecryptionFailed(PaymentError):
    """A signed resource failed AES-GCM authentication: the APIv3 key is wrong or data corrupt."""


class GatewayError(PaymentError):
    """The provider's API answered with an error, an unexpected body, or not at all."""

    def __init__(self, message: str, *, status_code: int | None = None, code: str = "") -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code


class TradeNotFound(GatewayError):
    """The provider does not know this out_trade_no (never created or not yet visible)."""


class OrderMismatch(PaymentError):
    """A verified notification does not match our order; `field` names the provider's field."""

    def __init__(self, field: str, expected: object, actual: object) -> None:
        super().__init__(f"{field} mismatch: expected {expected!r}, got {actual!r}")
        self.field = field
        self.expected = expected
        self.actual = actual


# ---------------------------------------------------------------------------
# Values.


def require_aware(now: datetime, name: str = "now") -> None:
    """Raise InvalidPaymentInput unless `now` is timezone-aware (times are compared in UTC)."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise InvalidPaymentInput(f"{name} must be timezone-aware, got naive {now!r}")


def check_out_trade_no(out_trade_no: str, name: str = "out_trade_no") -> None:
    """Raise InvalidPaymentInput unless out_trade_no is 6-32 chars of [A-Za-z0-9_-|*]."""
    if not isinstance(out_trade_no, str) or not _OUT_TRADE_NO.match(out_trade_no):
        raise InvalidPaymentInput(
            f"{name} must be 6-32 characters of letters, digits and _-|*, got {out_trade_no!r}"
        )


def fen_to_yuan(amount_fen: int) -> str:
    """Format integer fen as the yuan string Alipay expects ("12.34")."""
    if isinstance(amount_fen, bool) or not isinstance(amount_fen, int) or amount_fen < 0:
        raise InvalidPaymentInput(f"amount_fen must be a non-negative int, got {amount_fen!r}")
    return f"{amount_fen // 100}.{amount_fen % 100:02d}"


@dataclass(frozen=True)
class PaymentRequest:
    """What we ask a provider to collect for one order.

    `amount_fen` is integer fen (分); `payer_id` is the WeChat openid (required for
    JSAPI/mini-program payments, ignored by Alipay and the sandbox).
    """

    out_trade_no: str
    amount_fen: int
    description: str
    payer_id: str | None = None
    expires_at: datetime | None = None

    def __post_init__(self) -> None:
        check_out_trade_no(self.out_trade_no)
        if isinstance(self.amount_fen, bool) or not isinstance(self.amount_fen, int):
            raise InvalidPaymentInput(f"amount_fen must be an int, got {self.amount_fen!r}")
        if self.amount_fen <= 0:
            raise InvalidPaymentInput(f"amount_fen must be > 0, got {self.amount_fen}")
        if not self.description.strip():
            raise InvalidPaymentInput("description must not be empty")
        # WeChat limits description to 127 bytes (UTF-8), Alipay's subject to 256 chars.
        if len(self.description.encode()) > 127:
            raise InvalidPaymentInput(
                f"description must be at most 127 UTF-8 bytes, got {len(self.description.encode())}"
            )
        if self.payer_id is not None and not self.payer_id:
            raise InvalidPaymentInput("payer_id must be None or non-empty")
        if self.expires_at is not None:
            require_aware(self.expires_at, "expires_at")


@dataclass(frozen=True)
class PaymentIntent:
    """What the client needs to start paying.

    WeChat: `client_params` are the `wx.requestPayment` arguments
    (timeStamp, nonceStr, package, signType, paySign). Alipay: `order_string` is the
    signed order string for the app SDK. Sandbox: `pay_url` is the local pay page.
    """

    provider: ProviderName
    out_trade_no: str
    amount_fen: int
    client_params: Mapping[str, str] = field(default_factory=dict, hash=False)
    order_string: str | None = None
    pay_url: str | None = None
    prepay_id: str | None = None


@dataclass(frozen=True)
class PaymentNotification:
    """A verified (and decrypted) notification, or a verified query answer.

    `amount_fen` is the order total for payments and the refunded amount for refunds
    (for Alipay refunds: the cumulative `refund_fee`). `provider_txn_id` is the
    provider's id of this money movement: the transaction id for payments, the refund
    id for refunds; it is None only for query answers on unpaid trades.
    `trade_state` is the provider's raw state string; `status` its normalised meaning.
    `notification_id` is None for query answers.
    """

    provider: ProviderName
    kind: NotificationKind
    out_trade_no: str
    provider_txn_id: str | None
    amount_fen: int | None
    trade_state: str
    status: PaymentStatus
    merchant_id: str | None
    app_id: str | None
    payer_id: str | None = None
    out_refund_no: str | None = None
    payment_txn_id: str | None = None
    success_time: datetime | None = None
    notification_id: str | None = None
    event_type: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def dedupe_key(self) -> str:
        """Stable key for "have we processed this already": provider:kind:txn id:raw state.

        The state is part of the key because one transaction may legitimately report
        two different outcomes (Alipay TRADE_SUCCESS then TRADE_FINISHED, a WeChat
        refund REFUND.ABNORMAL then REFUND.SUCCESS); resends of the same outcome share
        the key, so the service layer can store it under a unique constraint.
        """
        if not self.provider_txn_id:
            raise MalformedNotification(
                f"no provider transaction id for {self.out_trade_no!r}: nothing to dedupe on"
            )
        return f"{self.provider}:{self.kind}:{self.provider_txn_id}:{self.trade_state}"


@dataclass(frozen=True)
class RefundRequest:
    """A refund of `refund_fen` out of an order paid `total_fen` (both integer fen)."""

    out_trade_no: str
    out_refund_no: str
    refund_fen: int
    total_fen: int
    reason: str | None = None

    def __post_init__(self) -> None:
        check_out_trade_no(self.out_trade_no)
        if not isinstance(self.out_refund_no, str) or not _OUT_REFUND_NO.match(self.out_refund_no):
            raise InvalidPaymentInput(
                f"out_refund_no must be 1-64 characters of letters, digits and _-|*@, "
                f"got {self.out_refund_no!r}"
            )
        for name in ("refund_fen", "total_fen"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise InvalidPaymentInput(f"{name} must be a positive int, got {value!r}")
        if self.refund_fen > self.total_fen:
            raise InvalidPaymentInput(
                f"refund_fen ({self.refund_fen}) must not exceed total_fen ({self.total_fen})"
            )


@dataclass(frozen=True)
class RefundResult:
    """The provider's synchronous answer to a refund request (final state may come later)."""

    provider: ProviderName
    out_trade_no: str
    out_refund_no: str
    refund_id: str | None
    refund_fen: int
    status: PaymentStatus
    raw: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class HttpReply:
    """An HTTP answer to a provider's notification, exactly as the provider wants it."""

    status_code: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class ExpectedPayment:
    """What our order says a matching notification must contain.

    `amount_fen` is the order total for payments, the refund amount for refunds.
    `merchant_id`/`app_id` are our mchid/appid (WeChat) or seller_id/app_id (Alipay);
    providers build this with `PaymentProvider.expected(...)`.
    """

    provider: ProviderName
    out_trade_no: str
    amount_fen: int
    merchant_id: str
    app_id: str
    kind: NotificationKind = NotificationKind.PAYMENT


# Provider field names, so a mismatch names the field the provider's docs use.
_FIELD_NAMES: Mapping[ProviderName, Mapping[str, str]] = {
    ProviderName.WECHATPAY: {
        "merchant_id": "mchid",
        "app_id": "appid",
        "amount": "amount.total",
        "refund_amount": "amount.refund",
        "state": "trade_state",
        "refund_state": "refund_status",
    },
    ProviderName.ALIPAY: {
        "merchant_id": "seller_id",
        "app_id": "app_id",
        "amount": "total_amount",
        "refund_amount": "refund_fee",
        "state": "trade_status",
        "refund_state": "trade_status",
    },
}
_FIELD_NAMES = {**_FIELD_NAMES, ProviderName.SANDBOX: _FIELD_NAMES[ProviderName.WECHATPAY]}

PAID_TRADE_STATES: Mapping[ProviderName, frozenset[str]] = {
    ProviderName.WECHATPAY: frozenset({"SUCCESS"}),
    ProviderName.SANDBOX: frozenset({"SUCCESS"}),
    ProviderName.ALIPAY: frozenset({"TRADE_SUCCESS", "TRADE_FINISHED"}),
}
"""The only raw trade states that mean "paid" (INTEGRATIONS.md)."""


def order_mismatch(
    notification: PaymentNotification, expected: ExpectedPayment
) -> OrderMismatch | None:
    """Return the first mismatch between a verified notification and our order, or None.

    Checks provider, kind, out_trade_no, merchant (mchid / seller_id), app (appid /
    app_id; WeChat refund notifications carry none), amount in fen and the state
    (payments: WeChat `SUCCESS`, Alipay `TRADE_SUCCESS`/`TRADE_FINISHED` only).
    """
    names = _FIELD_NAMES[notification.provider]
    if notification.provider != expected.provider:
        return OrderMismatch("provider", str(expected.provider), str(notification.provider))
    if notification.kind != expected.kind:
        return OrderMismatch("kind", str(expected.kind), str(notification.kind))
    if notification.out_trade_no != expected.out_trade_no:
        return OrderMismatch("out_trade_no", expected.out_trade_no, notification.out_trade_no)
    if notification.merchant_id != expected.merchant_id:
        return OrderMismatch(names["merchant_id"], expected.merchant_id, notification.merchant_id)
    refund = notification.kind is NotificationKind.REFUND
    # WeChat's refund notification has no appid; every other message must carry ours.
    if not (refund and notification.app_id is None) and notification.app_id != expected.app_id:
        return OrderMismatch(names["app_id"], expected.app_id, notification.app_id)
    if notification.amount_fen != expected.amount_fen:
        return OrderMismatch(
            names["refund_amount" if refund else "amount"],
            expected.amount_fen,
            notification.amount_fen,
        )
    if refund:
        if notification.status is not PaymentStatus.SUCCEEDED:
            return OrderMismatch(names["refund_state"], "refund success", notification.trade_state)
    elif notification.trade_state not in PAID_TRADE_STATES[notification.provider]:
        return OrderMismatch(
            names["state"],
            "|".join(sorted(PAID_TRADE_STATES[notification.provider])),
            notification.trade_state,
        )
    return None


def check_against_order(notification: PaymentNotification, expected: ExpectedPayment) -> None:
    """Raise OrderMismatch (naming the field) unless the notification matches our order."""
    mismatch = order_mismatch(notification, expected)
    if mismatch is not None:
        raise mismatch


def lower_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Case-fold header names; a repeated header with two different values is malformed."""
    folded: dict[str, str] = {}
    items: Any = headers.items()
    for name, value in items:
        key = name.lower()
        if key in folded and folded[key] != value:
            raise MalformedNotification(f"header {name} appears twice with different values")
        folded[key] = value
    return folded


class Clocked:
    """A provider's clock, read through ``_now()``: checked timezone-aware every time."""

    _clock: Callable[[], datetime]

    def _now(self) -> datetime:
        now = self._clock()
        require_aware(now, "clock()")
        return now


class MerchantIds:
    """``expected()`` for every provider: the order's facts plus the provider's own ids.

    A provider mixes this in and says, in ``merchant_ids``, which merchant and app ids
    its notifications must carry; ``check_against_order`` then compares them.
    """

    @property
    def name(self) -> ProviderName:
        """Which provider this is (each provider says)."""
        raise NotImplementedError

    def merchant_ids(self) -> tuple[str, str]:
        """(merchant id, app id) that this provider's notifications must carry."""
        raise NotImplementedError

    def expected(
        self,
        out_trade_no: str,
        amount_fen: int,
        kind: NotificationKind = NotificationKind.PAYMENT,
    ) -> ExpectedPayment:
        """Our order's out_trade_no and amount (fen) plus this provider's merchant/app ids."""
        merchant_id, app_id = self.merchant_ids()
        return ExpectedPayment(
            provider=self.name,
            out_trade_no=out_trade_no,
            amount_fen=amount_fen,
            merchant_id=merchant_id,
            app_id=app_id,
            kind=kind,
        )


@runtime_checkable
class PaymentProvider(Protocol):
    """What every payment provider offers the payments service."""

    @property
    def name(self) -> ProviderName:
        """Which provider this is."""
        ...

    def expected(
        self, out_trade_no: str, amount_fen: int, kind: NotificationKind = ...
    ) -> ExpectedPayment:
        """Our order's facts plus this provider's merchant/app ids, for check_against_order.

        ``kind`` defaults to ``NotificationKind.PAYMENT`` (see ``MerchantIds``).
        """
        ...

    async def create_payment(self, order_ref: PaymentRequest) -> PaymentIntent:
        """Create the payment at the provider and return what the client needs to pay."""
        ...

    def parse_notification(
        self, headers: Mapping[str, str], raw_body: bytes, *, now: datetime
    ) -> PaymentNotification:
        """Verify (and decrypt) a notification from its raw bytes; raise a PaymentError."""
        ...

    def success_response(self) -> HttpReply:
        """The reply that tells the provider we took the notification."""
        ...

    def failure_response(self, message: str, *, status_code: int = 400) -> HttpReply:
        """The reply (4xx/5xx) that makes the provider resend later; `message` is for logs."""
        ...

    async def refund(self, request: RefundRequest) -> RefundResult:
        """Ask the provider to refund; the final state may arrive as a refund notification."""
        ...

    async def query(self, out_trade_no: str) -> PaymentNotification:
        """Ask the provider for a trade's state (delivery of notifications is not guaranteed)."""
        ...

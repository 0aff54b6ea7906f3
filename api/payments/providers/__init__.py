"""Payment providers behind one protocol: WeChat Pay v3, Alipay and the local sandbox.

Typical use by the payments service (router → service → provider):

    note = provider.parse_notification(request.headers, await request.body(), now=now)
    # lock the order row by note.out_trade_no; skip if note.dedupe_key was stored
    check_against_order(note, provider.expected(order.out_trade_no, order.amount_fen))
    # mark paid (待服务), store note.raw and note.dedupe_key, then
    return provider.success_response()

Signature, window, certificate and format errors → provider.failure_response(...):
the message was not (verifiably) from the provider, and WeChat's bad-signature probes
expect exactly that. OrderMismatch on a verified message → do not mark paid, record it
for review; replying failure keeps WeChat/Alipay resending for about 24 h.
"""

from api.payments.providers.alipay import AlipayConfig, AlipayProduct, AlipayProvider
from api.payments.providers.base import (
    PAID_TRADE_STATES,
    REPLAY_WINDOW,
    DecryptionFailed,
    ExpectedPayment,
    GatewayError,
    HttpReply,
    InvalidPaymentInput,
    MalformedNotification,
    NotificationKind,
    OrderMismatch,
    PaymentError,
    PaymentIntent,
    PaymentNotification,
    PaymentProvider,
    PaymentRequest,
    PaymentStatus,
    ProviderName,
    RefundRequest,
    RefundResult,
    ReplayWindowExceeded,
    SignatureInvalid,
    TradeNotFound,
    UnknownCertificate,
    UnsupportedAlgorithm,
    check_against_order,
    order_mismatch,
)
from api.payments.providers.keys import PlatformKey, PlatformKeyring
from api.payments.providers.sandbox import SandboxProvider, SignedCallback
from api.payments.providers.wechatpay import WeChatPayConfig, WeChatPayProvider

__all__ = [
    "PAID_TRADE_STATES",
    "REPLAY_WINDOW",
    "AlipayConfig",
    "AlipayProduct",
    "AlipayProvider",
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
    "PlatformKey",
    "PlatformKeyring",
    "ProviderName",
    "RefundRequest",
    "RefundResult",
    "ReplayWindowExceeded",
    "SandboxProvider",
    "SignatureInvalid",
    "SignedCallback",
    "TradeNotFound",
    "UnknownCertificate",
    "UnsupportedAlgorithm",
    "WeChatPayConfig",
    "WeChatPayProvider",
    "check_against_order",
    "order_mismatch",
]

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

from api.payments.providers import base
from api.payments.providers.alipay import AlipayConfig, AlipayProduct, AlipayProvider
from api.payments.providers.base import *  # noqa: F403  (base.__all__, listed once there)
from api.payments.providers.keys import PlatformKey, PlatformKeyring
from api.payments.providers.sandbox import SandboxProvider, SignedCallback
from api.payments.providers.wechatpay import WeChatPayConfig, WeChatPayProvider

__all__ = [
    "AlipayConfig",
    "AlipayProduct",
    "AlipayProvider",
    "PlatformKey",
    "PlatformKeyring",
    "SandboxProvider",
    "SignedCallback",
    "WeChatPayConfig",
    "WeChatPayProvider",
]
__all__ += base.__all__

"""The sandbox provider: the demo default, "paying" locally with real WeChat v3 callbacks.

The sandbox plays WeChat Pay's role with a local key pair: its callbacks are genuine v3
notifications (AES-256-GCM resource, RSA-SHA256 signed headers under a `PUB_KEY_ID_`
serial) and `parse_notification` runs them through the very same `V3Verifier` and
typing code as the real WeChat provider, replay window included. So the demo exercises
the production verification path instead of a shortcut around it.

State (created/paid/refunded trades) lives in memory: it is a demo stand-in for the
provider's own books, not ours. A restart forgets it, and generated keys change, so
callbacks minted before a restart no longer verify — by design.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from cryptography.hazmat.primitives.asymmetric import rsa

from api.payments.providers import base
from api.payments.providers.keys import PUB_KEY_ID_PREFIX, PlatformKey, PlatformKeyring
from api.payments.providers.wechatpay import (
    CHINA_TZ,
    V3Callbacks,
    V3Verifier,
    encrypt_resource,
    payment_from_transaction,
    signature_headers,
    utc_now,
)

SANDBOX_MCHID = "sandbox-mch"
SANDBOX_APPID = "sandbox-app"


@dataclass(frozen=True)
class SignedCallback:
    """A callback as the sandbox would POST it: headers and the exact raw body."""

    headers: Mapping[str, str] = field(hash=False)
    body: bytes


@dataclass
class _Trade:
    out_trade_no: str
    amount_fen: int
    description: str
    transaction_id: str | None = None
    payer_id: str | None = None
    paid_at: datetime | None = None
    refunds: dict[str, tuple[str, int, datetime]] = field(default_factory=dict)

    @property
    def refunded_fen(self) -> int:
        return sum(amount for _, amount, _ in self.refunds.values())


class SandboxProvider(base.Clocked, V3Callbacks):
    """Local payments for the demo and tests, verified exactly like WeChat Pay v3."""

    def __init__(
        self,
        *,
        pay_page_url: str,
        signing_key: rsa.RSAPrivateKey | None = None,
        apiv3_key: bytes | None = None,
        key_id: str | None = None,
        clock: Callable[[], datetime] = utc_now,
        replay_window: timedelta = base.REPLAY_WINDOW,
        mchid: str = SANDBOX_MCHID,
        appid: str = SANDBOX_APPID,
    ) -> None:
        if not pay_page_url:
            raise base.InvalidPaymentInput("pay_page_url must not be empty")
        # Generated per process unless configured: nothing to leak, nothing to commit.
        self._signing_key = signing_key or rsa.generate_private_key(
            public_exponent=65537, key_size=2048
        )
        self._apiv3_key = apiv3_key if apiv3_key is not None else secrets.token_hex(16).encode()
        self._key_id = key_id or f"{PUB_KEY_ID_PREFIX}SANDBOX{secrets.token_hex(8).upper()}"
        self._verifier = V3Verifier(
            PlatformKeyring(
                [PlatformKey.from_public_key(self._key_id, self._signing_key.public_key())]
            ),
            self._apiv3_key,
            replay_window=replay_window,
        )
        self._pay_page_url = pay_page_url
        self._clock = clock
        self._mchid = mchid
        self._appid = appid
        self._trades: dict[str, _Trade] = {}

    @property
    def name(self) -> base.ProviderName:
        """ProviderName.SANDBOX."""
        return base.ProviderName.SANDBOX

    @property
    def key_id(self) -> str:
        """The `PUB_KEY_ID_...` serial the sandbox signs callbacks with."""
        return self._key_id

    def merchant_ids(self) -> tuple[str, str]:
        """The sandbox mchid and appid."""
        return self._mchid, self._appid

    # -- the provider protocol ----------------------------------------------

    async def create_payment(self, order_ref: base.PaymentRequest) -> base.PaymentIntent:
        """Register the trade and return the local pay-page URL."""
        existing = self._trades.get(order_ref.out_trade_no)
        if existing is not None and existing.amount_fen != order_ref.amount_fen:
            # WeChat answers OUT_TRADE_NO_USED for a reused number with other details.
            raise base.GatewayError(
                f"out_trade_no {order_ref.out_trade_no} already used for {existing.amount_fen} fen",
                status_code=400,
                code="OUT_TRADE_NO_USED",
            )
        if existing is None:
            self._trades[order_ref.out_trade_no] = _Trade(
                order_ref.out_trade_no, order_ref.amount_fen, order_ref.description
            )
        pay_url = f"{self._pay_page_url}?{urlencode({'out_trade_no': order_ref.out_trade_no})}"
        return base.PaymentIntent(
            provider=self.name,
            out_trade_no=order_ref.out_trade_no,
            amount_fen=order_ref.amount_fen,
            pay_url=pay_url,
        )

    async def query(self, out_trade_no: str) -> base.PaymentNotification:
        """The trade as the sandbox's books have it; TradeNotFound if never created."""
        return payment_from_transaction(self.name, self._transaction(self._trade(out_trade_no)))

    async def refund(self, request: base.RefundRequest) -> base.RefundResult:
        """Refund immediately (SUCCEEDED); the REFUND.SUCCESS callback is `refund_callback`."""
        trade = self._trade(request.out_trade_no)
        if trade.transaction_id is None:
            raise base.GatewayError(
                f"trade {trade.out_trade_no} is not paid", status_code=403, code="TRADE_NOT_PAID"
            )
        if request.total_fen != trade.amount_fen:
            raise base.GatewayError(
                f"total_fen {request.total_fen} differs from the trade's {trade.amount_fen}",
                status_code=400,
                code="PARAM_ERROR",
            )
        previous = trade.refunds.get(request.out_refund_no)
        if previous is None:
            if trade.refunded_fen + request.refund_fen > trade.amount_fen:
                raise base.GatewayError(
                    f"refund of {request.refund_fen} fen exceeds the refundable "
                    f"{trade.amount_fen - trade.refunded_fen} fen",
                    status_code=403,
                    code="NOT_ENOUGH",
                )
            previous = (f"SBXR{secrets.token_hex(12)}", request.refund_fen, self._now())
            trade.refunds[request.out_refund_no] = previous
        refund_id, refund_fen, _ = previous
        return base.RefundResult(
            provider=self.name,
            out_trade_no=trade.out_trade_no,
            out_refund_no=request.out_refund_no,
            refund_id=refund_id,
            refund_fen=refund_fen,
            status=base.PaymentStatus.SUCCEEDED,
        )

    # -- the sandbox's own side: "paying" and sending callbacks ---------------

    def pay(self, out_trade_no: str, *, payer_id: str = "sandbox-payer") -> SignedCallback:
        """Mark the trade paid (once) and return its signed TRANSACTION.SUCCESS callback.

        Calling it again returns a fresh delivery of the same event (new nonce and
        timestamp, same transaction id), like WeChat's resends.
        """
        trade = self._trade(out_trade_no)
        if trade.transaction_id is None:
            trade.transaction_id = f"SBX{secrets.token_hex(12)}"
            trade.payer_id = payer_id
            trade.paid_at = self._now()
        # A resend after a refund still reports the payment event itself.
        resource = {**self._transaction(trade), "trade_state": "SUCCESS"}
        return self._callback("TRANSACTION.SUCCESS", "transaction", resource, summary="支付成功")

    def refund_callback(self, out_trade_no: str, out_refund_no: str) -> SignedCallback:
        """The signed REFUND.SUCCESS callback of a refund made with `refund`."""
        trade = self._trade(out_trade_no)
        if out_refund_no not in trade.refunds:
            raise base.InvalidPaymentInput(f"no sandbox refund {out_refund_no} on {out_trade_no}")
        refund_id, refund_fen, refunded_at = trade.refunds[out_refund_no]
        resource = {
            "mchid": self._mchid,
            "out_trade_no": trade.out_trade_no,
            "transaction_id": trade.transaction_id,
            "out_refund_no": out_refund_no,
            "refund_id": refund_id,
            "refund_status": "SUCCESS",
            "success_time": refunded_at.astimezone(CHINA_TZ).isoformat(timespec="seconds"),
            "user_received_account": "沙箱零钱",
            "amount": {
                "total": trade.amount_fen,
                "refund": refund_fen,
                "payer_total": trade.amount_fen,
                "payer_refund": refund_fen,
            },
        }
        return self._callback("REFUND.SUCCESS", "refund", resource, summary="退款成功")

    def _trade(self, out_trade_no: str) -> _Trade:
        base.check_out_trade_no(out_trade_no)
        trade = self._trades.get(out_trade_no)
        if trade is None:
            raise base.TradeNotFound(
                f"sandbox has no trade {out_trade_no}", status_code=404, code="ORDER_NOT_EXIST"
            )
        return trade

    def _transaction(self, trade: _Trade) -> dict[str, Any]:
        if trade.transaction_id is None:
            state = "NOTPAY"
        elif trade.refunds:
            state = "REFUND"
        else:
            state = "SUCCESS"
        resource: dict[str, Any] = {
            "appid": self._appid,
            "mchid": self._mchid,
            "out_trade_no": trade.out_trade_no,
            "trade_type": "JSAPI",
            "trade_state": state,
            "trade_state_desc": trade.description,
            "amount": {"total": trade.amount_fen, "currency": "CNY"},
        }
        if trade.transaction_id is not None and trade.paid_at is not None:
            resource["transaction_id"] = trade.transaction_id
            resource["success_time"] = trade.paid_at.astimezone(CHINA_TZ).isoformat(
                timespec="seconds"
            )
            resource["payer"] = {"openid": trade.payer_id}
            resource["amount"]["payer_total"] = trade.amount_fen
        return resource

    def _callback(
        self, event_type: str, original_type: str, resource: Mapping[str, Any], *, summary: str
    ) -> SignedCallback:
        now = self._now()
        # Resends of one event keep its id, as WeChat's do.
        subject = resource.get("refund_id") or resource.get("transaction_id")
        event_id = "SBX-EV-" + hashlib.sha256(f"{event_type}:{subject}".encode()).hexdigest()[:24]
        encrypted = encrypt_resource(
            self._apiv3_key,
            json.dumps(resource, ensure_ascii=False).encode(),
            nonce=secrets.token_hex(6),
            associated_data=original_type,
            original_type=original_type,
        )
        body = json.dumps(
            {
                "id": event_id,
                "create_time": now.astimezone(CHINA_TZ).isoformat(timespec="seconds"),
                "resource_type": "encrypt-resource",
                "event_type": event_type,
                "summary": summary,
                "resource": encrypted,
            },
            ensure_ascii=False,
        ).encode()
        headers = signature_headers(
            self._signing_key,
            self._key_id,
            body,
            timestamp=int(now.timestamp()),
            nonce=secrets.token_hex(16),
        )
        return SignedCallback(headers=headers, body=body)

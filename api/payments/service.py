"""Payments: start a payment, take provider notifications, refund, reconcile by query.

No FastAPI here. The router passes raw headers and bytes; verification is the
provider's (api/payments/providers). A notification moves the order only when
it is verified *and* matches the order (amount, out_trade_no, merchant/app,
state); the order row is locked and ``payment_events.dedupe_key`` is unique, so
resends and races are answered "success" without a second effect.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth.models import SocialIdentity, SocialProvider
from api.core.errors import Conflict, InvalidInput, UpstreamUnavailable
from api.core.settings import Settings
from api.orders import service as orders
from api.orders import state
from api.orders.models import Order
from api.orders.state import OrderEventType, OrderStatus
from api.payments.models import Payment, PaymentEvent, Refund
from api.payments.providers import (
    GatewayError,
    HttpReply,
    NotificationKind,
    PaymentError,
    PaymentIntent,
    PaymentNotification,
    PaymentProvider,
    PaymentRequest,
    PaymentStatus,
    ProviderName,
    RefundRequest,
    order_mismatch,
)

log = structlog.get_logger("api.payments")

_SUFFIX = {ProviderName.WECHATPAY: "W", ProviderName.ALIPAY: "A", ProviderName.SANDBOX: "S"}


class ProviderUnavailable(InvalidInput):
    """The asked-for payment provider is not configured here."""

    status_code = 422
    code = "payment_provider_unavailable"
    message = "This payment method is not available."


class NotPayable(Conflict):
    """The order is not waiting for payment (paid, cancelled or expired)."""

    code = "order_not_payable"
    message = "This order is not waiting for payment."


class PaymentGatewayFailed(UpstreamUnavailable):
    """The provider refused or failed the request."""

    code = "payment_gateway_failed"
    message = "The payment service is unavailable; please try again later."


class WeChatLoginRequired(InvalidInput):
    """WeChat Pay (JSAPI) needs the payer's openid: sign in with WeChat first."""

    status_code = 422
    code = "wechat_login_required"
    message = "Sign in with WeChat to pay with WeChat Pay."


async def payer_openid(session: AsyncSession, provider: ProviderName, user_id: int) -> str | None:
    """The payer id a provider needs: the WeChat openid for WeChat Pay, else None."""
    if provider is not ProviderName.WECHATPAY:
        return None
    openid = await session.scalar(
        select(SocialIdentity.openid).where(
            SocialIdentity.user_id == user_id,
            SocialIdentity.provider == SocialProvider.WECHAT.value,
        )
    )
    if openid is None:
        raise WeChatLoginRequired()
    return openid


def out_trade_no(order: Order, provider: ProviderName) -> str:
    """Our trade number at ``provider``: the order number plus a provider letter."""
    return order.order_no + _SUFFIX[provider]


async def start_payment(
    session: AsyncSession,
    order: Order,
    provider: PaymentProvider,
    *,
    description: str,
    payer_id: str | None,
    now: datetime,
) -> PaymentIntent:
    """Create (or reuse) the order's payment at ``provider`` and return what the client needs."""
    order = await orders.lock_order(session, order.id)
    if order.status != OrderStatus.PENDING_PAYMENT.value or (
        order.expires_at is not None and order.expires_at <= now
    ):
        raise NotPayable()
    trade_no = out_trade_no(order, provider.name)
    payment = await session.scalar(select(Payment).where(Payment.out_trade_no == trade_no))
    if payment is None:
        session.add(
            Payment(
                order_id=order.id,
                provider=provider.name.value,
                out_trade_no=trade_no,
                amount_fen=order.amount_fen,
                status=PaymentStatus.PENDING.value,
                created_at=now,
                updated_at=now,
            )
        )
    order.payment_provider = provider.name.value
    try:
        intent = await provider.create_payment(
            PaymentRequest(
                out_trade_no=trade_no,
                amount_fen=order.amount_fen,
                description=description,
                payer_id=payer_id,
                expires_at=order.expires_at,
            )
        )
    except (GatewayError, PaymentError) as exc:
        await session.rollback()
        log.warning("create_payment_failed", provider=provider.name, error=str(exc)[:200])
        raise PaymentGatewayFailed() from exc
    await session.commit()
    return intent


@dataclass(frozen=True)
class NotifyOutcome:
    """What a notification did (for logs and tests) and the reply for the provider."""

    outcome: str
    reply: HttpReply


async def handle_notification(
    session: AsyncSession,
    provider: PaymentProvider,
    headers: Mapping[str, str],
    raw_body: bytes,
    settings: Settings,
    *,
    now: datetime,
) -> NotifyOutcome:
    """Verify, check and apply one provider callback; the reply is exactly what it expects."""
    try:
        note = provider.parse_notification(headers, raw_body, now=now)
    except PaymentError as exc:
        # Not verifiably from the provider (forged, probe, stale, garbled): change nothing.
        log.warning("notification_rejected", provider=provider.name, error=type(exc).__name__)
        return NotifyOutcome("rejected", provider.failure_response(type(exc).__name__))
    outcome = await apply_notification(session, provider, note, settings, now=now, source="notify")
    if outcome in ("unknown_order", "mismatch"):
        return NotifyOutcome(outcome, provider.failure_response(outcome))
    return NotifyOutcome(outcome, provider.success_response())


async def apply_notification(
    session: AsyncSession,
    provider: PaymentProvider,
    note: PaymentNotification,
    settings: Settings,
    *,
    now: datetime,
    source: str,
) -> str:
    """Apply a verified notification or query answer; returns the outcome name.

    ``unknown_order`` / ``mismatch``: nothing stored (the provider will resend; a
    mismatch is logged for review). ``duplicate``: already processed. ``paid``,
    ``refund_succeeded``, ``paid_after_cancel`` (refunded at once), ``ignored``.
    """
    payment = await session.scalar(select(Payment).where(Payment.out_trade_no == note.out_trade_no))
    if payment is None or payment.provider != provider.name.value:
        log.warning("notification_unknown_order", out_trade_no=note.out_trade_no)
        return "unknown_order"
    order = await orders.lock_order(session, payment.order_id)
    if note.kind is NotificationKind.REFUND:
        refund = await session.scalar(
            select(Refund).where(Refund.out_refund_no == (note.out_refund_no or ""))
        )
        if refund is None:
            return "unknown_order"
        expected = provider.expected(
            payment.out_trade_no, refund.amount_fen, NotificationKind.REFUND
        )
    else:
        expected = provider.expected(payment.out_trade_no, payment.amount_fen)
    if note.status is not PaymentStatus.SUCCEEDED and source == "query":
        return "not_paid"
    mismatch = order_mismatch(note, expected)
    if mismatch is not None:
        log.error("notification_mismatch", out_trade_no=note.out_trade_no, detail=str(mismatch))
        return "mismatch"
    if await session.scalar(
        select(PaymentEvent.id).where(PaymentEvent.dedupe_key == note.dedupe_key)
    ):
        return "duplicate"
    session.add(
        PaymentEvent(
            order_id=order.id,
            provider=provider.name.value,
            kind=note.kind.value,
            source=source,
            dedupe_key=note.dedupe_key,
            out_trade_no=note.out_trade_no,
            provider_txn_id=note.provider_txn_id,
            amount_fen=note.amount_fen,
            trade_state=note.trade_state,
            raw=dict(note.raw),
            created_at=now,
        )
    )
    if note.kind is NotificationKind.REFUND:
        assert refund is not None
        refund.status = PaymentStatus.SUCCEEDED.value
        refund.provider_refund_id = note.provider_txn_id
        refund.updated_at = now
        outcome = "refund_succeeded"
    elif payment.status == PaymentStatus.SUCCEEDED.value:
        # Another event of the same payment (e.g. Alipay TRADE_FINISHED after SUCCESS).
        outcome = "duplicate"
    else:
        payment.status = PaymentStatus.SUCCEEDED.value
        payment.provider_txn_id = note.provider_txn_id
        payment.paid_at = note.success_time or now
        payment.updated_at = now
        if order.status == OrderStatus.PENDING_PAYMENT.value:
            await state.apply(
                session, order, OrderEventType.PAID, actor_id=None, now=now,
                data={"provider": provider.name.value, "txn": note.provider_txn_id},
            )  # fmt: skip
            await orders.confirm_reservation(session, order, now)
            outcome = "paid"
        else:
            # Money for an order we already closed (expired/cancelled): give it back.
            order.paid_at = order.paid_at or now
            await refund_payment(
                session, provider, order, payment, payment.amount_fen, "paid_after_close", now=now
            )
            outcome = "paid_after_cancel"
    try:
        await session.commit()
    except IntegrityError:
        # A concurrent delivery of the same event won the unique dedupe_key.
        await session.rollback()
        return "duplicate"
    return outcome


async def refund_payment(
    session: AsyncSession,
    provider: PaymentProvider,
    order: Order,
    payment: Payment,
    amount_fen: int,
    reason: str,
    *,
    now: datetime,
) -> Refund:
    """Ask the provider to refund ``amount_fen`` and record it (caller commits)."""
    n = len(list(await session.scalars(select(Refund.id).where(Refund.order_id == order.id))))
    refund = Refund(
        order_id=order.id,
        provider=provider.name.value,
        out_refund_no=f"{payment.out_trade_no}R{n + 1}",
        amount_fen=amount_fen,
        status=PaymentStatus.PROCESSING.value,
        reason=reason,
        created_at=now,
        updated_at=now,
    )
    session.add(refund)
    try:
        result = await provider.refund(
            RefundRequest(
                out_trade_no=payment.out_trade_no,
                out_refund_no=refund.out_refund_no,
                refund_fen=amount_fen,
                total_fen=payment.amount_fen,
                reason=reason,
            )
        )
    except (GatewayError, PaymentError) as exc:
        log.warning("refund_failed", out_trade_no=payment.out_trade_no, error=str(exc)[:200])
        raise PaymentGatewayFailed() from exc
    refund.provider_refund_id = result.refund_id
    refund.status = result.status.value
    order.refunded_fen += amount_fen
    return refund


async def paid_payment(session: AsyncSession, order: Order) -> Payment | None:
    """The order's succeeded payment, if any."""
    return await session.scalar(
        select(Payment).where(
            Payment.order_id == order.id, Payment.status == PaymentStatus.SUCCEEDED.value
        )
    )


async def cancel_order(
    session: AsyncSession,
    providers: Mapping[ProviderName, PaymentProvider],
    order_id: int,
    actor_id: int,
    settings: Settings,
    *,
    reason: str,
    now: datetime,
) -> Order:
    """Cancel a pending order: release the worker, refund what was paid minus the late fee."""
    order = await orders.lock_order(session, order_id)
    if not state.allowed(order, OrderEventType.CANCELLED):
        raise state.IllegalTransition()
    fee = orders.cancel_fee(order, settings, now)
    payment = await paid_payment(session, order)
    await state.apply(
        session, order, OrderEventType.CANCELLED, actor_id=actor_id, now=now,
        data={"reason": reason, "fee_fen": fee},
    )  # fmt: skip
    await orders.release_reservation(session, order, now)
    order.cancel_fee_fen = fee
    if payment is not None and payment.amount_fen - fee > 0:
        provider = providers.get(ProviderName(payment.provider))
        if provider is None:
            raise ProviderUnavailable()
        await refund_payment(
            session, provider, order, payment, payment.amount_fen - fee, "cancelled", now=now
        )
    await session.commit()
    return order


async def approve_refund(
    session: AsyncSession,
    providers: Mapping[ProviderName, PaymentProvider],
    order_id: int,
    actor_id: int,
    *,
    approve: bool,
    now: datetime,
) -> Order:
    """Staff decide an after-sales refund request; approval refunds what is left."""
    order = await orders.lock_order(session, order_id)
    event = OrderEventType.REFUND_APPROVED if approve else OrderEventType.REFUND_REJECTED
    if not state.allowed(order, event):
        raise state.IllegalTransition()
    await state.apply(session, order, event, actor_id=actor_id, now=now)
    payment = await paid_payment(session, order)
    if approve and payment is not None and payment.amount_fen - order.refunded_fen > 0:
        provider = providers.get(ProviderName(payment.provider))
        if provider is None:
            raise ProviderUnavailable()
        await refund_payment(
            session, provider, order, payment, payment.amount_fen - order.refunded_fen,
            "after_sales", now=now,
        )  # fmt: skip
    await session.commit()
    return order


async def reconcile(
    session: AsyncSession,
    providers: Mapping[ProviderName, PaymentProvider],
    order: Order,
    settings: Settings,
    *,
    now: datetime,
) -> str:
    """Ask the provider about every pending payment of the order (no notification came)."""
    outcome = "not_paid"
    pending = list(
        await session.scalars(
            select(Payment).where(
                Payment.order_id == order.id, Payment.status == PaymentStatus.PENDING.value
            )
        )
    )
    for payment in pending:
        provider = providers.get(ProviderName(payment.provider))
        if provider is None:
            continue
        try:
            note = await provider.query(payment.out_trade_no)
        except (GatewayError, PaymentError) as exc:
            log.warning("query_failed", out_trade_no=payment.out_trade_no, error=str(exc)[:200])
            continue
        if note.status is PaymentStatus.SUCCEEDED or note.trade_state in ("SUCCESS", "REFUND"):
            result = await apply_notification(
                session, provider, note, settings, now=now, source="query"
            )
            if result in ("paid", "duplicate", "paid_after_cancel"):
                outcome = result
    return outcome


async def fresh_status(session: AsyncSession, order: Order) -> str:
    """The order's status as the database has it now (after a reconcile applied a payment)."""
    fresh = await session.get(Order, order.id, populate_existing=True)
    return fresh.status if fresh else order.status


async def payment_by_trade_no(session: AsyncSession, out_trade_no: str) -> Payment | None:
    """The payment with merchant trade number ``out_trade_no``, or None."""
    return await session.scalar(select(Payment).where(Payment.out_trade_no == out_trade_no))

"""The one module that changes an order's state (DESIGN.md §4).

Every transition is a row of ``TRANSITIONS``; ``apply`` checks it, changes the
order, appends an ``order_events`` row and writes the outbox messages, all in
the caller's transaction (the caller commits). Anything else is ``IllegalTransition``
(409). Nothing outside this module assigns ``Order.status``, ``dispatch_status``
or ``aftersales_status``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from api.core.errors import Conflict
from api.notifications.outbox import enqueue, outbox_rows
from api.orders.models import Order, OrderEvent


class OrderStatus(StrEnum):
    """Main order state: 待支付 → 待服务 → 服务中 → 已完成, or 已取消."""

    PENDING_PAYMENT = "pending_payment"
    PENDING_SERVICE = "pending_service"
    IN_SERVICE = "in_service"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class DispatchStatus(StrEnum):
    """Dispatch sub-state inside PENDING_SERVICE."""

    AWAITING_DISPATCH = "awaiting_dispatch"
    OFFERED = "offered"
    ACCEPTED = "accepted"
    EN_ROUTE = "en_route"
    ARRIVED = "arrived"
    #: The dispatcher gave up (too many declined or lapsed offers, or the latest start
    #: passed): the order waits on the enterprise board for staff to assign it.
    ESCALATED = "escalated"


#: Sub-states with a worker committed to the order.
COMMITTED = (
    DispatchStatus.ACCEPTED.value,
    DispatchStatus.EN_ROUTE.value,
    DispatchStatus.ARRIVED.value,
)


class AfterSalesStatus(StrEnum):
    """After-sales sub-state of a completed order."""

    REFUND_REQUESTED = "refund_requested"
    REFUNDED = "refunded"
    REFUND_REJECTED = "refund_rejected"


class OrderEventType(StrEnum):
    """What happened to an order (the ``order_events.event`` column)."""

    CREATED = "created"
    PAID = "paid"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    OFFERED = "offered"
    OFFER_LAPSED = "offer_lapsed"
    ESCALATED = "escalated"
    ACCEPTED = "accepted"
    REASSIGNED = "reassigned"
    DEPARTED = "departed"
    ARRIVED = "arrived"
    STARTED = "started"
    COMPLETED = "completed"
    REFUND_REQUESTED = "refund_requested"
    REFUND_APPROVED = "refund_approved"
    REFUND_REJECTED = "refund_rejected"


S, D, A, E = OrderStatus, DispatchStatus, AfterSalesStatus, OrderEventType
_ANY = object()


@dataclass(frozen=True)
class Transition:
    """From (status, sub-state) to (status, sub-state) on an event; None = no sub-state."""

    event: OrderEventType
    from_status: tuple[OrderStatus, ...]
    to_status: OrderStatus | None  # None: main status unchanged
    from_dispatch: tuple[DispatchStatus | None, ...] | None = None  # None: any
    to_dispatch: DispatchStatus | object | None = _ANY  # _ANY: unchanged
    from_aftersales: tuple[AfterSalesStatus | None, ...] | None = None
    to_aftersales: AfterSalesStatus | object | None = _ANY
    notify: bool = True


_PRE = (S.PENDING_PAYMENT, S.PENDING_SERVICE)
TRANSITIONS: dict[OrderEventType, Transition] = {
    t.event: t
    for t in (
        Transition(E.PAID, (S.PENDING_PAYMENT,), S.PENDING_SERVICE, None, D.AWAITING_DISPATCH),
        Transition(E.EXPIRED, (S.PENDING_PAYMENT,), S.CANCELLED),
        Transition(E.CANCELLED, _PRE, S.CANCELLED, None, None),
        Transition(
            E.OFFERED, (S.PENDING_SERVICE,), None, (D.AWAITING_DISPATCH,), D.OFFERED, notify=False
        ),
        # A declined, expired or withdrawn offer: back in the queue; internal, no customer message.
        Transition(
            E.OFFER_LAPSED,
            (S.PENDING_SERVICE,),
            None,
            (D.OFFERED,),
            D.AWAITING_DISPATCH,
            notify=False,
        ),
        # The dispatcher hands the order to a human (dispatch.offers: Escalated).
        Transition(
            E.ESCALATED,
            (S.PENDING_SERVICE,),
            None,
            (D.AWAITING_DISPATCH,),
            D.ESCALATED,
            notify=False,
        ),
        Transition(
            E.ACCEPTED,
            (S.PENDING_SERVICE,),
            None,
            (D.AWAITING_DISPATCH, D.OFFERED, D.ESCALATED),
            D.ACCEPTED,
        ),
        # Staff move an accepted order to another worker (enterprise dispatch board).
        Transition(E.REASSIGNED, (S.PENDING_SERVICE,), None, (D.ACCEPTED,), D.ACCEPTED),
        Transition(E.DEPARTED, (S.PENDING_SERVICE,), None, (D.ACCEPTED,), D.EN_ROUTE),
        Transition(E.ARRIVED, (S.PENDING_SERVICE,), None, (D.EN_ROUTE,), D.ARRIVED),
        Transition(E.STARTED, (S.PENDING_SERVICE,), S.IN_SERVICE, (D.ARRIVED,), None),
        Transition(E.COMPLETED, (S.IN_SERVICE,), S.COMPLETED),
        Transition(
            E.REFUND_REQUESTED, (S.COMPLETED,), None, None, _ANY, (None,), A.REFUND_REQUESTED
        ),
        Transition(
            E.REFUND_APPROVED, (S.COMPLETED,), None, None, _ANY, (A.REFUND_REQUESTED,), A.REFUNDED
        ),
        Transition(
            E.REFUND_REJECTED,
            (S.COMPLETED,),
            None,
            None,
            _ANY,
            (A.REFUND_REQUESTED,),
            A.REFUND_REJECTED,
        ),
    )
}


class IllegalTransition(Conflict):
    """The order is not in a state that allows this action (409)."""

    code = "illegal_transition"
    message = "This order cannot do that in its current state."


def allowed(order: Order, event: OrderEventType) -> bool:
    """Whether ``event`` may happen to ``order`` now."""
    t = TRANSITIONS[event]
    if OrderStatus(order.status) not in t.from_status:
        return False
    if t.from_dispatch is not None and order.dispatch_status not in t.from_dispatch:
        return False
    return not (t.from_aftersales is not None and order.aftersales_status not in t.from_aftersales)


def begin(order: Order) -> None:
    """Put a new, unsaved order in its first state, PENDING_PAYMENT."""
    order.status = OrderStatus.PENDING_PAYMENT.value
    order.dispatch_status = None
    order.aftersales_status = None


@dataclass(frozen=True)
class IdempotencyRecord:
    """The answer to store for a create request made with an ``Idempotency-Key``."""

    user_id: int
    scope: str
    key: str
    request_hash: str
    status_code: int
    response: dict[str, Any]


@dataclass(frozen=True)
class CreationRows:
    """Everything a new order is written as, besides its own row: row values per table.

    ``api.orders.store`` adapters write exactly these (the order row is the ``Order``
    itself); nothing else decides what a created order looks like.
    """

    event: dict[str, Any]
    outbox: tuple[dict[str, Any], ...]
    idempotency: dict[str, Any] | None


def creation_rows(
    order: Order,
    *,
    actor_id: int | None,
    now: datetime,
    idempotency: IdempotencyRecord | None = None,
) -> CreationRows:
    """The ``created`` event, outbox messages and idempotency row of ``order`` (id known).

    The order must have been put in its first state by ``begin``.
    """
    if order.status != OrderStatus.PENDING_PAYMENT.value:
        raise IllegalTransition(details={"status": order.status, "event": E.CREATED.value})
    event = {
        "order_id": order.id,
        "event": E.CREATED.value,
        "from_status": None,
        "to_status": order.status,
        "from_sub": None,
        "to_sub": None,
        "actor_id": actor_id,
        "data": {},
        "created_at": now,
    }
    key = None
    if idempotency is not None:
        key = {
            "user_id": idempotency.user_id,
            "scope": idempotency.scope,
            "key": idempotency.key,
            "request_hash": idempotency.request_hash,
            "status_code": idempotency.status_code,
            "response": idempotency.response,
            "created_at": now,
        }
    return CreationRows(
        event=event,
        outbox=tuple(outbox_rows(order, E.CREATED.value, now=now)),
        idempotency=key,
    )


async def apply(
    session: AsyncSession,
    order: Order,
    event: OrderEventType,
    *,
    actor_id: int | None,
    now: datetime,
    data: dict[str, Any] | None = None,
) -> None:
    """Move ``order`` by ``event`` (or raise IllegalTransition), logging it and its outbox."""
    if not allowed(order, event):
        raise IllegalTransition(
            details={
                "status": order.status,
                "dispatch_status": order.dispatch_status,
                "aftersales_status": order.aftersales_status,
                "event": event.value,
            }
        )
    t = TRANSITIONS[event]
    before = (order.status, order.dispatch_status or order.aftersales_status)
    if t.to_status is not None:
        order.status = t.to_status.value
    if t.to_dispatch is not _ANY:
        order.dispatch_status = None if t.to_dispatch is None else str(t.to_dispatch)
    if t.to_aftersales is not _ANY:
        order.aftersales_status = None if t.to_aftersales is None else str(t.to_aftersales)
    if event is E.PAID:
        order.paid_at = now
        order.expires_at = None
    elif event in (E.CANCELLED, E.EXPIRED):
        order.cancelled_at = now
        order.dispatch_status = None
    elif event is E.COMPLETED:
        order.completed_at = now
    order.updated_at = now
    session.add(
        OrderEvent(
            order_id=order.id,
            event=event.value,
            from_status=before[0],
            to_status=order.status,
            from_sub=before[1],
            to_sub=order.dispatch_status or order.aftersales_status,
            actor_id=actor_id,
            data=data or {},
            created_at=now,
        )
    )
    if t.notify:
        await enqueue(session, order, event.value, now=now)

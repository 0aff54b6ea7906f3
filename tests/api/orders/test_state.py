"""The state machine alone: every (state, event) pair is either in the table or a 409."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from api.notifications.models import OutboxMessage
from api.orders import state
from api.orders.models import Order, OrderEvent
from api.orders.state import (
    AfterSalesStatus,
    DispatchStatus,
    IllegalTransition,
    OrderEventType,
    OrderStatus,
)

NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
E = OrderEventType


class _Session:
    """Collects what the state machine adds (it only adds rows; the caller commits)."""

    def __init__(self) -> None:
        self.added: list[Any] = []

    def add(self, row: Any) -> None:
        self.added.append(row)


def _order(status: OrderStatus, dispatch: str | None = None, after: str | None = None) -> Order:
    return Order(
        id=1, order_no="DJ1", customer_id=7, service_id=3, status=status.value,
        dispatch_status=dispatch, aftersales_status=after, slot_start=NOW, amount_fen=100,
    )  # fmt: skip


#: The happy path and every legal branch, as (event, resulting status, sub-state).
PATH = [
    (E.PAID, OrderStatus.PENDING_SERVICE, DispatchStatus.AWAITING_DISPATCH),
    (E.OFFERED, OrderStatus.PENDING_SERVICE, DispatchStatus.OFFERED),
    (E.ACCEPTED, OrderStatus.PENDING_SERVICE, DispatchStatus.ACCEPTED),
    (E.DEPARTED, OrderStatus.PENDING_SERVICE, DispatchStatus.EN_ROUTE),
    (E.ARRIVED, OrderStatus.PENDING_SERVICE, DispatchStatus.ARRIVED),
    (E.STARTED, OrderStatus.IN_SERVICE, None),
    (E.COMPLETED, OrderStatus.COMPLETED, None),
    (E.REFUND_REQUESTED, OrderStatus.COMPLETED, AfterSalesStatus.REFUND_REQUESTED),
    (E.REFUND_APPROVED, OrderStatus.COMPLETED, AfterSalesStatus.REFUNDED),
]


def test_happy_path_logs_every_step_and_writes_the_outbox() -> None:
    order = _order(OrderStatus.PENDING_PAYMENT)
    session = _Session()
    for event, status, sub in PATH:
        asyncio.run(state.apply(session, order, event, actor_id=1, now=NOW))  # type: ignore[arg-type]
        assert order.status == status.value
        assert (order.dispatch_status or order.aftersales_status) == (sub.value if sub else None)
    events = [r for r in session.added if isinstance(r, OrderEvent)]
    assert [e.event for e in events] == [e.value for e, _, _ in PATH]
    # Every notifying transition writes one message per channel; "offered" is internal.
    outbox = [r for r in session.added if isinstance(r, OutboxMessage)]
    assert len(outbox) == 2 * (len(PATH) - 1)
    assert order.paid_at == NOW
    assert order.completed_at == NOW


@pytest.mark.parametrize("status", list(OrderStatus))
def test_everything_not_in_the_table_is_illegal(status: OrderStatus) -> None:
    subs: list[tuple[str | None, str | None]] = [(None, None)]
    subs += [(d.value, None) for d in DispatchStatus] + [(None, a.value) for a in AfterSalesStatus]
    for dispatch, after in subs:
        for event in state.TRANSITIONS:
            order = _order(status, dispatch, after)
            t = state.TRANSITIONS[event]
            legal = (
                status in t.from_status
                and (t.from_dispatch is None or dispatch in t.from_dispatch)
                and (t.from_aftersales is None or after in t.from_aftersales)
            )
            session = _Session()
            if legal:
                asyncio.run(state.apply(session, order, event, actor_id=None, now=NOW))  # type: ignore[arg-type]
            else:
                with pytest.raises(IllegalTransition):
                    asyncio.run(state.apply(session, order, event, actor_id=None, now=NOW))  # type: ignore[arg-type]
                assert order.status == status.value
                assert session.added == []


def test_cancel_only_from_pending_states() -> None:
    for status in OrderStatus:
        order = _order(status)
        assert state.allowed(order, E.CANCELLED) == (
            status in (OrderStatus.PENDING_PAYMENT, OrderStatus.PENDING_SERVICE)
        )


def test_offer_lapsed_requeues_without_telling_the_customer() -> None:
    order = _order(OrderStatus.PENDING_SERVICE, DispatchStatus.OFFERED.value)
    session = _Session()
    asyncio.run(state.apply(session, order, E.OFFER_LAPSED, actor_id=None, now=NOW))  # type: ignore[arg-type]
    assert order.status == OrderStatus.PENDING_SERVICE.value
    assert order.dispatch_status == DispatchStatus.AWAITING_DISPATCH.value
    events = [r for r in session.added if isinstance(r, OrderEvent)]
    assert [(e.event, e.from_sub, e.to_sub) for e in events] == [
        ("offer_lapsed", "offered", "awaiting_dispatch")
    ]
    assert not [r for r in session.added if isinstance(r, OutboxMessage)]
    # Only from "offered": an accepted order cannot lapse.
    accepted = _order(OrderStatus.PENDING_SERVICE, DispatchStatus.ACCEPTED.value)
    with pytest.raises(IllegalTransition):
        asyncio.run(state.apply(_Session(), accepted, E.OFFER_LAPSED, actor_id=None, now=NOW))  # type: ignore[arg-type]
    assert OrderEventType.OFFER_LAPSED in state.TRANSITIONS

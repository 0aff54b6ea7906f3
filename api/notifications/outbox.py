"""Writing outbox messages: called by orders.state inside the transition's transaction."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from api.notifications.models import OutboxMessage


class Order(Protocol):
    """What a customer's message tells of an order (``api.orders.models.Order`` has it all).

    Notifications sit below orders: orders write their messages in the transition's
    transaction, so this module names the fields it reads instead of importing the model.
    """

    id: int
    order_no: str
    customer_id: int
    service_id: int
    status: str
    dispatch_status: str | None
    aftersales_status: str | None
    slot_start: datetime
    amount_fen: int


class Channel(StrEnum):
    """Where a message goes."""

    INBOX = "inbox"
    WECHAT = "wechat"


class OutboxStatus(StrEnum):
    """Delivery state of one outbox message."""

    PENDING = "pending"
    DELIVERED = "delivered"
    REFUSED = "refused"  # WeChat 43101: the user refused or used up the subscription
    SKIPPED = "skipped"  # channel not configured, no openid, or the offer is over: not sent
    LIVE = "live"  # a worker message whose worker had a live socket: the frame was enough


class WorkerTopic(StrEnum):
    """Topics of the messages to a worker (socket frame type ``offer``/``assigned``/...)."""

    OFFER = "worker_offer"
    ASSIGNED = "worker_assigned"
    WITHDRAWN = "worker_withdrawn"


#: ``payload["recipient"]`` of a message to a worker (the relay checks presence first).
WORKER = "worker"


def outbox_rows(order: Order, topic: str, *, now: datetime) -> list[dict[str, Any]]:
    """The customer's messages about ``order`` for ``topic``, one per channel, as row values."""
    payload = {
        "order_id": order.id,
        "order_no": order.order_no,
        "status": order.status,
        "sub_status": order.dispatch_status or order.aftersales_status,
        "slot_start": order.slot_start.isoformat(),
        "amount_fen": order.amount_fen,
        "service_id": order.service_id,
    }
    return [
        {
            "channel": channel.value,
            "topic": topic,
            "user_id": order.customer_id,
            "order_id": order.id,
            "payload": payload,
            "status": OutboxStatus.PENDING.value,
            "attempts": 0,
            "next_attempt_at": now,
            "last_error": "",
            "created_at": now,
        }
        for channel in Channel
    ]


def worker_row(
    user_id: int, topic: WorkerTopic, payload: dict[str, Any], *, now: datetime
) -> dict[str, Any]:
    """A WeChat subscribe message to a worker's user about an offer, assignment or withdrawal.

    ``payload`` carries ``worker_id``, ``order_id`` and ``order_no`` (and ``offer_id`` /
    ``expires_at`` for an offer); the relay sends it only while the worker has no live
    socket (``OutboxStatus.LIVE`` otherwise) and drops an offer that expired meanwhile.
    """
    return {
        "channel": Channel.WECHAT.value,
        "topic": topic.value,
        "user_id": user_id,
        "order_id": payload["order_id"],
        "payload": {**payload, "recipient": WORKER},
        "status": OutboxStatus.PENDING.value,
        "attempts": 0,
        "next_attempt_at": now,
        "last_error": "",
        "created_at": now,
    }


async def enqueue(session: AsyncSession, order: Order, topic: str, *, now: datetime) -> None:
    """Add the customer's messages about ``order`` for ``topic`` (one per channel)."""
    for row in outbox_rows(order, topic, now=now):
        session.add(OutboxMessage(**row))

"""User-facing notification titles (msgids translated through the i18n catalogs)."""

from __future__ import annotations

from api.core.errors import register_texts

#: Title of the message per order event (topic).
TITLES: dict[str, str] = {
    "created": "Order placed, awaiting payment",
    "paid": "Payment received, awaiting service",
    "expired": "Order closed: not paid in time",
    "cancelled": "Order cancelled",
    "accepted": "A worker accepted your order",
    "departed": "Your worker is on the way",
    "arrived": "Your worker has arrived",
    "started": "Service started",
    "completed": "Service completed",
    "refund_requested": "Refund requested",
    "refund_approved": "Refund approved",
    "refund_rejected": "Refund rejected",
    # To workers (a WeChat ``thing`` value: each translation within 20 characters).
    "worker_offer": "New job offer",
    "worker_assigned": "Job assigned to you",
    "worker_withdrawn": "Job withdrawn",
}
GENERIC = "Your order was updated"


def topic_title(topic: str) -> str:
    """The msgid of the title for ``topic``."""
    return TITLES.get(topic, GENERIC)


register_texts(*TITLES.values(), GENERIC)

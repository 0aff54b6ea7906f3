"""Pydantic in/out models of the orders API (money in fen, times UTC ISO 8601)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class BookingIn(_In):
    """Book ``service_id`` at a saved address for a slot start (from /v1/orders/slots)."""

    service_id: int = Field(ge=1, le=2**53 - 1)
    address_id: int = Field(ge=1, le=2**53 - 1)
    slot_start: AwareDatetime
    note: str = Field(default="", max_length=200)
    preferred_worker_id: int | None = Field(default=None, ge=1, le=2**53 - 1)


class RebookIn(_In):
    """Book the same service at the same address, preferring the same worker."""

    slot_start: AwareDatetime


class CancelIn(_In):
    """Why the order is cancelled (free text, optional)."""

    reason: str = Field(default="", max_length=200)


class ProgressIn(_In):
    """A worker's (or staff's) step in the visit."""

    action: Literal["accept", "depart", "arrive", "start", "complete"]


class RefundRequestIn(_In):
    """An after-sales refund request."""

    reason: str = Field(min_length=1, max_length=200)


class RefundDecisionIn(_In):
    """Staff approve or reject an after-sales refund."""

    approve: bool


class QuoteLineOut(BaseModel):
    """One price line."""

    code: str
    label: str
    amount_fen: int


class QuoteOut(BaseModel):
    """The price of a service at a start time."""

    service_id: int
    slot_start: datetime
    price_fen: int
    surcharge_fen: int
    amount_fen: int
    lines: list[QuoteLineOut]


class SlotOut(BaseModel):
    """A bookable start window (UTC) and how many workers could take it."""

    start: datetime
    end: datetime
    available_workers: int


class SlotList(BaseModel):
    """Slots of one local day."""

    service_id: int
    date: date
    timezone: str
    slots: list[SlotOut]


class WorkerBrief(BaseModel):
    """The worker of an order (no contact data)."""

    id: int
    display_name: str
    rating: float


class OrderOut(BaseModel):
    """An order as its customer, worker or enterprise staff sees it."""

    id: int
    order_no: str
    status: str
    status_label: str
    dispatch_status: str | None
    aftersales_status: str | None
    service_id: int
    service_name: str
    enterprise_id: int
    customer_id: int
    worker: WorkerBrief | None
    slot_start: datetime
    slot_end: datetime
    duration_min: int
    price_fen: int
    surcharge_fen: int
    amount_fen: int
    refunded_fen: int
    cancel_fee_fen: int
    quote_lines: list[QuoteLineOut]
    address: dict[str, str]
    note: str
    payment_provider: str | None
    created_at: datetime
    expires_at: datetime | None
    paid_at: datetime | None
    cancelled_at: datetime | None
    completed_at: datetime | None


class OrderList(BaseModel):
    """A page of orders."""

    items: list[OrderOut]
    total: int
    limit: int
    offset: int


class OrderEventOut(BaseModel):
    """One entry of the order's audit log."""

    event: str
    from_status: str | None
    to_status: str
    from_sub: str | None
    to_sub: str | None
    created_at: datetime


class ShareOut(BaseModel):
    """A signed, expiring link to a read-only summary."""

    token: str
    path: str
    expires_at: datetime


class SharedOrderOut(BaseModel):
    """What a share link shows: no names, phones or address."""

    order_no_tail: str
    service_name: str
    status: str
    status_label: str
    slot_start: datetime
    duration_min: int
    worker_name: str | None

"""The orders domain's service layer, one import away: quote, slots, booking, history, holds.

The logic lives by concern in sibling modules — ``quote`` (prices), ``slots`` (the
workers' days and bookable slots), ``booking`` (the engine's worker choice and the
new order), ``store`` (persistence adapters, chosen once at startup), ``history``
(reading, holds, cancel/expiry, worker actions, share links), ``idempotency`` and
``errors``. This module re-exports their public names for the routers and the other
domains. No FastAPI here; state changes go through ``api.orders.state`` only.
"""

from __future__ import annotations

from api.orders.booking import (
    Booked,
    BookingRequest,
    book,
    booking_seed,
    check_slot,
    new_order_no,
)
from api.orders.errors import (
    IdempotencyKeyReused,
    OrderNotFound,
    OutsideArea,
    RefundWindowClosed,
    ShareLinkInvalid,
    SlotInPast,
    SlotNotOnGrid,
    SlotTaken,
    SlotTooFar,
    UnknownService,
    WorkerBookedThen,
    WorkerBusy,
)
from api.orders.history import (
    WORKER_EVENTS,
    OrderFilter,
    assign_worker,
    cancel_fee,
    confirm_reservation,
    expire_unpaid,
    get_order,
    is_aftersales_pending,
    list_orders,
    lock_order,
    may_see,
    order_events,
    read_share_token,
    release_reservation,
    request_refund,
    service_and_worker,
    share_token,
    visible_order,
    worker_action,
    worker_id_of,
)
from api.orders.idempotency import request_hash, store_response, stored_response
from api.orders.quote import QUOTE_LABELS, Quote, QuoteLine, bookable_service, quote
from api.orders.slots import BookingEnv, SlotOut, available_slots
from api.orders.store import is_slot_conflict, order_store

__all__ = [
    "QUOTE_LABELS",
    "WORKER_EVENTS",
    "Booked",
    "BookingEnv",
    "BookingRequest",
    "IdempotencyKeyReused",
    "OrderFilter",
    "OrderNotFound",
    "OutsideArea",
    "Quote",
    "QuoteLine",
    "RefundWindowClosed",
    "ShareLinkInvalid",
    "SlotInPast",
    "SlotNotOnGrid",
    "SlotOut",
    "SlotTaken",
    "SlotTooFar",
    "UnknownService",
    "WorkerBookedThen",
    "WorkerBusy",
    "assign_worker",
    "available_slots",
    "book",
    "bookable_service",
    "booking_seed",
    "cancel_fee",
    "check_slot",
    "confirm_reservation",
    "expire_unpaid",
    "get_order",
    "is_aftersales_pending",
    "is_slot_conflict",
    "list_orders",
    "lock_order",
    "may_see",
    "new_order_no",
    "order_events",
    "order_store",
    "quote",
    "read_share_token",
    "release_reservation",
    "request_hash",
    "request_refund",
    "service_and_worker",
    "share_token",
    "store_response",
    "stored_response",
    "visible_order",
    "worker_action",
    "worker_id_of",
]

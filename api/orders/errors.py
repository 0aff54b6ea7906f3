"""Order errors (translated by the one handler in ``api.core.errors``)."""

from __future__ import annotations

from api.core.errors import Conflict, InvalidInput, NotFound


class OrderNotFound(NotFound):
    """Unknown order, or one the caller may not see (we do not say which)."""

    code = "order_not_found"
    message = "Order not found."


class UnknownService(NotFound):
    """The service does not exist or is not bookable."""

    code = "service_not_found"
    message = "This service does not exist or is not available."


class OutsideArea(InvalidInput):
    """The enterprise offering the service does not serve this address."""

    status_code = 422
    code = "outside_service_area"
    message = "Sorry, this service is not offered at this address."


class SlotInPast(InvalidInput):
    """The slot starts before now plus the minimum notice."""

    status_code = 422
    code = "slot_in_past"
    message = "This time is too soon or in the past; pick a later slot."


class SlotNotOnGrid(InvalidInput):
    """The slot start is not one of the offered start times."""

    status_code = 422
    code = "slot_invalid"
    message = "Pick one of the offered start times."


class SlotTooFar(InvalidInput):
    """The slot is beyond the booking horizon."""

    status_code = 422
    code = "slot_too_far"
    message = "Bookings can be made at most {days} days ahead."


class WorkerBusy(Conflict):
    """The worker already has a visit at that time."""

    code = "worker_busy"
    message = "You already have a visit at that time."


class SlotTaken(Conflict):
    """No worker can take this slot any more (someone else booked it)."""

    code = "slot_taken"
    message = "Sorry, this time slot has just been taken; please choose another."


class IdempotencyKeyReused(InvalidInput):
    """The Idempotency-Key was used before with a different request."""

    status_code = 422
    code = "idempotency_key_reused"
    message = "This Idempotency-Key was already used for a different request."


class ShareLinkInvalid(NotFound):
    """The share token is forged, malformed or expired."""

    code = "share_link_invalid"
    message = "This share link is invalid or has expired."


class RefundWindowClosed(InvalidInput):
    """After-sales requests are accepted only for a while after completion."""

    status_code = 409
    code = "refund_window_closed"
    message = "The after-sales period for this order has ended."


class WorkerBookedThen(Conflict):
    """Staff picked a worker who is booked at the order's time (addressed to staff)."""

    code = "worker_booked"
    message = "This worker is booked at that time; pick another worker or time."

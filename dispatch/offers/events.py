"""What the offer policies decide: one frozen dataclass per kind of event."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from dispatch.offers.base import (
    FallbackReason,
    RejectReason,
)

__all__ = [
    "AcceptRejected",
    "Cancelled",
    "ClaimRejected",
    "Claimed",
    "DeclineRejected",
    "Escalated",
    "Event",
    "FallbackToAutoAssign",
    "GrabOpened",
    "OfferAccepted",
    "OfferDeclined",
    "OfferExpired",
    "OfferMade",
    "OfferWithdrawn",
    "Queued",
    "Reoffer",
]


@dataclass(frozen=True, slots=True)
class Queued:
    """The order waits for the next auto-assign match (first time)."""

    order_id: int
    queued_at: int


@dataclass(frozen=True, slots=True)
class OfferMade:
    """Offer ``order_id`` to ``worker_id``; it lapses at ``expires_at`` (epoch s)."""

    order_id: int
    worker_id: int
    offered_at: int
    expires_at: int
    attempt: int  # 1 for the first offer of this order


@dataclass(frozen=True, slots=True)
class OfferAccepted:
    """The offered worker accepted in time: the order is theirs."""

    order_id: int
    worker_id: int
    accepted_at: int


@dataclass(frozen=True, slots=True)
class AcceptRejected:
    """An accept that does not count; ``reason`` says why."""

    order_id: int
    worker_id: int
    reason: RejectReason


@dataclass(frozen=True, slots=True)
class OfferDeclined:
    """The offered worker declined (``reason`` is the worker's, free text or a code)."""

    order_id: int
    worker_id: int
    declined_at: int
    reason: str


@dataclass(frozen=True, slots=True)
class DeclineRejected:
    """A decline that does not count; ``reason`` says why."""

    order_id: int
    worker_id: int
    reason: RejectReason


@dataclass(frozen=True, slots=True)
class OfferExpired:
    """The offer lapsed unanswered at exactly ``expired_at``."""

    order_id: int
    worker_id: int
    expired_at: int


@dataclass(frozen=True, slots=True)
class Reoffer:
    """The order is back in the auto-assign queue; never offer it to ``excluded_worker_ids``."""

    order_id: int
    excluded_worker_ids: tuple[int, ...]
    at: int


@dataclass(frozen=True, slots=True)
class Escalated:
    """The order goes to a human dispatcher."""

    order_id: int
    reason: str
    at: int


@dataclass(frozen=True, slots=True)
class OfferWithdrawn:
    """An outstanding offer was withdrawn (order cancelled); tell the worker's app."""

    order_id: int
    worker_id: int
    at: int


@dataclass(frozen=True, slots=True)
class Cancelled:
    """The order left the book or pool at the caller's request."""

    order_id: int
    at: int


@dataclass(frozen=True, slots=True)
class GrabOpened:
    """Show ``order_id`` to ``eligible_worker_ids`` until ``closes_at`` (epoch s)."""

    order_id: int
    eligible_worker_ids: tuple[int, ...]
    opened_at: int
    closes_at: int


@dataclass(frozen=True, slots=True)
class Claimed:
    """``worker_id`` won the grab-pool order."""

    order_id: int
    worker_id: int
    claimed_at: int


@dataclass(frozen=True, slots=True)
class ClaimRejected:
    """A claim that does not count; ``reason`` says why."""

    order_id: int
    worker_id: int
    reason: RejectReason


@dataclass(frozen=True, slots=True)
class FallbackToAutoAssign:
    """The grab-pool order moves to auto-assign (at exactly ``at``)."""

    order_id: int
    at: int
    reason: FallbackReason


Event: TypeAlias = (
    Queued
    | OfferMade
    | OfferAccepted
    | AcceptRejected
    | OfferDeclined
    | DeclineRejected
    | OfferExpired
    | Reoffer
    | Escalated
    | OfferWithdrawn
    | Cancelled
    | GrabOpened
    | Claimed
    | ClaimRejected
    | FallbackToAutoAssign
)

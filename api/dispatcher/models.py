"""Dispatch tables: offers (auto and grab pool), decisions with cost breakdowns, fences.

The database is the record: an offer or a grab claim is won by a conditional
``UPDATE ... WHERE state = 'offered'|'open'`` so two API processes can never both
win it. Rows written by a dispatcher carry its region lease's ``fencing_token``
(0 in the embedded single-process mode); ``region_fences`` keeps the newest token per
region, and a dispatcher's write transaction first raises it (``api.dispatcher.fencing``)
so a stale lease holder's write is rejected. At most one live offer per order: a
partial unique index on ``dispatch_offers(order_id)`` over the live states.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from api.core.db import Base, BigIntPK, utcnow


class OfferMode(StrEnum):
    """How an order reaches a worker: offered to one worker, or open in the grab pool."""

    AUTO = "auto"
    GRAB = "grab"


class OfferState(StrEnum):
    """Life of one offer row."""

    OFFERED = "offered"  # auto: waiting for the worker's answer until expires_at
    OPEN = "open"  # grab: any eligible worker nearby may claim until expires_at
    ACCEPTED = "accepted"
    DECLINED = "declined"
    EXPIRED = "expired"  # auto offer timed out (the worker is excluded from re-offers)
    LAPSED = "lapsed"  # grab window over: falls back to auto-assign
    CLAIMED = "claimed"
    WITHDRAWN = "withdrawn"  # the order was cancelled or taken another way


#: States in which an offer still blocks a new one for its order.
LIVE_STATES = (OfferState.OFFERED.value, OfferState.OPEN.value)
#: The same, as the SQL predicate of the one-live-offer-per-order index.
LIVE_STATES_SQL = "state IN ('offered', 'open')"


class DispatchOffer(Base):
    """One offer of one order: to one worker (auto) or to the pool (grab, worker set on claim)."""

    __tablename__ = "dispatch_offers"
    __table_args__ = (
        # Never two live offers for one order, whichever process writes (both dialects).
        Index(
            "uq_dispatch_offers_live_order",
            "order_id",
            unique=True,
            postgresql_where=text(LIVE_STATES_SQL),
            sqlite_where=text(LIVE_STATES_SQL),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    worker_id: Mapped[int | None] = mapped_column(
        ForeignKey("workers.id", ondelete="CASCADE"), index=True
    )
    mode: Mapped[str] = mapped_column(String(8))
    state: Mapped[str] = mapped_column(String(12), index=True)
    region: Mapped[int] = mapped_column(BigInteger)
    fencing_token: Mapped[int] = mapped_column(BigInteger, default=0)
    offered_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    decided_at: Mapped[datetime | None] = mapped_column(default=None)
    decline_reason: Mapped[str | None] = mapped_column(String(64), default=None)
    #: Grab rows: the workers the order is shown to (chosen by ``dispatch.rounds.admit``).
    eligible_worker_ids: Mapped[list[int] | None] = mapped_column(JSON, default=None)


class DispatchDecision(Base):
    """Why an order went to a worker: the chosen cost line and the runner-ups (from ``explain``)."""

    __tablename__ = "dispatch_decisions"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    worker_id: Mapped[int | None] = mapped_column(ForeignKey("workers.id", ondelete="SET NULL"))
    region: Mapped[int] = mapped_column(BigInteger)
    mode: Mapped[str] = mapped_column(String(8))
    total_cost: Mapped[float | None] = mapped_column(Float, default=None)
    cost: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    alternatives: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    reason: Mapped[str | None] = mapped_column(String(32), default=None)
    fencing_token: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RegionFence(Base):
    """Newest fencing token that wrote for a region (H3 res-5): older tokens are rejected."""

    __tablename__ = "region_fences"

    region: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    fencing_token: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

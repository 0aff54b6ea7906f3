"""Order, order event, worker reservation and idempotency-key tables."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from api.core.db import Base, BigIntPK, TimestampMixin, utcnow

#: SQL condition of a live (held or confirmed) reservation, as the partial indexes spell it.
LIVE_HOLDS = "status IN ('held', 'confirmed')"


class Order(TimestampMixin, Base):
    """One booking: service, place, slot (UTC), price in fen, and its states (see state.py)."""

    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint("amount_fen >= 0", name="amount_non_negative"),
        CheckConstraint("slot_end > slot_start", name="slot_ordered"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    #: Our public order number, also the payment ``out_trade_no``.
    order_no: Mapped[str] = mapped_column(String(32), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    enterprise_id: Mapped[int] = mapped_column(ForeignKey("enterprises.id"), index=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id"), index=True)
    address_id: Mapped[int | None] = mapped_column(
        ForeignKey("addresses.id", ondelete="SET NULL"), index=True
    )
    service_area_id: Mapped[int | None] = mapped_column(
        ForeignKey("service_areas.id", ondelete="SET NULL"), index=True
    )
    worker_id: Mapped[int | None] = mapped_column(ForeignKey("workers.id"), index=True)
    status: Mapped[str] = mapped_column(String(24), index=True)
    dispatch_status: Mapped[str | None] = mapped_column(String(24))
    aftersales_status: Mapped[str | None] = mapped_column(String(24))
    slot_start: Mapped[datetime] = mapped_column(index=True)
    slot_end: Mapped[datetime]
    duration_min: Mapped[int] = mapped_column(Integer)
    price_fen: Mapped[int] = mapped_column(Integer)
    surcharge_fen: Mapped[int] = mapped_column(Integer, default=0)
    amount_fen: Mapped[int] = mapped_column(Integer)
    refunded_fen: Mapped[int] = mapped_column(Integer, default=0)
    cancel_fee_fen: Mapped[int] = mapped_column(Integer, default=0)
    lat: Mapped[float] = mapped_column(Float)
    lng: Mapped[float] = mapped_column(Float)
    #: Contact and address text at booking time (addresses may change or be deleted later).
    address_snapshot: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    quote_lines: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    note: Mapped[str] = mapped_column(String(256), default="")
    payment_provider: Mapped[str | None] = mapped_column(String(16))
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    paid_at: Mapped[datetime | None] = mapped_column(default=None, index=True)
    cancelled_at: Mapped[datetime | None] = mapped_column(default=None)
    completed_at: Mapped[datetime | None] = mapped_column(default=None)


class OrderEvent(Base):
    """Append-only audit of every transition (written by orders.state only)."""

    __tablename__ = "order_events"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    event: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(24))
    to_status: Mapped[str] = mapped_column(String(24))
    from_sub: Mapped[str | None] = mapped_column(String(24))
    to_sub: Mapped[str | None] = mapped_column(String(24))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WorkerReservation(TimestampMixin, Base):
    """A worker held (unpaid) or confirmed (paid) for ``[starts_at, ends_at)``.

    On PostgreSQL the migration adds ``EXCLUDE USING gist (worker_id WITH =,
    tstzrange(starts_at, ends_at, '[)') WITH &&) WHERE (status IN ('held',
    'confirmed'))``: two live reservations of one worker can never overlap.
    """

    __tablename__ = "worker_reservations"
    __table_args__ = (
        CheckConstraint("ends_at > starts_at", name="ordered"),
        CheckConstraint("status IN ('held', 'confirmed', 'released')", name="status_valid"),
        # A worker's live holds by start: what a booking probes per candidate. Released
        # holds (finished, cancelled) stay out, so a probe does not grow with history.
        Index(
            "ix_worker_reservations_live",
            "worker_id",
            "starts_at",
            postgresql_where=text(LIVE_HOLDS),
            sqlite_where=text(LIVE_HOLDS),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    worker_id: Mapped[int] = mapped_column(ForeignKey("workers.id"), index=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), unique=True)
    starts_at: Mapped[datetime] = mapped_column(index=True)
    ends_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16))


class IdempotencyKey(Base):
    """A stored answer to a request made with an ``Idempotency-Key`` header."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (
        UniqueConstraint("user_id", "scope", "key", name="uq_idempotency_keys_user_scope_key"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    scope: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(128))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

"""Tracking table: per active order its service code, ETA tracker state and last position."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from api.core.db import Base, utcnow


class OrderTrack(Base):
    """Per active order: the service code (核销码), the ETA tracker state, the last position.

    The position is cleared when the order leaves the active states, so it is never
    served after completion.
    """

    __tablename__ = "order_tracking"

    order_id: Mapped[int] = mapped_column(
        ForeignKey("orders.id", ondelete="CASCADE"), primary_key=True
    )
    service_code: Mapped[str] = mapped_column(String(8))
    code_failures: Mapped[int] = mapped_column(Integer, default=0)
    code_locked_until: Mapped[datetime | None] = mapped_column(default=None)
    eta_state: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    last_lat: Mapped[float | None] = mapped_column(Float, default=None)
    last_lng: Mapped[float | None] = mapped_column(Float, default=None)
    last_ts: Mapped[float | None] = mapped_column(Float, default=None)
    photos: Mapped[list[str]] = mapped_column(JSON, default=list)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

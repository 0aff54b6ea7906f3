"""Worker schedule requests: proposed shifts and breaks waiting for staff (api.enterprise.profiles).

The enterprise and worker tables themselves are ``api.tenants.models``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from api.core.db import Base, BigIntPK, TimestampMixin


class WorkerScheduleRequest(TimestampMixin, Base):
    """A worker's proposed weekly shifts and breaks, waiting for staff to approve or reject.

    ``status`` is a ``api.enterprise.profiles.RequestStatus``; at most one request per
    worker is pending (partial unique index). Approval replaces the worker's schedule.
    """

    __tablename__ = "worker_schedule_requests"
    __table_args__ = (
        Index("ix_worker_schedule_requests_enterprise_status", "enterprise_id", "status"),
        Index(
            "uq_worker_schedule_requests_pending",
            "worker_id",
            unique=True,
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    worker_id: Mapped[int] = mapped_column(ForeignKey("workers.id", ondelete="CASCADE"), index=True)
    enterprise_id: Mapped[int] = mapped_column(ForeignKey("enterprises.id", ondelete="CASCADE"))
    shifts: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    breaks: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    note: Mapped[str | None] = mapped_column(String(200), default=None)
    status: Mapped[str] = mapped_column(String(12))
    decided_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    decided_at: Mapped[datetime | None] = mapped_column(default=None)
    decision_note: Mapped[str | None] = mapped_column(String(200), default=None)

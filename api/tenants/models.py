"""The tenants and their workers: ``enterprises`` and ``workers``, the tables nearly every
domain reads (auth creates enterprises, orders hold workers, the dispatcher matches them).

The lowest domain: it imports only ``api.core``."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from api.core.db import Base, BigIntPK, TimestampMixin


class Enterprise(TimestampMixin, Base):
    """A tenant: every worker, staff user, service and service area belongs to one."""

    __tablename__ = "enterprises"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    #: Validated board settings (see api.dispatcher.board.DispatchSettings); NULL = defaults.
    dispatch_settings: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)


class Worker(TimestampMixin, Base):
    """A worker's dispatch profile; the login identity is the linked ``users`` row.

    The home point is WGS-84 lat/lng + H3 cell; on PostgreSQL the migration adds a
    generated ``home_geog geography(Point,4326)`` with a GiST index.
    """

    __tablename__ = "workers"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    enterprise_id: Mapped[int] = mapped_column(ForeignKey("enterprises.id"), index=True)
    display_name: Mapped[str] = mapped_column(String(64))
    skills: Mapped[list[str]] = mapped_column(JSON, default=list)
    # [{"weekday": 0-6, "start_min": minutes from local midnight, "end_min": ...}]
    shifts: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    rating: Mapped[float] = mapped_column(Float, default=5.0)
    home_lat: Mapped[float] = mapped_column(Float)
    home_lng: Mapped[float] = mapped_column(Float)
    home_cell: Mapped[int] = mapped_column(BigInteger, index=True)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    #: A code of dispatch.model.TRANSPORT_MODES.
    transport_mode: Mapped[str] = mapped_column(String(16), default="ebike", server_default="ebike")
    # Same shape as shifts; each break lies inside one shift of its weekday.
    breaks: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list, server_default="[]")
    #: Stored reputation score in [0, 1]; NULL = no reviews yet (written by the reviews work).
    reputation: Mapped[float | None] = mapped_column(Float, default=None)

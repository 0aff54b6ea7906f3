"""The addresses table."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from api.core.db import Base, BigIntPK, TimestampMixin


class Address(TimestampMixin, Base):
    """A saved address: WGS-84 lat/lng + H3 cell (+ generated PostGIS geography on PostgreSQL)."""

    __tablename__ = "addresses"
    __table_args__ = (
        # At most one default address per user, enforced by the database.
        Index(
            "uq_addresses_one_default",
            "user_id",
            unique=True,
            sqlite_where=text("is_default"),
            postgresql_where=text("is_default"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    contact_name: Mapped[str] = mapped_column(String(64))
    contact_phone: Mapped[str] = mapped_column(String(20))
    label: Mapped[str] = mapped_column(String(32), default="")
    detail: Mapped[str] = mapped_column(String(256))
    lat: Mapped[float] = mapped_column(Float)
    lng: Mapped[float] = mapped_column(Float)
    h3_cell: Mapped[int] = mapped_column(BigInteger, index=True)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)

"""Team and day-plan tables."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Date, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from api.core.db import Base, BigIntPK, TimestampMixin, utcnow


class Team(TimestampMixin, Base):
    """A named group of one enterprise's workers that is planned together."""

    __tablename__ = "teams"
    __table_args__ = (UniqueConstraint("enterprise_id", "name", name="uq_teams_enterprise_name"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    enterprise_id: Mapped[int] = mapped_column(
        ForeignKey("enterprises.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(64))


class TeamMember(Base):
    """One worker in one team (a worker may be in several teams)."""

    __tablename__ = "team_members"

    team_id: Mapped[int] = mapped_column(
        ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True
    )
    worker_id: Mapped[int] = mapped_column(
        ForeignKey("workers.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class DayPlanRecord(Base):
    """One version of a team's plan for a local day (the JSON is ``service.plan_to_json``).

    ``scope`` is ``team:{id}`` or ``all`` (the enterprise's default team of every worker),
    so versions are unique per enterprise, scope and day on both dialects.
    """

    __tablename__ = "day_plans"
    __table_args__ = (
        UniqueConstraint(
            "enterprise_id", "scope", "day", "version", name="uq_day_plans_scope_day_version"
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    enterprise_id: Mapped[int] = mapped_column(
        ForeignKey("enterprises.id", ondelete="CASCADE"), index=True
    )
    team_id: Mapped[int | None] = mapped_column(
        ForeignKey("teams.id", ondelete="CASCADE"), index=True
    )
    scope: Mapped[str] = mapped_column(String(32))
    day: Mapped[date] = mapped_column(Date)
    version: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(24))
    plan: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

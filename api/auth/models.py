"""User, social identity and refresh-token tables."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from api.core.db import Base, BigIntPK, TimestampMixin, utcnow


class Role(StrEnum):
    """Who a user is; workers and staff always belong to one enterprise."""

    CUSTOMER = "customer"
    WORKER = "worker"
    STAFF = "staff"
    ADMIN = "admin"


TENANT_ROLES = frozenset({Role.WORKER, Role.STAFF})


class SocialProvider(StrEnum):
    """Mini-program platforms whose login we accept."""

    WECHAT = "wechat"
    QQ = "qq"


class User(TimestampMixin, Base):
    """Any person who signs in."""

    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(
            "role IN ('customer', 'worker', 'staff', 'admin')",
            name="role_valid",
        ),
        # Tenant roles carry an enterprise; customers and admins never do.
        CheckConstraint(
            "(role IN ('worker', 'staff')) = (enterprise_id IS NOT NULL)",
            name="tenant_role_has_enterprise",
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    phone: Mapped[str | None] = mapped_column(String(20), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(256))
    display_name: Mapped[str | None] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16), default=Role.CUSTOMER.value)
    enterprise_id: Mapped[int | None] = mapped_column(ForeignKey("enterprises.id"), index=True)
    locale: Mapped[str] = mapped_column(String(8), default="zh-CN")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(default=None)


class SocialIdentity(Base):
    """An openid (and unionid when the app is bound to an Open Platform) linked to a user."""

    __tablename__ = "social_identities"
    __table_args__ = (
        UniqueConstraint(
            "provider", "appid", "openid", name="uq_social_identities_provider_openid"
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    provider: Mapped[str] = mapped_column(String(16))
    appid: Mapped[str] = mapped_column(String(64))
    openid: Mapped[str] = mapped_column(String(128))
    unionid: Mapped[str | None] = mapped_column(String(128), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RefreshToken(Base):
    """One issued refresh token (only its SHA-256 is stored); rotation chains form a family."""

    __tablename__ = "refresh_tokens"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    family_id: Mapped[str] = mapped_column(String(32), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)

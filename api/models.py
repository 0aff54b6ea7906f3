"""Import every domain's models so ``Base.metadata`` is complete (Alembic, tests)."""

from __future__ import annotations

from api.addresses.models import Address
from api.auth.models import RefreshToken, SocialIdentity, User
from api.catalog.models import Service, ServiceArea, ServiceCategory
from api.db import Base
from api.enterprise.models import Enterprise, Worker

__all__ = [
    "Address",
    "Base",
    "Enterprise",
    "RefreshToken",
    "Service",
    "ServiceArea",
    "ServiceCategory",
    "SocialIdentity",
    "User",
    "Worker",
]

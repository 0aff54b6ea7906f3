"""Import every domain's models so ``Base.metadata`` is complete (Alembic, tests)."""

from __future__ import annotations

from api.addresses.models import Address
from api.auth.models import RefreshToken, SocialIdentity, User
from api.catalog.models import Service, ServiceArea, ServiceCategory
from api.core.db import Base
from api.dispatcher.models import DispatchDecision, DispatchOffer
from api.notifications.models import InboxMessage, OutboxMessage
from api.orders.models import IdempotencyKey, Order, OrderEvent, WorkerReservation
from api.payments.models import Payment, PaymentEvent, Refund
from api.plans.models import DayPlanRecord, Team, TeamMember
from api.tenants.models import Enterprise, Worker
from api.tracking.models import OrderTrack

__all__ = [
    "Address",
    "Base",
    "DayPlanRecord",
    "DispatchDecision",
    "DispatchOffer",
    "Enterprise",
    "IdempotencyKey",
    "InboxMessage",
    "Order",
    "OrderEvent",
    "OrderTrack",
    "OutboxMessage",
    "Payment",
    "PaymentEvent",
    "RefreshToken",
    "Refund",
    "Service",
    "ServiceArea",
    "ServiceCategory",
    "SocialIdentity",
    "Team",
    "TeamMember",
    "User",
    "Worker",
    "WorkerReservation",
]

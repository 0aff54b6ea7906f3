"""Day-plan dependencies: the planner (staff of an enterprise or an admin), the clock, the zone."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import Depends
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth.models import User
from api.core.deps import SessionDep, SettingsDep
from api.enterprise.dependencies import BoardUser, NowDep, ServiceTz

#: Staff plan their own enterprise's days; an admin any enterprise's.
PlannerUser = BoardUser


@dataclass(frozen=True)
class Planning:
    """What planning a day takes besides the request: who plans, the session, the booking
    horizon (days), the service time zone and the clock."""

    user: User
    session: AsyncSession
    horizon_days: int
    tz: ZoneInfo
    now: datetime


async def planning(
    user: PlannerUser, session: SessionDep, settings: SettingsDep, tz: ServiceTz, now: NowDep
) -> Planning:
    """The planner's context, for the endpoints that plan or repair a day."""
    return Planning(user, session, settings.booking_horizon_days, tz, now)


PlanningDep = Annotated[Planning, Depends(planning)]

__all__ = ["NowDep", "PlannerUser", "Planning", "PlanningDep", "ServiceTz", "planning"]

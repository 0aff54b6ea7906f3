"""Enterprise board dependencies: the board user (staff or admin), the board's clock."""

from __future__ import annotations

from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import Depends

from api.auth.dependencies import ManagerUser
from api.auth.models import User
from api.core.deps import LiveDep, NowDep, SettingsDep


async def board_user(user: ManagerUser) -> User:
    """Staff of an enterprise or an admin (401 anonymous, 403 customers and workers)."""
    return user


async def service_tz(settings: SettingsDep) -> ZoneInfo:
    """The time zone service days are counted in."""
    return ZoneInfo(settings.service_timezone)


BoardUser = Annotated[User, Depends(board_user)]
ServiceTz = Annotated[ZoneInfo, Depends(service_tz)]

__all__ = ["BoardUser", "LiveDep", "NowDep", "ServiceTz"]

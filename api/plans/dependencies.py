"""Day-plan dependencies: the planner (staff of an enterprise or an admin), the clock, the zone."""

from __future__ import annotations

from api.enterprise.dependencies import BoardUser, NowDep, ServiceTz

#: Staff plan their own enterprise's days; an admin any enterprise's.
PlannerUser = BoardUser

__all__ = ["NowDep", "PlannerUser", "ServiceTz"]

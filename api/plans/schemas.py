"""Day-plan bodies: teams, re-plan / pin / disruption requests, the plan with routes and legs.

Times are UTC ISO; coordinates are in the ``coord_type`` the client asked for (GCJ-02
by default, for display on Chinese maps), converted once here from stored WGS-84.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from api.core.geo_edge import CoordType, from_wgs84
from api.plans.models import DayPlanRecord
from api.plans.service import DEFAULT_STOP_S, MAX_STOP_S
from api.plans.teams import TeamRef
from api.workers.schemas import DayOut

Id = Field(ge=1, le=2**53 - 1)


class TeamIn(BaseModel):
    """A team: a name and the workers in it."""

    name: str = Field(min_length=1, max_length=64)
    worker_ids: list[int] = Field(default_factory=list, max_length=500)
    enterprise_id: int | None = Field(default=None, ge=1, le=2**53 - 1)


class TeamOut(BaseModel):
    """A team of an enterprise."""

    id: int | None
    enterprise_id: int
    name: str
    worker_ids: list[int]

    @classmethod
    def of(cls, team: TeamRef) -> TeamOut:
        """From the service's TeamRef."""
        return cls(
            id=team.team_id,
            enterprise_id=team.enterprise_id,
            name=team.name,
            worker_ids=list(team.worker_ids),
        )


class PlanIn(BaseModel):
    """Re-plan a team's day (no team: every worker of the enterprise)."""

    day: date
    team_id: int | None = Field(default=None, ge=1, le=2**53 - 1)
    enterprise_id: int | None = Field(default=None, ge=1, le=2**53 - 1)
    stop_s: float = Field(default=DEFAULT_STOP_S, gt=0, le=MAX_STOP_S)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)


class PinIn(PlanIn):
    """Pin one visit to a worker and/or a start inside its booked window, then re-plan."""

    order_id: int = Id
    worker_id: int | None = Field(default=None, ge=1, le=2**53 - 1)
    start: datetime | None = None


class DisruptionIn(PlanIn):
    """A sick call, a late job or a cancellation; the plan is repaired around it."""

    kind: Literal["worker_absent", "visit_overran", "visit_cancelled"]
    worker_id: int | None = Field(default=None, ge=1, le=2**53 - 1)
    order_id: int | None = Field(default=None, ge=1, le=2**53 - 1)
    at: datetime | None = Field(default=None, description="absent from (default now)")
    extra_s: int | None = Field(default=None, ge=1, le=24 * 3600)


class StopOut(BaseModel):
    """One visit in a route (UTC) and where it is."""

    order_id: int
    arrival: datetime
    start: datetime
    end: datetime
    travel_s: int
    lateness_s: int
    lat: float
    lng: float


class LegOut(BaseModel):
    """One ride: from home or a visit to the next visit or home (order ids None = home)."""

    from_order_id: int | None
    to_order_id: int | None
    from_lat: float
    from_lng: float
    to_lat: float
    to_lng: float
    depart: datetime
    arrive: datetime
    travel_s: int


class RouteOut(BaseModel):
    """One worker's planned day."""

    worker_id: int
    depart: datetime
    finish: datetime
    travel_s: int
    distance_m: int
    stops: list[StopOut]
    legs: list[LegOut]


class DroppedOut(BaseModel):
    """A visit no route serves, and why."""

    order_id: int
    reason: str
    detail: str


class ChangeOut(BaseModel):
    """What a repair changed for one visit, and why."""

    order_id: int
    kind: str
    reason: str
    from_worker_id: int | None
    to_worker_id: int | None
    old_start: datetime | None
    new_start: datetime | None
    detail: str


class PinOut(BaseModel):
    """A staff pin carried by the plan."""

    order_id: int
    worker_id: int | None
    start: datetime | None


class PlanOut(BaseModel):
    """One stored version of a team's day plan."""

    id: int
    enterprise_id: int
    team_id: int | None
    day: date
    version: int
    reason: str
    created_at: datetime
    created_by: int | None
    coord_type: CoordType
    engine: str
    hit_time_limit: bool
    total_travel_s: int
    total_lateness_s: int
    changed_assignments: int
    warnings: list[str]
    routes: list[RouteOut]
    dropped: list[DroppedOut]
    changes: list[ChangeOut]
    pins: list[PinOut]

    @classmethod
    def of(cls, record: DayPlanRecord, coord_type: CoordType) -> PlanOut:
        """From a stored plan, in ``coord_type``."""
        data = record.plan
        places = {v["id"]: (v["lat"], v["lng"]) for v in data["visits"]}
        homes = {w["id"]: w for w in data["workers"]}

        def pt(lat: float, lng: float) -> tuple[float, float]:
            return from_wgs84(lat, lng, coord_type)

        return cls(
            id=record.id,
            enterprise_id=record.enterprise_id,
            team_id=record.team_id,
            day=record.day,
            version=record.version,
            reason=record.reason,
            created_at=record.created_at,
            created_by=record.created_by,
            coord_type=coord_type,
            engine=data["engine"],
            hit_time_limit=data["hit_time_limit"],
            total_travel_s=data["total_travel_s"],
            total_lateness_s=data["total_lateness_s"],
            changed_assignments=data["changed_assignments"],
            warnings=data["warnings"],
            routes=[_route(r, places, homes[r["worker_id"]], pt) for r in data["routes"]],
            dropped=[
                DroppedOut(order_id=d["visit_id"], reason=d["reason"], detail=d["detail"])
                for d in data["dropped"]
            ],
            changes=[
                ChangeOut(
                    order_id=c["visit_id"],
                    kind=c["kind"],
                    reason=c["reason"],
                    from_worker_id=c["from_worker"],
                    to_worker_id=c["to_worker"],
                    old_start=_dt(c["old_start"]),
                    new_start=_dt(c["new_start"]),
                    detail=c["detail"],
                )
                for c in data.get("changes", [])
            ],
            pins=[
                PinOut(order_id=int(k), worker_id=v.get("worker_id"), start=_dt(v.get("start")))
                for k, v in data.get("pins", {}).items()
            ],
        )


def _dt(ts: int | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


def _route(
    r: dict[str, Any],
    places: dict[int, tuple[float, float]],
    home: dict[str, Any],
    pt: Any,
) -> RouteOut:
    """A route with its legs: home → each stop → home (a leg leaves ``travel_s`` before arrival)."""
    stops = [
        StopOut(
            order_id=s["visit_id"],
            arrival=_ts(s["arrival"]),
            start=_ts(s["start"]),
            end=_ts(s["end"]),
            travel_s=s["travel_s"],
            lateness_s=s["lateness_s"],
            lat=pt(*places[s["visit_id"]])[0],
            lng=pt(*places[s["visit_id"]])[1],
        )
        for s in r["stops"]
    ]
    legs: list[LegOut] = []
    prev_id: int | None = None
    prev = pt(home["start_lat"], home["start_lng"])
    for s, out in zip(r["stops"], stops, strict=True):
        legs.append(
            LegOut(
                from_order_id=prev_id, to_order_id=out.order_id,
                from_lat=prev[0], from_lng=prev[1], to_lat=out.lat, to_lng=out.lng,
                depart=_ts(s["arrival"] - s["travel_s"]), arrive=out.arrival,
                travel_s=s["travel_s"],
            )
        )  # fmt: skip
        prev_id, prev = out.order_id, (out.lat, out.lng)
    if stops:
        back = r["travel_s"] - sum(s["travel_s"] for s in r["stops"])
        end = pt(home["end_lat"], home["end_lng"])
        legs.append(
            LegOut(
                from_order_id=prev_id, to_order_id=None,
                from_lat=prev[0], from_lng=prev[1], to_lat=end[0], to_lng=end[1],
                depart=_ts(r["finish"] - back), arrive=_ts(r["finish"]), travel_s=back,
            )
        )  # fmt: skip
    return RouteOut(
        worker_id=r["worker_id"],
        depart=_ts(r["depart"]),
        finish=_ts(r["finish"]),
        travel_s=r["travel_s"],
        distance_m=r["distance"],
        stops=stops,
        legs=legs,
    )


def _ts(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


class PlannedStopOut(BaseModel):
    """Where a visit sits in the worker's planned day (UTC)."""

    order_id: int
    arrival: datetime
    start: datetime
    end: datetime
    travel_s: int


class PlannedDayOut(DayOut):
    """The worker's day: orders in planned route order, with the planned times when a plan
    exists (``planned`` false: no plan yet, orders by slot time)."""

    planned: bool = False
    route: list[PlannedStopOut] = Field(default_factory=list)

    @staticmethod
    def stops(raw: list[dict[str, Any]]) -> list[PlannedStopOut]:
        """Planned stops from a stored route."""
        return [
            PlannedStopOut(
                order_id=s["visit_id"],
                arrival=_ts(s["arrival"]),
                start=_ts(s["start"]),
                end=_ts(s["end"]),
                travel_s=s["travel_s"],
            )
            for s in raw
        ]

"""Request and response bodies of worker profiles and schedule change requests.

Shapes and ranges are checked here (weekday 0-6, minutes 0-1440, transport mode one of
``dispatch.model.TRANSPORT_MODES``, no unknown fields); the rules between values
(ordering, overlaps, breaks inside shifts, known skills) are the service's.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from api.core.geo_edge import CoordType, from_wgs84
from api.enterprise.models import WorkerScheduleRequest
from api.enterprise.profiles import Home, ProfileChange, Slot
from api.tenants.models import Worker
from dispatch.model import TRANSPORT_MODES

MAX_SHIFTS = 28
MAX_BREAKS = 56


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class SlotIO(_In):
    """One weekly interval in local minutes from midnight (service time zone)."""

    weekday: int = Field(ge=0, le=6, description="0 = Monday", examples=[0])
    start_min: int = Field(ge=0, le=1440, examples=[480])
    end_min: int = Field(ge=0, le=1440, examples=[1080])

    def slot(self) -> Slot:
        """The service's value."""
        return Slot(self.weekday, self.start_min, self.end_min)


def _slots(items: list[SlotIO] | None) -> list[Slot] | None:
    return None if items is None else [s.slot() for s in items]


class HomeIO(_In):
    """A home base; ``coord_type`` as for addresses (gcj02 from WeChat maps)."""

    lat: float = Field(allow_inf_nan=False, examples=[31.2304])
    lng: float = Field(allow_inf_nan=False, examples=[121.4737])
    coord_type: CoordType = Field(default=CoordType.WGS84, examples=["gcj02"])


def _check_mode(value: str | None) -> str | None:
    if value is not None and value not in TRANSPORT_MODES:
        raise PydanticCustomError(
            "enum", "Must be one of: {expected}.", {"expected": ", ".join(TRANSPORT_MODES)}
        )
    return value


class ProfilePatch(_In):
    """Profile fields to change; absent fields stay as they are."""

    display_name: str | None = Field(default=None, min_length=1, max_length=64)
    skills: list[str] | None = Field(default=None, max_length=20)
    shifts: list[SlotIO] | None = Field(default=None, max_length=MAX_SHIFTS)
    breaks: list[SlotIO] | None = Field(default=None, max_length=MAX_BREAKS)
    home: HomeIO | None = None
    transport_mode: str | None = Field(default=None, examples=["ebike"])
    is_active: bool | None = None

    _mode = field_validator("transport_mode")(_check_mode)

    def change(self) -> ProfileChange:
        """The service's value."""
        home = self.home
        return ProfileChange(
            display_name=self.display_name,
            skills=self.skills,
            shifts=_slots(self.shifts),
            breaks=_slots(self.breaks),
            home=None if home is None else Home(home.lat, home.lng, home.coord_type),
            transport_mode=self.transport_mode,
            is_active=self.is_active,
        )


class ProfileIn(ProfilePatch):
    """A new profile for a worker account of the enterprise."""

    user_id: int = Field(ge=1, le=2**53 - 1, description="the worker account (members API)")
    display_name: str = Field(min_length=1, max_length=64, examples=["李师傅"])
    skills: list[str] = Field(max_length=20, examples=[["cleaning"]])
    shifts: list[SlotIO] = Field(default_factory=list, max_length=MAX_SHIFTS)
    breaks: list[SlotIO] = Field(default_factory=list, max_length=MAX_BREAKS)
    home: HomeIO
    transport_mode: str = Field(default="ebike", examples=["ebike"])
    is_active: bool = True


class ScheduleIn(_In):
    """A worker's proposed weekly schedule (it replaces shifts and breaks when approved)."""

    shifts: list[SlotIO] = Field(max_length=MAX_SHIFTS)
    breaks: list[SlotIO] = Field(default_factory=list, max_length=MAX_BREAKS)
    note: str | None = Field(default=None, max_length=200)


class DecisionIn(_In):
    """Staff's note on approving or rejecting a request."""

    note: str | None = Field(default=None, max_length=200)


class HomeOut(BaseModel):
    """A home base in the coordinate system the caller asked for."""

    lat: float
    lng: float
    coord_type: CoordType


class ProfileOut(BaseModel):
    """A worker's dispatch profile (reputation: NULL until reviews exist)."""

    id: int
    user_id: int
    enterprise_id: int
    display_name: str
    skills: list[str]
    shifts: list[SlotIO]
    breaks: list[SlotIO]
    home: HomeOut
    transport_mode: str
    is_active: bool
    rating: float
    reputation: float | None

    @classmethod
    def of(cls, worker: Worker, coord_type: CoordType) -> ProfileOut:
        """Build from a ``Worker`` row, the home converted to ``coord_type``."""
        lat, lng = from_wgs84(worker.home_lat, worker.home_lng, coord_type)
        return cls(
            id=worker.id,
            user_id=worker.user_id,
            enterprise_id=worker.enterprise_id,
            display_name=worker.display_name,
            skills=list(worker.skills or []),
            shifts=[SlotIO.model_validate(s) for s in worker.shifts or []],
            breaks=[SlotIO.model_validate(b) for b in worker.breaks or []],
            home=HomeOut(lat=lat, lng=lng, coord_type=coord_type),
            transport_mode=worker.transport_mode,
            is_active=worker.is_active,
            rating=worker.rating,
            reputation=worker.reputation,
        )


class ScheduleRequestOut(BaseModel):
    """A schedule change request and where it stands."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    worker_id: int
    shifts: list[SlotIO]
    breaks: list[SlotIO]
    note: str | None
    status: str
    decided_at: datetime | None
    decision_note: str | None
    created_at: datetime

    @classmethod
    def of(cls, request: WorkerScheduleRequest) -> ScheduleRequestOut:
        """Build from a ``WorkerScheduleRequest`` row."""
        return cls.model_validate(request)


class OwnProfileOut(ProfileOut):
    """The worker's own profile and the schedule change waiting for staff, if any."""

    pending_request: ScheduleRequestOut | None

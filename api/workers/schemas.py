"""Request and response bodies of the worker flow."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field

from api.core.geo_edge import CoordType


class PresenceIn(BaseModel):
    """Go online (optionally with the current position) or offline."""

    online: bool
    lat: float | None = Field(default=None, ge=-90, le=90)
    lng: float | None = Field(default=None, ge=-180, le=180)
    coord_type: CoordType = CoordType.WGS84


class PresenceOut(BaseModel):
    """The worker's live state after the change."""

    state: str


class PingItem(BaseModel):
    """One location fix: degrees in ``coord_type``, epoch seconds, accuracy radius in metres."""

    lat: float
    lng: float
    ts: float
    accuracy_m: float | None = None


class PingsIn(BaseModel):
    """A batch of fixes from the worker app (oldest first is fine, any order is accepted)."""

    coord_type: CoordType = CoordType.WGS84
    pings: list[PingItem] = Field(min_length=1, max_length=100)


class SocketPingsIn(PingsIn):
    """A batch over the worker's location socket; ``id`` (optional) is echoed in its ack."""

    id: Annotated[str, Field(max_length=64)] | int | None = None


class PingVerdictOut(BaseModel):
    """Per ping: accepted, or the reason it was not (out_of_range, stale, future, ...)."""

    index: int
    accepted: bool
    reason: str | None = None


class PingsOut(BaseModel):
    """Verdicts in request order."""

    accepted: int
    results: list[PingVerdictOut]


class OrderBrief(BaseModel):
    """What a worker sees of an order: place, time, masked contact, navigation."""

    id: int
    order_no: str
    service_id: int
    status: str
    dispatch_status: str | None
    slot_start: datetime
    duration_min: int
    lat: float
    lng: float
    address: str
    contact_name: str | None
    contact_phone_masked: str | None
    navigation: dict[str, Any]


class OfferOut(BaseModel):
    """An offer (auto or grab) with countdown and distance from the worker (m)."""

    offer_id: int
    mode: str
    expires_at: datetime
    seconds_left: int
    distance_m: float | None
    order: OrderBrief


class DeclineIn(BaseModel):
    """Why the worker declines (free text or a code such as ``too_far``)."""

    reason: str = Field(default="", max_length=64)


class StartIn(BaseModel):
    """The customer's service code (核销码)."""

    code: str = Field(min_length=4, max_length=8)


class CompleteIn(BaseModel):
    """Optional completion photos, base64 JPEG or PNG."""

    photos: list[str] = Field(default_factory=list, max_length=6)


class DayOut(BaseModel):
    """The worker's jobs of one local day."""

    day: date
    orders: list[OrderBrief]


class ServiceCodeOut(BaseModel):
    """The code the customer shows the worker at the door."""

    order_id: int
    code: str

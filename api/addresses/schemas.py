"""Request and response bodies of the address endpoints."""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from api.auth.schemas import check_phone
from api.core.geo_edge import CoordType


def _lat(value: float) -> float:
    if not (math.isfinite(value) and -90.0 <= value <= 90.0):
        raise PydanticCustomError("invalid_latitude", "Latitude must be between -90 and 90.")
    return value


def _lng(value: float) -> float:
    if not (math.isfinite(value) and -180.0 <= value <= 180.0):
        raise PydanticCustomError("invalid_longitude", "Longitude must be between -180 and 180.")
    return value


class AddressIn(BaseModel):
    """A new address; lat/lng as ``wx.getLocation``/``wx.chooseLocation`` gave them."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    contact_name: str = Field(min_length=1, max_length=64, examples=["王女士"])
    contact_phone: str = Field(max_length=20, examples=["13800138000"])
    label: str = Field(default="", max_length=32, examples=["家"])
    detail: str = Field(min_length=1, max_length=256, examples=["浦东新区世纪大道100号 8楼"])
    lat: float = Field(examples=[31.2304])
    lng: float = Field(examples=[121.4737])
    coord_type: CoordType = Field(default=CoordType.WGS84, examples=["gcj02"])
    is_default: bool = False

    _phone = field_validator("contact_phone")(check_phone)
    _lat = field_validator("lat")(_lat)
    _lng = field_validator("lng")(_lng)


class AddressPatch(BaseModel):
    """Fields to change; a new location needs both ``lat`` and ``lng``."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    contact_name: str | None = Field(default=None, min_length=1, max_length=64)
    contact_phone: str | None = Field(default=None, max_length=20)
    label: str | None = Field(default=None, max_length=32)
    detail: str | None = Field(default=None, min_length=1, max_length=256)
    lat: float | None = None
    lng: float | None = None
    coord_type: CoordType = CoordType.WGS84
    is_default: bool | None = None

    @field_validator("contact_phone")
    @classmethod
    def _phone(cls, v: str | None) -> str | None:
        return None if v is None else check_phone(v)

    @field_validator("lat")
    @classmethod
    def _check_lat(cls, v: float | None) -> float | None:
        return None if v is None else _lat(v)

    @field_validator("lng")
    @classmethod
    def _check_lng(cls, v: float | None) -> float | None:
        return None if v is None else _lng(v)

    @model_validator(mode="after")
    def _pair(self) -> AddressPatch:
        if (self.lat is None) != (self.lng is None):
            missing = "lng" if self.lng is None else "lat"
            raise PydanticCustomError("missing", "This field is required.", {"field": missing})
        return self


def mask_phone(phone: str) -> str:
    """``138****8000``: what other parties (workers, staff) may see."""
    return phone[:3] + "****" + phone[-4:] if len(phone) >= 7 else "****"


class AddressOut(BaseModel):
    """A saved address, its point in the coord_type the client asked for."""

    id: int
    contact_name: str
    contact_phone: str
    contact_phone_masked: str
    label: str
    detail: str
    lat: float
    lng: float
    coord_type: CoordType
    h3_cell: str = Field(description="H3 cell (hex) of the WGS-84 point")
    is_default: bool
    service_area_ids: list[int]

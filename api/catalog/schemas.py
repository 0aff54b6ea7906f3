"""Request and response bodies of the catalog endpoints."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from api.core.geo_edge import CoordType
from api.core.settings import SUPPORTED_LOCALES


def check_i18n(value: dict[str, str], *, max_length: int, required: bool = True) -> dict[str, str]:
    """Texts keyed by supported locale; zh-CN required when ``required``; trimmed, non-empty."""
    out: dict[str, str] = {}
    for key, text in value.items():
        stripped = text.strip() if isinstance(text, str) else ""
        if key not in SUPPORTED_LOCALES or not stripped or len(stripped) > max_length:
            raise PydanticCustomError(
                "invalid_i18n_text", "Give the text in zh-CN (required) and optionally en, ja, ko."
            )
        out[key] = stripped
    if required and "zh-CN" not in out:
        raise PydanticCustomError(
            "invalid_i18n_text", "Give the text in zh-CN (required) and optionally en, ja, ko."
        )
    return out


def localized(texts: dict[str, str], locale: str) -> str:
    """The text in ``locale``, falling back to zh-CN, then to any."""
    return texts.get(locale) or texts.get("zh-CN") or next(iter(texts.values()), "")


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


_SKILL = r"^[a-z0-9][a-z0-9_-]{0,31}$"
_NAMES_EXAMPLE = {
    "zh-CN": "日常保洁",
    "en": "Home cleaning",
    "ja": "ハウスクリーニング",
    "ko": "청소",
}


class CategoryIn(_In):
    """A new service category."""

    code: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$", examples=["cleaning"])
    names: dict[str, str] = Field(examples=[_NAMES_EXAMPLE])
    sort_order: int = Field(default=0, ge=-1000, le=1000)

    @field_validator("names")
    @classmethod
    def _names(cls, v: dict[str, str]) -> dict[str, str]:
        return check_i18n(v, max_length=64)


class CategoryOut(BaseModel):
    """A service category with its name in the request's locale."""

    id: int
    code: str
    name: str
    names: dict[str, str]
    sort_order: int


class ServiceIn(_In):
    """A new service; staff create for their own enterprise, admins name one."""

    enterprise_id: int | None = Field(default=None, ge=1)
    category_id: int = Field(ge=1, le=2**53)
    names: dict[str, str] = Field(examples=[_NAMES_EXAMPLE])
    descriptions: dict[str, str] = Field(default_factory=dict)
    price_fen: int = Field(gt=0, le=100_000_000, examples=[12800])
    duration_min: int = Field(ge=15, le=24 * 60, examples=[120])
    required_skills: list[str] = Field(default_factory=list, max_length=20)
    images: list[str] = Field(default_factory=list, max_length=10)
    popularity: int = Field(default=0, ge=0, le=10**9)
    is_active: bool = True

    @field_validator("names")
    @classmethod
    def _names(cls, v: dict[str, str]) -> dict[str, str]:
        return check_i18n(v, max_length=64)

    @field_validator("descriptions")
    @classmethod
    def _descriptions(cls, v: dict[str, str]) -> dict[str, str]:
        return check_i18n(v, max_length=2000, required=False)

    @field_validator("required_skills")
    @classmethod
    def _skills(cls, v: list[str]) -> list[str]:
        return _check_skills(v)

    @field_validator("images")
    @classmethod
    def _images(cls, v: list[str]) -> list[str]:
        return _check_images(v)


class ServicePatch(_In):
    """Fields to change on a service (absent = unchanged)."""

    category_id: int | None = Field(default=None, ge=1, le=2**53)
    names: dict[str, str] | None = None
    descriptions: dict[str, str] | None = None
    price_fen: int | None = Field(default=None, gt=0, le=100_000_000)
    duration_min: int | None = Field(default=None, ge=15, le=24 * 60)
    required_skills: list[str] | None = Field(default=None, max_length=20)
    images: list[str] | None = Field(default=None, max_length=10)
    popularity: int | None = Field(default=None, ge=0, le=10**9)
    is_active: bool | None = None

    @field_validator("names")
    @classmethod
    def _names(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        return None if v is None else check_i18n(v, max_length=64)

    @field_validator("descriptions")
    @classmethod
    def _descriptions(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        return None if v is None else check_i18n(v, max_length=2000, required=False)

    @field_validator("required_skills")
    @classmethod
    def _skills(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else _check_skills(v)

    @field_validator("images")
    @classmethod
    def _images(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else _check_images(v)


def _check_skills(v: list[str]) -> list[str]:
    for skill in v:
        if not re.match(_SKILL, skill):
            raise PydanticCustomError("string_pattern_mismatch", "Invalid format.")
    return sorted(set(v))


def _check_images(v: list[str]) -> list[str]:
    for url in v:
        if not (url.startswith(("https://", "http://", "/")) and 1 < len(url) <= 512):
            raise PydanticCustomError("url_parsing", "Must be a valid URL.")
    return v


class ReviewSummary(BaseModel):
    """Review count and mean rating (null until a service has reviews)."""

    count: int = 0
    average_rating: float | None = None


class ServiceOut(BaseModel):
    """A service as shown to customers, in the request's locale."""

    id: int
    enterprise_id: int
    category_id: int
    category_code: str
    name: str
    description: str
    names: dict[str, str]
    descriptions: dict[str, str]
    price_fen: int = Field(description="price in fen (1/100 yuan)")
    duration_min: int
    required_skills: list[str]
    images: list[str]
    is_active: bool
    review_summary: ReviewSummary


class ServiceList(BaseModel):
    """A page of services."""

    items: list[ServiceOut]
    total: int
    limit: int
    offset: int


class HotServiceOut(ServiceOut):
    """A service in the hot list, with what it was ranked by."""

    rank: int
    score: int = Field(description="paid orders in the last 30 days, or the popularity fallback")


class HotServiceList(BaseModel):
    """Hot services near a point."""

    items: list[HotServiceOut]
    ranking_basis: Literal["paid_orders_30d", "popularity"]
    area_ids: list[int] = Field(description="service areas containing the point (empty: none)")


class AreaIn(_In):
    """A service area as GeoJSON (Polygon, MultiPolygon or a Feature of one)."""

    enterprise_id: int | None = Field(default=None, ge=1)
    name: str = Field(min_length=1, max_length=128, examples=["浦东新区"])
    city: str = Field(default="", max_length=64, examples=["上海"])
    coord_type: CoordType = CoordType.WGS84
    geojson: dict[str, Any] = Field(
        examples=[
            {
                "type": "Polygon",
                "coordinates": [
                    [[121.4, 31.1], [121.6, 31.1], [121.6, 31.3], [121.4, 31.3], [121.4, 31.1]]
                ],
            }
        ]
    )
    is_active: bool = True


class AreaPatch(_In):
    """Fields to change on a service area (``geojson`` needs ``coord_type`` to read it)."""

    name: str | None = Field(default=None, min_length=1, max_length=128)
    city: str | None = Field(default=None, max_length=64)
    coord_type: CoordType = CoordType.WGS84
    geojson: dict[str, Any] | None = None
    is_active: bool | None = None


class AreaOut(BaseModel):
    """A service area with its polygon as GeoJSON in the requested coord_type."""

    id: int
    enterprise_id: int
    name: str
    city: str
    is_active: bool
    coord_type: CoordType
    geojson: dict[str, Any]

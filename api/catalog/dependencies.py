"""Catalog dependencies: the client's point (lat, lng, coord_type) as query parameters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Request

from api.catalog.service import AreaLookup
from api.core.errors import InvalidInput
from api.core.geo_edge import CoordType, to_wgs84
from geo.errors import GeoError


class InvalidPoint(InvalidInput):
    """lat/lng out of range, not finite, or only one of the pair given."""

    status_code = 422
    code = "invalid_coordinates"
    message = "Give both lat and lng as valid coordinates."


@dataclass(frozen=True)
class Point:
    """A WGS-84 point converted from the client's coordinate system."""

    lat: float
    lng: float


async def optional_point(
    lat: Annotated[float | None, Query(ge=-90, le=90, description="latitude, degrees")] = None,
    lng: Annotated[float | None, Query(ge=-180, le=180, description="longitude, degrees")] = None,
    coord_type: Annotated[CoordType, Query(description="system of lat/lng")] = CoordType.WGS84,
) -> Point | None:
    """The caller's location in WGS-84, or ``None`` when not given."""
    if lat is None and lng is None:
        return None
    if lat is None or lng is None:
        raise InvalidPoint()
    try:
        wlat, wlng = to_wgs84(lat, lng, coord_type)
    except (GeoError, ValueError) as exc:
        raise InvalidPoint() from exc
    return Point(wlat, wlng)


OptionalPoint = Annotated[Point | None, Depends(optional_point)]


async def get_area_lookup(request: Request) -> AreaLookup:
    """The process-wide point-in-area index (rebuilt when the areas change)."""
    lookup: AreaLookup = request.app.state.area_lookup
    return lookup


AreaLookupDep = Annotated[AreaLookup, Depends(get_area_lookup)]

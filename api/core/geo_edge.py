"""Coordinates at the API's edge: client systems in and out, and the H3 cell of a stored point.

Everything inside the API is WGS-84; clients may send and ask for GCJ-02 (WeChat,
Chinese map SDKs) or BD-09 (Baidu), converted here exactly once. This is the edge
only: the domains import ``geo`` directly for what they compute inside (travel models,
ETA, service areas, distances, cells of the live layer).
"""

from __future__ import annotations

from geo import cells as geo_cells
from geo import coords as geo_coords
from geo.coords import CoordType
from geo.errors import GeoError

#: H3 resolution of stored points (~0.1 km² cells): fine enough for "near me", coarse
#: enough that k-rings stay small.
POINT_H3_RES = 9


def to_wgs84(lat: float, lng: float, coord_type: CoordType) -> tuple[float, float]:
    """A client point converted to WGS-84 (degrees); raises ``geo.errors.InvalidCoordinate``."""
    if coord_type is CoordType.WGS84:
        geo_cells.latlng_to_cells(lat, lng, POINT_H3_RES)  # validates range and finiteness
        return float(lat), float(lng)
    out_lat, out_lng = geo_coords.to_wgs84(lat, lng, coord_type)
    return float(out_lat), float(out_lng)


def from_wgs84(lat: float, lng: float, coord_type: CoordType) -> tuple[float, float]:
    """A stored WGS-84 point in the coordinate system a client asked for."""
    if coord_type is CoordType.WGS84:
        return lat, lng
    out_lat, out_lng = geo_coords.from_wgs84(lat, lng, coord_type)
    return float(out_lat), float(out_lng)


def point_cell(lat: float, lng: float) -> int:
    """The H3 cell (as a signed-safe int: H3's top bit is always 0) of a WGS-84 point."""
    return int(geo_cells.latlng_to_cells(lat, lng, POINT_H3_RES))


__all__ = [
    "POINT_H3_RES",
    "CoordType",
    "GeoError",
    "from_wgs84",
    "point_cell",
    "to_wgs84",
]

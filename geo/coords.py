"""WGS-84 ↔ GCJ-02 ↔ BD-09 conversion, vectorised.

GCJ-02 ("Mars coordinates", used by WeChat, Amap and Tencent maps) offsets WGS-84 by a few
hundred metres, but only inside mainland China; BD-09 (Baidu) is a further fixed transform of
GCJ-02. Every function takes ``(lat, lng)`` in degrees, either Python floats (and then returns
floats) or numpy arrays of equal shape (and then returns arrays), with no Python loop over points.

"Inside mainland China" is decided with a real outline (``geo/data/china_mainland.geojson``,
Natural Earth; Hong Kong, Macao and Taiwan excluded), not a bounding box. A coarse grid
precomputed from the outline answers most points with one array lookup; only points in grid
cells crossed by the border take the exact polygon test.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources
from typing import Any, Final, overload

import numpy as np
import shapely
from numpy.typing import ArrayLike, NDArray
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from geo._arrays import FloatArray, as_latlng
from geo.errors import InvalidParameter

__all__ = [
    "CoordType",
    "bd09_to_gcj02",
    "bd09_to_wgs84",
    "from_wgs84",
    "gcj02_to_bd09",
    "gcj02_to_wgs84",
    "in_mainland_china",
    "parse_coord_type",
    "to_wgs84",
    "wgs84_to_bd09",
    "wgs84_to_gcj02",
]


class CoordType(StrEnum):
    """Coordinate system of a lat/lng pair, named as in WeChat's ``wx.getLocation``."""

    WGS84 = "wgs84"
    GCJ02 = "gcj02"
    BD09 = "bd09"


# Krasovsky 1940 ellipsoid, as the GCJ-02 algorithm uses it.
_GCJ_A: Final = 6378245.0
_GCJ_EE: Final = 0.00669342162296594323
# Baidu's constants: x_pi = pi * 3000 / 180 and the fixed BD-09 shift (degrees).
_X_PI: Final = math.pi * 3000.0 / 180.0
_BD_DLAT: Final = 0.006
_BD_DLNG: Final = 0.0065
# Fixed-point inverses stop once forward(estimate) is within this of the input (degrees). The
# iteration contracts by a factor < 0.01 per step in China's latitudes (the offsets' slopes are
# < 500 m per degree), so after the last correction the estimate is within 1e-8 degree of the
# exact inverse (typically ~1e-9), below the 1e-7 degree (~1 cm) promised to callers.
_INVERSE_TOL_DEG: Final = 1e-6
_INVERSE_MAX_STEPS: Final = 12
# Over China's bounding box GCJ-02 moves points by at most ~0.0104 degree (longitude, in the
# far north-east); a GCJ point farther than this outside the outline's bounding box cannot have
# a pre-image inside China.
_GCJ_MAX_SHIFT_DEG: Final = 0.05

# Points per block of the GCJ-02 offset computation (256 KiB per float64 array: fits in L2).
_CHUNK_POINTS: Final = 32_768

_OUTLINE_RESOURCE: Final = "china_mainland.geojson"
# Grid cell of the precomputed inside/outside/border lookup, degrees (a power of two, so cell
# indices are exact in binary floating point; ~3.5 km).
_GRID_CELL_DEG: Final = 1.0 / 32.0
_OUTSIDE: Final = 0
_INSIDE: Final = 1
_BORDER: Final = 2

BoolArray = NDArray[np.bool_]


@dataclass(frozen=True)
class _Outline:
    """The mainland outline with its lookup grid; built once by ``_outline()``."""

    geometry: BaseGeometry
    x0: float
    y0: float
    grid: NDArray[np.uint8]

    def contains(self, lat: FloatArray, lng: FloatArray) -> BoolArray:
        """Whether each point (flat arrays, degrees) lies inside the outline."""
        rows, cols = self.grid.shape
        # The grid's outermost ring is all "outside", so clipping sends every point beyond the
        # bounding box to an outside cell: the bounding-box reject costs no extra pass.
        col = np.clip((lng - self.x0) * (1.0 / _GRID_CELL_DEG), 0.0, cols - 1).astype(np.intp)
        row = np.clip((lat - self.y0) * (1.0 / _GRID_CELL_DEG), 0.0, rows - 1).astype(np.intp)
        row *= cols
        row += col
        status = self.grid.ravel()[row]
        result: BoolArray = status == _INSIDE
        border = np.flatnonzero(status == _BORDER)
        if border.size:
            result[border] = shapely.contains_xy(self.geometry, lng[border], lat[border])
        return result


def _build_grid(geometry: BaseGeometry) -> tuple[float, float, NDArray[np.uint8]]:
    """Classify grid cells as outside / inside / crossed by the border (conservatively)."""
    cell = _GRID_CELL_DEG
    minx, miny, maxx, maxy = geometry.bounds
    # Two spare cells on every side: the 3x3 dilation below reaches into the inner one, the
    # outer ring stays "outside" (``contains`` clips far-away points onto it).
    x0 = (math.floor(minx / cell) - 2) * cell
    y0 = (math.floor(miny / cell) - 2) * cell
    cols = math.ceil((maxx - x0) / cell) + 3
    rows = math.ceil((maxy - y0) / cell) + 3

    # Sample the border at most cell/2 apart: every cell the border passes through then has a
    # sample within cell/4, i.e. in the cell or a neighbour, so dilating the sampled cells by one
    # marks every crossed cell (and a few more, which only costs an exact test).
    samples = shapely.get_coordinates(shapely.segmentize(geometry.boundary, cell / 2.0))
    sampled = np.zeros((rows, cols), dtype=np.bool_)
    sampled[
        ((samples[:, 1] - y0) / cell).astype(np.intp),
        ((samples[:, 0] - x0) / cell).astype(np.intp),
    ] = True
    vertical = sampled.copy()  # 3x3 dilation as a vertical then a horizontal 3-cell one
    vertical[1:] |= sampled[:-1]
    vertical[:-1] |= sampled[1:]
    border = vertical.copy()
    border[:, 1:] |= vertical[:, :-1]
    border[:, :-1] |= vertical[:, 1:]

    # A run of consecutive non-border cells in one row is crossed by no border, so it lies
    # wholly inside or wholly outside: one exact test per run (at its first cell's centre).
    free = ~border.ravel()
    run_start = free.copy()
    run_start[1:] &= ~free[:-1]
    run_start[::cols] = free[::cols]  # every row starts new runs
    first = np.flatnonzero(run_start)
    run_inside = shapely.contains_xy(
        geometry, x0 + (first % cols + 0.5) * cell, y0 + (first // cols + 0.5) * cell
    )
    run_of_cell = np.cumsum(run_start) - 1
    grid = np.where(run_inside, _INSIDE, _OUTSIDE).astype(np.uint8)[np.maximum(run_of_cell, 0)]
    grid[~free] = _BORDER
    grid = grid.reshape(rows, cols)
    return x0, y0, grid


@functools.cache
def _outline() -> _Outline:
    """Load the shipped mainland outline once and build its lookup grid."""
    text = resources.files("geo.data").joinpath(_OUTLINE_RESOURCE).read_text(encoding="utf-8")
    geometry = shape(json.loads(text)["geometry"])
    shapely.prepare(geometry)
    x0, y0, grid = _build_grid(geometry)
    return _Outline(geometry=geometry, x0=x0, y0=y0, grid=grid)


def _inside(lat: FloatArray, lng: FloatArray) -> BoolArray:
    """Mainland test for validated flat arrays."""
    return _outline().contains(lat, lng)


def _gcj_offset(lat: FloatArray, lng: FloatArray) -> tuple[FloatArray, FloatArray]:
    """GCJ-02 shift (dlat, dlng) in degrees at WGS-84 points (flat arrays), no region check."""
    if lat.size <= _CHUNK_POINTS:
        return _gcj_offset_block(lat, lng)
    # ~40 array passes per block: in cache-sized blocks they run ~1.5x faster than over
    # arrays of millions of points, which stream through main memory on every pass.
    dlat = np.empty_like(lat)
    dlng = np.empty_like(lng)
    for start in range(0, lat.size, _CHUNK_POINTS):
        block = slice(start, start + _CHUNK_POINTS)
        dlat[block], dlng[block] = _gcj_offset_block(lat[block], lng[block])
    return dlat, dlng


def _gcj_offset_block(lat: FloatArray, lng: FloatArray) -> tuple[FloatArray, FloatArray]:
    """GCJ-02 shift (dlat, dlng) in degrees at WGS-84 points, without any region check.

    The published polynomials (x = lng - 105, y = lat - 35, metres) are::

        dlat_m = -100 + 2x + 3y + 0.2y² + 0.1xy + 0.2√|x| + (20 sin 6πx + 20 sin 2πx)·2/3
                 + (20 sin πy + 40 sin πy/3)·2/3 + (160 sin πy/12 + 320 sin πy/30)·2/3
        dlng_m = 300 + x + 2y + 0.1x² + 0.1xy + 0.1√|x| + (20 sin 6πx + 20 sin 2πx)·2/3
                 + (20 sin πx + 40 sin πx/3)·2/3 + (150 sin πx/12 + 300 sin πx/30)·2/3

    This is the hot path of every bulk conversion, so it is written for speed: multiple-angle
    identities derive sin 6πx, sin 2πx, sin πx, sin πx/3 from sin/cos πx/12 (and sin πy,
    sin πy/3 from sin/cos πy/12), cutting 10 transcendental calls to 6 (the identities lose
    < 1e-12 m), and arithmetic is done in place to spare temporaries.
    """
    x = lng - 105.0
    y = lat - 35.0
    sx12, cx12 = np.sin(x * (math.pi / 12.0)), np.cos(x * (math.pi / 12.0))
    sx3, cx3 = _quadruple_angle(sx12, cx12)  # sin, cos of pi*x/3
    sx1 = _triple_angle_sin(sx3)  # sin(pi*x)
    cx1 = cx3 * cx3  # cos(pi*x) = cos(3b) = (4cos²b - 3)cos b
    cx1 *= 4.0
    cx1 -= 3.0
    cx1 *= cx3
    sx2 = sx1 * cx1  # sin(2*pi*x)
    sx2 *= 2.0
    sx6 = _triple_angle_sin(sx2)  # sin(6*pi*x)
    sy12, cy12 = np.sin(y * (math.pi / 12.0)), np.cos(y * (math.pi / 12.0))
    sy3, _ = _quadruple_angle(sy12, cy12)  # sin(pi*y/3)
    sy1 = _triple_angle_sin(sy3)  # sin(pi*y)
    root = np.sqrt(np.abs(x))

    # Terms common to both: -100 + 300 are added separately below.
    common = sx6
    common += sx2
    common *= 40.0 / 3.0

    dlat_m = y * 0.2  # y(3 + 0.2y)
    dlat_m += 3.0
    dlat_m *= y
    term = y * 0.1  # x(2 + 0.1y)
    term += 2.0
    term *= x
    dlat_m += term
    dlat_m += common
    np.multiply(root, 0.2, out=term)
    dlat_m += term
    np.multiply(sy1, 40.0 / 3.0, out=term)
    dlat_m += term
    np.multiply(sy3, 80.0 / 3.0, out=term)
    dlat_m += term
    np.multiply(sy12, 320.0 / 3.0, out=term)
    dlat_m += term
    np.sin(y * (math.pi / 30.0), out=term)
    term *= 640.0 / 3.0
    dlat_m += term
    dlat_m -= 100.0

    dlng_m = x + y  # x(1 + 0.1(x + y)) + 2y
    dlng_m *= 0.1
    dlng_m += 1.0
    dlng_m *= x
    np.multiply(y, 2.0, out=term)
    dlng_m += term
    dlng_m += common
    np.multiply(root, 0.1, out=term)
    dlng_m += term
    np.multiply(sx1, 40.0 / 3.0, out=term)
    dlng_m += term
    np.multiply(sx3, 80.0 / 3.0, out=term)
    dlng_m += term
    np.multiply(sx12, 100.0, out=term)
    dlng_m += term
    np.sin(x * (math.pi / 30.0), out=term)
    term *= 200.0
    dlng_m += term
    dlng_m += 300.0

    # Metres to degrees on the Krasovsky ellipsoid: meridian and parallel radii at lat.
    sin_lat = np.sin(np.radians(lat))
    sin_lat *= sin_lat
    magic = 1.0 - _GCJ_EE * sin_lat  # 1 - e² sin²(lat)
    # cos(lat) >= 0 for valid latitudes, so it follows from sin(lat) without another call.
    cos_lat = np.subtract(1.0, sin_lat, out=sin_lat)
    np.maximum(cos_lat, 0.0, out=cos_lat)
    np.sqrt(cos_lat, out=cos_lat)
    sqrt_magic = np.sqrt(magic)
    dlng_m *= sqrt_magic
    dlng_m /= cos_lat
    dlng_m *= 180.0 / (_GCJ_A * math.pi)
    magic *= sqrt_magic  # magic^1.5
    dlat_m *= magic
    dlat_m *= 180.0 / (_GCJ_A * (1.0 - _GCJ_EE) * math.pi)
    return dlat_m, dlng_m


def _triple_angle_sin(s: FloatArray) -> FloatArray:
    """sin 3a = (3 - 4 sin²a) sin a, from sin a."""
    out = s * s
    out *= -4.0
    out += 3.0
    out *= s
    return out


def _quadruple_angle(s: FloatArray, c: FloatArray) -> tuple[FloatArray, FloatArray]:
    """(sin 4a, cos 4a) from (sin a, cos a)."""
    s2 = s * c  # sin 2a / 2
    c2 = s * s
    c2 *= -2.0
    c2 += 1.0  # cos 2a
    sin4 = s2 * c2
    sin4 *= 4.0  # 2 sin 2a cos 2a
    cos4 = s2 * s2
    cos4 *= -8.0
    cos4 += 1.0  # 1 - 2 sin² 2a
    return sin4, cos4


def _wgs_to_gcj(lat: FloatArray, lng: FloatArray) -> tuple[FloatArray, FloatArray]:
    out_lat = lat.copy()
    out_lng = lng.copy()
    mask = _inside(lat, lng)
    if mask.all():
        dlat, dlng = _gcj_offset(lat, lng)
        return lat + dlat, lng + dlng
    if mask.any():
        dlat, dlng = _gcj_offset(lat[mask], lng[mask])
        out_lat[mask] += dlat
        out_lng[mask] += dlng
    return out_lat, out_lng


_Transform = Callable[[FloatArray, FloatArray], tuple[FloatArray, FloatArray]]


def _invert(
    forward: _Transform,
    lat: FloatArray,
    lng: FloatArray,
    est_lat: FloatArray,
    est_lng: FloatArray,
) -> tuple[FloatArray, FloatArray]:
    """Solve forward(p) = (lat, lng) by fixed-point iteration from (est_lat, est_lng), in place.

    Each point stops on its own, so a point's answer does not depend on the batch it came in.
    """
    active: NDArray[np.intp] | None = None  # None: every point is still iterating
    for _ in range(_INVERSE_MAX_STEPS):
        if active is None:
            fwd_lat, fwd_lng = forward(est_lat, est_lng)
            err_lat, err_lng = fwd_lat - lat, fwd_lng - lng
            est_lat -= err_lat
            est_lng -= err_lng
            still = np.flatnonzero(np.maximum(np.abs(err_lat), np.abs(err_lng)) > _INVERSE_TOL_DEG)
            if still.size == lat.size:
                continue
            active = still
        else:
            fwd_lat, fwd_lng = forward(est_lat[active], est_lng[active])
            err_lat, err_lng = fwd_lat - lat[active], fwd_lng - lng[active]
            est_lat[active] -= err_lat
            est_lng[active] -= err_lng
            active = active[np.maximum(np.abs(err_lat), np.abs(err_lng)) > _INVERSE_TOL_DEG]
        if active.size == 0:
            break
    return est_lat, est_lng


def _gcj_forward_unchecked(lat: FloatArray, lng: FloatArray) -> tuple[FloatArray, FloatArray]:
    dlat, dlng = _gcj_offset(lat, lng)
    return lat + dlat, lng + dlng


def _gcj_inverse_unchecked(lat: FloatArray, lng: FloatArray) -> tuple[FloatArray, FloatArray]:
    """WGS-84 points whose (unchecked) GCJ-02 image is the input."""
    dlat, dlng = _gcj_offset(lat, lng)
    return _invert(_gcj_forward_unchecked, lat, lng, lat - dlat, lng - dlng)


def _gcj_to_wgs(lat: FloatArray, lng: FloatArray) -> tuple[FloatArray, FloatArray]:
    out_lat = lat.copy()
    out_lng = lng.copy()
    if lat.size == 0:
        return out_lat, out_lng
    outline = _outline()
    minx, miny, maxx, maxy = outline.geometry.bounds
    near = (
        (lat >= miny - _GCJ_MAX_SHIFT_DEG)
        & (lat <= maxy + _GCJ_MAX_SHIFT_DEG)
        & (lng >= minx - _GCJ_MAX_SHIFT_DEG)
        & (lng <= maxx + _GCJ_MAX_SHIFT_DEG)
    )
    if not near.any():
        return out_lat, out_lng
    cand_lat, cand_lng = _gcj_inverse_unchecked(lat[near], lng[near])
    # The pre-image decides: a GCJ point is shifted back only when the WGS-84 point it came
    # from lies inside mainland China, so the round trip is consistent near the border.
    inside = _inside(cand_lat, cand_lng)
    idx = np.flatnonzero(near)[inside]
    out_lat[idx] = cand_lat[inside]
    out_lng[idx] = cand_lng[inside]
    return out_lat, out_lng


def _gcj_to_bd(lat: FloatArray, lng: FloatArray) -> tuple[FloatArray, FloatArray]:
    z = np.hypot(lng, lat) + 0.00002 * np.sin(lat * _X_PI)
    theta = np.arctan2(lat, lng) + 0.000003 * np.cos(lng * _X_PI)
    return z * np.sin(theta) + _BD_DLAT, z * np.cos(theta) + _BD_DLNG


def _bd_to_gcj(lat: FloatArray, lng: FloatArray) -> tuple[FloatArray, FloatArray]:
    # Baidu's published closed-form inverse is off by up to ~2e-6 degree; refine it by
    # fixed-point iteration on the forward transform so round trips close to within 1e-8 degree.
    x = lng - _BD_DLNG
    y = lat - _BD_DLAT
    z = np.hypot(x, y) - 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) - 0.000003 * np.cos(x * _X_PI)
    return _invert(_gcj_to_bd, lat, lng, z * np.sin(theta), z * np.cos(theta))


def _apply(transform: _Transform, lat: ArrayLike, lng: ArrayLike) -> tuple[Any, Any]:
    """Validate, run ``transform`` on flat arrays, and give back floats or the input's shape.

    Every transform here works point by point, so large inputs go through in cache-sized
    blocks (faster, and bit-for-bit the same answers).
    """
    lat_a, lng_a, scalar = as_latlng(lat, lng)
    flat_lat, flat_lng = lat_a.reshape(-1), lng_a.reshape(-1)
    if flat_lat.size <= _CHUNK_POINTS:
        out_lat, out_lng = transform(flat_lat, flat_lng)
    else:
        out_lat = np.empty_like(flat_lat)
        out_lng = np.empty_like(flat_lng)
        for start in range(0, flat_lat.size, _CHUNK_POINTS):
            block = slice(start, start + _CHUNK_POINTS)
            out_lat[block], out_lng[block] = transform(flat_lat[block], flat_lng[block])
    if scalar:
        return float(out_lat[0]), float(out_lng[0])
    return out_lat.reshape(lat_a.shape), out_lng.reshape(lat_a.shape)


def _wgs_to_bd(lat: FloatArray, lng: FloatArray) -> tuple[FloatArray, FloatArray]:
    return _gcj_to_bd(*_wgs_to_gcj(lat, lng))


def _bd_to_wgs(lat: FloatArray, lng: FloatArray) -> tuple[FloatArray, FloatArray]:
    return _gcj_to_wgs(*_bd_to_gcj(lat, lng))


def _identity(lat: FloatArray, lng: FloatArray) -> tuple[FloatArray, FloatArray]:
    return lat.copy(), lng.copy()


_TO_WGS84: Final[dict[CoordType, _Transform]] = {
    CoordType.WGS84: _identity,
    CoordType.GCJ02: lambda lat, lng: _gcj_to_wgs(lat, lng),
    CoordType.BD09: lambda lat, lng: _bd_to_wgs(lat, lng),
}
_FROM_WGS84: Final[dict[CoordType, _Transform]] = {
    CoordType.WGS84: _identity,
    CoordType.GCJ02: lambda lat, lng: _wgs_to_gcj(lat, lng),
    CoordType.BD09: lambda lat, lng: _wgs_to_bd(lat, lng),
}


@overload
def wgs84_to_gcj02(lat: float, lng: float) -> tuple[float, float]: ...
@overload
def wgs84_to_gcj02(lat: ArrayLike, lng: ArrayLike) -> tuple[FloatArray, FloatArray]: ...
def wgs84_to_gcj02(lat: ArrayLike, lng: ArrayLike) -> tuple[Any, Any]:
    """WGS-84 → GCJ-02 (degrees); points outside mainland China are returned unchanged."""
    return _apply(_wgs_to_gcj, lat, lng)


@overload
def gcj02_to_wgs84(lat: float, lng: float) -> tuple[float, float]: ...
@overload
def gcj02_to_wgs84(lat: ArrayLike, lng: ArrayLike) -> tuple[FloatArray, FloatArray]: ...
def gcj02_to_wgs84(lat: ArrayLike, lng: ArrayLike) -> tuple[Any, Any]:
    """GCJ-02 → WGS-84 (degrees), inverse to within 1e-8 degree by fixed-point iteration.

    A point is shifted back only when its WGS-84 pre-image lies inside mainland China;
    otherwise it is returned unchanged.
    """
    return _apply(_gcj_to_wgs, lat, lng)


@overload
def gcj02_to_bd09(lat: float, lng: float) -> tuple[float, float]: ...
@overload
def gcj02_to_bd09(lat: ArrayLike, lng: ArrayLike) -> tuple[FloatArray, FloatArray]: ...
def gcj02_to_bd09(lat: ArrayLike, lng: ArrayLike) -> tuple[Any, Any]:
    """GCJ-02 → BD-09 (degrees) by Baidu's formula; applies everywhere, like Baidu's API."""
    return _apply(_gcj_to_bd, lat, lng)


@overload
def bd09_to_gcj02(lat: float, lng: float) -> tuple[float, float]: ...
@overload
def bd09_to_gcj02(lat: ArrayLike, lng: ArrayLike) -> tuple[FloatArray, FloatArray]: ...
def bd09_to_gcj02(lat: ArrayLike, lng: ArrayLike) -> tuple[Any, Any]:
    """BD-09 → GCJ-02 (degrees), inverse of ``gcj02_to_bd09`` to within 1e-8 degree."""
    return _apply(_bd_to_gcj, lat, lng)


@overload
def wgs84_to_bd09(lat: float, lng: float) -> tuple[float, float]: ...
@overload
def wgs84_to_bd09(lat: ArrayLike, lng: ArrayLike) -> tuple[FloatArray, FloatArray]: ...
def wgs84_to_bd09(lat: ArrayLike, lng: ArrayLike) -> tuple[Any, Any]:
    """WGS-84 → BD-09 (degrees): GCJ-02 inside mainland China, then Baidu's transform."""
    return _apply(_wgs_to_bd, lat, lng)


@overload
def bd09_to_wgs84(lat: float, lng: float) -> tuple[float, float]: ...
@overload
def bd09_to_wgs84(lat: ArrayLike, lng: ArrayLike) -> tuple[FloatArray, FloatArray]: ...
def bd09_to_wgs84(lat: ArrayLike, lng: ArrayLike) -> tuple[Any, Any]:
    """BD-09 → WGS-84 (degrees): inverse of ``wgs84_to_bd09``."""
    return _apply(_bd_to_wgs, lat, lng)


def parse_coord_type(coord_type: CoordType | str) -> CoordType:
    """Return ``coord_type`` as a ``CoordType``; ``InvalidParameter`` naming it if unknown."""
    try:
        return CoordType(coord_type)
    except ValueError:
        names = ", ".join(member.value for member in CoordType)
        raise InvalidParameter(f"coord_type must be one of {names}, got {coord_type!r}") from None


@overload
def to_wgs84(lat: float, lng: float, coord_type: CoordType | str) -> tuple[float, float]: ...
@overload
def to_wgs84(
    lat: ArrayLike, lng: ArrayLike, coord_type: CoordType | str
) -> tuple[FloatArray, FloatArray]: ...
def to_wgs84(lat: ArrayLike, lng: ArrayLike, coord_type: CoordType | str) -> tuple[Any, Any]:
    """Convert points given in ``coord_type`` to WGS-84 (degrees)."""
    return _apply(_TO_WGS84[parse_coord_type(coord_type)], lat, lng)


@overload
def from_wgs84(lat: float, lng: float, coord_type: CoordType | str) -> tuple[float, float]: ...
@overload
def from_wgs84(
    lat: ArrayLike, lng: ArrayLike, coord_type: CoordType | str
) -> tuple[FloatArray, FloatArray]: ...
def from_wgs84(lat: ArrayLike, lng: ArrayLike, coord_type: CoordType | str) -> tuple[Any, Any]:
    """Convert WGS-84 points (degrees) to ``coord_type``."""
    return _apply(_FROM_WGS84[parse_coord_type(coord_type)], lat, lng)


@overload
def in_mainland_china(lat: float, lng: float) -> bool: ...
@overload
def in_mainland_china(lat: ArrayLike, lng: ArrayLike) -> BoolArray: ...
def in_mainland_china(lat: ArrayLike, lng: ArrayLike) -> Any:
    """Whether WGS-84 points (degrees) lie in mainland China (not Hong Kong, Macao, Taiwan)."""
    lat_a, lng_a, scalar = as_latlng(lat, lng)
    inside = _outline().contains(lat_a.reshape(-1), lng_a.reshape(-1))
    return bool(inside[0]) if scalar else inside.reshape(lat_a.shape)

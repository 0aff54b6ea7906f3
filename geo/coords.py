"""WGS-84 ↔ GCJ-02 ↔ BD-09 conversion, vectorised.

GCJ-02 ("Mars coordinates", used by WeChat, Amap and Tencent maps) offsets WGS-84 by a few
hundred metres, but only inside mainland China; BD-09 (Baidu) is a further fixed transform of
GCJ-02. Every function takes ``(lat, lng)`` in degrees, either Python floats (and then returns
floats) or numpy arrays of equal shape (and then returns arrays), with no Python loop over points.

"Inside mainland China" is decided with a real outline (``geo/data/china_mainland.geojson``,
Natural Earth; Hong Kong, Macao and Taiwan excluded), not a bounding box. A coarse grid
precomputed from the outline, refined 8x8 in the cells the border crosses, answers most points
with array lookups; only points in sub-cells crossed by the border take the exact polygon test.

Large inputs go through in cache-sized blocks, spread over ``threads`` threads (default:
``default_threads``, one per usable core for big inputs); the answers do not depend on either.
The GCJ-02 shift itself is computed by ``geo._gcj`` (polynomial sin/cos, no libm calls).
"""

from __future__ import annotations

import functools
import json
import math
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources
from typing import Any, Final, overload

import numpy as np
import shapely
from numpy.typing import ArrayLike, NDArray
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from geo import _gcj
from geo._arrays import FloatArray, as_latlng
from geo.errors import InvalidParameter

__all__ = [
    "CoordType",
    "bd09_to_gcj02",
    "bd09_to_wgs84",
    "default_threads",
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

# Points per block of every conversion: the GCJ-02 kernel's ~200 array passes then run over
# its scratch rows in cache instead of streaming millions of points through main memory.
_CHUNK_POINTS: Final = 32_768
# Threads: none beyond the first below this many points each (starting a pool costs ~0.1 ms,
# a block ~1.5 ms of CPU); never more than _MAX_THREADS.
_MIN_POINTS_PER_THREAD: Final = 65_536
_MAX_THREADS: Final = 8

_OUTLINE_RESOURCE: Final = "china_mainland.geojson"
# Grid cell of the precomputed inside/outside/border lookup, degrees (a power of two, so cell
# indices are exact in binary floating point; ~3.5 km).
_GRID_CELL_DEG: Final = 1.0 / 32.0
_OUTSIDE: Final = 0
_INSIDE: Final = 1
_BORDER: Final = 2
# Each border cell is split into _SUB_CELLS x _SUB_CELLS sub-cells (1/256 degree, ~400 m),
# classified the same way: only points in sub-cells the border crosses take the exact test
# (~1% of city points instead of ~8%; the grid becomes uint16 slots, +4 MB in all).
_SUB_CELLS: Final = 8

BoolArray = NDArray[np.bool_]


@dataclass(frozen=True)
class _Outline:
    """The mainland outline with its two-level lookup grid; built once by ``_outline()``."""

    geometry: BaseGeometry
    x0: float
    y0: float
    # Per cell: _OUTSIDE, _INSIDE, or _BORDER + k for the k-th border cell, whose sub-cells'
    # status is sub_grids[k] (shape: border cells, _SUB_CELLS, _SUB_CELLS).
    grid: NDArray[np.unsignedinteger[Any]]
    sub_grids: NDArray[np.uint8]

    def contains(
        self, lat: FloatArray, lng: FloatArray, work: FloatArray | None = None
    ) -> BoolArray:
        """Whether each point (flat arrays, degrees) lies inside the outline.

        ``work``, if given, is scratch memory of shape (>= 4, >= len(lat)) for the cell
        arithmetic (fresh arrays of a block's size cost more in page faults than the passes).
        """
        n = lat.shape[0]
        if work is None:
            work = np.empty((4, n))
        rows, cols = self.grid.shape
        x, y = work[0, :n], work[1, :n]
        col, row = work[2, :n].view(np.intp), work[3, :n].view(np.intp)
        # The grid's outermost ring is all "outside", so clipping sends every point beyond the
        # bounding box to an outside cell: the bounding-box reject costs no extra pass.
        np.subtract(lng, self.x0, out=x)
        x *= 1.0 / _GRID_CELL_DEG
        np.clip(x, 0.0, cols - 1, out=x)
        np.subtract(lat, self.y0, out=y)
        y *= 1.0 / _GRID_CELL_DEG
        np.clip(y, 0.0, rows - 1, out=y)
        np.copyto(col, x, casting="unsafe")  # truncation: floor, as x, y >= 0
        np.copyto(row, y, casting="unsafe")
        row *= cols
        row += col
        status = self.grid.ravel()[row]
        result: BoolArray = status == _INSIDE
        border = np.flatnonzero(status >= _BORDER)
        if border.size == 0:
            return result
        # Border cells (never clipped: the ring around them is outside) look up their
        # sub-cell; scaling by a power of two keeps it inside the cell found above.
        b_lat, b_lng = lat[border], lng[border]
        sub_col = ((b_lng - self.x0) * (_SUB_CELLS / _GRID_CELL_DEG)).astype(np.intp)
        sub_row = ((b_lat - self.y0) * (_SUB_CELLS / _GRID_CELL_DEG)).astype(np.intp)
        sub_row %= _SUB_CELLS
        sub_row *= _SUB_CELLS
        sub_col %= _SUB_CELLS
        sub_row += sub_col
        slot = status[border].astype(np.intp)
        slot -= _BORDER
        slot *= _SUB_CELLS**2
        sub_row += slot
        sub_status = self.sub_grids.ravel()[sub_row]
        result[border] = sub_status == _INSIDE
        exact = np.flatnonzero(sub_status == _BORDER)
        if exact.size:
            result[border[exact]] = shapely.contains_xy(self.geometry, b_lng[exact], b_lat[exact])
        return result


def _crossed(
    geometry: BaseGeometry, cell: float, x0: float, y0: float
) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """(row, col) of cells of size ``cell`` from (x0, y0) the border may cross, with repeats.

    Samples the border at most cell/2 apart: every cell the border passes through then has a
    sample within cell/4, i.e. in the cell or a neighbour, so the samples' cells and their
    neighbours include every crossed cell (and a few more, which only costs an exact test).
    """
    samples = shapely.get_coordinates(shapely.segmentize(geometry.boundary, cell / 2.0))
    rows = ((samples[:, 1] - y0) / cell).astype(np.intp)
    cols = ((samples[:, 0] - x0) / cell).astype(np.intp)
    step = np.array([-1, 0, 1], dtype=np.intp)
    return (
        (rows[:, None, None] + step[None, :, None] + 0 * step[None, None, :]).ravel(),
        (cols[:, None, None] + 0 * step[None, :, None] + step[None, None, :]).ravel(),
    )


def _classify_runs(
    geometry: BaseGeometry,
    free: BoolArray,
    row_len: int,
    centres: Callable[[NDArray[np.intp]], tuple[FloatArray, FloatArray]],
) -> NDArray[np.uint8]:
    """Status of cells laid out in rows of ``row_len``: border where not ``free``, else in/out.

    A run of consecutive free cells in one row is crossed by no border, so it lies wholly
    inside or wholly outside: one exact test per run, at the centre (x, y) that ``centres``
    gives for its first cell's flat index.
    """
    run_start = free.copy()
    run_start[1:] &= ~free[:-1]
    run_start[::row_len] = free[::row_len]  # every row starts new runs
    first = np.flatnonzero(run_start)
    run_inside = shapely.contains_xy(geometry, *centres(first))
    run_of_cell = np.cumsum(run_start) - 1
    run_status = np.where(run_inside, _INSIDE, _OUTSIDE).astype(np.uint8)
    status: NDArray[np.uint8] = run_status[np.maximum(run_of_cell, 0)]
    status[~free] = _BORDER
    return status


def _build_grid(geometry: BaseGeometry) -> tuple[float, float, NDArray[np.uint8]]:
    """Classify grid cells as outside / inside / crossed by the border (conservatively)."""
    cell = _GRID_CELL_DEG
    minx, miny, maxx, maxy = geometry.bounds
    # Two spare cells on every side: the neighbours of sampled cells reach into the inner one,
    # the outer ring stays "outside" (``contains`` clips far-away points onto it).
    x0 = (math.floor(minx / cell) - 2) * cell
    y0 = (math.floor(miny / cell) - 2) * cell
    cols = math.ceil((maxx - x0) / cell) + 3
    rows = math.ceil((maxy - y0) / cell) + 3
    border = np.zeros((rows, cols), dtype=np.bool_)
    border[_crossed(geometry, cell, x0, y0)] = True

    def centres(flat: NDArray[np.intp]) -> tuple[FloatArray, FloatArray]:
        return x0 + (flat % cols + 0.5) * cell, y0 + (flat // cols + 0.5) * cell

    grid = _classify_runs(geometry, ~border.ravel(), cols, centres)
    return x0, y0, grid.reshape(rows, cols)


def _build_sub_grids(
    geometry: BaseGeometry, x0: float, y0: float, grid: NDArray[np.uint8]
) -> tuple[NDArray[np.intp], NDArray[np.uint8]]:
    """The grid's border cells (sorted flat indices) and their sub-cells' status, classified
    like the grid's cells: shape (border cells, _SUB_CELLS, _SUB_CELLS)."""
    cols = grid.shape[1]
    border_cells = np.flatnonzero(grid.ravel() == _BORDER)
    sub = _GRID_CELL_DEG / _SUB_CELLS
    rows_sub, cols_sub = _crossed(geometry, sub, x0, y0)
    slot_of_cell = np.full(grid.size, -1, dtype=np.intp)
    slot_of_cell[border_cells] = np.arange(border_cells.size)
    slot = slot_of_cell[(rows_sub // _SUB_CELLS) * cols + cols_sub // _SUB_CELLS]
    # Every crossed sub-cell lies in a border cell; neighbours of samples may not (skip them).
    keep = slot >= 0
    flat = slot[keep] * _SUB_CELLS**2
    flat += rows_sub[keep] % _SUB_CELLS * _SUB_CELLS
    flat += cols_sub[keep] % _SUB_CELLS
    crossed = np.zeros((border_cells.size, _SUB_CELLS, _SUB_CELLS), dtype=np.bool_)
    crossed.ravel()[flat] = True

    # Within a cell, sub-rows are walked as a snake (odd ones right to left), so consecutive
    # sub-cells always touch and one run may span several sub-rows: ~3x fewer exact tests.
    crossed[:, 1::2, :] = crossed[:, 1::2, ::-1]

    def centres(flat: NDArray[np.intp]) -> tuple[FloatArray, FloatArray]:
        cell_of = border_cells[flat // _SUB_CELLS**2]
        row_in = flat // _SUB_CELLS % _SUB_CELLS
        col_in = flat % _SUB_CELLS
        col_in = np.where(row_in % 2 == 1, _SUB_CELLS - 1 - col_in, col_in)
        sub_row = (cell_of // cols) * _SUB_CELLS + row_in
        sub_col = (cell_of % cols) * _SUB_CELLS + col_in
        return x0 + (sub_col + 0.5) * sub, y0 + (sub_row + 0.5) * sub

    sub_grids = _classify_runs(geometry, ~crossed.ravel(), _SUB_CELLS**2, centres)
    sub_grids = sub_grids.reshape(crossed.shape)
    sub_grids[:, 1::2, :] = sub_grids[:, 1::2, ::-1].copy()
    return border_cells, sub_grids


@functools.cache
def _outline() -> _Outline:
    """Load the shipped mainland outline once and build its lookup grids."""
    text = resources.files("geo.data").joinpath(_OUTLINE_RESOURCE).read_text(encoding="utf-8")
    geometry = shape(json.loads(text)["geometry"])
    shapely.prepare(geometry)
    x0, y0, grid = _build_grid(geometry)
    border_cells, sub_grids = _build_sub_grids(geometry, x0, y0, grid)
    slotted: NDArray[np.unsignedinteger[Any]] = (
        grid.astype(np.uint16)
        if border_cells.size + _BORDER <= np.iinfo(np.uint16).max
        else grid.astype(np.uint32)
    )
    slotted.ravel()[border_cells] = np.arange(_BORDER, border_cells.size + _BORDER)
    return _Outline(geometry=geometry, x0=x0, y0=y0, grid=slotted, sub_grids=sub_grids)


def _inside(lat: FloatArray, lng: FloatArray, work: FloatArray | None = None) -> BoolArray:
    """Mainland test for validated flat arrays (``work``: see ``_Outline.contains``)."""
    return _outline().contains(lat, lng, work)


def _scratch(n_points: int) -> FloatArray:
    """Work memory for GCJ-02 offsets of up to ``n_points`` points (one per thread and call)."""
    return np.empty((_gcj.SCRATCH_ROWS, n_points))


def _gcj_offset(
    lat: FloatArray, lng: FloatArray, scratch: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """GCJ-02 shift (dlat, dlng) in degrees at WGS-84 points (flat arrays), no region check."""
    dlat = np.empty(lat.shape)
    dlng = np.empty(lat.shape)
    _gcj.offset_into(lat, lng, dlat, dlng, scratch)
    return dlat, dlng


def _wgs_to_gcj_into(
    lat: FloatArray, lng: FloatArray, out_lat: FloatArray, out_lng: FloatArray, scratch: FloatArray
) -> None:
    mask = _inside(lat, lng, scratch)
    if mask.all():
        # The usual case: the kernel writes the shift straight into the output.
        _gcj.offset_into(lat, lng, out_lat, out_lng, scratch)
        out_lat += lat
        out_lng += lng
        return
    out_lat[...] = lat
    out_lng[...] = lng
    if mask.any():
        dlat, dlng = _gcj_offset(lat[mask], lng[mask], scratch)
        out_lat[mask] += dlat
        out_lng[mask] += dlng


def _wgs_to_gcj(
    lat: FloatArray, lng: FloatArray, scratch: FloatArray
) -> tuple[FloatArray, FloatArray]:
    out_lat = np.empty(lat.shape)
    out_lng = np.empty(lat.shape)
    _wgs_to_gcj_into(lat, lng, out_lat, out_lng, scratch)
    return out_lat, out_lng


_PointMap = Callable[[FloatArray, FloatArray], tuple[FloatArray, FloatArray]]
# A conversion of validated flat arrays, given ``_scratch`` memory reused from block to block
# (GCJ-02 offsets need it, other steps ignore it).
_Step = Callable[[FloatArray, FloatArray, FloatArray], tuple[FloatArray, FloatArray]]
# The same, writing its answer into (out_lat, out_lng): (lat, lng, out_lat, out_lng, scratch).
_Transform = Callable[[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray], None]


def _invert(
    forward: _PointMap,
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


def _gcj_inverse_unchecked(
    lat: FloatArray, lng: FloatArray, scratch: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """WGS-84 points whose (unchecked) GCJ-02 image is the input."""

    def forward(p_lat: FloatArray, p_lng: FloatArray) -> tuple[FloatArray, FloatArray]:
        dlat, dlng = _gcj_offset(p_lat, p_lng, scratch)
        dlat += p_lat
        dlng += p_lng
        return dlat, dlng

    dlat, dlng = _gcj_offset(lat, lng, scratch)
    return _invert(forward, lat, lng, lat - dlat, lng - dlng)


def _gcj_to_wgs(
    lat: FloatArray, lng: FloatArray, scratch: FloatArray
) -> tuple[FloatArray, FloatArray]:
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
    cand_lat, cand_lng = _gcj_inverse_unchecked(lat[near], lng[near], scratch)
    # The pre-image decides: a GCJ point is shifted back only when the WGS-84 point it came
    # from lies inside mainland China, so the round trip is consistent near the border.
    inside = _inside(cand_lat, cand_lng, scratch)
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


def default_threads(n_points: int) -> int:
    """Threads the conversions use for ``n_points`` points by default (usable cores, capped)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, _MAX_THREADS, n_points // _MIN_POINTS_PER_THREAD))


def _check_threads(threads: int | None, n_points: int) -> int:
    if threads is None:
        return default_threads(n_points)
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise InvalidParameter(f"threads must be an int >= 1, got {threads!r}")
    return threads


def _apply(
    transform: _Transform, lat: ArrayLike, lng: ArrayLike, threads: int | None
) -> tuple[Any, Any]:
    """Validate, run ``transform`` on flat arrays, and give back floats or the input's shape.

    Every transform here works point by point, so large inputs go through in cache-sized
    blocks, shared out to ``threads`` threads (numpy releases the GIL inside each array
    operation); the answers are bit-for-bit the same however the input is cut.
    """
    lat_a, lng_a, scalar = as_latlng(lat, lng)
    flat_lat, flat_lng = lat_a.reshape(-1), lng_a.reshape(-1)
    n = flat_lat.size
    n_threads = min(_check_threads(threads, n), -(-n // _CHUNK_POINTS))
    out_lat = np.empty(n)
    out_lng = np.empty(n)
    if n <= _CHUNK_POINTS:
        transform(flat_lat, flat_lng, out_lat, out_lng, _scratch(n))
    else:
        starts = iter(range(0, n, _CHUNK_POINTS))
        lock = threading.Lock()

        def work() -> None:
            # Blocks are handed out one at a time, so a thread slowed by other load on its
            # core simply takes fewer of them.
            scratch = _scratch(_CHUNK_POINTS)
            while True:
                with lock:
                    start = next(starts, None)
                if start is None:
                    return
                block = slice(start, start + _CHUNK_POINTS)
                transform(flat_lat[block], flat_lng[block], out_lat[block], out_lng[block], scratch)

        if n_threads == 1:
            work()
        else:
            with ThreadPoolExecutor(max_workers=n_threads) as pool:
                for future in [pool.submit(work) for _ in range(n_threads)]:
                    future.result()
    if scalar:
        return float(out_lat[0]), float(out_lng[0])
    return out_lat.reshape(lat_a.shape), out_lng.reshape(lat_a.shape)


def _wgs_to_bd(
    lat: FloatArray, lng: FloatArray, scratch: FloatArray
) -> tuple[FloatArray, FloatArray]:
    return _gcj_to_bd(*_wgs_to_gcj(lat, lng, scratch))


def _bd_to_wgs(
    lat: FloatArray, lng: FloatArray, scratch: FloatArray
) -> tuple[FloatArray, FloatArray]:
    return _gcj_to_wgs(*_bd_to_gcj(lat, lng), scratch)


def _writing(step: _Step) -> _Transform:
    """``step`` as a ``_Transform``."""

    def transform(
        lat: FloatArray,
        lng: FloatArray,
        out_lat: FloatArray,
        out_lng: FloatArray,
        scratch: FloatArray,
    ) -> None:
        out_lat[...], out_lng[...] = step(lat, lng, scratch)

    return transform


def _copy_into(
    lat: FloatArray, lng: FloatArray, out_lat: FloatArray, out_lng: FloatArray, scratch: FloatArray
) -> None:
    out_lat[...] = lat
    out_lng[...] = lng


_GCJ_TO_WGS: Final = _writing(_gcj_to_wgs)
_GCJ_TO_BD: Final = _writing(lambda lat, lng, scratch: _gcj_to_bd(lat, lng))
_BD_TO_GCJ: Final = _writing(lambda lat, lng, scratch: _bd_to_gcj(lat, lng))
_WGS_TO_BD: Final = _writing(_wgs_to_bd)
_BD_TO_WGS: Final = _writing(_bd_to_wgs)
_TO_WGS84: Final[dict[CoordType, _Transform]] = {
    CoordType.WGS84: _copy_into,
    CoordType.GCJ02: _GCJ_TO_WGS,
    CoordType.BD09: _BD_TO_WGS,
}
_FROM_WGS84: Final[dict[CoordType, _Transform]] = {
    CoordType.WGS84: _copy_into,
    CoordType.GCJ02: _wgs_to_gcj_into,
    CoordType.BD09: _WGS_TO_BD,
}


@overload
def wgs84_to_gcj02(
    lat: float, lng: float, *, threads: int | None = None
) -> tuple[float, float]: ...
@overload
def wgs84_to_gcj02(
    lat: ArrayLike, lng: ArrayLike, *, threads: int | None = None
) -> tuple[FloatArray, FloatArray]: ...
def wgs84_to_gcj02(
    lat: ArrayLike, lng: ArrayLike, *, threads: int | None = None
) -> tuple[Any, Any]:
    """WGS-84 → GCJ-02 (degrees); points outside mainland China are returned unchanged."""
    return _apply(_wgs_to_gcj_into, lat, lng, threads)


@overload
def gcj02_to_wgs84(
    lat: float, lng: float, *, threads: int | None = None
) -> tuple[float, float]: ...
@overload
def gcj02_to_wgs84(
    lat: ArrayLike, lng: ArrayLike, *, threads: int | None = None
) -> tuple[FloatArray, FloatArray]: ...
def gcj02_to_wgs84(
    lat: ArrayLike, lng: ArrayLike, *, threads: int | None = None
) -> tuple[Any, Any]:
    """GCJ-02 → WGS-84 (degrees), inverse to within 1e-8 degree by fixed-point iteration.

    A point is shifted back only when its WGS-84 pre-image lies inside mainland China;
    otherwise it is returned unchanged.
    """
    return _apply(_GCJ_TO_WGS, lat, lng, threads)


@overload
def gcj02_to_bd09(lat: float, lng: float, *, threads: int | None = None) -> tuple[float, float]: ...
@overload
def gcj02_to_bd09(
    lat: ArrayLike, lng: ArrayLike, *, threads: int | None = None
) -> tuple[FloatArray, FloatArray]: ...
def gcj02_to_bd09(lat: ArrayLike, lng: ArrayLike, *, threads: int | None = None) -> tuple[Any, Any]:
    """GCJ-02 → BD-09 (degrees) by Baidu's formula; applies everywhere, like Baidu's API."""
    return _apply(_GCJ_TO_BD, lat, lng, threads)


@overload
def bd09_to_gcj02(lat: float, lng: float, *, threads: int | None = None) -> tuple[float, float]: ...
@overload
def bd09_to_gcj02(
    lat: ArrayLike, lng: ArrayLike, *, threads: int | None = None
) -> tuple[FloatArray, FloatArray]: ...
def bd09_to_gcj02(lat: ArrayLike, lng: ArrayLike, *, threads: int | None = None) -> tuple[Any, Any]:
    """BD-09 → GCJ-02 (degrees), inverse of ``gcj02_to_bd09`` to within 1e-8 degree."""
    return _apply(_BD_TO_GCJ, lat, lng, threads)


@overload
def wgs84_to_bd09(lat: float, lng: float, *, threads: int | None = None) -> tuple[float, float]: ...
@overload
def wgs84_to_bd09(
    lat: ArrayLike, lng: ArrayLike, *, threads: int | None = None
) -> tuple[FloatArray, FloatArray]: ...
def wgs84_to_bd09(lat: ArrayLike, lng: ArrayLike, *, threads: int | None = None) -> tuple[Any, Any]:
    """WGS-84 → BD-09 (degrees): GCJ-02 inside mainland China, then Baidu's transform."""
    return _apply(_WGS_TO_BD, lat, lng, threads)


@overload
def bd09_to_wgs84(lat: float, lng: float, *, threads: int | None = None) -> tuple[float, float]: ...
@overload
def bd09_to_wgs84(
    lat: ArrayLike, lng: ArrayLike, *, threads: int | None = None
) -> tuple[FloatArray, FloatArray]: ...
def bd09_to_wgs84(lat: ArrayLike, lng: ArrayLike, *, threads: int | None = None) -> tuple[Any, Any]:
    """BD-09 → WGS-84 (degrees): inverse of ``wgs84_to_bd09``."""
    return _apply(_BD_TO_WGS, lat, lng, threads)


def parse_coord_type(coord_type: CoordType | str) -> CoordType:
    """Return ``coord_type`` as a ``CoordType``; ``InvalidParameter`` naming it if unknown."""
    try:
        return CoordType(coord_type)
    except ValueError:
        names = ", ".join(member.value for member in CoordType)
        raise InvalidParameter(f"coord_type must be one of {names}, got {coord_type!r}") from None


@overload
def to_wgs84(
    lat: float, lng: float, coord_type: CoordType | str, *, threads: int | None = None
) -> tuple[float, float]: ...
@overload
def to_wgs84(
    lat: ArrayLike, lng: ArrayLike, coord_type: CoordType | str, *, threads: int | None = None
) -> tuple[FloatArray, FloatArray]: ...
def to_wgs84(
    lat: ArrayLike, lng: ArrayLike, coord_type: CoordType | str, *, threads: int | None = None
) -> tuple[Any, Any]:
    """Convert points given in ``coord_type`` to WGS-84 (degrees)."""
    return _apply(_TO_WGS84[parse_coord_type(coord_type)], lat, lng, threads)


@overload
def from_wgs84(
    lat: float, lng: float, coord_type: CoordType | str, *, threads: int | None = None
) -> tuple[float, float]: ...
@overload
def from_wgs84(
    lat: ArrayLike, lng: ArrayLike, coord_type: CoordType | str, *, threads: int | None = None
) -> tuple[FloatArray, FloatArray]: ...
def from_wgs84(
    lat: ArrayLike, lng: ArrayLike, coord_type: CoordType | str, *, threads: int | None = None
) -> tuple[Any, Any]:
    """Convert WGS-84 points (degrees) to ``coord_type``."""
    return _apply(_FROM_WGS84[parse_coord_type(coord_type)], lat, lng, threads)


@overload
def in_mainland_china(lat: float, lng: float) -> bool: ...
@overload
def in_mainland_china(lat: ArrayLike, lng: ArrayLike) -> BoolArray: ...
def in_mainland_china(lat: ArrayLike, lng: ArrayLike) -> Any:
    """Whether WGS-84 points (degrees) lie in mainland China (not Hong Kong, Macao, Taiwan)."""
    lat_a, lng_a, scalar = as_latlng(lat, lng)
    inside = _outline().contains(lat_a.reshape(-1), lng_a.reshape(-1))
    return bool(inside[0]) if scalar else inside.reshape(lat_a.shape)

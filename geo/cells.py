"""H3 cells as uint64, vectorised: indexing, hierarchy, grid disks and polygon fills.

Cells are plain ``uint64`` H3 indexes (numpy arrays for many, Python ``int``
for one). Resolution is an ``int`` in 0..15; ``k`` is a grid distance in cells.

Bulk work runs in the compiled ``geo._h3fast`` (geo/_h3fast.c, built by
setup.py) with the GIL released: lat/lng -> cell by a vectorised kernel that is
exact with respect to h3-py (points a hair from a cell edge are refused by a
guard and resolved by h3-py itself), and validity, centres and grid disks
through a vendored copy of the same H3 C library h3-py wraps. Without the
extension every function gives the same answers through h3-py and numpy,
only slower. Resolution and parents come straight from the index bits.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any, Literal, TypeAlias, TypeGuard, overload

import h3.api.basic_int as h3i
import numpy as np
from numpy.typing import ArrayLike, NDArray

from geo._arrays import FloatArray, as_latlng
from geo.errors import GeoError, InvalidCell, InvalidCoordinate, InvalidParameter, InvalidPolygon


def _load_fast() -> ModuleType | None:
    try:
        from geo import _h3fast
    except ImportError:  # not compiled here: the h3-py loop gives the same cells, slower
        return None
    return _h3fast


#: The compiled batch indexer (geo/_h3fast.c), or None when it was not built.
_FAST: ModuleType | None = _load_fast()

#: Points per thread below which extra threads cost more than they save.
_MIN_POINTS_PER_THREAD = 50_000

CellArray: TypeAlias = NDArray[np.uint64]
#: One cell given as a plain or numpy integer.
CellScalar: TypeAlias = int | np.integer[Any]
IntArray: TypeAlias = NDArray[np.int64]
Containment: TypeAlias = Literal["center", "full", "overlap"]

#: Finest H3 resolution.
MAX_RES = 15

# H3 index bit layout (https://h3geo.org/docs/library/index/cell):
# 1 reserved bit | 4 mode bits | 3 reserved | 4 resolution | 7 base cell | 15 x 3-bit digits.
_MODE_SHIFT = np.uint64(59)
_RES_SHIFT = np.uint64(52)
_BASE_SHIFT = np.uint64(45)
_CELL_MODE = np.uint64(1)
_NUM_BASE_CELLS = 122
_DIGIT_MASK = np.uint64(7)
_RES_MASK = np.uint64(15) << _RES_SHIFT
# Base cells that are pentagons (their first non-zero digit may not be 1).
_PENTAGON_BASE_CELLS = np.zeros(_NUM_BASE_CELLS, dtype=np.bool_)
_PENTAGON_BASE_CELLS[[4, 14, 24, 38, 49, 58, 63, 72, 83, 97, 107, 117]] = True
_PENTAGON_BASE_CELLS.setflags(write=False)


def _digit_shift(res: int) -> np.uint64:
    return np.uint64(3 * (MAX_RES - res))


def _check_res(res: int, name: str = "res") -> int:
    if isinstance(res, bool) or not isinstance(res, int | np.integer) or not 0 <= res <= MAX_RES:
        raise InvalidParameter(f"{name} must be an int in 0..{MAX_RES}, got {res!r}")
    return int(res)


def _check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 0:
        raise InvalidParameter(f"k must be an int >= 0, got {k!r}")
    return int(k)


def _as_uint64(cells: ArrayLike, name: str) -> CellArray:
    arr = np.asarray(cells)
    if arr.dtype == np.uint64:
        return arr
    if arr.dtype.kind == "i":
        if arr.size and arr.min() < 0:
            where = int(np.flatnonzero(arr.reshape(-1) < 0)[0])
            raise InvalidCell(f"{name}[{where}] is not a valid H3 cell: negative integer")
        return arr.astype(np.uint64)
    if arr.dtype.kind == "u":
        return arr.astype(np.uint64)
    if arr.dtype == object or arr.size == 0:
        try:
            return np.asarray(arr, dtype=np.uint64)
        except (TypeError, ValueError, OverflowError) as exc:
            raise InvalidCell(f"{name} must be uint64 H3 cell indexes, got {cells!r}") from exc
    raise InvalidCell(f"{name} must be uint64 H3 cell indexes, got dtype {arr.dtype}")


def _valid_mask(cells: CellArray) -> NDArray[np.bool_]:
    """H3's ``isValidCell`` of every index (same shape)."""
    if cells.ndim == 0:
        return np.asarray(h3i.is_valid_cell(int(cells)))
    if _FAST is not None:
        flat = np.ascontiguousarray(cells.reshape(-1))
        ok = np.empty(flat.size, dtype=np.bool_)
        _FAST.valid_cells(flat, ok)
        return ok.reshape(cells.shape)
    return _valid_mask_numpy(cells)


def _valid_mask_numpy(cells: CellArray) -> NDArray[np.bool_]:
    """Bit-level validity of every index (same rules as H3's ``isValidCell``)."""
    high = cells >> np.uint64(63)
    mode = (cells >> _MODE_SHIFT) & np.uint64(15)
    reserved = (cells >> np.uint64(56)) & np.uint64(7)
    res = ((cells >> _RES_SHIFT) & np.uint64(15)).astype(np.int64)
    base = ((cells >> _BASE_SHIFT) & np.uint64(127)).astype(np.int64)
    ok = (high == 0) & (mode == _CELL_MODE) & (reserved == 0) & (base < _NUM_BASE_CELLS)
    is_pent = _PENTAGON_BASE_CELLS[np.minimum(base, _NUM_BASE_CELLS - 1)]
    # A pentagon's first non-zero digit cannot be 1 (the deleted K axis sub-sequence).
    seen_nonzero = np.zeros(cells.shape, dtype=np.bool_)
    for r in range(1, MAX_RES + 1):
        digit = (cells >> _digit_shift(r)) & _DIGIT_MASK
        used = r <= res
        ok &= np.where(used, digit < 7, digit == 7)
        first = used & ~seen_nonzero & (digit != 0)
        ok &= ~(is_pent & first & (digit == 1))
        seen_nonzero |= used & (digit != 0)
    return np.asarray(ok)


def as_cells(cells: ArrayLike, name: str = "cells") -> CellArray:
    """Validate H3 cell indexes and return them as uint64 (any shape).

    Raises ``InvalidCell`` naming the first invalid index and its position.
    """
    arr = _as_uint64(cells, name)
    ok = _valid_mask(arr)
    if not ok.all():
        flat = np.atleast_1d(arr).reshape(-1)
        where = int(np.flatnonzero(~np.atleast_1d(ok).reshape(-1))[0])
        label = name if arr.ndim == 0 else f"{name}[{where}]"
        raise InvalidCell(f"{label} is not a valid H3 cell: {int(flat[where]):#x}")
    return arr


def _as_cell(cell: ArrayLike, name: str = "cell") -> int:
    if isinstance(cell, int | np.integer) and not isinstance(cell, bool):
        h = int(cell)  # the common case, without numpy's per-call overhead
        if 0 <= h < 1 << 64 and h3i.is_valid_cell(h):
            return h
        raise InvalidCell(f"{name} is not a valid H3 cell: {h:#x}")
    arr = as_cells(cell, name)
    if arr.ndim != 0:
        raise InvalidCell(f"{name} must be a single H3 cell, got an array of shape {arr.shape}")
    return int(arr)


@overload
def is_valid_cell(cells: CellScalar) -> bool: ...
@overload
def is_valid_cell(cells: ArrayLike) -> NDArray[np.bool_]: ...
def is_valid_cell(cells: ArrayLike) -> NDArray[np.bool_] | bool:
    """Whether each integer is a valid H3 cell index (bool array; ``bool`` for a scalar)."""
    try:
        arr = _as_uint64(cells, "cells")
    except InvalidCell:
        arr_any = np.asarray(cells)
        if arr_any.ndim == 0:
            return False
        raise
    ok = _valid_mask(arr)
    return bool(ok) if ok.ndim == 0 else ok


@overload
def get_resolution(cells: CellScalar) -> int: ...
@overload
def get_resolution(cells: ArrayLike) -> NDArray[np.int64]: ...
def get_resolution(cells: ArrayLike) -> NDArray[np.int64] | int:
    """Resolution (0..15) of each cell, from the index bits."""
    arr = as_cells(cells)
    res = ((arr >> _RES_SHIFT) & np.uint64(15)).astype(np.int64)
    return int(res) if res.ndim == 0 else res


@overload
def cell_to_parent(cells: CellScalar, res: int) -> int: ...
@overload
def cell_to_parent(cells: ArrayLike, res: int) -> CellArray: ...
def cell_to_parent(cells: ArrayLike, res: int) -> CellArray | int:
    """Parent at resolution ``res`` of each cell (bit operations; no Python loop).

    Raises ``InvalidParameter`` if ``res`` is finer than some cell's resolution.
    """
    res = _check_res(res)
    arr = as_cells(cells)
    cell_res = (arr >> _RES_SHIFT) & np.uint64(15)
    coarser = cell_res < np.uint64(res)
    if coarser.any():
        where = int(np.flatnonzero(np.atleast_1d(coarser).reshape(-1))[0])
        found = int(np.atleast_1d(cell_res).reshape(-1)[where])
        raise InvalidParameter(f"res {res} is finer than the resolution {found} of cells[{where}]")
    # Digits below the parent resolution become 7 ("unused").
    unused = np.uint64((1 << (3 * (MAX_RES - res))) - 1)
    out = ((arr & ~_RES_MASK) | (np.uint64(res) << _RES_SHIFT)) | unused
    return int(out) if out.ndim == 0 else out


def cell_to_children(cell: ArrayLike, res: int) -> CellArray:
    """Children of one cell at resolution ``res`` (>= the cell's), sorted."""
    res = _check_res(res)
    h = _as_cell(cell)
    if res < h3i.get_resolution(h):
        raise InvalidParameter(
            f"res {res} is coarser than the cell's resolution {h3i.get_resolution(h)}"
        )
    return np.sort(np.fromiter(h3i.cell_to_children(h, res), dtype=np.uint64))


def _loop_latlng_to_cells(lat: FloatArray, lng: FloatArray, res: int) -> CellArray:
    """h3-py point by point: the reference, and the path when the extension is missing."""
    to_cell = h3i.latlng_to_cell
    return np.fromiter(
        (to_cell(a, b, res) for a, b in zip(lat.tolist(), lng.tolist(), strict=True)),
        dtype=np.uint64,
        count=lat.size,
    )


def _is_plain_number(value: object) -> TypeGuard[float | int]:
    """A Python (or numpy float64) number, not a bool: safe to hand to h3-py as is."""
    return isinstance(value, float | int) and not isinstance(value, bool)


def default_threads(n_points: int) -> int:
    """Threads ``latlng_to_cells`` uses for ``n_points`` by default (usable cores, capped)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, n_points // _MIN_POINTS_PER_THREAD))


@overload
def latlng_to_cells(lat: float, lng: float, res: int, *, threads: int | None = None) -> int: ...
@overload
def latlng_to_cells(
    lat: ArrayLike, lng: ArrayLike, res: int, *, threads: int | None = None
) -> CellArray: ...
def latlng_to_cells(
    lat: ArrayLike, lng: ArrayLike, res: int, *, threads: int | None = None
) -> CellArray | int:
    """H3 cell at resolution ``res`` of each WGS-84 point (degrees); same shape as input.

    Identical to ``h3.latlng_to_cell`` point by point. A scalar point gives an
    ``int``. The compiled path releases the GIL and splits large inputs over
    ``threads`` threads (default: ``default_threads``); points it cannot
    place with certainty (a hair from a cell edge) are resolved by h3-py.
    """
    res = _check_res(res)
    if threads is not None and (
        isinstance(threads, bool) or not isinstance(threads, int) or threads < 1
    ):
        raise InvalidParameter(f"threads must be an int >= 1, got {threads!r}")
    if _is_plain_number(lat) and _is_plain_number(lng):
        # One point from Python (an API request): skip numpy's per-call overhead.
        try:
            lat_deg, lng_deg = float(lat), float(lng)
        except OverflowError as exc:
            raise InvalidCoordinate(f"lat/lng must be finite, got {lat!r}, {lng!r}") from exc
        if not -90.0 <= lat_deg <= 90.0:
            raise InvalidCoordinate(f"lat must be finite and within ±90, got {lat_deg}")
        if not -180.0 <= lng_deg <= 180.0:
            raise InvalidCoordinate(f"lng must be finite and within ±180, got {lng_deg}")
        return int(h3i.latlng_to_cell(lat_deg, lng_deg, res))
    lat_a, lng_a, scalar = as_latlng(lat, lng)
    lat_flat = np.ascontiguousarray(lat_a.reshape(-1))
    lng_flat = np.ascontiguousarray(lng_a.reshape(-1))
    if _FAST is None:
        out = _loop_latlng_to_cells(lat_flat, lng_flat, res)
    else:
        out = np.empty(lat_flat.size, dtype=np.uint64)
        n_threads = default_threads(lat_flat.size) if threads is None else threads
        refused = _FAST.latlng_to_cells(lat_flat, lng_flat, out, res, n_threads)
        if refused:
            where = np.flatnonzero(out == 0)
            out[where] = _loop_latlng_to_cells(lat_flat[where], lng_flat[where], res)
    if scalar:
        return int(out[0])
    return out.reshape(lat_a.shape)


def cells_to_latlng(cells: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Centre (lat, lng) in degrees of each cell, as two float64 arrays of the input's shape."""
    arr = as_cells(cells)
    flat = np.ascontiguousarray(arr.reshape(-1))
    if _FAST is not None:
        lat = np.empty(flat.size, dtype=np.float64)
        lng = np.empty(flat.size, dtype=np.float64)
        _FAST.cells_to_latlng(flat, lat, lng)
    else:
        centres = np.array([h3i.cell_to_latlng(h) for h in flat.tolist()], dtype=np.float64)
        lat, lng = centres.reshape(-1, 2).T
    return lat.reshape(arr.shape), lng.reshape(arr.shape)


def cell_to_boundary(cell: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Boundary vertices (lat, lng) in degrees of one cell, counter-clockwise, not closed."""
    h = _as_cell(cell)
    verts = np.array(h3i.cell_to_boundary(h), dtype=np.float64).reshape(-1, 2)
    return verts[:, 0].copy(), verts[:, 1].copy()


def grid_disk(cell: ArrayLike, k: int) -> CellArray:
    """All cells within grid distance ``k`` of ``cell`` (the origin included), sorted."""
    k = _check_k(k)
    h = _as_cell(cell)
    return _grid_disks(np.array([h], dtype=np.uint64), k)[0]


def grid_disks(cells: ArrayLike, k: int) -> tuple[CellArray, IntArray]:
    """Disks of radius ``k`` around many origins, flattened CSR-style.

    Returns ``(flat_cells, offsets)``: the disk of origin ``i`` is
    ``flat_cells[offsets[i]:offsets[i + 1]]`` (sorted within each disk);
    ``offsets`` has ``len(cells) + 1`` entries.
    """
    k = _check_k(k)
    return _grid_disks(np.ascontiguousarray(as_cells(cells).reshape(-1)), k)


def _grid_disks(origins: CellArray, k: int) -> tuple[CellArray, IntArray]:
    """``grid_disks`` of validated, contiguous 1-d origins."""
    if _FAST is not None:
        disk_size = 3 * k * (k + 1) + 1
        offsets = np.empty(origins.size + 1, dtype=np.int64)
        buffer = np.empty(origins.size * disk_size, dtype=np.uint64)
        total = _FAST.grid_disks(origins, buffer, offsets, k)
        # Pentagons make a few disks smaller: trim (copying only when that saves memory).
        flat = buffer[:total] if total * 2 > buffer.size else buffer[:total].copy()
        return flat, offsets
    disks = [sorted(h3i.grid_disk(h, k)) for h in origins.tolist()]
    sizes = np.fromiter((len(d) for d in disks), dtype=np.int64, count=len(disks))
    offsets = np.zeros(len(disks) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    flat = np.fromiter((h for d in disks for h in d), dtype=np.uint64, count=int(offsets[-1]))
    return flat, offsets


def grid_ring(cell: ArrayLike, k: int) -> CellArray:
    """Cells at exactly grid distance ``k`` from ``cell``, sorted."""
    k = _check_k(k)
    h = _as_cell(cell)
    return np.sort(np.fromiter(h3i.grid_ring(h, k), dtype=np.uint64))


@overload
def grid_distance(a: CellScalar, b: CellScalar) -> int: ...
@overload
def grid_distance(a: ArrayLike, b: ArrayLike) -> IntArray: ...
def grid_distance(a: ArrayLike, b: ArrayLike) -> IntArray | int:
    """Grid distance in cells between paired cells (broadcasting); -1 where H3 cannot say.

    H3 cannot measure across some pentagon distortions or between cells far
    apart / of different resolutions; those pairs give -1 rather than raising
    so callers can mask them.
    """
    a_arr, b_arr = np.broadcast_arrays(as_cells(a, "a"), as_cells(b, "b"))
    if _FAST is not None:
        a_flat = np.ascontiguousarray(a_arr.reshape(-1))
        b_flat = np.ascontiguousarray(b_arr.reshape(-1))
        flat_out = np.empty(a_flat.size, dtype=np.int64)
        _FAST.grid_distances(a_flat, b_flat, flat_out)
        out: IntArray = flat_out.reshape(a_arr.shape)
    else:
        out = np.fromiter(
            (
                _distance_or_minus_one(x, y)
                for x, y in zip(a_arr.reshape(-1).tolist(), b_arr.reshape(-1).tolist(), strict=True)
            ),
            dtype=np.int64,
            count=a_arr.size,
        ).reshape(a_arr.shape)
    return int(out) if out.ndim == 0 else out


def _distance_or_minus_one(a: int, b: int) -> int:
    try:
        return int(h3i.grid_distance(a, b))
    except Exception:  # every h3 failure here means "undefined distance"
        return -1


def polygon_to_cells(geometry: Any, res: int, *, contain: Containment = "center") -> CellArray:
    """Cells at ``res`` covering a shapely (Multi)Polygon in WGS-84 (x=lng, y=lat), sorted.

    ``contain``: "center" (cell centre inside), "full" (cell entirely inside)
    or "overlap" (cell touches the area), as in h3's ``h3shape_to_cells_experimental``.
    """
    res = _check_res(res)
    if contain not in ("center", "full", "overlap"):
        raise InvalidParameter(f"contain must be 'center', 'full' or 'overlap', got {contain!r}")
    geom_type = getattr(geometry, "geom_type", None)
    if geom_type not in ("Polygon", "MultiPolygon"):
        raise InvalidPolygon(f"geometry must be a shapely Polygon or MultiPolygon, got {geom_type}")
    if geometry.is_empty:
        return np.empty(0, dtype=np.uint64)
    minx, miny, maxx, maxy = geometry.bounds
    if not (-180.0 <= minx <= maxx <= 180.0 and -90.0 <= miny <= maxy <= 90.0):
        raise InvalidCoordinate(
            f"geometry must be WGS-84 lng/lat degrees, got bounds {geometry.bounds}"
        )
    try:
        shape = h3i.geo_to_h3shape(geometry.__geo_interface__)
        if contain == "center":
            cells = h3i.h3shape_to_cells(shape, res)
        else:
            cells = h3i.h3shape_to_cells_experimental(shape, res, contain=contain)
    except GeoError:
        raise
    except Exception as exc:  # h3's own errors (memory bounds, bad loops) as typed ones
        raise InvalidPolygon(f"h3 could not fill the polygon at res {res}: {exc}") from exc
    return np.sort(np.fromiter(cells, dtype=np.uint64, count=len(cells)))

"""WorkerIndex: live worker positions bucketed by H3 cell, for radius queries from many origins.

Design (measured with ``daojia bench index``): positions live in flat slot arrays, so a
move is an O(1) write and a batch of 100k pings is a handful of numpy operations (one
vectorised id lookup, one bulk ``latlng_to_cells``). Buckets are CSR arrays (slots sorted
by cell) rebuilt lazily on the next query, and only when some worker changed cell or was
added/removed: most pings stay in their cell, and a rebuild is one argsort. Per-cell Python
sets with O(1) add/remove were the alternative; they pay interpreter cost on every ping.

Queries use a tight covering: everything outside grid disk k lies at least (1.5 k + 0.5)
edges from a cell's centre, so k follows from the radius plus the point's offset from its
centre. A big radius climbs to coarser levels (a coarse cell's descendants are one
contiguous run of the sorted fine cells), so the disks stay small at any radius.

Default resolution 11 (edge ≈ 25 m), measured with candidate generation on the benchmark
city (2 shared cores, under load): 10k orders × 50k workers took 0.23 / 0.25 / 0.29 /
0.38 s at res 9 / 10 / 11 / 12 (a tie within noise), while 200k × 1M took 7.1 s at res 10
and 5.1 s at res 11: at a million workers coarse cells gather many more pairs than the
radius needs, and fine cells cost nothing extra for big radii thanks to the levels.
"""

from __future__ import annotations

import h3
import h3.api.basic_int as h3i
import numpy as np
from numpy.typing import ArrayLike, NDArray

from dispatch._ragged import expand_ranges
from dispatch._validate import as_array, check_finite_range, check_latlng, check_unique
from dispatch.errors import DuplicateId, InvalidInput, UnknownWorker
from geo.cells import cell_to_parent, cells_to_latlng, grid_disks, latlng_to_cells
from geo.projection import EARTH_RADIUS_M, haversine_m

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]

#: Default H3 resolution of the buckets (see module docstring for the measurement).
DEFAULT_RESOLUTION = 11
# H3 cells are irregular hexagons: shrinking each cell's area-equivalent edge by this
# factor keeps the covering bound valid for its neighbours' shapes too.
_EDGE_SAFETY = 0.85
# Area of a regular hexagon over its edge squared: 3·sqrt(3)/2.
_HEX_AREA_PER_EDGE2 = 2.598076211353316
_NO_CELL = np.uint64(0)
_RES_SHIFT = np.uint64(52)
_RES_MASK = np.uint64(15) << _RES_SHIFT
# A query uses coarser cells (up to this many levels up) rather than disks beyond this k.
_MAX_DISK_K = 3
_MAX_LEVELS_UP = 6
_ORIGIN_BLOCK = 8192


class WorkerIndex:
    """Worker positions (WGS-84 degrees) bucketed by H3 cell; ids are int64.

    ``add``/``move_many``/``remove`` take arrays; ``within`` answers "every worker within
    r metres" for many origins at once. Not thread-safe: one dispatcher owns one index.
    """

    def __init__(self, resolution: int = DEFAULT_RESOLUTION) -> None:
        """An empty index with H3 buckets at ``resolution`` (0..15)."""
        if (
            isinstance(resolution, bool)
            or not isinstance(resolution, int)
            or not (0 <= resolution <= 15)
        ):
            raise InvalidInput(f"resolution must be an int in 0..15, got {resolution!r}")
        self.resolution = resolution
        self._edge_m = h3.average_hexagon_edge_length(resolution, "m") * 0.7
        self._ids = np.zeros(0, dtype=np.int64)
        self._lat = np.zeros(0, dtype=np.float64)
        self._lng = np.zeros(0, dtype=np.float64)
        self._cell = np.zeros(0, dtype=np.uint64)
        self._slot_of: dict[int, int] = {}
        self._free: list[int] = []
        self._lookup_dirty = True
        self._sorted_ids = np.zeros(0, dtype=np.int64)
        self._sorted_slots = np.zeros(0, dtype=np.int64)
        self._buckets_dirty = True
        self._members = np.zeros(0, dtype=np.int64)
        self._sorted_cells = np.zeros(0, dtype=np.uint64)
        self._m_lat = np.zeros(0, dtype=np.float64)
        self._m_lng = np.zeros(0, dtype=np.float64)
        self._rank = np.zeros(0, dtype=np.int64)

    # ---- construction and updates -------------------------------------------------------

    @classmethod
    def from_arrays(
        cls, ids: ArrayLike, lat: ArrayLike, lng: ArrayLike, resolution: int = DEFAULT_RESOLUTION
    ) -> WorkerIndex:
        """An index holding the given workers (ids int64, positions in degrees)."""
        index = cls(resolution)
        index.add(ids, lat, lng)
        return index

    def __len__(self) -> int:
        return len(self._slot_of)

    def add(self, ids: ArrayLike, lat: ArrayLike, lng: ArrayLike) -> None:
        """Add workers; raises DuplicateId if an id is already indexed or repeated."""
        id_arr = as_array(np.atleast_1d(np.asarray(ids)), "ids", np.int64, None)
        lat_a, lng_a = self._points(lat, lng, id_arr.shape[0])
        check_unique(id_arr, "ids")
        present = [i for i, w in enumerate(id_arr.tolist()) if w in self._slot_of]
        if present:
            raise DuplicateId(f"ids[{present[0]}] = {int(id_arr[present[0]])} is already indexed")
        n_new = id_arr.shape[0]
        reuse = self._free[-n_new:] if n_new else []
        del self._free[len(self._free) - len(reuse) :]
        n_grow = n_new - len(reuse)
        start = self._ids.shape[0]
        slots = np.concatenate(
            [np.asarray(reuse, dtype=np.int64), np.arange(start, start + n_grow, dtype=np.int64)]
        )
        if n_grow:
            self._ids = np.concatenate([self._ids, np.zeros(n_grow, np.int64)])
            self._lat = np.concatenate([self._lat, np.zeros(n_grow)])
            self._lng = np.concatenate([self._lng, np.zeros(n_grow)])
            self._cell = np.concatenate([self._cell, np.zeros(n_grow, np.uint64)])
        self._ids[slots] = id_arr
        self._write(slots, lat_a, lng_a)
        self._slot_of.update(zip(id_arr.tolist(), slots.tolist(), strict=True))
        self._lookup_dirty = True
        self._buckets_dirty = True

    def move(self, worker_id: int, lat: float, lng: float) -> None:
        """Move one worker (O(1)); raises UnknownWorker if it is not indexed."""
        slot = self._slot_of.get(int(worker_id))
        if slot is None:
            raise UnknownWorker(f"worker_id {worker_id} is not indexed")
        lat_a, lng_a = self._points([lat], [lng], 1)
        self._write(np.array([slot], dtype=np.int64), lat_a, lng_a)

    def move_many(self, ids: ArrayLike, lat: ArrayLike, lng: ArrayLike) -> None:
        """Apply a batch of position pings at once (vectorised; last ping of an id wins)."""
        id_arr = as_array(np.atleast_1d(np.asarray(ids)), "ids", np.int64, None)
        lat_a, lng_a = self._points(lat, lng, id_arr.shape[0])
        self._write(self.slots_of(id_arr), lat_a, lng_a)

    def remove(self, ids: ArrayLike) -> None:
        """Remove workers (e.g. gone offline); raises UnknownWorker for an unknown id."""
        id_arr = as_array(np.atleast_1d(np.asarray(ids)), "ids", np.int64, None)
        check_unique(id_arr, "ids")
        slots = self.slots_of(id_arr)
        self._cell[slots] = _NO_CELL
        for w in id_arr.tolist():
            del self._slot_of[w]
        self._free.extend(slots.tolist())
        self._lookup_dirty = True
        self._buckets_dirty = True

    def _points(self, lat: ArrayLike, lng: ArrayLike, n: int) -> tuple[FloatArray, FloatArray]:
        lat_a = as_array(np.atleast_1d(np.asarray(lat, dtype=np.float64)), "lat", np.float64, n)
        lng_a = as_array(np.atleast_1d(np.asarray(lng, dtype=np.float64)), "lng", np.float64, n)
        check_latlng(lat_a, lng_a)
        return lat_a, lng_a

    def _write(self, slots: IntArray, lat: FloatArray, lng: FloatArray) -> None:
        cells = np.asarray(latlng_to_cells(lat, lng, self.resolution), dtype=np.uint64)
        self._lat[slots] = lat
        self._lng[slots] = lng
        # Buckets only go stale when a worker crosses a cell boundary, which most pings don't.
        if not self._buckets_dirty and bool((self._cell[slots] != cells).any()):
            self._buckets_dirty = True
        if not self._buckets_dirty:
            ranks = self._rank[slots]
            self._m_lat[ranks] = lat
            self._m_lng[ranks] = lng
        self._cell[slots] = cells

    # ---- lookups ----------------------------------------------------------------------

    def slots_of(self, ids: ArrayLike) -> IntArray:
        """Internal slot of each worker id (vectorised); raises UnknownWorker."""
        id_arr = np.atleast_1d(np.asarray(ids, dtype=np.int64))
        if self._lookup_dirty:
            live = np.fromiter(self._slot_of.values(), dtype=np.int64, count=len(self._slot_of))
            order = np.argsort(self._ids[live], kind="stable")
            self._sorted_slots = live[order]
            self._sorted_ids = self._ids[self._sorted_slots]
            self._lookup_dirty = False
        if self._sorted_ids.size == 0:
            if id_arr.size:
                raise UnknownWorker(f"ids[0] = {int(id_arr[0])} is not indexed")
            return np.zeros(0, dtype=np.int64)
        pos = np.minimum(np.searchsorted(self._sorted_ids, id_arr), self._sorted_ids.size - 1)
        bad = self._sorted_ids[pos] != id_arr
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise UnknownWorker(f"ids[{i}] = {int(id_arr[i])} is not indexed")
        return self._sorted_slots[pos]

    def ids_of(self, slots: ArrayLike) -> IntArray:
        """Worker id held in each slot (as returned by ``within``)."""
        return self._ids[np.asarray(slots, dtype=np.int64)]

    def positions(self, ids: ArrayLike) -> tuple[FloatArray, FloatArray]:
        """Current (lat, lng) in degrees of each worker id."""
        slots = self.slots_of(ids)
        return self._lat[slots].copy(), self._lng[slots].copy()

    def cells(self, ids: ArrayLike) -> NDArray[np.uint64]:
        """Current H3 cell (at ``resolution``) of each worker id."""
        return self._cell[self.slots_of(ids)].copy()

    def _rebuild(self) -> None:
        live = np.flatnonzero(self._cell != _NO_CELL)
        order = np.argsort(self._cell[live], kind="stable")
        self._members = live[order].astype(np.int64)
        self._sorted_cells = self._cell[self._members]
        # Coordinates in member order: a query reads contiguous runs of them.
        self._m_lat = self._lat[self._members]
        self._m_lng = self._lng[self._members]
        self._rank = np.full(self._cell.shape[0], -1, dtype=np.int64)
        self._rank[self._members] = np.arange(self._members.size, dtype=np.int64)
        self._buckets_dirty = False

    def _fine_range(self, cells: NDArray[np.uint64], level: int) -> tuple[IntArray, IntArray]:
        """Range of ``_members`` whose res-``resolution`` cell lies inside each level cell.

        H3 indexes order children after their parent's digits, so all descendants of a
        cell at one finer resolution form one contiguous run of the sorted cell array:
        its bounds are the cell with the extra digits all 0 (first) and all 7 (past last).
        """
        res = self.resolution
        shift = np.uint64(3 * (15 - res))
        extra = np.uint64((1 << (3 * (res - level))) - 1) << shift
        fine = (cells & ~_RES_MASK) | (np.uint64(res) << _RES_SHIFT)
        lo = np.searchsorted(self._sorted_cells, fine & ~extra, side="left")
        hi = np.searchsorted(self._sorted_cells, fine | extra, side="right")
        return lo.astype(np.int64), hi.astype(np.int64)

    def density_per_m2(self, lat: ArrayLike, lng: ArrayLike, level: int = 7) -> FloatArray:
        """Indexed workers per square metre in each point's H3 cell at ``level`` (≈ 5 km² at 7).

        A cheap local density for sizing search radii; 0 where the coarse cell is empty.
        """
        lat_a = np.atleast_1d(np.asarray(lat, dtype=np.float64))
        lng_a = np.atleast_1d(np.asarray(lng, dtype=np.float64))
        res = min(max(level, 0), self.resolution)
        if self._buckets_dirty:
            self._rebuild()
        if lat_a.size == 0 or self._members.size == 0:
            return np.zeros(lat_a.shape)
        mine = np.asarray(
            cell_to_parent(
                np.asarray(latlng_to_cells(lat_a, lng_a, self.resolution), np.uint64), res
            ),
            dtype=np.uint64,
        )
        lo, hi = self._fine_range(mine, res)
        return np.asarray((hi - lo) / h3.average_hexagon_area(res, "m^2"), dtype=np.float64)

    def disk_k(self, radius_m: ArrayLike) -> IntArray:
        """Grid-disk radius k whose disk around a point's cell covers a circle of radius_m."""
        return self._disk_k_at(radius_m, self.resolution)

    def _disk_k_at(self, radius_m: ArrayLike, level: int) -> IntArray:
        r = np.asarray(radius_m, dtype=np.float64)
        # Rough (level choice, radius floors): 0.7 × the average edge covers H3's spread
        # of cell sizes, and the point may sit anywhere in its cell (1.5 k - 0.5 edges).
        edge = h3.average_hexagon_edge_length(level, "m") * 0.7
        k = np.ceil((r / edge + 0.5) / 1.5)
        return np.asarray(np.maximum(k, 0), dtype=np.int64)

    def _exact_k(
        self, cells: NDArray[np.uint64], lat: FloatArray, lng: FloatArray, radius: FloatArray
    ) -> IntArray:
        """Smallest k whose disk around each point's cell covers its radius.

        On a regular hex grid (edge e) everything outside disk k lies at least
        (1.5 k + 0.5) e from the cell's centre; from the point, subtract its offset from
        that centre. e is the cell's own area-equivalent edge, shrunk by _EDGE_SAFETY
        against H3's irregular shapes. A tight k keeps the gathered superset small.
        """
        uniq, inverse = np.unique(cells, return_inverse=True)
        c_lat, c_lng = cells_to_latlng(uniq)
        edge = self._cell_edges(uniq)
        inverse = inverse.reshape(-1)
        offset = haversine_m(lat, lng, c_lat[inverse], c_lng[inverse])
        reach = (radius + offset) / (edge[inverse] * _EDGE_SAFETY)
        return np.asarray(np.maximum(np.ceil((reach - 0.5) / 1.5), 0), dtype=np.int64)

    def _cell_edges(self, cells: NDArray[np.uint64]) -> FloatArray:
        """Area-equivalent edge (m) of each distinct (sorted) cell; see ``_cell_edges``."""
        return _cell_edges(cells)

    def covered_radius_m(self, k: ArrayLike) -> FloatArray:
        """Radius in metres fully covered by a grid disk of radius k around a point's cell."""
        k_arr = np.asarray(k, dtype=np.float64)
        return np.asarray(np.maximum((1.5 * k_arr - 0.5) * self._edge_m, 0.0), dtype=np.float64)

    def within(
        self, lat: ArrayLike, lng: ArrayLike, radius_m: ArrayLike
    ) -> tuple[IntArray, IntArray, FloatArray]:
        """Every worker within ``radius_m`` metres (great circle) of each origin, and a few more.

        ``radius_m`` is a scalar or one radius per origin. Returns ``(origin_idx, slots,
        distance_m)`` sorted by origin; map slots to ids with ``ids_of``. The distance is a
        local approximation that never exceeds the great-circle one, so the result is a
        superset of the exact disk by at most ~0.3 % of the radius at city scale.
        """
        lat_a = as_array(np.atleast_1d(np.asarray(lat, dtype=np.float64)), "lat", np.float64, None)
        n = lat_a.shape[0]
        lng_a = as_array(np.atleast_1d(np.asarray(lng, dtype=np.float64)), "lng", np.float64, n)
        check_latlng(lat_a, lng_a)
        radius = np.broadcast_to(np.asarray(radius_m, dtype=np.float64), (n,))
        check_finite_range(np.ascontiguousarray(radius), "radius_m", 0.0)
        if self._buckets_dirty:
            self._rebuild()
        if n == 0 or self._members.size == 0:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty.copy(), np.zeros(0)
        origin_cells = np.asarray(latlng_to_cells(lat_a, lng_a, self.resolution), np.uint64)
        # Per origin, the finest level whose disk covering the radius stays small: big
        # radii use coarse cells instead of thousands of fine ones.
        level = np.full(n, self.resolution, dtype=np.int64)
        for lvl in range(self.resolution - 1, max(self.resolution - _MAX_LEVELS_UP, 0) - 1, -1):
            too_many = self._disk_k_at(radius, lvl + 1) > _MAX_DISK_K
            level[too_many] = lvl
        # Equirectangular per origin, with the cosine taken at the latitude farthest from the
        # equator the radius reaches: east-west distances come out slightly short, so the
        # filter keeps a superset of the great-circle disk (exactness is the callers' job:
        # they compute real travel times for what is returned).
        reach_deg = np.minimum(np.abs(lat_a) + radius / _DEG_M + 1e-9, 90.0)
        x_scale = _DEG_M * np.cos(np.radians(reach_deg))
        r2 = radius * radius
        out_owner: list[IntArray] = []
        out_pos: list[IntArray] = []
        out_d2: list[FloatArray] = []
        for lvl in np.unique(level).tolist():
            rows_all = np.flatnonzero(level == lvl)
            # Blocks of origins keep the gathered pairs small enough to stay in cache.
            for lo in range(0, rows_all.size, _ORIGIN_BLOCK):
                rows = rows_all[lo : lo + _ORIGIN_BLOCK]
                cells = origin_cells[rows]
                if lvl != self.resolution:
                    cells = np.asarray(cell_to_parent(cells, lvl), dtype=np.uint64)
                k = self._exact_k(cells, lat_a[rows], lng_a[rows], radius[rows])
                pos, local = self._gather(cells, k, lvl)
                owner = rows[local]
                dy = (self._m_lat[pos] - lat_a[owner]) * _DEG_M
                dx = (self._m_lng[pos] - lng_a[owner]) * x_scale[owner]
                d2 = dx * dx + dy * dy
                keep = d2 <= r2[owner]
                out_owner.append(owner[keep])
                out_pos.append(pos[keep])
                out_d2.append(d2[keep])
        owner = np.concatenate(out_owner)
        pos = np.concatenate(out_pos)
        d2 = np.concatenate(out_d2)
        if len(out_owner) > 1:
            by_origin = np.argsort(owner, kind="stable")
            owner, pos, d2 = owner[by_origin], pos[by_origin], d2[by_origin]
        return owner, self._members[pos], np.sqrt(d2)

    def _gather(
        self, origin_cells: NDArray[np.uint64], k: IntArray, level: int
    ) -> tuple[IntArray, IntArray]:
        """Member positions in the disk (cell, k) at ``level`` of every origin, and its origin."""
        # Orders crowd into the same cells: one grid_disk per distinct (cell, k).
        order = np.lexsort((k, origin_cells))
        c_sorted, k_sorted = origin_cells[order], k[order]
        new_key = np.ones(order.size, dtype=np.bool_)
        new_key[1:] = (c_sorted[1:] != c_sorted[:-1]) | (k_sorted[1:] != k_sorted[:-1])
        first = np.flatnonzero(new_key)
        inverse = np.empty(order.size, dtype=np.int64)
        inverse[order] = np.cumsum(new_key) - 1
        key_cells, key_k = c_sorted[first], k_sorted[first]
        n_keys = first.size
        # One batched grid_disks call per distinct k (keys are sorted by cell, then k).
        cell_parts: list[NDArray[np.uint64]] = []
        owner_parts: list[IntArray] = []
        for kk in np.unique(key_k).tolist():
            keys = np.flatnonzero(key_k == kk)
            flat, offsets = grid_disks(key_cells[keys], int(kk))
            cell_parts.append(flat)
            owner_parts.append(np.repeat(keys, np.diff(offsets)))
        disk_cells = np.concatenate(cell_parts)
        disk_owner = np.concatenate(owner_parts)
        if len(cell_parts) > 1:
            by_key = np.argsort(disk_owner, kind="stable")
            disk_cells, disk_owner = disk_cells[by_key], disk_owner[by_key]
        lo, hi = self._fine_range(disk_cells, level)
        hit = hi > lo
        member_pos, which = expand_ranges(lo[hit], (hi - lo)[hit])
        uniq_slots = member_pos
        uniq_owner = disk_owner[hit][which]  # owner as distinct-key index, sorted
        per_key = np.bincount(uniq_owner, minlength=n_keys).astype(np.int64)
        key_start = np.zeros(n_keys, dtype=np.int64)
        np.cumsum(per_key[:-1], out=key_start[1:])
        idx, origin = expand_ranges(key_start[inverse], per_key[inverse])
        return uniq_slots[idx], origin


_DEG_M = np.pi / 180.0 * EARTH_RADIUS_M
# Sorted cells (any level) and their area-equivalent edges, shared by every index: cells
# never change shape, and the dispatcher builds a fresh index per match call.
_EDGE_CACHE: tuple[NDArray[np.uint64], FloatArray] = (
    np.zeros(0, dtype=np.uint64),
    np.zeros(0, dtype=np.float64),
)
_EDGE_CACHE_MAX = 4_000_000


def _cell_edges(cells: NDArray[np.uint64]) -> FloatArray:
    """Area-equivalent edge (m) of each distinct cell, cached across queries and indexes.

    Growth passes, certification rounds and successive match calls ask about the same
    cells again, and ``h3.cell_area`` is one Python call per cell.
    """
    global _EDGE_CACHE
    known, values = _EDGE_CACHE
    if known.size:
        pos = np.minimum(np.searchsorted(known, cells), known.size - 1)
        hit = known[pos] == cells
    else:
        pos = np.zeros(cells.shape[0], dtype=np.int64)
        hit = np.zeros(cells.shape[0], dtype=np.bool_)
    edge = np.empty(cells.shape[0], dtype=np.float64)
    edge[hit] = values[pos[hit]]
    miss = np.unique(cells[~hit])
    if miss.size:
        area = h3i.cell_area
        fresh = np.sqrt(
            np.array([area(c, "m^2") for c in miss.tolist()], dtype=np.float64)
            / _HEX_AREA_PER_EDGE2
        )
        edge[~hit] = fresh[np.searchsorted(miss, cells[~hit])]
        if known.size + miss.size > _EDGE_CACHE_MAX:
            known, values = known[:0], values[:0]
        merged = np.concatenate([known, miss])
        order = np.argsort(merged, kind="stable")
        _EDGE_CACHE = (merged[order], np.concatenate([values, fresh])[order])
    return edge

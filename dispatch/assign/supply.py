"""Neighbourhoods sized from supply and demand, before the first solve.

A per-order K (even scaled by crowding) cannot see a surge: where a hotspot holds five
orders per worker, every order's K nearest workers are the same few, the first graph
leaves most of them unassigned at the penalty, and the certificate then widens radii and
re-solves for a dozen rounds. Here, per coarse square cell with orders, the square around
it grows ring by ring until the free capacity in it covers the orders in it with a
margin (a local Hall condition). An order whose cell needs ring k gets a pool radius that
reaches about that square; only orders whose radius grows are touched, so cities where
supply meets demand locally keep the plain K-nearest start.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from dispatch._ragged import expand_ranges
from dispatch.assign.types import (
    RESERVE_MAX_PAIRS,
    RESERVE_TAKE,
    SUPPLY_CELL_M,
    SUPPLY_MARGIN,
    SUPPLY_MAX_CELLS,
    SUPPLY_MAX_EPS,
    FloatArray,
    IntArray,
)
from dispatch.model import Fleet, OrderBatch

_M_PER_DEG = 111_195.0


@dataclass(frozen=True, eq=False)
class SupplyGrid:
    """The square-cell grid of ``supply_reach``: available workers bucketed by cell.

    Positions are local-plane metres (equirectangular at the batch's mean latitude), whose
    distances are within a factor (1 + eps) of great-circle ones (5 m aside).
    """

    cell_m: float
    nx: int
    ny: int
    order_cell: IntArray  # flat cell (ix * ny + iy) of each order row
    order_x: FloatArray
    order_y: FloatArray
    worker_rows: IntArray  # available fleet rows sorted by cell
    worker_start: IntArray  # CSR offsets into worker_rows per flat cell (nx * ny + 1)
    worker_x: FloatArray  # same order as worker_rows
    worker_y: FloatArray
    eps: float

    def gather(self, rows: IntArray, radius_m: FloatArray) -> tuple[IntArray, IntArray, FloatArray]:
        """Every available worker within ``radius_m`` (per row) of each order in ``rows``:
        (order row, fleet row, lower bound on the great-circle distance in m), from the
        square of cells the radius needs around the order's cell. The slack (eps, 5 m)
        makes the set hold every worker the great-circle radius holds and keeps the bound
        below the distance."""
        empty = np.zeros(0, dtype=np.int64)
        if rows.size == 0:
            return empty, empty.copy(), np.zeros(0)
        ny, nx = self.ny, self.nx
        cell = self.order_cell[rows]
        cx, cy = cell // ny, cell % ny
        grow = 1.0 + self.eps
        reach = np.ceil(radius_m * grow / self.cell_m).astype(np.int64) + 1
        out_o: list[IntArray] = []
        out_w: list[IntArray] = []
        out_d: list[FloatArray] = []
        # One column strip (fixed x offset) of every order's square at a time: each is a
        # contiguous run of flat cells, so its workers are one CSR range.
        for dx in range(-int(reach.max()), int(reach.max()) + 1):
            take = np.flatnonzero(np.abs(dx) <= reach)
            x = cx[take] + dx
            ok = (x >= 0) & (x < nx)
            take, x = take[ok], x[ok]
            y0 = np.clip(cy[take] - reach[take], 0, ny - 1)
            y1 = np.clip(cy[take] + reach[take], 0, ny - 1)
            lo = self.worker_start[x * ny + y0]
            hi = self.worker_start[x * ny + y1 + 1]
            slots, owner = expand_ranges(lo, hi - lo)
            o = take[owner]
            r = radius_m[o] * grow + 5.0
            dx2 = self.worker_x[slots] - self.order_x[rows[o]]
            dx2 *= dx2
            dy2 = self.worker_y[slots] - self.order_y[rows[o]]
            dy2 *= dy2
            dx2 += dy2
            near = dx2 <= r * r
            out_o.append(rows[o[near]])
            out_w.append(self.worker_rows[slots[near]])
            out_d.append(np.maximum(np.sqrt(dx2[near]) / grow - 5.0, 0.0))
        return np.concatenate(out_o), np.concatenate(out_w), np.concatenate(out_d)


@dataclass(frozen=True, eq=False)
class SupplyReach:
    """Per order: the radius (m) whose square of cells covers its cell's demand, and the
    orders competing inside it (both 0 where the 3x3 block around its cell covers it);
    the grid, to gather the short orders' pairs (None when nothing was sized)."""

    radius_m: FloatArray
    competitors: IntArray
    grid: SupplyGrid | None


def supply_reach(
    orders: OrderBatch,
    fleet: Fleet,
    capacity: int,
    max_radius_m: float,
    *,
    cell_m: float = SUPPLY_CELL_M,
    margin: float = SUPPLY_MARGIN,
) -> SupplyReach:
    """Radius per order at which free capacity covers local demand (see module docstring).

    Cells are ``cell_m`` squares of a local equirectangular grid (coarser when the area is
    huge, at most SUPPLY_MAX_CELLS a side). For each cell with orders, the smallest ring k
    with capacity x workers in the (2k+1)² square >= (1 + margin) x orders in it; the
    radius is (k + 1) cell sides, capped at ``max_radius_m``. Capacity is ``capacity``
    orders per available worker.
    """
    n = len(orders)
    zero = SupplyReach(np.zeros(n), np.zeros(n, dtype=np.int64), None)
    avail = np.flatnonzero(fleet.available)
    if n == 0 or avail.size == 0:
        return zero
    eps = _plane_error(orders, max_radius_m)
    if eps > SUPPLY_MAX_EPS:
        return zero
    ox, oy, wx, wy = _local_plane(orders, fleet, avail)
    cells = _Cells.around(ox, oy, max_radius_m, cell_m)
    w_table, w_flat = cells.counts(wx, wy)
    o_table, o_flat = cells.counts(ox, oy)
    occupied, o_cell = np.unique(o_flat, return_inverse=True)
    o_cell = o_cell.reshape(-1)
    cx, cy = occupied // cells.ny, occupied % cells.ny
    k_max = int(np.ceil(max_radius_m / cells.cell))
    ring, demand = _rings(w_table, o_table, cx, cy, capacity, margin, k_max)
    short = ring > 1
    radius = np.where(short, np.minimum((ring + 1) * cells.cell, max_radius_m), 0.0)
    competitors = np.where(short, demand, 0)
    _cap_reserve(radius, np.flatnonzero(short), w_table, o_table, cx, cy, cells.cell)
    if not short.any():
        return SupplyReach(radius[o_cell].astype(np.float64), competitors[o_cell], None)
    inside = np.flatnonzero(cells.inside(wx, wy))
    by_cell = inside[np.argsort(w_flat[inside], kind="stable")]
    start = np.searchsorted(w_flat[by_cell], np.arange(cells.nx * cells.ny + 1)).astype(np.int64)
    grid = SupplyGrid(
        cell_m=cells.cell,
        nx=cells.nx,
        ny=cells.ny,
        order_cell=o_flat,
        order_x=ox,
        order_y=oy,
        worker_rows=avail[by_cell].astype(np.int64),
        worker_start=start,
        worker_x=wx[by_cell],
        worker_y=wy[by_cell],
        eps=eps,
    )
    return SupplyReach(
        radius[o_cell].astype(np.float64), competitors[o_cell].astype(np.int64), grid
    )


def _plane_error(orders: OrderBatch, max_radius_m: float) -> float:
    """Relative distance error bound of the local plane over the orders' area plus reach."""
    # Equirectangular distances at lat0 err by about tan(lat)·Δlat (radians) relative to
    # great-circle ones; bound that over the area, and give up where it is not small.
    # Every point of interest lies within ptp + radius of lat0 (the orders' mean).
    span = np.radians(float(np.ptp(orders.lat)) + max_radius_m / _M_PER_DEG)
    top = np.radians(min(89.0, float(np.abs(orders.lat).max()) + np.degrees(span)))
    return float(np.tan(top)) * float(span) + 2e-3


def _local_plane(
    orders: OrderBatch, fleet: Fleet, avail: IntArray
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Orders' and ``avail`` workers' (x, y) in metres, equirectangular at the orders' mean."""
    lat0 = float(np.mean(orders.lat))
    lng0 = float(np.mean(orders.lng))
    kx = _M_PER_DEG * np.cos(np.radians(lat0))
    ox = (orders.lng - lng0) * kx
    oy = (orders.lat - lat0) * _M_PER_DEG
    wx = (fleet.lng[avail] - lng0) * kx
    wy = (fleet.lat[avail] - lat0) * _M_PER_DEG
    return ox, oy, wx, wy


@dataclass(frozen=True)
class _Cells:
    """The square cells (side ``cell`` m, nx by ny) over a box of the local plane."""

    x_lo: float
    x_hi: float
    y_lo: float
    y_hi: float
    cell: float
    nx: int
    ny: int

    @classmethod
    def around(cls, ox: FloatArray, oy: FloatArray, max_radius_m: float, cell_m: float) -> _Cells:
        """Cells of side >= ``cell_m`` over the orders' box grown by ``max_radius_m``."""
        # Workers beyond the farthest order by more than the travel bound can serve nobody.
        x_lo = float(ox.min()) - max_radius_m
        x_hi = float(ox.max()) + max_radius_m
        y_lo = float(oy.min()) - max_radius_m
        y_hi = float(oy.max()) + max_radius_m
        cell = max(cell_m, (x_hi - x_lo) / SUPPLY_MAX_CELLS, (y_hi - y_lo) / SUPPLY_MAX_CELLS)
        nx = int((x_hi - x_lo) // cell) + 1
        ny = int((y_hi - y_lo) // cell) + 1
        return cls(x_lo, x_hi, y_lo, y_hi, cell, nx, ny)

    def inside(self, x: FloatArray, y: FloatArray) -> NDArray[np.bool_]:
        """Which points lie in the box."""
        return (x >= self.x_lo) & (x <= self.x_hi) & (y >= self.y_lo) & (y <= self.y_hi)

    def counts(self, x: FloatArray, y: FloatArray) -> tuple[NDArray[np.int64], IntArray]:
        """Summed-area table of the points in the box per cell, and each point's flat cell."""
        nx, ny = self.nx, self.ny
        inside = self.inside(x, y)
        ix = ((x - self.x_lo) // self.cell).astype(np.int64).clip(0, nx - 1)
        iy = ((y - self.y_lo) // self.cell).astype(np.int64).clip(0, ny - 1)
        flat = ix * ny + iy
        grid = np.bincount(flat[inside], minlength=nx * ny).reshape(nx, ny)
        # Summed-area table with a zero border: box sums in O(1).
        table = np.zeros((nx + 1, ny + 1), dtype=np.int64)
        table[1:, 1:] = grid.cumsum(0).cumsum(1)
        return table, flat


def _box(table: NDArray[np.int64], k: int, cx: IntArray, cy: IntArray) -> IntArray:
    """Per cell (cx, cy): the count in the (2k+1)² square around it, from a summed-area table."""
    nx, ny = table.shape[0] - 1, table.shape[1] - 1
    x0 = np.clip(cx - k, 0, nx)
    x1 = np.clip(cx + k + 1, 0, nx)
    y0 = np.clip(cy - k, 0, ny)
    y1 = np.clip(cy + k + 1, 0, ny)
    return np.asarray(table[x1, y1] - table[x0, y1] - table[x1, y0] + table[x0, y0])


def _rings(
    w_table: NDArray[np.int64],
    o_table: NDArray[np.int64],
    cx: IntArray,
    cy: IntArray,
    capacity: int,
    margin: float,
    k_max: int,
) -> tuple[IntArray, IntArray]:
    """Per cell: the first ring whose square's capacity covers its orders, and those orders."""
    ring = np.zeros(cx.size, dtype=np.int64)
    demand = np.zeros(cx.size, dtype=np.int64)
    todo = np.arange(cx.size, dtype=np.int64)
    # Ring 1 (a 3x3 block) is the plain K-nearest start's business: a cell falls short only
    # when even that block lacks the capacity, which random scatter alone rarely causes.
    for k in range(1, max(k_max, 1) + 1):
        supply = capacity * _box(w_table, k, cx[todo], cy[todo])
        want = _box(o_table, k, cx[todo], cy[todo])
        covered = supply >= (1.0 + margin) * want
        ring[todo] = k
        demand[todo] = want
        todo = todo[~covered]
        if todo.size == 0:
            break
    return ring, demand


def _cap_reserve(
    radius: FloatArray,
    hot: IntArray,
    w_table: NDArray[np.int64],
    o_table: NDArray[np.int64],
    cx: IntArray,
    cy: IntArray,
    cell: float,
) -> None:
    """Shrink the ``hot`` cells' radii alike (in place) when their pairs exceed the cap."""
    # Memory guard: the reserve holds orders x workers within the radius; beyond
    # RESERVE_MAX_PAIRS (an extreme surge) shrink every radius alike, and leave the rest
    # to the certificate's own widening.
    if hot.size == 0:
        return
    here = _box(o_table, 0, cx[hot], cy[hot])
    reach_k = np.ceil(radius[hot] / cell).astype(np.int64)
    around = np.zeros(hot.size, dtype=np.int64)
    for r in np.unique(reach_k).tolist():
        at = reach_k == r
        around[at] = _box(w_table, int(r), cx[hot[at]], cy[hot[at]])
    pairs = float((here * around).sum()) * np.pi / 4.0
    if pairs > RESERVE_MAX_PAIRS:
        radius[hot] *= np.sqrt(RESERVE_MAX_PAIRS / pairs)


class Reserve:
    """Pairs of the short orders found by the grid but not yet costed.

    Costing ~a million pairs (travel model, hard constraints, cost terms) dominated a
    surge batch, while the certificate needs only those that might beat an order's price.
    Each pair keeps a lower bound on its cost from its distance (see ``could_violate``);
    a pair is costed (taken) only when that bound does not clear it, or when sampled for
    the first graph. Taken pairs leave the reserve.
    """

    def __init__(
        self, o: IntArray, w: IntArray, d_lb: FloatArray, radius_m: FloatArray, speed_mps: float
    ) -> None:
        self.o, self.w, self.d_lb = o, w, d_lb
        self.radius_m = radius_m  # per order row: the reserve holds every pair within it
        self.speed_mps = speed_mps  # straight-line speed bound of this batch's trips
        self.open = np.ones(self.o.size, dtype=np.bool_)
        self._base: NDArray[np.float32] | None = None

    @property
    def size(self) -> int:
        return int(self.open.sum())

    def sample(self, k: IntArray, near: int, size: int) -> IntArray:
        """Per order, about ``near`` + ``size`` pairs: those within the radius that holds
        its ``near`` nearest workers, and a spread of the ones within the radius holding
        its k[o] nearest (the workers it competes for), drawn at random (fixed seed: the
        same batch gives the same sample).

        Radii come from the order's pair count over its disk (even density), so no sort:
        a first graph needs a good spread, not exact ranks. Everything per order is
        computed per order; per pair there are three comparisons.
        """
        c = np.maximum(np.bincount(self.o, minlength=self.radius_m.size), 1).astype(np.float64)
        r_near = (self.radius_m * np.sqrt(np.minimum(near / c, 1.0))).astype(np.float32)
        reach = np.minimum(k / c, 1.0)
        r_want = (self.radius_m * np.sqrt(reach)).astype(np.float32)
        share = np.minimum(size / np.maximum(reach * c, 1.0), 1.0).astype(np.float32)
        d = self.d_lb.astype(np.float32)
        keep = d <= r_want[self.o]
        draw = np.random.default_rng(0x5EED).random(self.o.size, dtype=np.float32)
        keep &= draw < share[self.o]
        keep |= d <= r_near[self.o]
        keep &= self.open
        return np.flatnonzero(keep)

    def could_violate(
        self,
        u: IntArray,
        v: IntArray,
        h: FloatArray,
        slack: float,
        travel_w: float,
        speed: float,
        share: float = 0.0,
    ) -> tuple[IntArray, bool]:
        """Open pairs whose cost lower bound, travel_w·d/speed + order terms - slack (the
        bound of ``needed_radius``), plus the worker's price stays below the order's price
        (by ``share`` x that price, with ``share`` > 0: pairs close to violating too)."""
        if self._base is None:
            # float32 halves the memory traffic of this scan over millions of pairs; one
            # unit off the bound more than covers its rounding (costs stay below ~1e6).
            base = travel_w * self.d_lb / speed + h[self.o] - slack - 1.5
            self._base = base.astype(np.float32)
        if self.open.sum() < self.o.size // 2:
            self._compact()
        # Per order first (few), then one gather each per pair.
        threshold = (u + share * np.maximum(u, 0)).astype(np.float32)
        gap = v.astype(np.float32)[self.w]
        gap += self._base
        gap -= threshold[self.o]
        hit = gap < 0
        hit &= self.open
        idx = np.flatnonzero(hit)
        if idx.size == 0:
            return idx, False
        # At most RESERVE_TAKE per call: while orders are unassigned their prices are the
        # penalty and nearly every pair qualifies. ``cut`` says there was more: ask again.
        return idx[:RESERVE_TAKE], idx.size > RESERVE_TAKE

    def _compact(self) -> None:
        """Forget the taken pairs (indices handed out before this are void)."""
        keep = self.open
        self.o, self.w, self.d_lb = self.o[keep], self.w[keep], self.d_lb[keep]
        if self._base is not None:
            self._base = self._base[keep]
        self.open = np.ones(self.o.size, dtype=np.bool_)

    def take(self, idx: IntArray) -> tuple[IntArray, IntArray]:
        """The (order, worker) rows of pairs ``idx``; they leave the reserve."""
        self.open[idx] = False
        return self.o[idx], self.w[idx]

"""Where things are: a point's dispatch region (what a dispatcher owns), a worker's live
position, great-circle distances in metres."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from api.core.broker import REGION_RES
from api.core.live import LiveBackends
from geo.cells import latlng_to_cells
from geo.projection import haversine_one_m


def region_of(lat: float, lng: float) -> int:
    """The H3 res-5 region of a WGS-84 point (what a dispatcher owns)."""
    return int(latlng_to_cells(lat, lng, REGION_RES))


def regions_of(lats: Sequence[float], lngs: Sequence[float]) -> list[int]:
    """``region_of`` for many points at once (vectorised)."""
    if not len(lats):
        return []
    cells = latlng_to_cells(np.asarray(lats, dtype=np.float64), np.asarray(lngs), REGION_RES)
    return [int(c) for c in np.asarray(cells).tolist()]


def distance_m(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Great-circle distance in metres."""
    return haversine_one_m(lat1, lng1, lat2, lng2)


async def worker_position(live: LiveBackends, worker_id: int) -> tuple[float, float] | None:
    """The worker's last live position (WGS-84 lat, lng), or None."""
    pos = await live.state.get_positions([worker_id])
    if not pos.found[0]:
        return None
    return float(pos.lat[0]), float(pos.lng[0])

"""Distances and local metric projections (pyproj) for a city."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from geo._arrays import FloatArray, as_float_array

#: Mean Earth radius (IUGG), metres.
EARTH_RADIUS_M = 6_371_008.8


def haversine_m(
    lat1: ArrayLike, lng1: ArrayLike, lat2: ArrayLike, lng2: ArrayLike
) -> FloatArray:
    """Great-circle distance in metres between points (degrees), broadcasting like numpy."""
    p1 = np.radians(as_float_array(lat1, "lat1"))
    p2 = np.radians(as_float_array(lat2, "lat2"))
    dp = p2 - p1
    dl = np.radians(as_float_array(lng2, "lng2") - as_float_array(lng1, "lng1"))
    h = np.sin(dp * 0.5) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl * 0.5) ** 2
    return np.asarray(2.0 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.minimum(h, 1.0))))

"""Input normalisation shared by every vectorised geo function."""

from __future__ import annotations

from typing import TypeAlias

import numpy as np
from numpy.typing import ArrayLike, NDArray

from geo.errors import InvalidCoordinate, ShapeMismatch

FloatArray: TypeAlias = NDArray[np.float64]


def as_float_array(values: ArrayLike, name: str) -> FloatArray:
    """Return ``values`` as a float64 array (no copy when it already is one)."""
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidCoordinate(f"{name} must be numeric, got {values!r}") from exc


def _first_bad(mask: NDArray[np.bool_]) -> str:
    idx = np.argwhere(mask)[0]
    return str(tuple(int(i) for i in idx)) if idx.size > 1 else str(int(idx[0]))


def as_latlng(lat: ArrayLike, lng: ArrayLike) -> tuple[FloatArray, FloatArray, bool]:
    """Validate a latitude/longitude pair (degrees) of equal shapes.

    Returns float64 arrays and whether the input was scalar. Raises
    ``InvalidCoordinate`` naming the first offending index for NaN, infinite
    or out-of-range values, and ``ShapeMismatch`` for different shapes.
    """
    lat_a = as_float_array(lat, "lat")
    lng_a = as_float_array(lng, "lng")
    if lat_a.shape != lng_a.shape:
        raise ShapeMismatch(
            f"lat and lng must have the same shape, got {lat_a.shape} and {lng_a.shape}"
        )
    scalar = lat_a.ndim == 0
    check_latlng(lat_a, lng_a)
    return lat_a, lng_a, scalar


def check_latlng(lat: FloatArray, lng: FloatArray) -> None:
    """Raise ``InvalidCoordinate`` unless every lat is in [-90, 90] and lng in [-180, 180]."""
    for name, arr, bound in (("lat", lat, 90.0), ("lng", lng, 180.0)):
        # One pass: NaN fails the comparison, so ~(|x| <= bound) catches NaN and inf too.
        bad = ~(np.abs(arr) <= bound)
        if bad.any():
            if arr.ndim == 0:
                raise InvalidCoordinate(f"{name} must be finite and within ±{bound:g}, got {arr}")
            where = _first_bad(np.atleast_1d(bad))
            value = np.atleast_1d(arr)[np.atleast_1d(bad)][0]
            raise InvalidCoordinate(
                f"{name}[{where}] must be finite and within ±{bound:g}, got {value}"
            )

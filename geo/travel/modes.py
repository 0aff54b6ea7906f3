"""Transport modes, hours of the day and the checks every travel input goes through."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Any, TypeAlias, TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from geo._arrays import FloatArray, as_float_array, check_latlng
from geo.errors import InvalidCoordinate, InvalidParameter, ShapeMismatch

#: China Standard Time (UTC+8), the default local offset of every model.
CHINA_UTC_OFFSET_S = 8 * 3600
HOURS_PER_DAY = 24
SECONDS_PER_HOUR = 3600
SECONDS_PER_DAY = 86_400


class TransportMode(StrEnum):
    """How a worker travels; 家政 workers mostly ride e-bikes."""

    WALK = "walk"
    EBIKE = "ebike"
    CAR = "car"

    @property
    def code(self) -> int:
        """Stable integer code used in mode arrays (walk 0, ebike 1, car 2)."""
        return MODE_ORDER.index(self)

    @classmethod
    def from_code(cls, code: int) -> TransportMode:
        """The mode of an integer code."""
        if not 0 <= code < len(MODE_ORDER):
            raise InvalidParameter(f"mode code must be in 0..{len(MODE_ORDER) - 1}, got {code}")
        return MODE_ORDER[code]


ArrT = TypeVar("ArrT", bound=NDArray[Any])

MODE_ORDER: tuple[TransportMode, ...] = (
    TransportMode.WALK,
    TransportMode.EBIKE,
    TransportMode.CAR,
)
N_MODES = len(MODE_ORDER)
#: Mode code by mode value; a ``TransportMode`` looks up as its value (StrEnum).
MODE_CODE: Mapping[str, int] = MappingProxyType({m.value: i for i, m in enumerate(MODE_ORDER)})

#: A mode for every pair, or an array of codes/names broadcastable with the points.
ModeLike: TypeAlias = TransportMode | str | ArrayLike

# Physical upper bounds for rejecting GPS jumps, not typical speeds: a walking
# worker may hop on a bus, e-bikes are often de-restricted, cars on elevated roads.
_MAX_SPEED_MPS: Mapping[TransportMode, float] = MappingProxyType(
    {TransportMode.WALK: 5.0, TransportMode.EBIKE: 15.0, TransportMode.CAR: 40.0}
)


def max_speed_mps(mode: TransportMode | str) -> float:
    """Highest plausible speed of ``mode`` in metres per second (for jump rejection)."""
    return _MAX_SPEED_MPS[one_mode(mode)]


def one_mode(mode: TransportMode | str) -> TransportMode:
    """The ``TransportMode`` of a mode or its string value (InvalidParameter names the choices)."""
    if isinstance(mode, TransportMode):
        return mode
    try:
        return TransportMode(mode)
    except ValueError as exc:
        choices = ", ".join(m.value for m in MODE_ORDER)
        raise InvalidParameter(f"mode must be one of {choices}, got {mode!r}") from exc


def mode_codes(mode: ModeLike) -> NDArray[np.int8]:
    """Normalise a mode, or an array of mode codes or names, to int8 mode codes."""
    if isinstance(mode, str):
        return np.asarray(one_mode(mode).code, dtype=np.int8)
    arr = np.asarray(mode)
    if arr.dtype.kind in "iu":
        bad = (arr < 0) | (arr >= N_MODES)
        if bad.any():
            idx = int(np.flatnonzero(bad.ravel())[0])
            value = arr.ravel()[idx]
            raise InvalidParameter(
                f"mode[{idx}] must be a mode code in 0..{N_MODES - 1}, got {value}"
            )
        return arr.astype(np.int8)
    if arr.dtype.kind in "UO":
        names, inverse = np.unique(arr.astype(str), return_inverse=True)
        lookup = np.array([one_mode(str(n)).code for n in names], dtype=np.int8)
        return lookup[inverse].reshape(arr.shape)
    raise InvalidParameter(f"mode must be a TransportMode, mode codes or names, got {mode!r}")


def local_hour(at: ArrayLike, utc_offset_s: int = CHINA_UTC_OFFSET_S) -> NDArray[np.int64]:
    """Local hour of day (0..23) of epoch seconds ``at`` at ``utc_offset_s`` seconds east of UTC."""
    at_s = as_epoch(at, "at")
    return np.asarray(((np.floor(at_s) + utc_offset_s) // SECONDS_PER_HOUR) % 24).astype(np.int64)


def as_epoch(at: ArrayLike, name: str) -> FloatArray:
    """``at`` as float64 epoch seconds, every value finite (InvalidParameter names ``name``)."""
    # float64 holds epoch seconds exactly until 2**53, far beyond any real date.
    at_s = as_float_array(at, name)
    bad = ~np.isfinite(at_s)
    if bad.any():
        if at_s.ndim == 0:
            raise InvalidParameter(f"{name} must be finite epoch seconds, got {at_s}")
        idx = int(np.flatnonzero(bad.ravel())[0])
        raise InvalidParameter(
            f"{name}[{idx}] must be finite epoch seconds, got {at_s.ravel()[idx]}"
        )
    return at_s


def per_row(values: ArrT, n: int, name: str) -> ArrT:
    """A length-``n`` array as a column (n, 1), taken per origin row of a matrix."""
    if values.shape[0] != n:
        raise ShapeMismatch(f"{name} must have one value per origin ({n}), got {values.shape[0]}")
    return values[:, None]  # type: ignore[return-value]


def checked_points(
    from_lat: ArrayLike, from_lng: ArrayLike, to_lat: ArrayLike, to_lng: ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Origin and destination coordinates as float64 arrays, shapes and ranges checked."""
    lat1 = as_float_array(from_lat, "from_lat")
    lng1 = as_float_array(from_lng, "from_lng")
    lat2 = as_float_array(to_lat, "to_lat")
    lng2 = as_float_array(to_lng, "to_lng")
    for a, b, what in ((lat1, lng1, "from"), (lat2, lng2, "to")):
        if a.shape != b.shape:
            raise ShapeMismatch(
                f"{what}_lat and {what}_lng must have the same shape, got {a.shape} and {b.shape}"
            )
    for a, b, what in ((lat1, lng1, "from"), (lat2, lng2, "to")):
        try:
            check_latlng(a, b)
        except InvalidCoordinate as exc:
            # check_latlng says "lat[3] ..."; name which end of the trip it was.
            raise InvalidCoordinate(f"{what}_{exc}") from None
    return lat1, lng1, lat2, lng2

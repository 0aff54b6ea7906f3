"""Travel time between points: the ``TravelTimeModel`` protocol and a haversine model.

Every model is vectorised and takes departure times as int64 epoch seconds
(UTC); the model owns the local time-zone offset used to pick the hour of day
(China: UTC+8). Durations are float64 seconds.

Transport mode
--------------
``mode`` is either one ``TransportMode`` (or its string value) for every pair,
or an array of integer mode codes (``TransportMode.code``: walk 0, e-bike 1,
car 2) or of mode names that broadcasts with the points. That is how a
dispatcher passes each worker's own mode: ``seconds(worker_lat, worker_lng,
order_lat, order_lng, now, mode=worker_mode_codes)``. In ``matrix`` a 1-D mode
(or ``at``) array of length ``n`` is taken per origin row.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, TypeAlias, TypeVar, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from geo._arrays import FloatArray, as_float_array, check_latlng
from geo.errors import InvalidCoordinate, InvalidParameter, ShapeMismatch
from geo.projection import haversine_m

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
        return _MODE_ORDER.index(self)

    @classmethod
    def from_code(cls, code: int) -> TransportMode:
        """The mode of an integer code."""
        if not 0 <= code < len(_MODE_ORDER):
            raise InvalidParameter(f"mode code must be in 0..{len(_MODE_ORDER) - 1}, got {code}")
        return _MODE_ORDER[code]


_ArrT = TypeVar("_ArrT", bound=NDArray[Any])

_MODE_ORDER: tuple[TransportMode, ...] = (
    TransportMode.WALK,
    TransportMode.EBIKE,
    TransportMode.CAR,
)
_N_MODES = len(_MODE_ORDER)

#: A mode for every pair, or an array of codes/names broadcastable with the points.
ModeLike: TypeAlias = TransportMode | str | ArrayLike

# Physical upper bounds for rejecting GPS jumps, not typical speeds: a walking
# worker may hop on a bus, e-bikes are often de-restricted, cars on elevated roads.
_MAX_SPEED_MPS: dict[TransportMode, float] = {
    TransportMode.WALK: 5.0,
    TransportMode.EBIKE: 15.0,
    TransportMode.CAR: 40.0,
}


def max_speed_mps(mode: TransportMode | str) -> float:
    """Highest plausible speed of ``mode`` in metres per second (for jump rejection)."""
    return _MAX_SPEED_MPS[_one_mode(mode)]


def _one_mode(mode: TransportMode | str) -> TransportMode:
    if isinstance(mode, TransportMode):
        return mode
    try:
        return TransportMode(mode)
    except ValueError as exc:
        choices = ", ".join(m.value for m in _MODE_ORDER)
        raise InvalidParameter(f"mode must be one of {choices}, got {mode!r}") from exc


def mode_codes(mode: ModeLike) -> NDArray[np.int8]:
    """Normalise a mode, or an array of mode codes or names, to int8 mode codes."""
    if isinstance(mode, str):
        return np.asarray(_one_mode(mode).code, dtype=np.int8)
    arr = np.asarray(mode)
    if arr.dtype.kind in "iu":
        bad = (arr < 0) | (arr >= _N_MODES)
        if bad.any():
            idx = int(np.flatnonzero(bad.ravel())[0])
            value = arr.ravel()[idx]
            raise InvalidParameter(
                f"mode[{idx}] must be a mode code in 0..{_N_MODES - 1}, got {value}"
            )
        return arr.astype(np.int8)
    if arr.dtype.kind in "UO":
        names, inverse = np.unique(arr.astype(str), return_inverse=True)
        lookup = np.array([_one_mode(str(n)).code for n in names], dtype=np.int8)
        return lookup[inverse].reshape(arr.shape)
    raise InvalidParameter(f"mode must be a TransportMode, mode codes or names, got {mode!r}")


def local_hour(at: ArrayLike, utc_offset_s: int = CHINA_UTC_OFFSET_S) -> NDArray[np.int64]:
    """Local hour of day (0..23) of epoch seconds ``at`` at ``utc_offset_s`` seconds east of UTC."""
    at_s = _as_epoch(at, "at")
    return np.asarray(((np.floor(at_s) + utc_offset_s) // SECONDS_PER_HOUR) % 24).astype(np.int64)


def _as_epoch(at: ArrayLike, name: str) -> FloatArray:
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


@runtime_checkable
class TravelTimeModel(Protocol):
    """Vectorised travel time between WGS-84 points; times are epoch seconds (UTC)."""

    utc_offset_s: int

    def seconds(
        self,
        from_lat: ArrayLike,
        from_lng: ArrayLike,
        to_lat: ArrayLike,
        to_lng: ArrayLike,
        at: ArrayLike,
        mode: ModeLike = TransportMode.EBIKE,
    ) -> FloatArray:
        """Seconds from each origin to its destination departing at ``at`` (broadcasting)."""
        ...

    def matrix(
        self,
        from_lat: ArrayLike,
        from_lng: ArrayLike,
        to_lat: ArrayLike,
        to_lng: ArrayLike,
        at: ArrayLike,
        mode: ModeLike = TransportMode.EBIKE,
    ) -> FloatArray:
        """Seconds from every origin (n) to every destination (m), shape (n, m)."""
        ...


def default_speed_profile() -> dict[TransportMode, tuple[float, ...]]:
    """Typical Chinese-city speeds in metres per second along the road, by local hour."""
    walk = (1.3,) * 24
    # E-bikes weave through jams but queue at lights and crowded non-motor lanes in rush hours.
    ebike = tuple(
        3.8 if h in (7, 8, 17, 18) else 5.0 if (h >= 23 or h <= 5) else 4.5 for h in range(24)
    )
    car_by_hour = {
        **dict.fromkeys(range(6), 11.0),
        6: 9.0,
        7: 5.0,
        8: 5.0,
        9: 6.5,
        **dict.fromkeys(range(10, 17), 7.5),
        17: 5.0,
        18: 5.0,
        19: 6.5,
        20: 8.5,
        21: 8.5,
        22: 8.5,
        23: 10.0,
    }
    car = tuple(car_by_hour[h] for h in range(24))
    return {TransportMode.WALK: walk, TransportMode.EBIKE: ebike, TransportMode.CAR: car}


def default_detour_factor() -> dict[TransportMode, float]:
    """Typical road distance / great-circle distance per mode (pedestrians cut corners)."""
    return {TransportMode.WALK: 1.3, TransportMode.EBIKE: 1.35, TransportMode.CAR: 1.4}


def _per_mode(
    value: float | Mapping[TransportMode, float] | Mapping[str, float], name: str
) -> FloatArray:
    out = np.empty(_N_MODES)
    if isinstance(value, Mapping):
        modes = {_one_mode(str(k)): float(v) for k, v in value.items()}
        missing = [m.value for m in _MODE_ORDER if m not in modes]
        if missing:
            raise InvalidParameter(f"{name} is missing modes {missing}")
        for m, v in modes.items():
            out[m.code] = v
    else:
        out[:] = float(value)
    return out


@dataclass(frozen=True)
class HaversineTravelModel:
    """Great-circle distance × detour factor at a speed that depends on mode and local hour.

    ``seconds = overhead_s[mode] + time to cover detour_factor[mode] × haversine_m``
    at ``speed_mps[mode][hour]``. The speed is integrated across hour boundaries
    (piecewise-constant speed, exact), not taken once at departure: that keeps
    the model FIFO — leaving later never arrives earlier, which a departure-hour
    lookup breaks at 09:00 when the car peak ends — and long walks across the
    evening peak are costed right. The overhead (parking, lift, finding the
    door) is spent after the ride, so it does not shift the speed window.
    """

    speed_mps: Mapping[TransportMode, tuple[float, ...]] = field(
        default_factory=default_speed_profile
    )
    detour_factor: float | Mapping[TransportMode, float] = field(
        default_factory=default_detour_factor
    )
    overhead_s: float | Mapping[TransportMode, float] = 0.0
    utc_offset_s: int = CHINA_UTC_OFFSET_S

    _speed_table: FloatArray = field(init=False, repr=False, compare=False)
    _detour: FloatArray = field(init=False, repr=False, compare=False)
    _overhead: FloatArray = field(init=False, repr=False, compare=False)
    _day_m: FloatArray = field(init=False, repr=False, compare=False)
    _flat: NDArray[np.bool_] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.speed_mps, Mapping):
            raise InvalidParameter(
                f"speed_mps must map each mode to 24 hourly speeds, got {self.speed_mps!r}"
            )
        table = np.empty((_N_MODES, HOURS_PER_DAY))
        seen: set[TransportMode] = set()
        for key, profile in self.speed_mps.items():
            mode = _one_mode(str(key))
            speeds = np.asarray(profile, dtype=np.float64)
            if speeds.shape != (HOURS_PER_DAY,):
                raise InvalidParameter(
                    f"speed_mps[{mode.value}] must have 24 hourly speeds, got shape {speeds.shape}"
                )
            bad = ~(np.isfinite(speeds) & (speeds > 0))
            if bad.any():
                hour = int(np.flatnonzero(bad)[0])
                raise InvalidParameter(
                    f"speed_mps[{mode.value}][{hour}] must be a positive finite speed, "
                    f"got {speeds[hour]}"
                )
            table[mode.code] = speeds
            seen.add(mode)
        missing = [m.value for m in _MODE_ORDER if m not in seen]
        if missing:
            raise InvalidParameter(f"speed_mps is missing modes {missing}")
        detour = _per_mode(self.detour_factor, "detour_factor")
        if not (np.isfinite(detour) & (detour >= 1.0)).all():
            raise InvalidParameter(f"detour_factor must be >= 1 and finite, got {detour.tolist()}")
        overhead = _per_mode(self.overhead_s, "overhead_s")
        if not (np.isfinite(overhead) & (overhead >= 0.0)).all():
            raise InvalidParameter(f"overhead_s must be >= 0 and finite, got {overhead.tolist()}")
        if not isinstance(self.utc_offset_s, int | np.integer) or not (
            -14 * SECONDS_PER_HOUR <= self.utc_offset_s <= 14 * SECONDS_PER_HOUR
        ):
            raise InvalidParameter(
                f"utc_offset_s must be an integer within ±14 h, got {self.utc_offset_s!r}"
            )
        for name, arr in (("_speed_table", table), ("_detour", detour), ("_overhead", overhead)):
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        object.__setattr__(self, "_day_m", table.sum(axis=1) * SECONDS_PER_HOUR)
        object.__setattr__(self, "_flat", (table == table[:, :1]).all(axis=1))

    def speed_profile(self, mode: TransportMode | str) -> FloatArray:
        """The 24 hourly road speeds of ``mode`` in metres per second (read-only)."""
        return np.asarray(self._speed_table[_one_mode(mode).code])

    def detour(self, mode: TransportMode | str) -> float:
        """Road distance / great-circle distance of ``mode`` (dimensionless, >= 1)."""
        return float(self._detour[_one_mode(mode).code])

    def overhead(self, mode: TransportMode | str) -> float:
        """Fixed seconds added to every trip of ``mode`` (parking, lift, finding the door)."""
        return float(self._overhead[_one_mode(mode).code])

    def seconds(
        self,
        from_lat: ArrayLike,
        from_lng: ArrayLike,
        to_lat: ArrayLike,
        to_lng: ArrayLike,
        at: ArrayLike,
        mode: ModeLike = TransportMode.EBIKE,
    ) -> FloatArray:
        """Seconds from each origin to its destination departing at epoch ``at`` (broadcasting).

        Points in degrees (WGS-84), ``at`` epoch seconds UTC (scalar or array),
        ``mode`` a mode or an array of mode codes/names; everything broadcasts.
        """
        lat1, lng1, lat2, lng2 = _checked_points(from_lat, from_lng, to_lat, to_lng)
        at_s = _as_epoch(at, "at")
        codes = mode_codes(mode)
        try:
            shape = np.broadcast_shapes(lat1.shape, lat2.shape, at_s.shape, codes.shape)
        except ValueError as exc:
            raise ShapeMismatch(
                f"points {lat1.shape} -> {lat2.shape}, at {at_s.shape} and mode {codes.shape} "
                "do not broadcast together"
            ) from exc
        great_circle_m = np.broadcast_to(haversine_m(lat1, lng1, lat2, lng2), shape)
        return self._seconds_for(great_circle_m, np.broadcast_to(at_s, shape), codes, shape)

    def matrix(
        self,
        from_lat: ArrayLike,
        from_lng: ArrayLike,
        to_lat: ArrayLike,
        to_lng: ArrayLike,
        at: ArrayLike,
        mode: ModeLike = TransportMode.EBIKE,
    ) -> FloatArray:
        """Seconds from every origin (n) to every destination (m), shape (n, m).

        ``at`` and ``mode`` are scalars, 1-D of length n (per origin, e.g. each
        worker's own departure time and transport mode) or shape (n, m).
        """
        lat1, lng1, lat2, lng2 = _checked_points(from_lat, from_lng, to_lat, to_lng)
        if lat1.ndim != 1 or lat2.ndim != 1:
            raise ShapeMismatch(
                f"matrix needs 1-D origins and destinations, got {lat1.shape} and {lat2.shape}"
            )
        at_s = _as_epoch(at, "at")
        codes = mode_codes(mode)
        n = lat1.shape[0]
        if at_s.ndim == 1:
            at_s = _per_row(at_s, n, "at")
        if codes.ndim == 1:
            codes = _per_row(codes, n, "mode")
        shape = (n, lat2.shape[0])
        great_circle_m = haversine_m(lat1[:, None], lng1[:, None], lat2[None, :], lng2[None, :])
        try:
            at_b = np.broadcast_to(at_s, shape)
            np.broadcast_shapes(codes.shape, shape)
        except ValueError as exc:
            raise ShapeMismatch(
                f"at {at_s.shape} and mode {codes.shape} must broadcast to the matrix {shape}"
            ) from exc
        return self._seconds_for(great_circle_m, at_b, codes, shape)

    def _seconds_for(
        self,
        great_circle_m: FloatArray,
        at_s: FloatArray,
        codes: NDArray[np.int8],
        shape: tuple[int, ...],
    ) -> FloatArray:
        if codes.ndim == 0:
            code = int(codes)
            road_m = great_circle_m * self._detour[code]
            if self._flat[code]:
                # Constant speed: no integration needed (walking, most of the time).
                return np.asarray(road_m / self._speed_table[code, 0] + self._overhead[code])
            ride = self._integrate(road_m.ravel(), at_s.ravel(), np.full(road_m.size, code))
            return np.asarray(ride.reshape(shape) + self._overhead[code])
        codes_b = np.broadcast_to(codes, shape).ravel()
        road_m = great_circle_m.ravel() * self._detour[codes_b]
        ride = self._integrate(road_m, at_s.ravel(), codes_b)
        return np.asarray((ride + self._overhead[codes_b]).reshape(shape))

    def _integrate(
        self, road_m: FloatArray, at_s: FloatArray, codes: NDArray[np.int8]
    ) -> FloatArray:
        """Seconds to ride ``road_m`` metres from epoch ``at_s`` under the hourly speeds."""
        seconds = np.zeros(road_m.shape)
        # Whole days first, so a cross-country walk costs at most 25 hour steps.
        day_m = self._day_m[codes]
        whole_days = np.floor(road_m / day_m)
        seconds += whole_days * SECONDS_PER_DAY
        remaining = road_m - whole_days * day_m
        tod = np.mod(np.floor(at_s) + self.utc_offset_s, SECONDS_PER_DAY).astype(np.float64)
        tod += at_s - np.floor(at_s)
        active = np.flatnonzero(remaining > 0)
        while active.size:
            t = tod[active]
            hour = np.minimum((t // SECONDS_PER_HOUR).astype(np.int64), HOURS_PER_DAY - 1)
            speed = self._speed_table[codes[active], hour]
            to_boundary = (hour + 1) * SECONDS_PER_HOUR - t
            reach_m = speed * to_boundary
            rem = remaining[active]
            done = rem <= reach_m
            step = np.where(done, rem / speed, to_boundary)
            seconds[active] += step
            remaining[active] = np.where(done, 0.0, rem - reach_m)
            tod[active] = np.mod(t + step, SECONDS_PER_DAY)
            active = active[~done]
        return seconds


def _per_row(values: _ArrT, n: int, name: str) -> _ArrT:
    if values.shape[0] != n:
        raise ShapeMismatch(f"{name} must have one value per origin ({n}), got {values.shape[0]}")
    return values[:, None]  # type: ignore[return-value]


def _checked_points(
    from_lat: ArrayLike, from_lng: ArrayLike, to_lat: ArrayLike, to_lng: ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
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

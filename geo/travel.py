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

Calibration
-----------
``fit(Trips(...), mode=...)`` calibrates one mode's hourly pace, overhead and
(with observed road distances) detour from real trips; see its docstring for
what durations alone can and cannot identify.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Protocol, TypeAlias, TypeVar, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from geo._arrays import FloatArray, as_float_array, check_latlng
from geo.errors import GeoError, InvalidCoordinate, InvalidParameter, ShapeMismatch
from geo.projection import EARTH_RADIUS_M, haversine_m, haversine_one_m

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
#: Mode code by mode value; a ``TransportMode`` looks up as its value (StrEnum).
_MODE_CODE: Mapping[str, int] = MappingProxyType({m.value: i for i, m in enumerate(_MODE_ORDER)})

#: A mode for every pair, or an array of codes/names broadcastable with the points.
ModeLike: TypeAlias = TransportMode | str | ArrayLike

# Physical upper bounds for rejecting GPS jumps, not typical speeds: a walking
# worker may hop on a bus, e-bikes are often de-restricted, cars on elevated roads.
_MAX_SPEED_MPS: Mapping[TransportMode, float] = MappingProxyType(
    {TransportMode.WALK: 5.0, TransportMode.EBIKE: 15.0, TransportMode.CAR: 40.0}
)


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

    # Read-only so frozen dataclasses satisfy the protocol.
    @property
    def utc_offset_s(self) -> int:
        """Seconds east of UTC of the local time that picks the hour of day."""
        ...

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


@dataclass(frozen=True, eq=False)
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
    _flat: NDArray[np.bool_] = field(init=False, repr=False, compare=False)
    _hours: _HourTables = field(init=False, repr=False, compare=False)
    #: ``(detour, overhead_s, flat)`` by mode code as Python values, for ``seconds_one``.
    _per_mode_one: tuple[tuple[float, float, bool], ...] = field(
        init=False, repr=False, compare=False
    )

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
        flat = (table == table[:, :1]).all(axis=1)
        object.__setattr__(self, "_flat", flat)
        object.__setattr__(self, "_hours", _HourTables.build(table))
        object.__setattr__(
            self,
            "_per_mode_one",
            tuple(zip(detour.tolist(), overhead.tolist(), flat.tolist(), strict=True)),
        )

    def _key(self) -> tuple[bytes, bytes, bytes, int]:
        return (
            self._speed_table.tobytes(),
            self._detour.tobytes(),
            self._overhead.tobytes(),
            int(self.utc_offset_s),
        )

    # Equality and hash by the normalised parameters, so a shared detour of 1.3
    # equals {walk: 1.3, ebike: 1.3, car: 1.3} and models can key caches.
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, HaversineTravelModel):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

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
        return self._seconds_for(great_circle_m, at_s, codes)

    def seconds_one(
        self,
        from_lat: float,
        from_lng: float,
        to_lat: float,
        to_lng: float,
        at: float,
        mode: TransportMode | str = TransportMode.EBIKE,
    ) -> float:
        """``seconds`` for one trip as a Python float: the fast path for per-ping callers.

        Python floats within range, finite ``at`` and one mode are computed with
        plain ``math`` (the steps of ``seconds``, equal to it to rounding: numpy's
        vectorised sines may differ in the last bit); anything else goes through
        ``seconds``, so validation errors are the same as there.
        """
        code = _MODE_CODE.get(mode) if isinstance(mode, str) else None
        if (
            code is not None
            and type(from_lat) is float
            and type(from_lng) is float
            and type(to_lat) is float
            and type(to_lng) is float
            and type(at) is float
            and abs(from_lat) <= 90.0  # NaN fails these comparisons too
            and abs(from_lng) <= 180.0
            and abs(to_lat) <= 90.0
            and abs(to_lng) <= 180.0
            and math.isfinite(at)
        ):
            great_circle_m = haversine_one_m(from_lat, from_lng, to_lat, to_lng)
            return self._seconds_one_for(great_circle_m, at, code)
        seconds = self.seconds(from_lat, from_lng, to_lat, to_lng, at, mode=mode)
        if seconds.ndim != 0:
            raise ShapeMismatch(f"seconds_one takes one trip, got shape {seconds.shape}")
        return float(seconds)

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
        try:
            if np.broadcast_shapes(at_s.shape, codes.shape, shape) != shape:
                raise ValueError("larger than the matrix")
        except ValueError as exc:
            raise ShapeMismatch(
                f"at {at_s.shape} and mode {codes.shape} must broadcast to the matrix {shape}"
            ) from exc
        out = np.empty(shape)
        if out.size == 0:
            return out
        tod = _time_of_day(at_s, self.utc_offset_s)
        if tod.shape[1:] in ((), (1,)) and codes.shape[1:] in ((), (1,)):
            # The common case (one departure time and mode per origin row):
            # each row's ride time is one piecewise-linear function of distance.
            self._matrix_by_row(
                _unit_vectors(lat1, lng1),
                _unit_vectors(lat2, lng2),
                np.broadcast_to(tod.reshape(-1, 1), (n, 1))[:, 0],
                np.broadcast_to(codes.reshape(-1, 1), (n, 1))[:, 0],
                out,
            )
            return out
        xyz1, xyz2 = _unit_vectors(lat1, lng1), _unit_vectors(lat2, lng2)
        tod_full = np.broadcast_to(tod, shape)
        codes_full = np.broadcast_to(codes, shape)
        step = max(1, _BLOCK_ELEMENTS // shape[1])
        for start in range(0, n, step):
            rows = slice(start, min(start + step, n))
            block = out[rows]
            _great_circle_into(xyz1[:, rows], xyz2, block, np.empty_like(block))
            block_codes = codes_full[rows]
            block *= (2.0 * EARTH_RADIUS_M) * self._detour[block_codes]
            block[...] = _ride_seconds(block, tod_full[rows], block_codes, self._hours)
            block += self._overhead[block_codes]
        return out

    def _matrix_by_row(
        self,
        xyz1: FloatArray,
        xyz2: FloatArray,
        tod_rows: FloatArray,
        codes_rows: NDArray[np.int8],
        out: FloatArray,
    ) -> None:
        """Fill ``out`` (n, m) for one departure time of day and mode per origin row.

        Leaving at ``t0`` the ride time is ``f(d) = d / v0 + Σ_k c_k max(d − B_k, 0)``:
        ``B_k`` is the road distance covered by the k-th hour boundary after
        ``t0`` and ``c_k`` the change of pace (s/m) there. Only the boundaries
        where the speed changes and that some trip of the block reaches cost a
        pass, so the work per pair is a few multiply-adds, not an hour loop.
        """
        hours = self._hours
        n, m = out.shape
        hour0 = np.minimum((tod_rows // SECONDS_PER_HOUR).astype(np.int64), HOURS_PER_DAY - 1)
        speed0 = hours.speed[codes_rows, hour0]
        to_boundary = (hour0 + 1) * SECONDS_PER_HOUR - tod_rows
        # Speed after the k-th boundary (k = 0..23), and the boundaries' road distances.
        after = hours.speed[
            codes_rows[:, None], (hour0[:, None] + np.arange(1, HOURS_PER_DAY + 1)) % HOURS_PER_DAY
        ]
        before = np.column_stack([speed0, after[:, :-1]])
        pace_change = 1.0 / after - 1.0 / before
        knot_m = np.empty((n, HOURS_PER_DAY))
        knot_m[:, 0] = speed0 * to_boundary
        knot_m[:, 1:] = knot_m[:, :1] + np.cumsum(after[:, :-1] * SECONDS_PER_HOUR, axis=1)
        day_m = hours.day_m[codes_rows]
        scale = (2.0 * EARTH_RADIUS_M) * self._detour[codes_rows]
        overhead = self._overhead[codes_rows]
        step = max(1, _BLOCK_ELEMENTS // m)
        ride = np.empty((min(step, n), m))
        scratch = np.empty_like(ride)
        for start in range(0, n, step):
            stop = min(start + step, n)
            rows = slice(start, stop)
            road = out[rows]
            acc = ride[: stop - start]
            tmp = scratch[: stop - start]
            _great_circle_into(xyz1[:, rows], xyz2, road, tmp)
            road *= scale[rows, None]
            longest = road.max(axis=1)
            whole_days = None
            if (longest >= day_m[rows]).any():
                # Any full day covers day_m metres in exactly 24 h, so skip whole days.
                whole_days = np.floor(road / day_m[rows, None])
                road -= whole_days * day_m[rows, None]
                longest = road.max(axis=1)
            np.divide(road, speed0[rows, None], out=acc)
            reached = (knot_m[rows] < longest[:, None]) & (pace_change[rows] != 0.0)
            for k in np.flatnonzero(reached.any(axis=0)):
                np.subtract(road, knot_m[rows, k, None], out=tmp)
                np.maximum(tmp, 0.0, out=tmp)
                tmp *= pace_change[rows, k, None]
                acc += tmp
            if whole_days is not None:
                whole_days *= SECONDS_PER_DAY
                acc += whole_days
            np.add(acc, overhead[rows, None], out=road)

    def _seconds_for(
        self, great_circle_m: FloatArray, at_s: FloatArray, codes: NDArray[np.int8]
    ) -> FloatArray:
        """Seconds for pair distances ``great_circle_m``; ``at_s`` and ``codes`` broadcast to it."""
        # Time of day on the (often scalar) departure array, before any broadcasting.
        tod = _time_of_day(at_s, self.utc_offset_s)
        if codes.ndim == 0:
            code = int(codes)
            road_m = great_circle_m * self._detour[code]
            if self._flat[code]:
                # Constant speed: no integration needed (walking, most of the time).
                return np.asarray(road_m / self._speed_table[code, 0] + self._overhead[code])
            ride = _ride_seconds(road_m, tod, np.asarray(code), self._hours)
            return np.asarray(ride + self._overhead[code])
        road_m = great_circle_m * self._detour[codes]
        ride = _ride_seconds(road_m, tod, codes, self._hours)
        return np.asarray(ride + self._overhead[codes])

    def _seconds_one_for(self, great_circle_m: float, at_s: float, code: int) -> float:
        """``_seconds_for`` of one trip and one mode code, on Python floats."""
        detour, overhead, flat = self._per_mode_one[code]
        road_m = great_circle_m * detour
        if flat:
            return road_m / self._hours.speed_rows[code][0] + overhead
        tod = _time_of_day_one(at_s, self.utc_offset_s)
        return _ride_seconds_one(road_m, tod, code, self._hours) + overhead


def _time_of_day(at_s: FloatArray, utc_offset_s: int) -> FloatArray:
    """Local seconds since midnight (0 <= x < 86400) of epoch seconds ``at_s``."""
    # Split off the fraction so the modulo works on exact integers.
    at_floor = np.floor(at_s)
    return np.asarray(np.mod(at_floor + utc_offset_s, SECONDS_PER_DAY) + (at_s - at_floor))


def _time_of_day_one(at_s: float, utc_offset_s: int) -> float:
    """``_time_of_day`` of one finite epoch on Python floats (the same float operations)."""
    at_floor = float(math.floor(at_s))
    return (at_floor + utc_offset_s) % SECONDS_PER_DAY + (at_s - at_floor)


#: Pairs per block in ``matrix``: a few temporaries of this size stay in cache.
_BLOCK_ELEMENTS = 1 << 15
#: Most distance cells per day in the final-hour lookup of ``_HourTables``.
_MAX_CELLS = 4096


@dataclass(frozen=True, eq=False)
class _HourTables:
    """Hourly speeds and cumulative road distances derived from a speed table."""

    #: Speed (m/s) by mode and local hour, shape (modes, 24).
    speed: FloatArray
    #: Road metres covered in a full day by each mode.
    day_m: FloatArray
    #: ``reach_m[mode * 24 + s, j]``: metres covered in the j hours after hour s
    #: starts (j = 0..25), summed hour by hour.
    reach_m: FloatArray
    #: Width (m) of the distance cells that index ``full_hours``, by mode.
    cell_m: FloatArray
    #: ``full_hours[g, c]``: hours j with ``reach_m[g, j] < c * cell_m``, a
    #: lookup that is exact or one short for most trips (a cell spans at most
    #: one hour boundary when it is no wider than the slowest hour's reach).
    full_hours: NDArray[np.int64]
    #: ``speed``, ``day_m`` and ``reach_m`` as Python floats, for ``_ride_seconds_one``.
    speed_rows: tuple[tuple[float, ...], ...]
    day_m_rows: tuple[float, ...]
    reach_rows: tuple[tuple[float, ...], ...]

    @classmethod
    def build(cls, speed: FloatArray) -> _HourTables:
        """Tables of ``speed`` (modes × 24 hourly speeds, m/s)."""
        n_modes = speed.shape[0]
        hours = (np.arange(HOURS_PER_DAY)[:, None] + np.arange(HOURS_PER_DAY + 1)) % HOURS_PER_DAY
        per_hour_m = speed[:, hours] * SECONDS_PER_HOUR
        reach_m = np.zeros((n_modes * HOURS_PER_DAY, HOURS_PER_DAY + 2))
        reach_m[:, 1:] = np.cumsum(per_hour_m, axis=2).reshape(n_modes * HOURS_PER_DAY, -1)
        day_m = speed.sum(axis=1) * SECONDS_PER_HOUR
        # Cells no wider than the slowest hour's reach, but at most _MAX_CELLS per day
        # (the lookup then corrects by more than one step for extreme profiles).
        cell_m = np.maximum(speed.min(axis=1) * SECONDS_PER_HOUR, day_m / _MAX_CELLS)
        mode_of_group = np.repeat(np.arange(n_modes), HOURS_PER_DAY)
        n_cells = int(np.ceil((reach_m[:, -1] / cell_m[mode_of_group]).max())) + 2
        full_hours = np.empty((n_modes * HOURS_PER_DAY, n_cells), dtype=np.int64)
        for g in range(n_modes * HOURS_PER_DAY):
            starts = np.arange(n_cells) * cell_m[mode_of_group[g]]
            full_hours[g] = np.searchsorted(reach_m[g, 1:], starts, side="left")
        np.minimum(full_hours, HOURS_PER_DAY, out=full_hours)
        for arr in (speed, day_m, reach_m, cell_m, full_hours):
            arr.setflags(write=False)
        return cls(
            speed,
            day_m,
            reach_m,
            cell_m,
            full_hours,
            speed_rows=tuple(tuple(row) for row in speed.tolist()),
            day_m_rows=tuple(day_m.tolist()),
            reach_rows=tuple(tuple(row) for row in reach_m.tolist()),
        )


def _unit_vectors(lat: FloatArray, lng: FloatArray) -> FloatArray:
    """Unit vectors (3, k) of points in degrees on the sphere."""
    lat_r = np.radians(lat)
    lng_r = np.radians(lng)
    cos_lat = np.cos(lat_r)
    return np.stack([cos_lat * np.cos(lng_r), cos_lat * np.sin(lng_r), np.sin(lat_r)])


def _great_circle_into(
    xyz1: FloatArray, xyz2: FloatArray, out: FloatArray, tmp: FloatArray
) -> None:
    """Half the great-circle angle (radians) from each of r origins to m destinations, into ``out``.

    ``arcsin`` of half the chord between unit vectors: the same quantity as
    haversine's ``arcsin(sqrt(h))`` without the per-pair sines and cosines, and
    the coordinate differences keep short distances accurate. ``tmp`` is
    scratch of ``out``'s shape.
    """
    np.subtract(xyz2[0][None, :], xyz1[0][:, None], out=out)
    np.multiply(out, out, out=out)
    for axis in (1, 2):
        np.subtract(xyz2[axis][None, :], xyz1[axis][:, None], out=tmp)
        np.multiply(tmp, tmp, out=tmp)
        out += tmp
    np.sqrt(out, out=out)
    out *= 0.5
    if out.max() > 1.0:  # rounding, at the antipode
        np.minimum(out, 1.0, out=out)
    np.arcsin(out, out=out)


def _ride_seconds(
    distance_m: FloatArray,
    tod_s: FloatArray,
    rows: NDArray[np.integer[Any]],
    hours: _HourTables,
) -> FloatArray:
    """Seconds to cover ``distance_m`` leaving at local time of day ``tod_s``.

    Speeds are ``hours.speed[rows, local hour]``, piecewise constant and
    integrated exactly across hour boundaries. ``tod_s`` and ``rows``
    broadcast to ``distance_m``. Most city trips end in their departure hour:
    they cost one division; the crossing ones find their final hour in the
    cumulative distance table (never a loop over points or hours).
    """
    shape = distance_m.shape
    hour = np.minimum((tod_s // SECONDS_PER_HOUR).astype(np.int64), HOURS_PER_DAY - 1)
    seconds = np.asarray(distance_m / hours.speed[rows, hour], dtype=np.float64)
    crossing = seconds > (hour + 1) * SECONDS_PER_HOUR - tod_s
    if not crossing.any():
        return seconds
    idx = np.flatnonzero(crossing)
    seconds.reshape(-1)[idx] = _ride_seconds_crossing(
        _take(distance_m, shape, idx), _take(tod_s, shape, idx), _take(rows, shape, idx), hours
    )
    return seconds


def _take(values: _ArrT, shape: tuple[int, ...], idx: NDArray[np.intp]) -> _ArrT:
    """``np.broadcast_to(values, shape).flat[idx]``, avoiding the slow flat iterator."""
    if values.shape == shape:
        return values.reshape(-1)[idx]  # type: ignore[return-value]
    if values.size == 1:
        return np.full(idx.shape, values.reshape(-1)[0], dtype=values.dtype)  # type: ignore[return-value]
    return np.broadcast_to(values, shape).flat[idx]  # type: ignore[return-value]


def _ride_seconds_crossing(
    distance_m: FloatArray,
    tod_s: FloatArray,
    rows: NDArray[np.integer[Any]],
    hours: _HourTables,
) -> FloatArray:
    """``_ride_seconds`` for flat arrays of trips, by lookup in the cumulative distance table."""
    hour = np.minimum((tod_s // SECONDS_PER_HOUR).astype(np.int64), HOURS_PER_DAY - 1)
    speed0 = hours.speed[rows, hour]
    to_boundary = (hour + 1) * SECONDS_PER_HOUR - tod_s
    remaining = np.asarray(distance_m, dtype=np.float64)
    elapsed = np.zeros(distance_m.shape)
    if remaining.size and remaining.max() >= hours.day_m.min():
        # Any full day covers day_m metres in exactly 24 h.
        day_m = hours.day_m[rows]
        whole_days = np.floor(remaining / day_m)
        elapsed = whole_days * SECONDS_PER_DAY
        remaining = remaining - whole_days * day_m
    reach_m = speed0 * to_boundary
    out = np.asarray(elapsed + remaining / speed0, dtype=np.float64)
    go = np.flatnonzero(remaining > reach_m)
    if not go.size:
        return out
    left_m = remaining[go] - reach_m[go]
    group = rows[go].astype(np.int64) * HOURS_PER_DAY + (hour[go] + 1) % HOURS_PER_DAY
    # Full hours ridden after the first boundary: the j with reach[j] < left <= reach[j + 1].
    # The cell lookup lands on it or just short of it; exact comparisons settle it.
    n_cells = hours.full_hours.shape[1]
    cell = np.minimum((left_m / hours.cell_m[rows[go]]).astype(np.int64), n_cells - 1)
    full = hours.full_hours[group, cell]
    table = hours.reach_m
    full += (full < HOURS_PER_DAY) & (left_m > table[group, full + 1])
    while True:
        up = (full < HOURS_PER_DAY) & (left_m > table[group, full + 1])
        down = (full > 0) & (left_m <= table[group, full])
        if not (up.any() or down.any()):
            break
        full += up.astype(np.int64) - down.astype(np.int64)
    speed = hours.speed[rows[go], (hour[go] + 1 + full) % HOURS_PER_DAY]
    out[go] = (
        elapsed[go]
        + to_boundary[go]
        + full * SECONDS_PER_HOUR
        + (left_m - table[group, full]) / speed
    )
    return out


def _ride_seconds_one(distance_m: float, tod_s: float, code: int, hours: _HourTables) -> float:
    """``_ride_seconds`` (and ``_ride_seconds_crossing``) of one trip, on Python floats.

    The same float operations in the same order, so the two agree to the
    rounding of their inputs; the final hour is found by bisection in the
    cumulative distance row where the array path uses the cell lookup.
    """
    hour = min(int(tod_s // SECONDS_PER_HOUR), HOURS_PER_DAY - 1)
    speeds = hours.speed_rows[code]
    speed0 = speeds[hour]
    to_boundary = (hour + 1) * SECONDS_PER_HOUR - tod_s
    seconds = distance_m / speed0
    if not seconds > to_boundary:
        return seconds
    remaining = distance_m
    elapsed = 0.0
    day_m = hours.day_m_rows[code]
    if remaining >= day_m:
        # Any full day covers day_m metres in exactly 24 h.
        whole_days = float(math.floor(remaining / day_m))
        elapsed = whole_days * SECONDS_PER_DAY
        remaining = remaining - whole_days * day_m
    reach_m = speed0 * to_boundary
    if not remaining > reach_m:
        return elapsed + remaining / speed0
    left_m = remaining - reach_m
    table = hours.reach_rows[code * HOURS_PER_DAY + (hour + 1) % HOURS_PER_DAY]
    # Full hours ridden after the first boundary: the j with table[j] < left <= table[j + 1].
    full = min(bisect.bisect_left(table, left_m, 1) - 1, HOURS_PER_DAY)
    speed = speeds[(hour + 1 + full) % HOURS_PER_DAY]
    return elapsed + to_boundary + full * SECONDS_PER_HOUR + (left_m - table[full]) / speed


def _ride_seconds_and_pace_jacobian(
    distance_m: FloatArray, at_s: FloatArray, speeds: FloatArray, utc_offset_s: int
) -> tuple[FloatArray, FloatArray]:
    """``_ride_seconds`` for one 24-hour speed profile, and d seconds / d pace[hour], shape (n, 24).

    With pace p = 1/v, a trip that rides full segments j (seconds s_j, fixed by
    the hour boundaries) and ends in hour k takes
    ``T = Σ s_j + p_k (D − Σ s_j v_j)``, so ``∂T/∂p_k`` is the distance ridden in
    hour k and ``∂T/∂p_j = p_k s_j v_j²`` for the earlier hours (whole days alike).
    """
    n = distance_m.shape[0]
    seconds = np.zeros(n)
    # Earlier segments' s_j v_j² per hour; scaled by the final pace at the end.
    early = np.zeros((n, HOURS_PER_DAY))
    final_m = np.zeros(n)
    final_hour = np.zeros(n, dtype=np.int64)
    day_m = float(speeds.sum()) * SECONDS_PER_HOUR
    whole_days = np.floor(distance_m / day_m)
    seconds += whole_days * SECONDS_PER_DAY
    early += whole_days[:, None] * (SECONDS_PER_HOUR * speeds**2)[None, :]
    remaining = distance_m - whole_days * day_m
    tod = _time_of_day(at_s, utc_offset_s)
    final_hour[:] = np.minimum((tod // SECONDS_PER_HOUR).astype(np.int64), HOURS_PER_DAY - 1)
    active = np.flatnonzero(remaining > 0)
    while active.size:
        t = tod[active]
        hour = np.minimum((t // SECONDS_PER_HOUR).astype(np.int64), HOURS_PER_DAY - 1)
        speed = speeds[hour]
        to_boundary = (hour + 1) * SECONDS_PER_HOUR - t
        reach_m = speed * to_boundary
        rem = remaining[active]
        done = rem <= reach_m
        step = np.where(done, rem / speed, to_boundary)
        seconds[active] += step
        go_on = active[~done]
        # Each trip appears once per step, so plain fancy += is safe (no np.add.at needed).
        early[go_on, hour[~done]] += to_boundary[~done] * speed[~done] ** 2
        final_m[active[done]] = rem[done]
        final_hour[active[done]] = hour[done]
        remaining[active] = np.where(done, 0.0, rem - reach_m)
        tod[active] = np.mod(t + step, SECONDS_PER_DAY)
        active = go_on
    jacobian = early / speeds[final_hour][:, None]
    jacobian[np.arange(n), final_hour] += final_m
    return seconds, jacobian


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


# --------------------------------------------------------------------------- fit


class InsufficientTrips(GeoError, ValueError):
    """Too few observed trips to calibrate a travel model."""


@dataclass(frozen=True, eq=False)  # arrays: identity equality, not element-wise
class Trips:
    """Observed trips: WGS-84 endpoints (degrees), departure epoch seconds and durations.

    ``road_m`` (optional) is the distance actually travelled along roads in
    metres, e.g. from the summed GPS track; only with it is the detour factor
    identifiable separately from the speed.
    """

    from_lat: FloatArray
    from_lng: FloatArray
    to_lat: FloatArray
    to_lng: FloatArray
    depart_at: FloatArray
    duration_s: FloatArray
    road_m: FloatArray | None = None

    def __post_init__(self) -> None:
        names = ("from_lat", "from_lng", "to_lat", "to_lng", "depart_at", "duration_s")
        arrays = {name: as_float_array(getattr(self, name), name) for name in names}
        if self.road_m is not None:
            arrays["road_m"] = as_float_array(self.road_m, "road_m")
        n = arrays["from_lat"].shape
        for name, arr in arrays.items():
            if arr.ndim != 1 or arr.shape != n:
                raise ShapeMismatch(
                    f"{name} must be 1-D with the shape of from_lat {n}, got {arr.shape}"
                )
        _checked_points(arrays["from_lat"], arrays["from_lng"], arrays["to_lat"], arrays["to_lng"])
        _as_epoch(arrays["depart_at"], "depart_at")
        for name in ("duration_s", "road_m"):
            if name not in arrays:
                continue
            bad = ~(np.isfinite(arrays[name]) & (arrays[name] > 0))
            if bad.any():
                idx = int(np.flatnonzero(bad)[0])
                raise InvalidParameter(
                    f"{name}[{idx}] must be positive and finite, got {arrays[name][idx]}"
                )
        for name, arr in arrays.items():
            arr = arr.copy()
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)

    def __len__(self) -> int:
        return int(self.from_lat.shape[0])

    def great_circle_m(self) -> FloatArray:
        """Great-circle length of every trip in metres."""
        return haversine_m(self.from_lat, self.from_lng, self.to_lat, self.to_lng)


@dataclass(frozen=True)
class FitReport:
    """How well ``fit`` explained the trips, and what it had to assume."""

    mode: TransportMode
    n_trips: int
    #: Seconds per great-circle metre by local hour (the identified quantity).
    pace_s_per_m: tuple[float, ...]
    #: Fitted fixed seconds per trip (0 when not fitted).
    overhead_s: float
    detour_factor: float
    #: True when road distances were observed; otherwise detour is the assumed value.
    detour_identified: bool
    trips_per_hour: tuple[int, ...]
    #: Hours with fewer than ``min_trips_per_hour`` departures, interpolated from neighbours.
    filled_hours: tuple[int, ...]
    #: Observed minus fitted seconds, one per trip.
    residual_s: FloatArray = field(compare=False)
    rmse_s: float
    median_abs_residual_s: float
    r_squared: float
    converged: bool
    notes: tuple[str, ...]


_LOSSES = frozenset({"linear", "soft_l1", "huber", "cauchy", "arctan"})


def _fill_matrix(fitted_hours: NDArray[np.int64]) -> FloatArray:
    """24 × k matrix mapping the fitted hours' values to all hours (circular interpolation)."""
    k = fitted_hours.size
    out = np.zeros((HOURS_PER_DAY, k))
    out[fitted_hours, np.arange(k)] = 1.0
    if k == 1:
        out[:, 0] = 1.0
        return out
    for hour in np.setdiff1d(np.arange(HOURS_PER_DAY), fitted_hours):
        after = int(np.searchsorted(fitted_hours, hour)) % k
        before = (after - 1) % k
        gap_before = (hour - fitted_hours[before]) % HOURS_PER_DAY
        gap_after = (fitted_hours[after] - hour) % HOURS_PER_DAY
        out[hour, before] = gap_after / (gap_before + gap_after)
        out[hour, after] = gap_before / (gap_before + gap_after)
    return out


def fit(
    trips: Trips,
    *,
    mode: TransportMode | str = TransportMode.EBIKE,
    utc_offset_s: int = CHINA_UTC_OFFSET_S,
    base: HaversineTravelModel | None = None,
    detour_factor: float | None = None,
    fit_overhead: bool = True,
    min_trips: int = 20,
    min_trips_per_hour: int = 3,
    require_all_hours: bool = False,
    loss: str = "soft_l1",
    redescend: bool = True,
) -> tuple[HaversineTravelModel, FitReport]:
    """Calibrate ``mode``'s hourly speeds (and overhead, detour) from observed trips.

    Durations alone identify only the pace (seconds per great-circle metre)
    for each local departure hour and the fixed overhead: ``detour / speed``
    is one number. So the fit estimates ``pace[h]`` and ``overhead`` by robust
    least squares (``loss``, default soft-L1, scale from the residual MAD) on
    the exact hour-integrated model (analytic Jacobian), starting from a
    linear solve where each trip is charged to its departure hour; with
    ``redescend`` a Cauchy-loss pass from that solution then sheds one-sided
    outliers that still bias a convex loss. The detour factor is estimated from
    ``trips.road_m`` when given (robust ratio road / great circle); otherwise
    it is ``detour_factor`` or ``base``'s and the road speeds are
    ``detour / pace`` — the travel times do not depend on that choice.
    Hours with fewer than ``min_trips_per_hour`` departures are interpolated
    from their neighbouring hours (circularly) and listed in the report, or
    raise ``InsufficientTrips`` with ``require_all_hours``. Other modes keep
    ``base``'s parameters. Durations in seconds, times epoch seconds (UTC).
    """
    from scipy.optimize import least_squares

    fit_mode = _one_mode(mode)
    base_model = base if base is not None else HaversineTravelModel(utc_offset_s=utc_offset_s)
    if not isinstance(trips, Trips):
        raise InvalidParameter(f"trips must be a Trips, got {type(trips).__name__}")
    if loss not in _LOSSES:
        raise InvalidParameter(f"loss must be one of {sorted(_LOSSES)}, got {loss!r}")
    if min_trips < 2 or min_trips_per_hour < 1:
        raise InvalidParameter(
            f"min_trips must be >= 2 and min_trips_per_hour >= 1, "
            f"got {min_trips} and {min_trips_per_hour}"
        )
    n = len(trips)
    if n < min_trips:
        raise InsufficientTrips(f"trips has {n} trips, fit needs at least min_trips={min_trips}")
    gc_m = trips.great_circle_m()
    duration = trips.duration_s
    depart = trips.depart_at
    hour = local_hour(depart, utc_offset_s)
    per_hour = np.bincount(hour, minlength=HOURS_PER_DAY)
    fitted_hours = np.flatnonzero(per_hour >= min_trips_per_hour).astype(np.int64)
    filled = tuple(int(h) for h in np.setdiff1d(np.arange(HOURS_PER_DAY), fitted_hours))
    if fitted_hours.size == 0:
        raise InsufficientTrips(
            f"no local hour has min_trips_per_hour={min_trips_per_hour} departures"
        )
    if filled and require_all_hours:
        raise InsufficientTrips(
            f"hours {list(filled)} have fewer than {min_trips_per_hour} departures"
        )
    n_params = fitted_hours.size + int(fit_overhead)
    if n < 2 * n_params:
        raise InsufficientTrips(f"{n} trips cannot fit {n_params} parameters (need {2 * n_params})")
    notes: list[str] = []
    if filled:
        notes.append(f"hours {list(filled)} had too few trips; pace interpolated from neighbours")

    fill = _fill_matrix(fitted_hours)
    # Linear start: duration ≈ overhead + gc_m × pace[departure hour].
    design = gc_m[:, None] * fill[hour]
    if fit_overhead:
        design = np.column_stack([np.ones(n), design])
    x0, *_ = np.linalg.lstsq(design, duration, rcond=None)
    lower = np.full(n_params, 1e-6)
    if fit_overhead:
        lower[0] = 0.0
    x0 = np.maximum(x0, lower + 1e-6)
    start_residual = design @ x0 - duration
    mad = float(np.median(np.abs(start_residual - np.median(start_residual))))
    f_scale = max(1.4826 * mad, 1.0)

    all_fitted = fitted_hours.size == HOURS_PER_DAY
    # least_squares asks for the residual and the Jacobian at the same x in two
    # calls; one evaluation gives both, so remember the last one.
    last: dict[bytes, tuple[FloatArray, FloatArray]] = {}

    def residual_and_jacobian(x: FloatArray) -> tuple[FloatArray, FloatArray]:
        key = np.asarray(x, dtype=np.float64).tobytes()
        if key in last:
            # Copies: least_squares rescales residual and Jacobian in place.
            residual, jac = last[key]
            return residual.copy(), jac.copy()
        overhead = x[0] if fit_overhead else 0.0
        pace = fill @ x[int(fit_overhead) :]
        ride_s, d_ride = _ride_seconds_and_pace_jacobian(gc_m, depart, 1.0 / pace, utc_offset_s)
        jac = d_ride if all_fitted else d_ride @ fill
        if fit_overhead:
            jac = np.column_stack([np.ones(n), jac])
        residual = ride_s + overhead - duration
        last.clear()
        last[key] = (residual.copy(), jac.copy())
        return residual, jac

    def solve(start: FloatArray, loss_name: str, scale: float) -> Any:
        return least_squares(
            lambda x: residual_and_jacobian(x)[0],
            start,
            jac=lambda x: residual_and_jacobian(x)[1],
            bounds=(lower, np.inf),
            loss=loss_name,
            f_scale=scale,
            x_scale="jac",
            tr_solver="lsmr",
        )

    result = solve(x0, loss, f_scale)
    if redescend and loss != "linear":
        # A convex loss still lets one-sided outliers (a worker stuck in a lift)
        # pull the intercept; finishing with Cauchy from the convex solution
        # sheds them without the local minima a cold Cauchy start can hit.
        stage_one = np.asarray(result.fun)
        scale = 1.4826 * float(np.median(np.abs(stage_one - np.median(stage_one))))
        result = solve(np.maximum(np.asarray(result.x), lower), "cauchy", max(scale, 1.0))
    x = np.asarray(result.x, dtype=np.float64)
    if not result.success:
        notes.append(f"least_squares did not converge: {result.message}")
    overhead_s = float(x[0]) if fit_overhead else 0.0
    pace = fill @ x[int(fit_overhead) :]
    residual = -residual_and_jacobian(x)[0]
    total = float(np.sum((duration - duration.mean()) ** 2))
    r_squared = 1.0 - float(np.sum(residual**2)) / total if total > 0 else float("nan")
    if fit_overhead and np.std(gc_m) < 0.05 * np.mean(gc_m):
        notes.append("trip lengths barely vary, so overhead and pace are poorly separated")

    if trips.road_m is not None:
        road_m = trips.road_m
        ratio = least_squares(
            lambda d: d[0] * gc_m - road_m,
            np.array([float(np.median(road_m / np.maximum(gc_m, 1.0)))]),
            loss=loss,
            f_scale=max(1.0, float(np.median(np.abs(road_m - gc_m)))),
        )
        detour = float(ratio.x[0])
        identified = True
        if detour < 1.0:
            notes.append(f"fitted detour {detour:.3f} < 1 (road shorter than great circle); set 1")
            detour = 1.0
    else:
        detour = detour_factor if detour_factor is not None else base_model.detour(fit_mode)
        identified = False
        notes.append(
            f"no road distances: detour {detour:g} assumed, road speeds = detour / fitted pace"
        )

    speed_mps = {m: tuple(float(v) for v in base_model.speed_profile(m)) for m in _MODE_ORDER}
    speed_mps[fit_mode] = tuple(float(v) for v in detour / pace)
    detours = {m: base_model.detour(m) for m in _MODE_ORDER}
    detours[fit_mode] = detour
    overheads = {m: base_model.overhead(m) for m in _MODE_ORDER}
    overheads[fit_mode] = overhead_s
    model = HaversineTravelModel(
        speed_mps=speed_mps, detour_factor=detours, overhead_s=overheads, utc_offset_s=utc_offset_s
    )
    report = FitReport(
        mode=fit_mode,
        n_trips=n,
        pace_s_per_m=tuple(float(p) for p in pace),
        overhead_s=overhead_s,
        detour_factor=detour,
        detour_identified=identified,
        trips_per_hour=tuple(int(c) for c in per_hour),
        filled_hours=filled,
        residual_s=residual,
        rmse_s=float(np.sqrt(np.mean(residual**2))),
        median_abs_residual_s=float(np.median(np.abs(residual))),
        r_squared=r_squared,
        converged=bool(result.success),
        notes=tuple(notes),
    )
    return model, report

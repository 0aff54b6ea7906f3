"""The ``TravelTimeModel`` protocol and the haversine model that satisfies it."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from geo._arrays import FloatArray
from geo.errors import InvalidParameter, ShapeMismatch
from geo.projection import EARTH_RADIUS_M, haversine_m, haversine_one_m
from geo.travel.kernels import (
    HourTables,
    great_circle_into,
    ride_seconds,
    ride_seconds_one,
    time_of_day,
    time_of_day_one,
    unit_vectors,
)
from geo.travel.modes import (
    CHINA_UTC_OFFSET_S,
    HOURS_PER_DAY,
    MODE_CODE,
    MODE_ORDER,
    N_MODES,
    SECONDS_PER_DAY,
    SECONDS_PER_HOUR,
    ModeLike,
    TransportMode,
    as_epoch,
    checked_points,
    mode_codes,
    one_mode,
    per_row,
)


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
    out = np.empty(N_MODES)
    if isinstance(value, Mapping):
        modes = {one_mode(str(k)): float(v) for k, v in value.items()}
        missing = [m.value for m in MODE_ORDER if m not in modes]
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
    _hours: HourTables = field(init=False, repr=False, compare=False)
    #: ``(detour, overhead_s, flat)`` by mode code as Python values, for ``seconds_one``.
    _per_mode_one: tuple[tuple[float, float, bool], ...] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if not isinstance(self.speed_mps, Mapping):
            raise InvalidParameter(
                f"speed_mps must map each mode to 24 hourly speeds, got {self.speed_mps!r}"
            )
        table = np.empty((N_MODES, HOURS_PER_DAY))
        seen: set[TransportMode] = set()
        for key, profile in self.speed_mps.items():
            mode = one_mode(str(key))
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
        missing = [m.value for m in MODE_ORDER if m not in seen]
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
        object.__setattr__(self, "_hours", HourTables.build(table))
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
        return np.asarray(self._speed_table[one_mode(mode).code])

    def detour(self, mode: TransportMode | str) -> float:
        """Road distance / great-circle distance of ``mode`` (dimensionless, >= 1)."""
        return float(self._detour[one_mode(mode).code])

    def overhead(self, mode: TransportMode | str) -> float:
        """Fixed seconds added to every trip of ``mode`` (parking, lift, finding the door)."""
        return float(self._overhead[one_mode(mode).code])

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
        lat1, lng1, lat2, lng2 = checked_points(from_lat, from_lng, to_lat, to_lng)
        at_s = as_epoch(at, "at")
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
        code = MODE_CODE.get(mode) if isinstance(mode, str) else None
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
        lat1, lng1, lat2, lng2 = checked_points(from_lat, from_lng, to_lat, to_lng)
        if lat1.ndim != 1 or lat2.ndim != 1:
            raise ShapeMismatch(
                f"matrix needs 1-D origins and destinations, got {lat1.shape} and {lat2.shape}"
            )
        at_s = as_epoch(at, "at")
        codes = mode_codes(mode)
        n = lat1.shape[0]
        if at_s.ndim == 1:
            at_s = per_row(at_s, n, "at")
        if codes.ndim == 1:
            codes = per_row(codes, n, "mode")
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
        tod = time_of_day(at_s, self.utc_offset_s)
        if tod.shape[1:] in ((), (1,)) and codes.shape[1:] in ((), (1,)):
            # The common case (one departure time and mode per origin row):
            # each row's ride time is one piecewise-linear function of distance.
            self._matrix_by_row(
                unit_vectors(lat1, lng1),
                unit_vectors(lat2, lng2),
                np.broadcast_to(tod.reshape(-1, 1), (n, 1))[:, 0],
                np.broadcast_to(codes.reshape(-1, 1), (n, 1))[:, 0],
                out,
            )
            return out
        xyz1, xyz2 = unit_vectors(lat1, lng1), unit_vectors(lat2, lng2)
        tod_full = np.broadcast_to(tod, shape)
        codes_full = np.broadcast_to(codes, shape)
        step = max(1, _BLOCK_ELEMENTS // shape[1])
        for start in range(0, n, step):
            rows = slice(start, min(start + step, n))
            block = out[rows]
            great_circle_into(xyz1[:, rows], xyz2, block, np.empty_like(block))
            block_codes = codes_full[rows]
            block *= (2.0 * EARTH_RADIUS_M) * self._detour[block_codes]
            block[...] = ride_seconds(block, tod_full[rows], block_codes, self._hours)
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
            great_circle_into(xyz1[:, rows], xyz2, road, tmp)
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
        tod = time_of_day(at_s, self.utc_offset_s)
        if codes.ndim == 0:
            code = int(codes)
            road_m = great_circle_m * self._detour[code]
            if self._flat[code]:
                # Constant speed: no integration needed (walking, most of the time).
                return np.asarray(road_m / self._speed_table[code, 0] + self._overhead[code])
            ride = ride_seconds(road_m, tod, np.asarray(code), self._hours)
            return np.asarray(ride + self._overhead[code])
        road_m = great_circle_m * self._detour[codes]
        ride = ride_seconds(road_m, tod, codes, self._hours)
        return np.asarray(ride + self._overhead[codes])

    def _seconds_one_for(self, great_circle_m: float, at_s: float, code: int) -> float:
        """``_seconds_for`` of one trip and one mode code, on Python floats."""
        detour, overhead, flat = self._per_mode_one[code]
        road_m = great_circle_m * detour
        if flat:
            return road_m / self._hours.speed_rows[code][0] + overhead
        tod = time_of_day_one(at_s, self.utc_offset_s)
        return ride_seconds_one(road_m, tod, code, self._hours) + overhead


#: Pairs per block in ``matrix``: a few temporaries of this size stay in cache.
_BLOCK_ELEMENTS = 1 << 15

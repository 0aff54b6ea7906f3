"""Ride seconds under an hourly speed profile, integrated across hour boundaries.

The numeric kernels behind ``HaversineTravelModel`` and ``fit``: hour tables built
once per model, and array, scalar and Jacobian forms of the same integration.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from geo._arrays import FloatArray
from geo.travel.modes import HOURS_PER_DAY, SECONDS_PER_DAY, SECONDS_PER_HOUR, ArrT


def time_of_day(at_s: FloatArray, utc_offset_s: int) -> FloatArray:
    """Local seconds since midnight (0 <= x < 86400) of epoch seconds ``at_s``."""
    # Split off the fraction so the modulo works on exact integers.
    at_floor = np.floor(at_s)
    return np.asarray(np.mod(at_floor + utc_offset_s, SECONDS_PER_DAY) + (at_s - at_floor))


def time_of_day_one(at_s: float, utc_offset_s: int) -> float:
    """``time_of_day`` of one finite epoch on Python floats (the same float operations)."""
    at_floor = float(math.floor(at_s))
    return (at_floor + utc_offset_s) % SECONDS_PER_DAY + (at_s - at_floor)


#: Most distance cells per day in the final-hour lookup of ``HourTables``.
_MAX_CELLS = 4096


@dataclass(frozen=True, eq=False)
class HourTables:
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
    #: ``speed``, ``day_m`` and ``reach_m`` as Python floats, for ``ride_seconds_one``.
    speed_rows: tuple[tuple[float, ...], ...]
    day_m_rows: tuple[float, ...]
    reach_rows: tuple[tuple[float, ...], ...]

    @classmethod
    def build(cls, speed: FloatArray) -> HourTables:
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


def unit_vectors(lat: FloatArray, lng: FloatArray) -> FloatArray:
    """Unit vectors (3, k) of points in degrees on the sphere."""
    lat_r = np.radians(lat)
    lng_r = np.radians(lng)
    cos_lat = np.cos(lat_r)
    return np.stack([cos_lat * np.cos(lng_r), cos_lat * np.sin(lng_r), np.sin(lat_r)])


def great_circle_into(xyz1: FloatArray, xyz2: FloatArray, out: FloatArray, tmp: FloatArray) -> None:
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


def ride_seconds(
    distance_m: FloatArray,
    tod_s: FloatArray,
    rows: NDArray[np.integer[Any]],
    hours: HourTables,
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
    seconds.reshape(-1)[idx] = ride_seconds_crossing(
        take_rows(distance_m, shape, idx),
        take_rows(tod_s, shape, idx),
        take_rows(rows, shape, idx),
        hours,
    )
    return seconds


def take_rows(values: ArrT, shape: tuple[int, ...], idx: NDArray[np.intp]) -> ArrT:
    """``np.broadcast_to(values, shape).flat[idx]``, avoiding the slow flat iterator."""
    if values.shape == shape:
        return values.reshape(-1)[idx]  # type: ignore[return-value]
    if values.size == 1:
        return np.full(idx.shape, values.reshape(-1)[0], dtype=values.dtype)  # type: ignore[return-value]
    return np.broadcast_to(values, shape).flat[idx]  # type: ignore[return-value]


def ride_seconds_crossing(
    distance_m: FloatArray,
    tod_s: FloatArray,
    rows: NDArray[np.integer[Any]],
    hours: HourTables,
) -> FloatArray:
    """``ride_seconds`` for flat arrays of trips, by lookup in the cumulative distance table."""
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


def ride_seconds_one(distance_m: float, tod_s: float, code: int, hours: HourTables) -> float:
    """``ride_seconds`` (and ``ride_seconds_crossing``) of one trip, on Python floats.

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


def ride_seconds_and_pace_jacobian(
    distance_m: FloatArray, at_s: FloatArray, speeds: FloatArray, utc_offset_s: int
) -> tuple[FloatArray, FloatArray]:
    """``ride_seconds`` for one 24-hour speed profile, and d seconds / d pace[hour], shape (n, 24).

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
    tod = time_of_day(at_s, utc_offset_s)
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

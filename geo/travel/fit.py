"""Calibrate a travel model from observed trips: hourly pace, overhead and detour."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from geo._arrays import FloatArray, as_float_array
from geo.errors import GeoError, InvalidParameter, ShapeMismatch
from geo.projection import haversine_m
from geo.travel.kernels import ride_seconds_and_pace_jacobian
from geo.travel.model import HaversineTravelModel
from geo.travel.modes import (
    CHINA_UTC_OFFSET_S,
    HOURS_PER_DAY,
    MODE_ORDER,
    TransportMode,
    as_epoch,
    checked_points,
    local_hour,
    one_mode,
)


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
        checked_points(arrays["from_lat"], arrays["from_lng"], arrays["to_lat"], arrays["to_lng"])
        as_epoch(arrays["depart_at"], "depart_at")
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

    fit_mode = one_mode(mode)
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
    fitted_hours, filled = _hours_to_fit(per_hour, min_trips_per_hour, require_all_hours)
    n_params = fitted_hours.size + int(fit_overhead)
    if n < 2 * n_params:
        raise InsufficientTrips(f"{n} trips cannot fit {n_params} parameters (need {2 * n_params})")
    notes: list[str] = []
    if filled:
        notes.append(f"hours {list(filled)} had too few trips; pace interpolated from neighbours")

    fill = _fill_matrix(fitted_hours)
    result, residual = _robust_fit(
        gc_m, depart, duration, fill, hour, fit_overhead, utc_offset_s, loss, redescend
    )
    x = np.asarray(result.x, dtype=np.float64)
    if not result.success:
        notes.append(f"least_squares did not converge: {result.message}")
    overhead_s = float(x[0]) if fit_overhead else 0.0
    pace = fill @ x[int(fit_overhead) :]
    total = float(np.sum((duration - duration.mean()) ** 2))
    r_squared = 1.0 - float(np.sum(residual**2)) / total if total > 0 else float("nan")
    if fit_overhead and np.std(gc_m) < 0.05 * np.mean(gc_m):
        notes.append("trip lengths barely vary, so overhead and pace are poorly separated")

    detour, identified = _detour(
        trips, gc_m, loss, detour_factor, base_model.detour(fit_mode), notes
    )

    model = _with_mode(base_model, fit_mode, detour / pace, detour, overhead_s, utc_offset_s)
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


def _hours_to_fit(
    per_hour: NDArray[np.int64], min_trips_per_hour: int, require_all_hours: bool
) -> tuple[NDArray[np.int64], tuple[int, ...]]:
    """Hours with enough departures to fit, and the hours to interpolate instead."""
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
    return fitted_hours, filled


def _robust_fit(
    gc_m: FloatArray,
    depart: FloatArray,
    duration: FloatArray,
    fill: FloatArray,
    hour: NDArray[np.int64],
    fit_overhead: bool,
    utc_offset_s: int,
    loss: str,
    redescend: bool,
) -> tuple[Any, FloatArray]:
    """Robust least squares of [overhead,] pace per fitted hour; the result and residuals (s).

    Starts from the linear solve that charges each trip to its departure hour, then
    fits the exact hour-integrated model; with ``redescend`` a Cauchy pass follows.
    """
    from scipy.optimize import least_squares

    n = gc_m.size
    n_params = fill.shape[1] + int(fit_overhead)
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

    all_fitted = fill.shape[1] == HOURS_PER_DAY
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
        ride_s, d_ride = ride_seconds_and_pace_jacobian(gc_m, depart, 1.0 / pace, utc_offset_s)
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
    residual = -residual_and_jacobian(np.asarray(result.x, dtype=np.float64))[0]
    return result, residual


def _detour(
    trips: Trips,
    gc_m: FloatArray,
    loss: str,
    detour_factor: float | None,
    base_detour: float,
    notes: list[str],
) -> tuple[float, bool]:
    """The detour factor and whether the trips identified it (road distances given)."""
    from scipy.optimize import least_squares

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
        detour = detour_factor if detour_factor is not None else base_detour
        identified = False
        notes.append(
            f"no road distances: detour {detour:g} assumed, road speeds = detour / fitted pace"
        )
    return detour, identified


def _with_mode(
    base: HaversineTravelModel,
    mode: TransportMode,
    speed: FloatArray,
    detour: float,
    overhead_s: float,
    utc_offset_s: int,
) -> HaversineTravelModel:
    """``base`` with ``mode``'s hourly speeds (m/s), detour and overhead replaced."""
    speed_mps = {m: tuple(float(v) for v in base.speed_profile(m)) for m in MODE_ORDER}
    speed_mps[mode] = tuple(float(v) for v in speed)
    detours = {m: base.detour(m) for m in MODE_ORDER}
    detours[mode] = detour
    overheads = {m: base.overhead(m) for m in MODE_ORDER}
    overheads[mode] = overhead_s
    return HaversineTravelModel(
        speed_mps=speed_mps, detour_factor=detours, overhead_s=overheads, utc_offset_s=utc_offset_s
    )

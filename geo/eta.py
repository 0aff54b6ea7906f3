"""Live ETA of one worker to one destination from GPS pings: raw, smoothed, progress, arrival.

Design of the displayed ETA
---------------------------
A travel model turns each ping into a *raw* ETA. Under a perfect model the
raw **arrival time** (ping time + raw ETA) stays constant while the worker
rides on; GPS noise makes it jitter, real stops and detours make it drift.
So the tracker filters the arrival time, not the ETA:

1. A one-dimensional Kalman filter on the arrival epoch: the true arrival
   time random-walks (variance ``drift_s_per_sqrt_s² × elapsed seconds``, so
   the filter trusts new pings more after a long gap) and each ping measures
   it with variance ``ping_noise_s² + (accuracy_m × pace)²`` — a 15 m GPS
   error costs about 3 s of e-bike ETA. With 5 s pings the steady-state gain
   is about 0.3, so a real change is followed within 15–20 s.
2. A display with hysteresis: the shown ETA counts down with elapsed time;
   it drops at once when the filtered ETA is lower (good news passes), and
   rises only when the filtered ETA exceeds the countdown by more than
   ``max(raise_threshold_s, raise_fraction × countdown)``. Noise therefore
   never makes the shown ETA go back up, a stop or detour does after it has
   cost that much. The price: the shown value follows the lower envelope of
   the filtered one, optimistic by the (small, filtered) noise amplitude.

Bad pings never raise: they come back as an ``EtaUpdate`` with ``rejected``
set and the estimate unchanged. Typed errors are only for programming errors
(invalid configuration or destination). The tracker has no clock: every
update carries the ping's epoch seconds, and its whole state is a frozen
``EtaState`` that an API process can store and restore between pings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

import numpy as np
from numpy.typing import ArrayLike

from geo._arrays import FloatArray, as_float_array
from geo.errors import InvalidCoordinate, InvalidParameter
from geo.plausibility import (
    DEFAULT_ACCURACY_M,
    MAX_ACCURACY_M,
    REANCHOR_AFTER,
    Fix,
    Judgement,
    judge,
)
from geo.projection import haversine_m, haversine_one_m
from geo.travel import (
    HaversineTravelModel,
    ModeLike,
    TransportMode,
    TravelTimeModel,
)


class PingRejection(StrEnum):
    """Why a ping was not used."""

    BAD_COORDINATE = "bad_coordinate"  # NaN, out of range, non-numeric, or (0, 0)
    BAD_TIMESTAMP = "bad_timestamp"  # not a finite number
    BAD_ACCURACY = "bad_accuracy"  # negative or NaN accuracy radius
    INACCURATE = "inaccurate"  # accuracy radius above EtaConfig.max_accuracy_m
    OUT_OF_ORDER = "out_of_order"  # older than the last accepted ping
    STALE = "stale"  # same timestamp as the last accepted ping: nothing new
    IMPOSSIBLE_JUMP = "impossible_jump"  # implies a speed above the mode's maximum


@dataclass(frozen=True)
class EtaConfig:
    """Knobs of the ETA tracker; distances in metres, durations in seconds."""

    arrive_radius_m: float = 50.0
    arrive_dwell_s: float = 60.0
    default_accuracy_m: float = DEFAULT_ACCURACY_M
    max_accuracy_m: float = MAX_ACCURACY_M
    ping_noise_s: float = 5.0
    drift_s_per_sqrt_s: float = 1.0
    raise_threshold_s: float = 30.0
    raise_fraction: float = 0.05
    #: Consecutive mutually consistent "jumps" after which the old fix is
    #: deemed wrong and the tracker re-anchors on the new position (``geo.plausibility``).
    reanchor_after: int = REANCHOR_AFTER

    def __post_init__(self) -> None:
        positive = ("arrive_radius_m", "default_accuracy_m", "max_accuracy_m", "ping_noise_s")
        for name in positive:
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise InvalidParameter(f"{name} must be positive and finite, got {value}")
        for name in ("arrive_dwell_s", "drift_s_per_sqrt_s", "raise_threshold_s", "raise_fraction"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise InvalidParameter(f"{name} must be >= 0 and finite, got {value}")
        if self.reanchor_after < 1:
            raise InvalidParameter(f"reanchor_after must be >= 1, got {self.reanchor_after}")


#: Shared default configuration (frozen), so trackers built per ping skip re-validating it.
_DEFAULT_CONFIG = EtaConfig()


@dataclass(frozen=True)
class EtaState:
    """Everything a tracker remembers between pings (plain numbers: storable)."""

    lat: float
    lng: float
    t: float
    accuracy_m: float
    arrival_at: float  # filtered arrival epoch seconds
    arrival_var_s2: float  # its variance, s²
    shown_eta_s: float  # displayed ETA as of ``t``
    raw_eta_s: float
    distance_m: float
    initial_distance_m: float
    inside_since: float | None  # epoch s of the first ping of the current stay in the fence
    arrived: bool
    #: Rejected jump pings (lat, lng, t, accuracy_m) that agree with each other.
    pending_jumps: tuple[tuple[float, float, float, float], ...] = ()


@dataclass(frozen=True)
class EtaUpdate:
    """The tracker's answer to one ping; durations in seconds, distances in metres."""

    #: Epoch seconds of the last accepted ping: the time the numbers refer to.
    as_of: float
    raw_eta_s: float
    eta_s: float
    arrival_at: float
    distance_remaining_m: float
    progress: float
    arrived: bool
    rejected: PingRejection | None = None
    #: True when consistent jumps made the tracker drop its old position.
    reanchored: bool = False


def _mode_of(mode: TransportMode | str) -> TransportMode:
    return mode if isinstance(mode, TransportMode) else TransportMode(mode)


def _valid_latlng(lat: float, lng: float) -> bool:
    # (0, 0) is what broken GPS stacks report; no 家政 order is in the Gulf of Guinea.
    return abs(lat) <= 90.0 and abs(lng) <= 180.0 and not (lat == 0.0 and lng == 0.0)


class EtaTracker:
    """ETA of one trip of one worker to one destination, updated ping by ping.

    Not thread-safe; one tracker per active trip. ``state`` is a frozen
    snapshot; ``EtaTracker(..., state=saved)`` resumes from it.
    """

    def __init__(
        self,
        model: TravelTimeModel,
        dest_lat: float,
        dest_lng: float,
        state: EtaState,
        *,
        mode: TransportMode | str = TransportMode.EBIKE,
        config: EtaConfig | None = None,
    ) -> None:
        # A runtime-checkable Protocol check costs tens of µs; the stock model passes it anyway.
        haversine = model if type(model) is HaversineTravelModel else None
        if haversine is None and not isinstance(model, TravelTimeModel):
            raise InvalidParameter(f"model must be a TravelTimeModel, got {type(model).__name__}")
        if not _valid_latlng(float(dest_lat), float(dest_lng)) or not math.isfinite(
            float(dest_lat) + float(dest_lng)
        ):
            raise InvalidCoordinate(f"dest must be a valid lat/lng, got ({dest_lat}, {dest_lng})")
        try:
            self.mode = _mode_of(mode)
        except ValueError as exc:
            raise InvalidParameter(f"mode must be a TransportMode, got {mode!r}") from exc
        self.model = model
        # One trip per ping: the stock model's scalar path skips numpy's per-call overhead.
        self._haversine_model = haversine
        self.dest_lat = float(dest_lat)
        self.dest_lng = float(dest_lng)
        self.config = config if config is not None else _DEFAULT_CONFIG
        self._state = state

    @classmethod
    def start(
        cls,
        model: TravelTimeModel,
        origin_lat: float,
        origin_lng: float,
        dest_lat: float,
        dest_lng: float,
        t: float,
        *,
        mode: TransportMode | str = TransportMode.EBIKE,
        config: EtaConfig | None = None,
        accuracy_m: float | None = None,
    ) -> EtaTracker:
        """Start tracking a trip from a known origin at epoch ``t`` (degrees, seconds)."""
        if not (math.isfinite(origin_lat) and math.isfinite(origin_lng)) or not _valid_latlng(
            origin_lat, origin_lng
        ):
            raise InvalidCoordinate(
                f"origin must be a valid lat/lng, got ({origin_lat}, {origin_lng})"
            )
        if not math.isfinite(t):
            raise InvalidParameter(f"t must be finite epoch seconds, got {t}")
        cfg = config if config is not None else _DEFAULT_CONFIG
        acc = cfg.default_accuracy_m if accuracy_m is None else float(accuracy_m)
        placeholder = EtaState(
            lat=origin_lat, lng=origin_lng, t=t, accuracy_m=acc, arrival_at=t,
            arrival_var_s2=0.0, shown_eta_s=0.0, raw_eta_s=0.0, distance_m=0.0,
            initial_distance_m=0.0, inside_since=None, arrived=False,
        )  # fmt: skip
        tracker = cls(model, dest_lat, dest_lng, placeholder, mode=mode, config=cfg)
        tracker._state = tracker._fresh_state(origin_lat, origin_lng, t, acc, initial=True)
        return tracker

    @property
    def state(self) -> EtaState:
        """Frozen snapshot of everything the tracker remembers."""
        return self._state

    def current(self) -> EtaUpdate:
        """The latest estimate, as returned by the last accepted ping."""
        return self._result(self._state)

    def update(
        self,
        lat: float,
        lng: float,
        t: float,
        accuracy_m: float | None = None,
        *,
        judged: Judgement | None = None,
    ) -> EtaUpdate:
        """Feed one ping (degrees, epoch seconds, accuracy radius in metres); never raises.

        Whether the fix can follow the track is ``geo.plausibility.judge``'s to say, by
        the tracker's mode: a caller that already judged the fix against the same track
        (the API's ingest) passes its ``judged`` verdict, so the two cannot disagree.
        Once arrived, the trip is over: later pings are ignored and the arrived result
        is returned again.
        """
        s = self._state
        if s.arrived:
            return self._result(s)
        try:
            lat_f, lng_f = float(lat), float(lng)
        except (TypeError, ValueError):
            return self._result(s, PingRejection.BAD_COORDINATE)
        try:
            t_f = float(t)
        except (TypeError, ValueError):
            return self._result(s, PingRejection.BAD_TIMESTAMP)
        if not math.isfinite(t_f):
            return self._result(s, PingRejection.BAD_TIMESTAMP)
        if not (math.isfinite(lat_f) and math.isfinite(lng_f) and _valid_latlng(lat_f, lng_f)):
            return self._result(s, PingRejection.BAD_COORDINATE)
        try:
            acc = self.config.default_accuracy_m if accuracy_m is None else float(accuracy_m)
        except (TypeError, ValueError):
            return self._result(s, PingRejection.BAD_ACCURACY)
        if not (math.isfinite(acc) and acc >= 0):
            return self._result(s, PingRejection.BAD_ACCURACY)
        if acc > self.config.max_accuracy_m:
            return self._result(s, PingRejection.INACCURATE)
        if t_f < s.t:
            return self._result(s, PingRejection.OUT_OF_ORDER)
        if t_f == s.t:
            return self._result(s, PingRejection.STALE)
        fix = Fix(lat_f, lng_f, t_f, acc)
        if judged is None:
            pending = tuple(Fix(*p) for p in s.pending_jumps)
            judged = judge(
                Fix(s.lat, s.lng, s.t, s.accuracy_m), pending, fix, self.mode,
                reanchor_after=self.config.reanchor_after,
            )  # fmt: skip
        if judged.reanchored:
            # Fixes agreeing with each other and not with the old one: the old one was wrong.
            self._state = self._fresh_state(lat_f, lng_f, t_f, acc, initial=False)
            return self._result(self._state, reanchored=True)
        if not judged.accepted:
            chain = tuple((p.lat, p.lng, p.t, p.accuracy_m) for p in judged.pending)
            # Like dataclasses.replace(s, pending_jumps=chain), without its introspection.
            self._state = EtaState(**{**vars(s), "pending_jumps": chain})
            return self._result(s, PingRejection.IMPOSSIBLE_JUMP)
        self._state = self._accept(lat_f, lng_f, t_f, acc)
        return self._result(self._state)

    def _measure(self, lat: float, lng: float, t: float, acc: float) -> tuple[float, float, float]:
        """Raw ETA, distance to go and measurement variance of the arrival time for one fix."""
        # Python floats, so the stock model takes its scalar path (start() may pass ints).
        lat, lng, t = float(lat), float(lng), float(t)
        if self._haversine_model is not None:
            raw = self._haversine_model.seconds_one(
                lat, lng, self.dest_lat, self.dest_lng, t, mode=self.mode
            )
        else:
            raw = float(
                self.model.seconds(lat, lng, self.dest_lat, self.dest_lng, t, mode=self.mode)
            )
        distance = haversine_one_m(lat, lng, self.dest_lat, self.dest_lng)
        # Seconds of ETA per metre of position error; the 500 m floor keeps a fixed
        # per-trip overhead from inflating it near the door.
        pace = raw / max(distance, 500.0)
        variance = self.config.ping_noise_s**2 + (acc * pace) ** 2
        return raw, distance, variance

    def _fresh_state(
        self, lat: float, lng: float, t: float, acc: float, *, initial: bool
    ) -> EtaState:
        raw, distance, variance = self._measure(lat, lng, t, acc)
        inside = distance <= self.config.arrive_radius_m
        return EtaState(
            lat=lat, lng=lng, t=t, accuracy_m=acc, arrival_at=t + raw, arrival_var_s2=variance,
            shown_eta_s=raw, raw_eta_s=raw, distance_m=distance,
            initial_distance_m=distance if initial else self._state.initial_distance_m,
            inside_since=t if inside else None,
            arrived=inside and self.config.arrive_dwell_s == 0,
        )  # fmt: skip

    def _accept(self, lat: float, lng: float, t: float, acc: float) -> EtaState:
        s = self._state
        cfg = self.config
        raw, distance, variance = self._measure(lat, lng, t, acc)
        elapsed = t - s.t
        arrival_at, arrival_var = _kalman_arrival_step_one(
            s.arrival_at, s.arrival_var_s2, elapsed, t + raw, variance, cfg.drift_s_per_sqrt_s**2
        )
        filtered_eta = max(0.0, arrival_at - t)
        countdown = max(0.0, s.shown_eta_s - elapsed)
        # Good news passes at once; bad news only once it exceeds the hysteresis band.
        band = max(cfg.raise_threshold_s, cfg.raise_fraction * countdown)
        shown = countdown if countdown < filtered_eta <= countdown + band else filtered_eta
        inside = distance <= cfg.arrive_radius_m
        inside_since = (s.inside_since if s.inside_since is not None else t) if inside else None
        arrived = inside_since is not None and t - inside_since >= cfg.arrive_dwell_s
        return EtaState(
            lat=lat, lng=lng, t=t, accuracy_m=acc, arrival_at=arrival_at,
            arrival_var_s2=arrival_var, shown_eta_s=0.0 if arrived else shown,
            raw_eta_s=raw, distance_m=distance, initial_distance_m=s.initial_distance_m,
            inside_since=inside_since, arrived=arrived,
        )  # fmt: skip

    def _result(
        self, s: EtaState, rejected: PingRejection | None = None, *, reanchored: bool = False
    ) -> EtaUpdate:
        if s.initial_distance_m > 0:
            progress = min(1.0, max(0.0, 1.0 - s.distance_m / s.initial_distance_m))
        else:
            progress = 1.0
        if s.arrived:
            progress = 1.0
        return EtaUpdate(
            as_of=s.t,
            raw_eta_s=s.raw_eta_s,
            eta_s=s.shown_eta_s,
            arrival_at=s.t + s.shown_eta_s,
            distance_remaining_m=s.distance_m,
            progress=progress,
            arrived=s.arrived,
            rejected=rejected,
            reanchored=reanchored,
        )


def kalman_arrival_step(
    arrival_at: ArrayLike,
    arrival_var_s2: ArrayLike,
    elapsed_s: ArrayLike,
    measured_arrival_at: ArrayLike,
    measurement_var_s2: ArrayLike,
    drift_var_s2_per_s: ArrayLike,
) -> tuple[FloatArray, FloatArray]:
    """One Kalman step on arrival epochs (seconds) for many trips at once; returns mean, var.

    The true arrival time random-walks with variance ``drift_var_s2_per_s``
    per elapsed second; a ping measures it with ``measurement_var_s2``.
    """
    prior_var = as_float_array(arrival_var_s2, "arrival_var_s2") + as_float_array(
        drift_var_s2_per_s, "drift_var_s2_per_s"
    ) * np.maximum(as_float_array(elapsed_s, "elapsed_s"), 0.0)
    mean, var = _kalman_update(
        as_float_array(arrival_at, "arrival_at"),
        prior_var,
        as_float_array(measured_arrival_at, "measured_arrival_at"),
        as_float_array(measurement_var_s2, "measurement_var_s2"),
    )
    return np.asarray(mean), np.asarray(var)


def _kalman_arrival_step_one(
    arrival_at: float,
    arrival_var_s2: float,
    elapsed_s: float,
    measured_arrival_at: float,
    measurement_var_s2: float,
    drift_var_s2_per_s: float,
) -> tuple[float, float]:
    """``kalman_arrival_step`` of one trip on Python floats (the per-ping path)."""
    prior_var = arrival_var_s2 + drift_var_s2_per_s * max(elapsed_s, 0.0)
    return _kalman_update(arrival_at, prior_var, measured_arrival_at, measurement_var_s2)


_Num = TypeVar("_Num", float, FloatArray)


def _kalman_update(
    prior: _Num, prior_var: _Num, measured: _Num, measurement_var: _Num
) -> tuple[_Num, _Num]:
    """Measurement update of the arrival filter, for floats or arrays alike: mean, variance."""
    gain = prior_var / (prior_var + measurement_var)
    return prior + gain * (measured - prior), (1.0 - gain) * prior_var


def eta_seconds_many(
    model: TravelTimeModel,
    lat: ArrayLike,
    lng: ArrayLike,
    dest_lat: ArrayLike,
    dest_lng: ArrayLike,
    at: ArrayLike,
    *,
    mode: ModeLike = TransportMode.EBIKE,
    arrive_radius_m: float = 0.0,
) -> FloatArray:
    """Raw ETA in seconds for many workers at once (0 inside ``arrive_radius_m`` metres).

    Positions and destinations in degrees, ``at`` epoch seconds, ``mode`` a
    mode or per-worker mode codes; everything broadcasts like numpy.
    """
    if not (math.isfinite(arrive_radius_m) and arrive_radius_m >= 0):
        raise InvalidParameter(f"arrive_radius_m must be >= 0, got {arrive_radius_m}")
    eta = model.seconds(lat, lng, dest_lat, dest_lng, at, mode=mode)
    if arrive_radius_m > 0:
        inside = haversine_m(lat, lng, dest_lat, dest_lng) <= arrive_radius_m
        eta = np.where(np.broadcast_to(inside, eta.shape), 0.0, eta)
    return np.asarray(eta, dtype=np.float64)

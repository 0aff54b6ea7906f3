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

Modules: ``modes`` (modes, hours, input checks), ``model`` (the protocol and the
haversine model), ``kernels`` (ride seconds integrated over the hourly speeds),
``fit`` (calibration from trips).
"""

from __future__ import annotations

from geo.travel.fit import FitReport, InsufficientTrips, Trips, fit
from geo.travel.model import (
    HaversineTravelModel,
    TravelTimeModel,
    default_detour_factor,
    default_speed_profile,
)
from geo.travel.modes import (
    CHINA_UTC_OFFSET_S,
    HOURS_PER_DAY,
    SECONDS_PER_DAY,
    SECONDS_PER_HOUR,
    ModeLike,
    TransportMode,
    local_hour,
    max_speed_mps,
    mode_codes,
)

__all__ = [
    "CHINA_UTC_OFFSET_S",
    "HOURS_PER_DAY",
    "SECONDS_PER_DAY",
    "SECONDS_PER_HOUR",
    "FitReport",
    "HaversineTravelModel",
    "InsufficientTrips",
    "ModeLike",
    "TransportMode",
    "TravelTimeModel",
    "Trips",
    "default_detour_factor",
    "default_speed_profile",
    "fit",
    "local_hour",
    "max_speed_mps",
    "mode_codes",
]

"""Pieces both halves of the engine share: event kinds, states, common random numbers, travel."""

from __future__ import annotations

import json
import math
from enum import IntEnum
from typing import IO, Any

import numpy as np

from dispatch.model import TRANSPORT_MODES
from geo.projection import haversine_m
from geo.travel import HaversineTravelModel
from simulations.engine.policy import FloatArray


class Kind(IntEnum):
    # Value = order among events at the same instant; DISPATCH last so a window sees
    # every completion, arrival and answer of its instant.
    SERVICE_END = 0
    ARRIVE = 1
    RESPONSE = 2
    CLAIM = 3
    CANCEL = 4
    SICK = 5
    OVERRUN = 6
    RELEASE = 7
    BOOK = 8
    PLAN = 9
    SHIFT_START = 10
    DEPART = 11
    TICK = 12
    COOLDOWN_END = 13
    SHIFT_END = 14
    DISPATCH = 15


# order states (PLANNED: in a day plan, its worker not on the way yet)
WAITING, QUEUED, OFFERED, ASSIGNED, SERVING, DONE, CANCELLED, ESCALATED = range(8)
PLANNED, REFUSED = 8, 9
# worker states
OFF, IDLE, HOLDING, BUSY = range(4)

M1 = np.uint64(0x9E3779B97F4A7C15)
M2 = np.uint64(0xBF58476D1CE4E5B9)
M3 = np.uint64(0x94D049BB133111EB)


def hash_u01(seed: int, a: Any, b: Any, stream: int) -> FloatArray:
    """Uniform [0, 1) numbers keyed by (seed, a, b, stream) (splitmix64; vectorised over a, b)."""
    x = np.asarray(a, dtype=np.uint64) * M2 ^ np.asarray(b, dtype=np.uint64) * M3
    x = x ^ np.uint64((seed * 0x632BE59BD9B4E019 + stream * 0x8CB92BA72F3D8DD7) % 2**64)
    x = x + M1
    x = (x ^ (x >> np.uint64(30))) * M2
    x = (x ^ (x >> np.uint64(27))) * M3
    x = x ^ (x >> np.uint64(31))
    return np.asarray((x >> np.uint64(11)).astype(np.float64) / float(2**53))


class PlanningTravel:
    """Travel for day plans: the engine's model at each mode's slowest hour, all day.

    Plans take the slowest ride over the day anyway (dispatch keeps the maximum over
    departures sampled every 30 minutes), so real rides are never longer than planned.
    With a time-independent model every sampled departure gives the same answer: the
    last answer is reused while the same point arrays come back for the next sample,
    instead of the model being evaluated 30-odd times per planning query.
    """

    def __init__(self, model: HaversineTravelModel) -> None:
        self.model = model
        self._speed = np.array([float(model.speed_profile(m).min()) for m in TRANSPORT_MODES])
        self._detour = np.array([model.detour(m) for m in TRANSPORT_MODES])
        self._overhead = np.array([model.overhead(m) for m in TRANSPORT_MODES])
        self._last: tuple[tuple[Any, ...], FloatArray] | None = None

    def _rides(self, points: tuple[Any, Any, Any, Any], mode: Any, outer: bool) -> FloatArray:
        """Seconds pairwise (``outer=False``, broadcasting) or every origin to every
        destination; the last answer again while the same arrays come back."""
        key = (*points, mode, outer)
        last = self._last
        if last is not None and all(a is b for a, b in zip(last[0], key, strict=True)):
            return last[1]
        lat1, lng1, lat2, lng2 = (np.asarray(x, dtype=np.float64) for x in points)
        if outer:
            lat1, lng1, lat2, lng2 = lat1[:, None], lng1[:, None], lat2[None, :], lng2[None, :]
        code = TRANSPORT_MODES.index(str(getattr(mode, "value", mode)))
        metres = haversine_m(lat1, lng1, lat2, lng2)
        out = np.asarray(metres * self._detour[code] / self._speed[code] + self._overhead[code])
        self._last = (key, out)
        return out

    def seconds(
        self, from_lat: Any, from_lng: Any, to_lat: Any, to_lng: Any, at: Any, mode: Any = "ebike"
    ) -> FloatArray:
        """Seconds from each origin to its destination (broadcasting); ``at`` is ignored."""
        return self._rides((from_lat, from_lng, to_lat, to_lng), mode, outer=False)

    def matrix(
        self, from_lat: Any, from_lng: Any, to_lat: Any, to_lng: Any, at: Any, mode: Any = "ebike"
    ) -> FloatArray:
        """Seconds from every origin to every destination, shape (n, m); ``at`` is ignored."""
        return self._rides((from_lat, from_lng, to_lat, to_lng), mode, outer=True)


def angle(lat: FloatArray, lng: FloatArray, clat: float, clng: float) -> FloatArray:
    """Bearing (radians) of points seen from (clat, clng), on a local flat projection."""
    east = (np.asarray(lng) - clng) * math.cos(math.radians(clat))
    return np.asarray(np.arctan2(np.asarray(lat) - clat, east), dtype=np.float64)


class Recorder:
    """JSON-lines event log (one object per line); no-op when no file is given."""

    def __init__(self, fh: IO[str] | None) -> None:
        self.fh = fh

    def __call__(self, kind: str, t: int, **data: Any) -> None:
        if self.fh is not None:
            self.fh.write(json.dumps({"t": t, "e": kind, **data}, separators=(",", ":")) + "\n")

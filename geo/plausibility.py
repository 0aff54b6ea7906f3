"""Whether a GPS fix can follow the track: one rule for ingest, the ETA tracker and arrival.

A fix is *reachable* from another when the distance between them, less both accuracy
radii (either fix may be that far off), could be covered at the transport mode's highest
plausible speed (``geo.travel.max_speed_mps``) in the time between them. A fix the track
cannot reach is held back as a suspected jump. When the next fix agrees with it (reachable
from it at ``ANY_VEHICLE_MPS``: the worker took a taxi, or a phone that slept woke up
somewhere else), the track re-anchors on it: ``reanchor_after`` such fixes in a row and the
old position is deemed wrong. One stray fix therefore never moves the track, and a worker
who really moved is followed again within a couple of fixes.

``judge`` is the rule itself, on plain values (``Fix``); every part of the product that asks
"where is the worker?" uses it, so ingest, the tracker and arrival cannot disagree. A fix
less accurate than ``MAX_ACCURACY_M`` is not used at all; one without an accuracy counts as
``DEFAULT_ACCURACY_M``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from geo._arrays import as_float_array
from geo.errors import InvalidParameter
from geo.projection import haversine_m, haversine_one_m
from geo.travel import TransportMode, max_speed_mps

#: Highest speed at which fixes that disagree with the track may still agree with each
#: other (any vehicle a worker may board): the re-anchoring bound.
ANY_VEHICLE_MPS = max(max_speed_mps(m) for m in TransportMode)
#: Consecutive mutually consistent fixes after which the track follows them.
REANCHOR_AFTER = 2
#: Accuracy radius assumed for a fix that reports none (a phone GPS outdoors).
DEFAULT_ACCURACY_M = 15.0
#: A fix less accurate than this says nothing about where the worker is: not used.
MAX_ACCURACY_M = 200.0


@dataclass(frozen=True, slots=True)
class Fix:
    """One GPS fix: WGS-84 degrees, epoch seconds, accuracy radius in metres."""

    lat: float
    lng: float
    t: float
    accuracy_m: float = 0.0


def reachable(a: Fix, b: Fix, speed_mps: float) -> bool:
    """Whether ``b`` can follow ``a`` at ``speed_mps`` (later, and close enough)."""
    if not b.t > a.t:
        return False
    moved_m = haversine_one_m(a.lat, a.lng, b.lat, b.lng)
    return max(0.0, moved_m - a.accuracy_m - b.accuracy_m) <= speed_mps * (b.t - a.t)


def reachable_steps(
    lat: ArrayLike,
    lng: ArrayLike,
    t: ArrayLike,
    accuracy_m: ArrayLike,
    speed_mps: float,
) -> NDArray[np.bool_]:
    """``reachable`` of each fix from the one before it (``n - 1`` answers), vectorised."""
    la, ln = as_float_array(lat, "lat"), as_float_array(lng, "lng")
    ts, acc = as_float_array(t, "t"), as_float_array(accuracy_m, "accuracy_m")
    if la.size < 2:
        return np.ones(0, dtype=bool)
    moved = haversine_m(la[:-1], ln[:-1], la[1:], ln[1:])
    dt = ts[1:] - ts[:-1]
    slack = np.maximum(0.0, moved - acc[:-1] - acc[1:])
    out: NDArray[np.bool_] = (dt > 0) & (slack <= speed_mps * dt)
    return out


@dataclass(frozen=True, slots=True)
class Judgement:
    """What the rule made of one fix.

    ``accepted``: the fix is the track's new position. ``reanchored``: it is, and the old
    position was given up for it. ``pending``: the fixes held back as suspected jumps
    that agree with each other (oldest first), to keep for the next fix.
    """

    accepted: bool
    reanchored: bool
    pending: tuple[Fix, ...]


def judge(
    kept: Fix | None,
    pending: tuple[Fix, ...],
    fix: Fix,
    mode: TransportMode | str,
    *,
    reanchor_after: int = REANCHOR_AFTER,
) -> Judgement:
    """Judge ``fix`` against the track's position ``kept`` and the held-back ``pending``.

    ``fix`` must be newer than ``kept`` (callers reject out-of-order fixes first). Pending
    fixes from before ``kept`` are stale and ignored.
    """
    if reanchor_after < 1:
        raise InvalidParameter(f"reanchor_after must be >= 1, got {reanchor_after}")
    if kept is None or reachable(kept, fix, max_speed_mps(mode)):
        return Judgement(True, False, ())
    chain = tuple(p for p in pending if p.t > kept.t)
    if chain and not reachable(chain[-1], fix, ANY_VEHICLE_MPS):
        chain = ()
    chain = (*chain, fix)
    if len(chain) >= reanchor_after:
        return Judgement(True, True, ())
    return Judgement(False, False, chain)


__all__ = [
    "ANY_VEHICLE_MPS",
    "DEFAULT_ACCURACY_M",
    "MAX_ACCURACY_M",
    "REANCHOR_AFTER",
    "Fix",
    "Judgement",
    "judge",
    "reachable",
    "reachable_steps",
]

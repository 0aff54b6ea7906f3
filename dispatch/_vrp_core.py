"""Array core of day planning: travel tables, route timing and vectorised insertion.

Everything here works on integer node indices and int64 seconds relative to an
origin ``t0`` chosen by the caller; the public dataclasses live in
``dispatch.schedule``. Node layout of a ``Space``: one node per place given,
in the caller's order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from dispatch.errors import InvalidInput

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]

#: Relative safety margin on travel times taken from a time-dependent model: the
#: planning matrix is the maximum over sampled departures, and the true maximum
#: between two samples can be slightly higher.
TRAVEL_MARGIN = 1.03
#: Seconds between sampled departure times of a time-dependent model.
SAMPLE_STEP_S = 1800
#: Above this many (pair x departure) evaluations a matrix is scaled, not sampled.
EXACT_SAMPLE_BUDGET = 4_000_000
#: Random pairs used to measure the worst slowdown of a scaled matrix.
RATIO_PAIRS = 4000
#: Up to this many places distances are exact haversine; above, a local projection.
EXACT_DISTANCE_MAX_PLACES = 1000
#: Mode names in code order (geo.travel.TransportMode.code).
MODE_NAMES: tuple[str, ...] = ("walk", "ebike", "car")


@runtime_checkable
class TravelModelLike(Protocol):
    """The part of geo.travel.TravelTimeModel that planning uses."""

    def matrix(
        self, from_lat: Any, from_lng: Any, to_lat: Any, to_lng: Any, at: Any, mode: Any = ...
    ) -> FloatArray:
        """Seconds from every origin to every destination."""
        ...

    def seconds(
        self, from_lat: Any, from_lng: Any, to_lat: Any, to_lng: Any, at: Any, mode: Any = ...
    ) -> FloatArray:
        """Seconds from each origin to its destination (broadcasting)."""
        ...


@dataclass(frozen=True)
class TravelMatrix:
    """Precomputed integer travel durations (and optionally distances) between numbered nodes.

    ``duration_s[i, j]`` is the travel time in seconds from node ``i`` to ``j``
    (the same for every transport mode); ``distance[i, j]`` an optional
    distance in any integer unit (metres, or Solomon's tenths). Visits and
    workers refer to nodes through their ``node`` field.
    """

    duration_s: IntArray
    distance: IntArray | None = None

    def __post_init__(self) -> None:
        dur = np.asarray(self.duration_s)
        if dur.ndim != 2 or dur.shape[0] != dur.shape[1]:
            raise InvalidInput(f"duration_s must be a square matrix, got shape {dur.shape}")
        if dur.dtype.kind not in "iu":
            raise InvalidInput(f"duration_s must hold integers, got dtype {dur.dtype}")
        if dur.size and dur.min() < 0:
            i, j = np.argwhere(dur < 0)[0]
            raise InvalidInput(f"duration_s[{i}, {j}] must be >= 0, got {dur[i, j]}")
        dur = np.array(dur, dtype=np.int64)
        dur.setflags(write=False)
        object.__setattr__(self, "duration_s", dur)
        if self.distance is not None:
            dist = np.asarray(self.distance)
            if dist.shape != dur.shape:
                raise InvalidInput(
                    f"distance must have the shape of duration_s {dur.shape}, got {dist.shape}"
                )
            if dist.dtype.kind not in "iu":
                raise InvalidInput(f"distance must hold integers, got dtype {dist.dtype}")
            if dist.size and dist.min() < 0:
                i, j = np.argwhere(dist < 0)[0]
                raise InvalidInput(f"distance[{i}, {j}] must be >= 0, got {dist[i, j]}")
            dist = np.array(dist, dtype=np.int64)
            dist.setflags(write=False)
            object.__setattr__(self, "distance", dist)

    @property
    def size(self) -> int:
        """Number of nodes."""
        return int(self.duration_s.shape[0])


@dataclass(frozen=True)
class Places:
    """Points of a planning problem: coordinates (degrees) and optional matrix nodes."""

    lat: FloatArray
    lng: FloatArray
    node: IntArray  # -1 where no node is given


@dataclass
class Space:
    """Integer planning matrices over a list of places, one duration matrix per mode.

    ``duration[m]`` (seconds) is conservative for time-dependent models: the
    maximum over departures sampled across the planning horizon, so real
    travel never takes longer than planned and arriving early only means
    waiting. ``distance[m]`` is metres-ish (or the matrix's own unit), used for
    reporting and for a distance-weighted objective.
    """

    travel: TravelMatrix | TravelModelLike
    places: Places
    modes: tuple[int, ...]
    horizon: tuple[int, int]  # absolute epoch seconds [first departure, last departure]
    duration: dict[int, IntArray] = field(default_factory=dict)
    distance: dict[int, IntArray] = field(default_factory=dict)

    def build(self) -> None:
        """Fill ``duration``/``distance`` for every mode in ``modes``."""
        if isinstance(self.travel, TravelMatrix):
            nodes = self.places.node
            sub = np.ix_(nodes, nodes)
            dur = self.travel.duration_s[sub]
            dist = self.travel.distance[sub] if self.travel.distance is not None else dur
            for m in self.modes:
                self.duration[m] = dur
                self.distance[m] = dist
            return
        lat, lng = self.places.lat, self.places.lng
        great_circle = _distance_matrix(lat, lng)
        for m in self.modes:
            self.duration[m] = self._model_seconds(lat, lng, lat, lng, m, matrix=True)
            self.distance[m] = great_circle

    def _samples(self) -> IntArray:
        lo, hi = self.horizon
        return np.arange(lo, max(hi, lo) + SAMPLE_STEP_S, SAMPLE_STEP_S, dtype=np.int64)

    def _model_seconds(
        self,
        from_lat: FloatArray,
        from_lng: FloatArray,
        to_lat: FloatArray,
        to_lng: FloatArray,
        mode: int,
        *,
        matrix: bool,
    ) -> IntArray:
        model = self.travel
        assert not isinstance(model, TravelMatrix)
        best: FloatArray | None = None
        name = MODE_NAMES[mode]
        samples = self._samples()
        size = np.size(from_lat) * np.size(to_lat)
        if matrix and size * samples.size > EXACT_SAMPLE_BUDGET:
            return self._scaled_matrix(from_lat, from_lng, mode, samples)
        for at in samples:
            if matrix:
                secs = model.matrix(from_lat, from_lng, to_lat, to_lng, int(at), mode=name)
            else:
                secs = model.seconds(from_lat, from_lng, to_lat, to_lng, int(at), mode=name)
            best = secs if best is None else np.maximum(best, secs)
        assert best is not None
        out = np.ceil(np.asarray(best) * TRAVEL_MARGIN).astype(np.int64)
        if matrix:
            np.fill_diagonal(out, 0)
        return out

    def _scaled_matrix(
        self, lat: FloatArray, lng: FloatArray, mode: int, samples: IntArray
    ) -> IntArray:
        """Big matrices: one full matrix, scaled by the worst slowdown seen on sampled pairs.

        Evaluating the model at every sampled departure is quadratic per
        sample; instead the matrix is computed once (at the first sample) and
        multiplied by the largest ratio, over random pairs and all sampled
        departures, of the travel time then to the travel time at that first
        sample. For speed-by-hour models the ratio is the same for all short
        trips, so this stays conservative.
        """
        model = self.travel
        assert not isinstance(model, TravelMatrix)
        name = MODE_NAMES[mode]
        base = np.asarray(model.matrix(lat, lng, lat, lng, int(samples[0]), mode=name))
        rng = np.random.default_rng(0)
        n = lat.size
        i = rng.integers(0, n, RATIO_PAIRS)
        j = rng.integers(0, n, RATIO_PAIRS)
        keep = base[i, j] > 0
        i, j = i[keep], j[keep]
        ratio = 1.0
        if i.size:
            at = np.repeat(samples, i.size)
            secs = model.seconds(
                np.tile(lat[i], samples.size),
                np.tile(lng[i], samples.size),
                np.tile(lat[j], samples.size),
                np.tile(lng[j], samples.size),
                at,
                mode=name,
            )
            ratio = max(1.0, float((np.asarray(secs) / np.tile(base[i, j], samples.size)).max()))
        out = np.ceil(base * (ratio * TRAVEL_MARGIN)).astype(np.int64)
        np.fill_diagonal(out, 0)
        return out

    def to_and_from(
        self, lat: float, lng: float, node: int, mode: int, rows: IntArray
    ) -> tuple[IntArray, IntArray]:
        """Seconds from each place in ``rows`` to a new point and back (conservative)."""
        if isinstance(self.travel, TravelMatrix):
            if node < 0:
                raise InvalidInput("node must be given when travel is a TravelMatrix")
            nodes = self.places.node[rows]
            return (
                self.travel.duration_s[nodes, node].astype(np.int64),
                self.travel.duration_s[node, nodes].astype(np.int64),
            )
        plat, plng = self.places.lat[rows], self.places.lng[rows]
        here_lat = np.asarray(lat, dtype=np.float64)
        here_lng = np.asarray(lng, dtype=np.float64)
        to_new = self._model_seconds(plat, plng, here_lat, here_lng, mode, matrix=False)
        from_new = self._model_seconds(here_lat, here_lng, plat, plng, mode, matrix=False)
        same = (plat == lat) & (plng == lng)
        to_new[same] = 0
        from_new[same] = 0
        return to_new, from_new

    def distance_to_and_from(
        self, lat: float, lng: float, node: int, rows: IntArray
    ) -> tuple[IntArray, IntArray]:
        """Distance from each place in ``rows`` to a new point and back."""
        if isinstance(self.travel, TravelMatrix):
            mat = (
                self.travel.distance
                if self.travel.distance is not None
                else (self.travel.duration_s)
            )
            nodes = self.places.node[rows]
            return mat[nodes, node].astype(np.int64), mat[node, nodes].astype(np.int64)
        d = _haversine_int(self.places.lat[rows], self.places.lng[rows], lat, lng)
        return d, d


def _distance_matrix(lat: FloatArray, lng: FloatArray) -> IntArray:
    """Metres between all places: haversine, or for big days a local flat-earth projection.

    Distances are only reported (the objective uses travel time by default);
    within a city the projection is off by well under 0.1 % and several times
    cheaper than haversine on millions of pairs.
    """
    if lat.size <= EXACT_DISTANCE_MAX_PLACES:
        return _haversine_int(lat, lng, lat, lng)
    from geo.projection import EARTH_RADIUS_M

    lat0 = np.radians(np.median(lat))
    y = (np.radians(lat) * EARTH_RADIUS_M).astype(np.float32)
    x = (np.radians(lng) * EARTH_RADIUS_M * np.cos(lat0)).astype(np.float32)
    dist = np.hypot(x[:, None] - x[None, :], y[:, None] - y[None, :])
    return np.asarray(np.rint(dist), dtype=np.int64)


def _haversine_int(lat1: Any, lng1: Any, lat2: Any, lng2: Any) -> IntArray:
    from geo.projection import haversine_m

    a1, o1 = np.asarray(lat1, dtype=np.float64), np.asarray(lng1, dtype=np.float64)
    a2, o2 = np.asarray(lat2, dtype=np.float64), np.asarray(lng2, dtype=np.float64)
    if a1.ndim == 1 and a2.ndim == 1 and a1.shape == a2.shape and a1 is a2:
        return np.rint(haversine_m(a1[:, None], o1[:, None], a2[None, :], o2[None, :])).astype(
            np.int64
        )
    return np.rint(haversine_m(a1, o1, a2, o2)).astype(np.int64)


@dataclass(frozen=True)
class RouteTimes:
    """Timing of one route: per stop arrival/start/end (seconds) and feasibility."""

    arrival: IntArray
    start: IntArray
    end: IntArray
    travel: IntArray  # travel seconds into each stop
    back_travel: int  # travel seconds from the last stop to the end place
    finish: int  # arrival at the end place
    lateness: IntArray  # seconds each start is past its window's latest start
    feasible: bool
    first_violation: int  # index of the first stop whose window breaks, -1 if none; len = shift


def route_times(
    dur: IntArray,
    start_node: int,
    end_node: int,
    ready: int,
    shift_end: int,
    nodes: IntArray,
    early: IntArray,
    late: IntArray,
    service: IntArray,
    *,
    allow_late: bool = False,
    pass_through: int = -1,
) -> RouteTimes:
    """Propagate start times along a route with waiting (all in seconds).

    The worker leaves ``start_node`` at ``ready``; each stop starts at
    ``max(arrival, early)``. With ``allow_late`` a stop past ``late`` still
    starts at its arrival (lateness is reported) instead of being infeasible.
    Stops at node ``pass_through`` (breaks) happen where the worker is: no
    ride into them, and the ride after them leaves from the previous place.
    """
    k = nodes.shape[0]
    arrival = np.empty(k, dtype=np.int64)
    start = np.empty(k, dtype=np.int64)
    end = np.empty(k, dtype=np.int64)
    travel = np.empty(k, dtype=np.int64)
    prev, t = start_node, int(ready)
    first_bad = -1
    for i in range(k):
        node = int(nodes[i])
        is_break = node == pass_through
        tt = 0 if is_break else int(dur[prev, node])
        travel[i] = tt
        arrival[i] = t + tt
        start[i] = max(int(arrival[i]), int(early[i]))
        if start[i] > late[i] and first_bad < 0:
            first_bad = i
        end[i] = start[i] + int(service[i])
        t = int(end[i])
        if not is_break:
            prev = node
    back = int(dur[prev, end_node])
    finish = t + back
    lateness = np.maximum(start - late, 0)
    if finish > shift_end and first_bad < 0:
        first_bad = k
    feasible = first_bad < 0 or (allow_late and finish <= shift_end)
    return RouteTimes(arrival, start, end, travel, back, finish, lateness, feasible, first_bad)


@dataclass(frozen=True)
class InsertionCandidates:
    """Every feasible way to put one new stop into existing routes.

    One row per (route, position): inserting before stop ``position`` of
    route ``route`` (``position == len(route)`` means at the end).
    """

    route: IntArray
    position: IntArray
    start: IntArray  # start time of the new stop, seconds
    added_travel: IntArray  # extra travel seconds caused by the detour
    added_cost: IntArray  # extra objective cost (travel or distance weighted)


@dataclass(frozen=True)
class FlatRoutes:
    """Routes flattened into aligned arrays for vectorised insertion.

    Each route r contributes ``len_r + 1`` "gap" rows, the gaps before each
    stop and the gap before its end place. For gap g: ``prev_end`` is the time
    the worker is free at the previous place (the route's ready time for the
    first gap), ``next_latest`` the latest the next stop may start without
    breaking any later stop or the shift end, ``next_start`` its current start.
    """

    route: IntArray
    position: IntArray
    prev_row: IntArray  # place row the worker comes from
    next_row: IntArray  # place row the worker goes to next
    prev_end: IntArray
    next_early: IntArray
    next_start: IntArray
    next_latest: IntArray
    old_travel: IntArray  # travel seconds prev -> next today
    old_cost: IntArray
    mode: IntArray
    load_left: IntArray  # spare capacity of the route
    visits_left: IntArray  # spare visit count of the route
    skills: NDArray[np.uint64]
    free_from: IntArray  # earliest position a new stop may take (after fixed prefix)


def latest_starts(
    dur: IntArray,
    nodes: IntArray,
    end_node: int,
    shift_end: int,
    late: IntArray,
    service: IntArray,
    *,
    start_node: int = -1,
    pass_through: int = -1,
) -> IntArray:
    """Latest start of each stop that keeps every later stop and the shift end feasible.

    ``pass_through`` stops (breaks) are taken where the worker is, as in
    ``route_times``; ``start_node`` is then needed to know where that is.
    """
    k = nodes.shape[0]
    prev_real = np.empty(k, dtype=np.int64)
    where = start_node
    for i in range(k):
        prev_real[i] = where
        if int(nodes[i]) != pass_through:
            where = int(nodes[i])
    out = np.empty(k, dtype=np.int64)
    nxt_latest = int(shift_end)
    nxt_node = end_node
    nxt_is_break = False
    for i in range(k - 1, -1, -1):
        node = int(nodes[i])
        if node == pass_through:
            ride = int(dur[prev_real[i], nxt_node])
            out[i] = min(int(late[i]), nxt_latest - ride - int(service[i]))
            nxt_is_break = True
        else:
            ride = 0 if nxt_is_break else int(dur[node, nxt_node])
            out[i] = min(int(late[i]), nxt_latest - ride - int(service[i]))
            nxt_node = node
            nxt_is_break = False
        nxt_latest = int(out[i])
    return out


def cheapest_insertions(
    flat: FlatRoutes,
    to_new: IntArray,
    from_new: IntArray,
    cost_to_new: IntArray,
    cost_from_new: IntArray,
    old_cost: IntArray,
    early: int,
    late: int,
    service: int,
    demand: int,
    skills: int,
) -> InsertionCandidates:
    """All feasible insertions of one stop, evaluated at once over every gap (seconds).

    ``to_new[g]``/``from_new[g]`` are travel seconds from gap g's previous place
    to the new stop and from it to the next place; ``cost_*`` the same in
    objective units. Feasible means: the worker has the skills, capacity is
    left, the new stop starts within ``[early, late]``, and the next stop can
    still start no later than its latest start.
    """
    arrival = flat.prev_end + to_new
    start = np.maximum(arrival, early)
    leave = start + service
    next_arrival = leave + from_new
    next_start = np.maximum(next_arrival, flat.next_early)
    need = np.uint64(skills)
    ok = (
        (start <= late)
        & (next_start <= flat.next_latest)
        & ((flat.skills & need) == need)
        & (flat.load_left >= demand)
        & (flat.visits_left >= 1)
        & (flat.position >= flat.free_from)
    )
    rows = np.flatnonzero(ok)
    added_travel = to_new[rows] + from_new[rows] - flat.old_travel[rows]
    added_cost = cost_to_new[rows] + cost_from_new[rows] - old_cost[rows]
    return InsertionCandidates(
        route=flat.route[rows],
        position=flat.position[rows],
        start=start[rows],
        added_travel=added_travel,
        added_cost=added_cost,
    )

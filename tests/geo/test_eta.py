"""Tests of geo.eta: smoothed live ETA, arrival dwell, ping rejection."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from geo._arrays import FloatArray
from geo.errors import InvalidCoordinate, InvalidParameter
from geo.eta import (
    EtaConfig,
    EtaTracker,
    EtaUpdate,
    PingRejection,
    _kalman_arrival_step_one,
    eta_seconds_many,
    kalman_arrival_step,
)
from geo.projection import haversine_m
from geo.travel import HaversineTravelModel, TransportMode, TravelTimeModel, max_speed_mps

START_T = int(datetime(2026, 1, 5, 6, 0, tzinfo=UTC).timestamp())  # 14:00 in Shanghai
SPEED_MPS = 4.5
M_PER_DEG_LAT = 111_195.0
ORIGIN = (31.2000, 121.4700)
DEST = (31.2000 + 4000 / M_PER_DEG_LAT, 121.4700)  # 4 km due north
PING_EVERY_S = 5


@pytest.fixture
def model() -> HaversineTravelModel:
    """E-bike at a constant 4.5 m/s in a straight line, so a clean ride keeps its arrival time."""
    profile = (SPEED_MPS,) * 24
    return HaversineTravelModel(
        speed_mps=dict.fromkeys(TransportMode, profile), detour_factor=1.0, overhead_s=0.0
    )


def start(model: HaversineTravelModel, config: EtaConfig | None = None) -> EtaTracker:
    """A tracker for the ride ORIGIN -> DEST starting at START_T."""
    return EtaTracker.start(model, *ORIGIN, *DEST, START_T, mode="ebike", config=config)


def north_of_origin(metres: float) -> tuple[float, float]:
    """The point ``metres`` north of ORIGIN on the way to DEST."""
    return ORIGIN[0] + metres / M_PER_DEG_LAT, ORIGIN[1]


def noisy(
    point: tuple[float, float], rng: np.random.Generator, sigma_m: float
) -> tuple[float, float]:
    """``point`` with Gaussian GPS noise of ``sigma_m`` metres in each axis."""
    dn, de = rng.normal(0.0, sigma_m, 2)
    return (
        point[0] + dn / M_PER_DEG_LAT,
        point[1] + de / (M_PER_DEG_LAT * math.cos(math.radians(point[0]))),
    )


def increases(values: list[float]) -> int:
    """How many times a sequence goes up."""
    return int(np.sum(np.diff(values) > 1e-9))


def reversals(values: list[float]) -> int:
    """How many times a sequence changes direction (flat steps ignored)."""
    steps = np.sign(np.diff(values))
    steps = steps[steps != 0]
    return int(np.sum(steps[1:] != steps[:-1]))


def ride(
    tracker: EtaTracker, rng: np.random.Generator, sigma_m: float, until_m: float = 3800.0
) -> list[EtaUpdate]:
    """Ride north at SPEED_MPS with noisy pings every PING_EVERY_S until ``until_m``."""
    updates = []
    t = START_T
    travelled = 0.0
    while travelled < until_m:
        t += PING_EVERY_S
        travelled += SPEED_MPS * PING_EVERY_S
        updates.append(tracker.update(*noisy(north_of_origin(travelled), rng, sigma_m), t, sigma_m))
    return updates


def test_gps_noise_does_not_make_displayed_eta_oscillate(model: HaversineTravelModel) -> None:
    tracker = start(model)
    updates = ride(tracker, np.random.default_rng(4), sigma_m=15.0)
    assert all(u.rejected is None for u in updates)
    raw = [u.raw_eta_s for u in updates]
    shown = [u.eta_s for u in updates]
    # The noise is real: the raw model ETA goes back up again and again.
    assert reversals(raw) >= 10
    assert increases(shown) == 0
    assert reversals(shown) == 0
    # ...and the displayed ETA still tells the truth.
    remaining_s = [
        (4000 - SPEED_MPS * PING_EVERY_S * (i + 1)) / SPEED_MPS for i in range(len(updates))
    ]
    np.testing.assert_allclose(shown, remaining_s, atol=20.0)


def test_progress_and_distance_follow_the_ride(model: HaversineTravelModel) -> None:
    tracker = start(model)
    updates = ride(tracker, np.random.default_rng(5), sigma_m=5.0, until_m=2000.0)
    last = updates[-1]
    assert last.progress == pytest.approx(0.5, abs=0.02)
    assert last.distance_remaining_m == pytest.approx(2000.0, abs=25.0)
    assert not last.arrived


def test_real_stop_raises_the_displayed_eta(model: HaversineTravelModel) -> None:
    tracker = start(model)
    rng = np.random.default_rng(6)
    before = ride(tracker, rng, sigma_m=10.0, until_m=1500.0)[-1]
    t = int(before.as_of)
    stopped_at = north_of_origin(1500.0)
    during = []
    for _ in range(180 // PING_EVERY_S):  # three minutes at a standstill
        t += PING_EVERY_S
        during.append(tracker.update(*noisy(stopped_at, rng, 10.0), t, 10.0))
    assert increases([before.eta_s] + [u.eta_s for u in during]) >= 1
    # After the stop the display agrees with the model again, not with the countdown.
    assert during[-1].eta_s == pytest.approx(during[-1].raw_eta_s, abs=45.0)
    assert during[-1].eta_s > before.eta_s - 180 + 60


def test_detour_away_from_destination_raises_the_eta(model: HaversineTravelModel) -> None:
    tracker = start(model)
    rng = np.random.default_rng(7)
    before = ride(tracker, rng, sigma_m=5.0, until_m=1000.0)[-1]
    t = int(before.as_of)
    lat, lng = north_of_origin(1000.0)
    for _ in range(120 // PING_EVERY_S):  # two minutes riding south, away from the customer
        t += PING_EVERY_S
        lat -= SPEED_MPS * PING_EVERY_S / M_PER_DEG_LAT
        last = tracker.update(*noisy((lat, lng), rng, 5.0), t, 5.0)
    assert last.eta_s > before.eta_s


def test_arrival_needs_the_dwell(model: HaversineTravelModel) -> None:
    config = EtaConfig(arrive_radius_m=50.0, arrive_dwell_s=60.0)
    tracker = start(model, config)
    at_door = north_of_origin(4000.0 - 10.0)
    t = START_T + 900
    first = tracker.update(*at_door, t)
    assert not first.arrived
    # Stepping out of the fence before the dwell resets it.
    tracker.update(*north_of_origin(3800.0), t + 30)
    again = tracker.update(*at_door, t + 70)
    assert not again.arrived
    not_yet = tracker.update(*at_door, t + 70 + 55)
    assert not not_yet.arrived
    done = tracker.update(*at_door, t + 70 + 60)
    assert done.arrived
    assert done.eta_s == 0.0
    assert done.progress == 1.0
    # Arrival is latched: later pings elsewhere do not undo it.
    assert tracker.update(*north_of_origin(3000.0), t + 200).arrived


def test_impossible_jump_is_rejected_and_does_not_move_the_estimate(
    model: HaversineTravelModel,
) -> None:
    tracker = start(model)
    last = ride(tracker, np.random.default_rng(8), sigma_m=5.0, until_m=1000.0)[-1]
    jump_lat, jump_lng = last_lat, last_lng = north_of_origin(1000.0)
    jump_lng += 5000 / (M_PER_DEG_LAT * math.cos(math.radians(jump_lat)))  # 5 km east in 5 s
    jumped = tracker.update(jump_lat, jump_lng, last.as_of + 5)
    assert jumped.rejected is PingRejection.IMPOSSIBLE_JUMP
    assert (jumped.eta_s, jumped.raw_eta_s, jumped.as_of, jumped.distance_remaining_m) == (
        last.eta_s,
        last.raw_eta_s,
        last.as_of,
        last.distance_remaining_m,
    )
    back = tracker.update(last_lat + 22.5 / M_PER_DEG_LAT, last_lng, last.as_of + 10)
    assert back.rejected is None
    assert back.as_of == last.as_of + 10


def test_consistent_jumps_reanchor_the_tracker(model: HaversineTravelModel) -> None:
    config = EtaConfig(reanchor_after=3)
    tracker = start(model, config)
    # The start fix was wrong: the worker is really 3 km north already.
    real = north_of_origin(3000.0)
    results = [
        tracker.update(real[0] + k * 20 / M_PER_DEG_LAT, real[1], START_T + 5 * (k + 1))
        for k in range(3)
    ]
    assert [r.rejected for r in results[:2]] == [PingRejection.IMPOSSIBLE_JUMP] * 2
    assert results[2].rejected is None
    assert results[2].reanchored
    assert results[2].distance_remaining_m == pytest.approx(1000.0 - 40.0, abs=5.0)


def test_out_of_order_and_duplicate_pings_are_rejected(model: HaversineTravelModel) -> None:
    tracker = start(model)
    accepted = tracker.update(*north_of_origin(45.0), START_T + 10)
    assert accepted.rejected is None
    older = tracker.update(*north_of_origin(22.0), START_T + 5)
    assert older.rejected is PingRejection.OUT_OF_ORDER
    duplicate = tracker.update(*north_of_origin(46.0), START_T + 10)
    assert duplicate.rejected is PingRejection.STALE
    assert older.eta_s == duplicate.eta_s == accepted.eta_s
    assert tracker.state.t == START_T + 10


@pytest.mark.parametrize(
    ("lat", "lng", "t", "accuracy_m", "reason"),
    [
        (float("nan"), 121.47, 5, None, PingRejection.BAD_COORDINATE),
        (95.0, 121.47, 5, None, PingRejection.BAD_COORDINATE),
        (0.0, 0.0, 5, None, PingRejection.BAD_COORDINATE),
        ("north", 121.47, 5, None, PingRejection.BAD_COORDINATE),
        (31.2001, 121.47, float("inf"), None, PingRejection.BAD_TIMESTAMP),
        (31.2001, 121.47, 5, -3.0, PingRejection.BAD_ACCURACY),
        (31.2001, 121.47, 5, 900.0, PingRejection.INACCURATE),
    ],
)
def test_bad_pings_are_rejected_not_raised(
    model: HaversineTravelModel,
    lat: float,
    lng: float,
    t: float,
    accuracy_m: float | None,
    reason: PingRejection,
) -> None:
    tracker = start(model)
    before = tracker.current()
    result = tracker.update(lat, lng, START_T + t, accuracy_m)
    assert result.rejected is reason
    assert result.eta_s == before.eta_s
    assert tracker.update(31.2001, 121.47, START_T + 10).rejected is None


@given(
    lat=st.floats(allow_nan=True, allow_infinity=True),
    lng=st.floats(allow_nan=True, allow_infinity=True),
    dt=st.floats(allow_nan=True, allow_infinity=True),
    accuracy_m=st.none() | st.floats(allow_nan=True, allow_infinity=True),
)
def test_update_never_raises(lat: float, lng: float, dt: float, accuracy_m: float | None) -> None:
    profile = (SPEED_MPS,) * 24
    model = HaversineTravelModel(speed_mps=dict.fromkeys(TransportMode, profile))
    tracker = EtaTracker.start(model, *ORIGIN, *DEST, START_T)
    result = tracker.update(lat, lng, START_T + dt, accuracy_m)
    assert math.isfinite(result.eta_s)
    assert (result.rejected is None) == (tracker.state.t != START_T)


def test_state_round_trip_resumes_identically(model: HaversineTravelModel) -> None:
    tracker = start(model)
    ride(tracker, np.random.default_rng(9), sigma_m=10.0, until_m=500.0)
    resumed = EtaTracker(model, *DEST, tracker.state, mode="ebike")
    t = int(tracker.state.t)
    for k in range(1, 6):
        point = north_of_origin(500.0 + 22.5 * k)
        assert tracker.update(*point, t + 5 * k) == resumed.update(*point, t + 5 * k)


def test_programming_errors_raise_typed_errors(model: HaversineTravelModel) -> None:
    with pytest.raises(InvalidParameter, match="arrive_radius_m"):
        EtaConfig(arrive_radius_m=-1.0)
    with pytest.raises(InvalidParameter, match="reanchor_after"):
        EtaConfig(reanchor_after=0)
    with pytest.raises(InvalidCoordinate, match="origin"):
        EtaTracker.start(model, float("nan"), 121.0, *DEST, START_T)
    with pytest.raises(InvalidCoordinate, match="dest"):
        EtaTracker.start(model, *ORIGIN, 120.0, 121.0, START_T)
    with pytest.raises(InvalidParameter, match="model"):
        EtaTracker.start(object(), *ORIGIN, *DEST, START_T)  # type: ignore[arg-type]


def test_jump_limit_defaults_to_the_mode_maximum(model: HaversineTravelModel) -> None:
    tracker = start(model)
    limit = max_speed_mps("ebike")
    slack = 2 * EtaConfig().default_accuracy_m
    fine = tracker.update(*north_of_origin(limit * 10 + slack - 1.0), START_T + 10)
    assert fine.rejected is None
    tracker = start(model)
    too_fast = tracker.update(*north_of_origin(limit * 10 + slack + 5.0), START_T + 10)
    assert too_fast.rejected is PingRejection.IMPOSSIBLE_JUMP


def test_eta_seconds_many_matches_model_and_zeroes_arrivals(model: HaversineTravelModel) -> None:
    lat = np.array([ORIGIN[0], north_of_origin(2000.0)[0], DEST[0] - 10 / M_PER_DEG_LAT])
    lng = np.full(3, ORIGIN[1])
    got = eta_seconds_many(model, lat, lng, *DEST, START_T, mode=[1, 2, 0], arrive_radius_m=30.0)
    expected = model.seconds(lat, lng, *DEST, START_T, mode=[1, 2, 0])
    np.testing.assert_allclose(got[:2], expected[:2])
    assert got[2] == 0.0
    assert float(haversine_m(lat[2], lng[2], *DEST)) < 30.0


def test_kalman_step_vectorised_equals_scalar() -> None:
    rng = np.random.default_rng(3)
    mean = rng.uniform(1e9, 1e9 + 1000, 6)
    var = rng.uniform(10, 500, 6)
    measured = mean + rng.normal(0, 30, 6)
    got_mean, got_var = kalman_arrival_step(mean, var, 5.0, measured, 400.0, 1.0)
    for i in range(6):
        one_mean, one_var = kalman_arrival_step(mean[i], var[i], 5.0, measured[i], 400.0, 1.0)
        assert got_mean[i] == pytest.approx(float(one_mean))
        assert got_var[i] == pytest.approx(float(one_var))
    assert (got_var < var + 5.0).all()
    # The estimate moves toward the measurement, never past it.
    assert (np.abs(got_mean - measured) <= np.abs(mean - measured)).all()


class ArrayPathModel:
    """A model the tracker does not recognise: every ping goes through ``seconds`` on arrays."""

    def __init__(self, inner: HaversineTravelModel) -> None:
        self.inner = inner

    @property
    def utc_offset_s(self) -> int:
        return self.inner.utc_offset_s

    def seconds(self, *args: Any, **kwargs: Any) -> FloatArray:
        return self.inner.seconds(*args, **kwargs)

    def matrix(self, *args: Any, **kwargs: Any) -> FloatArray:
        return self.inner.matrix(*args, **kwargs)


@pytest.mark.parametrize("mode", list(TransportMode))
def test_tracker_fast_path_equals_the_array_path(mode: TransportMode) -> None:
    # Default hourly speeds; the ride starts just before the 17:00 peak in Shanghai and has
    # noise, a stop, jumps that get rejected and a run of them that re-anchors.
    model = HaversineTravelModel(overhead_s=30.0)
    slow = ArrayPathModel(model)
    assert isinstance(slow, TravelTimeModel)
    t0 = START_T + 3 * 3600 - 200.5  # 16:56:39.5 local
    config = EtaConfig(arrive_dwell_s=20.0)
    fast = EtaTracker.start(model, *ORIGIN, *DEST, t0, mode=mode, config=config)
    array = EtaTracker.start(slow, *ORIGIN, *DEST, t0, mode=mode, config=config)
    rng = np.random.default_rng(30 + mode.code)
    speed = min(SPEED_MPS, 0.8 * max_speed_mps(mode))
    travelled, t = 0.0, t0
    results = []
    while not fast.state.arrived and t < t0 + 20_000:
        t += float(rng.choice([1.0, 5.0, 5.0, 12.5]))
        travelled = min(4000.0, travelled + speed * 5 * float(rng.random() < 0.9))
        lat, lng = noisy(north_of_origin(travelled), rng, 8.0)
        if rng.random() < 0.05:
            lng += 0.05  # 5 km east: an impossible jump
        accuracy = float(rng.choice([5.0, 15.0, 40.0]))
        # Rebuild both trackers from their states, as the API does on every ping.
        fast = EtaTracker(model, *DEST, fast.state, mode=mode, config=config)
        array = EtaTracker(slow, *DEST, array.state, mode=mode, config=config)
        results.append((fast.update(lat, lng, t, accuracy), array.update(lat, lng, t, accuracy)))
    for _ in range(3):  # consistent jumps after arrival are ignored by both alike
        t += 5.0
        results.append((fast.update(30.0, 120.0, t), array.update(30.0, 120.0, t)))
    assert fast.state.arrived
    assert any(f.rejected is PingRejection.IMPOSSIBLE_JUMP for f, _ in results)
    for got, expected in results:
        assert (got.rejected, got.arrived, got.reanchored) == (
            expected.rejected,
            expected.arrived,
            expected.reanchored,
        )
        for name in ("as_of", "raw_eta_s", "eta_s", "arrival_at", "distance_remaining_m"):
            assert getattr(got, name) == pytest.approx(getattr(expected, name), rel=1e-9, abs=1e-9)
        assert got.progress == pytest.approx(expected.progress, rel=1e-9, abs=1e-12)


def test_consistent_jumps_reanchor_through_the_array_path_too(model: HaversineTravelModel) -> None:
    config = EtaConfig(reanchor_after=2)
    tracker = EtaTracker.start(ArrayPathModel(model), *ORIGIN, *DEST, START_T, config=config)
    real = north_of_origin(3000.0)
    first = tracker.update(*real, START_T + 5)
    second = tracker.update(real[0] + 20 / M_PER_DEG_LAT, real[1], START_T + 10)
    assert first.rejected is PingRejection.IMPOSSIBLE_JUMP
    assert tracker.state.pending_jumps == ()
    assert second.reanchored
    assert second.distance_remaining_m == pytest.approx(980.0, abs=5.0)


def test_kalman_step_one_equals_the_array_step() -> None:
    rng = np.random.default_rng(12)
    n = 1000
    mean = 1.7e9 + rng.uniform(0, 1e5, n)
    var = rng.uniform(0.0, 1e4, n)
    elapsed = rng.choice([-5.0, 0.0, 0.5, 5.0, 3600.0], n)
    measured = mean + rng.normal(0, 60, n)
    measurement_var = rng.uniform(1.0, 1e4, n)
    drift = rng.choice([0.0, 1.0, 2.25], n)
    got_mean, got_var = kalman_arrival_step(mean, var, elapsed, measured, measurement_var, drift)
    one = [
        _kalman_arrival_step_one(*args)
        for args in zip(
            *(a.tolist() for a in (mean, var, elapsed, measured, measurement_var, drift)),
            strict=True,
        )
    ]
    # The same float operations in the same order: equal, not merely close.
    np.testing.assert_array_equal([m for m, _ in one], got_mean)
    np.testing.assert_array_equal([v for _, v in one], got_var)

"""Tests of geo.travel: the TravelTimeModel protocol, the haversine model and its fit."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from geo.errors import GeoError, InvalidCoordinate, InvalidParameter, ShapeMismatch
from geo.projection import haversine_m
from geo.travel import (
    CHINA_UTC_OFFSET_S,
    HaversineTravelModel,
    InsufficientTrips,
    TransportMode,
    TravelTimeModel,
    Trips,
    default_speed_profile,
    fit,
    local_hour,
    max_speed_mps,
    mode_codes,
)

# 2026-01-05 00:00 local (UTC+8), a Monday.
MIDNIGHT_LOCAL = int(datetime(2026, 1, 5, tzinfo=UTC).timestamp()) - CHINA_UTC_OFFSET_S
PEOPLES_SQUARE = (31.2304, 121.4737)
LUJIAZUI = (31.2397, 121.4998)


def at_local(hour: float) -> int:
    """Epoch seconds of ``hour`` o'clock local time on the test day."""
    return int(MIDNIGHT_LOCAL + hour * 3600)


def flat_model(speed: float, detour: float = 1.0, overhead: float = 0.0) -> HaversineTravelModel:
    """A model with one constant speed for every mode and hour."""
    profile = (speed,) * 24
    return HaversineTravelModel(
        speed_mps=dict.fromkeys(TransportMode, profile), detour_factor=detour, overhead_s=overhead
    )


def test_haversine_model_satisfies_protocol() -> None:
    assert isinstance(HaversineTravelModel(), TravelTimeModel)


def test_local_hour_uses_model_offset() -> None:
    assert int(local_hour(at_local(8.5))) == 8
    assert int(local_hour(at_local(8.5), utc_offset_s=0)) == 0


def test_seconds_is_detour_times_distance_over_speed_plus_overhead() -> None:
    model = flat_model(speed=5.0, detour=1.4, overhead=90.0)
    distance_m = float(haversine_m(*PEOPLES_SQUARE, *LUJIAZUI))
    got = float(model.seconds(*PEOPLES_SQUARE, *LUJIAZUI, at_local(12)))
    assert got == pytest.approx(90.0 + 1.4 * distance_m / 5.0)


def test_zero_distance_costs_only_overhead() -> None:
    model = flat_model(speed=5.0, overhead=45.0)
    assert float(model.seconds(*PEOPLES_SQUARE, *PEOPLES_SQUARE, at_local(3))) == 45.0


def test_car_rush_hour_is_slower_than_afternoon_and_night() -> None:
    model = HaversineTravelModel()
    rush = float(model.seconds(*PEOPLES_SQUARE, *LUJIAZUI, at_local(8.5), mode="car"))
    afternoon = float(model.seconds(*PEOPLES_SQUARE, *LUJIAZUI, at_local(14), mode="car"))
    night = float(model.seconds(*PEOPLES_SQUARE, *LUJIAZUI, at_local(2), mode="car"))
    assert rush > afternoon > night


def test_walk_is_slower_than_ebike() -> None:
    model = HaversineTravelModel()
    walk = model.seconds(*PEOPLES_SQUARE, *LUJIAZUI, at_local(14), mode=TransportMode.WALK)
    ebike = model.seconds(*PEOPLES_SQUARE, *LUJIAZUI, at_local(14), mode=TransportMode.EBIKE)
    assert float(walk) > float(ebike)


def test_speed_is_integrated_across_the_hour_boundary() -> None:
    # 2 m/s until 09:00, 8 m/s after: leaving at 08:50 with 3000 m of road.
    profile = tuple(2.0 if h == 8 else 8.0 for h in range(24))
    model = HaversineTravelModel(speed_mps=dict.fromkeys(TransportMode, profile), detour_factor=1.0)
    distance_m = float(haversine_m(*PEOPLES_SQUARE, *LUJIAZUI))
    first_leg_m = 600 * 2.0
    expected = 600 + (distance_m - first_leg_m) / 8.0
    got = float(model.seconds(*PEOPLES_SQUARE, *LUJIAZUI, at_local(8 + 50 / 60), mode="car"))
    assert got == pytest.approx(expected)


def test_multi_day_walk_is_finite_and_consistent() -> None:
    model = flat_model(speed=1.0)
    got = float(model.seconds(0.0, 0.0, 0.0, 90.0, at_local(7), mode="walk"))
    assert got == pytest.approx(float(haversine_m(0.0, 0.0, 0.0, 90.0)))


@given(
    depart_h=st.floats(min_value=0, max_value=48, allow_nan=False),
    delay_s=st.floats(min_value=0, max_value=7200, allow_nan=False),
    dlat=st.floats(min_value=-0.3, max_value=0.3),
    mode=st.sampled_from(list(TransportMode)),
)
def test_leaving_later_never_arrives_earlier(
    depart_h: float, delay_s: float, dlat: float, mode: TransportMode
) -> None:
    model = HaversineTravelModel()
    early = at_local(depart_h)
    late = early + int(delay_s)
    args = (PEOPLES_SQUARE[0], PEOPLES_SQUARE[1], PEOPLES_SQUARE[0] + dlat, LUJIAZUI[1])
    arrive_early = early + float(model.seconds(*args, early, mode=mode))
    arrive_late = late + float(model.seconds(*args, late, mode=mode))
    assert arrive_late >= arrive_early - 1e-6


def test_one_to_many_broadcasts_a_scalar_origin() -> None:
    model = HaversineTravelModel()
    rng = np.random.default_rng(1)
    to_lat = 31.2 + rng.random(7) * 0.1
    to_lng = 121.4 + rng.random(7) * 0.1
    many = model.seconds(*PEOPLES_SQUARE, to_lat, to_lng, at_local(9))
    one_by_one = [
        float(model.seconds(*PEOPLES_SQUARE, a, b, at_local(9)))
        for a, b in zip(to_lat, to_lng, strict=True)
    ]
    assert many.shape == (7,)
    np.testing.assert_allclose(many, one_by_one)


def test_matrix_matches_pairwise_seconds_with_per_row_mode_and_time() -> None:
    model = HaversineTravelModel(overhead_s=30.0)
    rng = np.random.default_rng(2)
    from_lat, from_lng = 31.2 + rng.random(4) * 0.1, 121.4 + rng.random(4) * 0.1
    to_lat, to_lng = 31.2 + rng.random(5) * 0.1, 121.4 + rng.random(5) * 0.1
    row_modes = np.array([0, 1, 2, 1], dtype=np.int8)
    row_at = np.array([at_local(h) for h in (7.9, 8.5, 17.95, 23.99)])
    got = model.matrix(from_lat, from_lng, to_lat, to_lng, row_at, mode=row_modes)
    assert got.shape == (4, 5)
    for i in range(4):
        row = model.seconds(
            from_lat[i],
            from_lng[i],
            to_lat,
            to_lng,
            row_at[i],
            mode=TransportMode.from_code(int(row_modes[i])),
        )
        np.testing.assert_allclose(got[i], row)


def test_mode_array_of_names_equals_codes() -> None:
    model = HaversineTravelModel()
    lat = np.full(3, LUJIAZUI[0])
    lng = np.full(3, LUJIAZUI[1])
    by_name = model.seconds(*PEOPLES_SQUARE, lat, lng, at_local(8), mode=["walk", "ebike", "car"])
    by_code = model.seconds(*PEOPLES_SQUARE, lat, lng, at_local(8), mode=[0, 1, 2])
    np.testing.assert_array_equal(by_name, by_code)
    assert len(set(by_code.tolist())) == 3


def test_mode_codes_round_trip() -> None:
    for mode in TransportMode:
        assert TransportMode.from_code(mode.code) is mode
        assert int(mode_codes(mode)) == mode.code
    with pytest.raises(InvalidParameter, match=r"mode\[1\]"):
        mode_codes([0, 7])
    with pytest.raises(InvalidParameter, match="mode must be one of"):
        mode_codes("rocket")


def test_max_speed_is_above_every_default_speed() -> None:
    profile = default_speed_profile()
    for mode in TransportMode:
        assert max_speed_mps(mode) > max(profile[mode])
    assert max_speed_mps("walk") < max_speed_mps("ebike") < max_speed_mps("car")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"speed_mps": {**default_speed_profile(), TransportMode.CAR: (5.0,) * 23}}, "speed_mps"),
        (
            {"speed_mps": {**default_speed_profile(), TransportMode.CAR: (0.0,) * 24}},
            r"\[car\]\[0\]",
        ),
        ({"speed_mps": {TransportMode.CAR: (5.0,) * 24}}, "missing modes"),
        ({"detour_factor": 0.9}, "detour_factor"),
        ({"detour_factor": {TransportMode.CAR: 1.2}}, "detour_factor is missing"),
        ({"overhead_s": -1.0}, "overhead_s"),
        ({"utc_offset_s": 20 * 3600}, "utc_offset_s"),
    ],
)
def test_invalid_parameters_name_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidParameter, match=field):
        HaversineTravelModel(**kwargs)  # type: ignore[arg-type]


def test_bad_inputs_raise_typed_errors_naming_the_index() -> None:
    model = HaversineTravelModel()
    with pytest.raises(InvalidCoordinate, match=r"to_lat\[1\]"):
        model.seconds(*PEOPLES_SQUARE, [31.0, 95.0], [121.0, 121.0], at_local(9))
    with pytest.raises(InvalidParameter, match=r"at\[0\]"):
        model.seconds(*PEOPLES_SQUARE, *LUJIAZUI, [np.nan])
    with pytest.raises(ShapeMismatch):
        model.seconds([31.0, 31.1], [121.0, 121.1], [31.0, 31.1, 31.2], [121.0] * 3, 0)
    with pytest.raises(ShapeMismatch, match="one value per origin"):
        model.matrix([31.0, 31.1], [121.0, 121.1], [31.2], [121.2], 0, mode=[0, 1, 2])
    assert issubclass(InvalidParameter, GeoError)


# ------------------------------------------------------------------------ fit

TRUE_MODEL = HaversineTravelModel(
    detour_factor={TransportMode.WALK: 1.25, TransportMode.EBIKE: 1.38, TransportMode.CAR: 1.45},
    overhead_s={TransportMode.WALK: 30.0, TransportMode.EBIKE: 90.0, TransportMode.CAR: 240.0},
)


def synthetic_trips(
    n: int,
    seed: int,
    *,
    mode: TransportMode = TransportMode.EBIKE,
    noise: float = 0.05,
    outlier_share: float = 0.0,
    skip_hours: tuple[int, ...] = (),
) -> Trips:
    """Trips around Shanghai timed by TRUE_MODEL, with relative noise and slow outliers."""
    rng = np.random.default_rng(seed)
    from_lat = 31.23 + rng.normal(0, 0.03, n)
    from_lng = 121.47 + rng.normal(0, 0.03, n)
    bearing = rng.uniform(0, 2 * np.pi, n)
    length_m = rng.uniform(300, 8000, n)
    to_lat = from_lat + length_m * np.cos(bearing) / 111_195
    to_lng = from_lng + length_m * np.sin(bearing) / (111_195 * np.cos(np.radians(from_lat)))
    hours = np.setdiff1d(np.arange(24), skip_hours)
    depart_at = (
        MIDNIGHT_LOCAL
        + rng.integers(0, 7, n) * 86_400
        + rng.choice(hours, n) * 3600
        + rng.integers(0, 3600, n)
    )
    duration_s = TRUE_MODEL.seconds(from_lat, from_lng, to_lat, to_lng, depart_at, mode=mode)
    duration_s = duration_s * (1 + rng.normal(0, noise, n))
    # Stuck in a lift or at the gate: a few trips take three times as long.
    duration_s[rng.random(n) < outlier_share] *= 3
    great_circle = haversine_m(from_lat, from_lng, to_lat, to_lng)
    road_m = great_circle * TRUE_MODEL.detour(mode) * (1 + rng.normal(0, 0.03, n))
    return Trips(from_lat, from_lng, to_lat, to_lng, depart_at, duration_s, road_m=road_m)


@pytest.mark.parametrize("mode", [TransportMode.EBIKE, TransportMode.CAR])
def test_fit_recovers_known_parameters_within_5_percent(mode: TransportMode) -> None:
    trips = synthetic_trips(2400, seed=7, mode=mode, outlier_share=0.04)
    model, report = fit(trips, mode=mode)
    np.testing.assert_allclose(model.speed_profile(mode), TRUE_MODEL.speed_profile(mode), rtol=0.05)
    assert model.detour(mode) == pytest.approx(TRUE_MODEL.detour(mode), rel=0.05)
    assert model.overhead(mode) == pytest.approx(TRUE_MODEL.overhead(mode), rel=0.05)
    assert report.detour_identified
    assert report.converged
    assert report.filled_hours == ()
    assert report.n_trips == len(trips)
    assert report.residual_s.shape == (len(trips),)


def test_fit_without_outlier_handling_is_biased_by_them() -> None:
    trips = synthetic_trips(2400, seed=7, outlier_share=0.08)
    robust, _ = fit(trips)
    plain, _ = fit(trips, loss="linear")
    true_speed = TRUE_MODEL.speed_profile("ebike")
    robust_error = np.abs(robust.speed_profile("ebike") / true_speed - 1).max()
    plain_error = np.abs(plain.speed_profile("ebike") / true_speed - 1).max()
    assert robust_error < 0.05 < plain_error


def test_fit_without_road_distance_keeps_travel_times_not_detour() -> None:
    trips = synthetic_trips(2000, seed=3, noise=0.03)
    bare = Trips(
        trips.from_lat,
        trips.from_lng,
        trips.to_lat,
        trips.to_lng,
        trips.depart_at,
        trips.duration_s,
    )
    assumed = 1.2
    model, report = fit(bare, detour_factor=assumed)
    assert not report.detour_identified
    assert model.detour("ebike") == assumed
    assert any("detour" in note for note in report.notes)
    # Only detour / speed is identified: the pace matches, so travel times do.
    true_pace = TRUE_MODEL.detour("ebike") / TRUE_MODEL.speed_profile("ebike")
    np.testing.assert_allclose(report.pace_s_per_m, true_pace, rtol=0.05)
    np.testing.assert_allclose(
        model.speed_profile("ebike"), assumed / np.asarray(report.pace_s_per_m)
    )


def test_fit_reports_goodness_of_fit() -> None:
    trips = synthetic_trips(1500, seed=5, noise=0.04)
    _, report = fit(trips)
    assert 0.9 < report.r_squared <= 1.0
    assert report.rmse_s == pytest.approx(float(np.sqrt(np.mean(report.residual_s**2))))
    assert report.trips_per_hour == tuple(
        np.bincount(local_hour(trips.depart_at), minlength=24).tolist()
    )


def test_fit_fills_empty_hours_from_neighbours_and_says_so() -> None:
    trips = synthetic_trips(2000, seed=11, noise=0.03, skip_hours=(2, 3, 4))
    model, report = fit(trips)
    assert report.filled_hours == (2, 3, 4)
    assert any("interpolated" in note for note in report.notes)
    pace = np.asarray(report.pace_s_per_m)
    for hour in (2, 3, 4):
        low, high = sorted((pace[1], pace[5]))
        assert low - 1e-12 <= pace[hour] <= high + 1e-12
    assert np.isfinite(model.speed_profile("ebike")).all()
    with pytest.raises(InsufficientTrips, match=r"\[2, 3, 4\]"):
        fit(trips, require_all_hours=True)


def test_fit_leaves_other_modes_alone() -> None:
    base = HaversineTravelModel(overhead_s=12.0)
    model, _ = fit(synthetic_trips(800, seed=2), base=base)
    for mode in (TransportMode.WALK, TransportMode.CAR):
        np.testing.assert_array_equal(model.speed_profile(mode), base.speed_profile(mode))
        assert model.overhead(mode) == base.overhead(mode)


def test_fit_refuses_too_few_trips() -> None:
    trips = synthetic_trips(10, seed=1)
    with pytest.raises(InsufficientTrips, match="min_trips"):
        fit(trips)


def test_trips_validation_names_field_and_index() -> None:
    good = synthetic_trips(5, seed=0)
    with pytest.raises(InvalidParameter, match=r"duration_s\[2\]"):
        Trips(
            good.from_lat, good.from_lng, good.to_lat, good.to_lng, good.depart_at, [1, 2, -3, 4, 5]
        )
    with pytest.raises(ShapeMismatch, match="to_lng"):
        Trips(
            good.from_lat,
            good.from_lng,
            good.to_lat,
            good.to_lng[:3],
            good.depart_at,
            good.duration_s,
        )
    with pytest.raises(InvalidParameter, match="trips must be a Trips"):
        fit("not trips")  # type: ignore[arg-type]


def test_models_compare_and_hash_by_parameters() -> None:
    shared = HaversineTravelModel(detour_factor=1.3)
    per_mode = HaversineTravelModel(detour_factor=dict.fromkeys(TransportMode, 1.3))
    assert shared == per_mode
    assert hash(shared) == hash(per_mode)
    assert shared != HaversineTravelModel(detour_factor=1.31)
    assert len({shared, per_mode, HaversineTravelModel()}) == 2


@given(
    near_m=st.floats(min_value=0, max_value=20_000),
    extra_m=st.floats(min_value=0, max_value=20_000),
    depart_h=st.floats(min_value=0, max_value=24, exclude_max=True),
    mode=st.sampled_from(list(TransportMode)),
)
def test_farther_never_takes_less_time(
    near_m: float, extra_m: float, depart_h: float, mode: TransportMode
) -> None:
    model = HaversineTravelModel(overhead_s=20.0)
    lat0, lng0 = PEOPLES_SQUARE
    to_lat = lat0 + np.array([near_m, near_m + extra_m]) / 111_195.0
    to_lng = np.full(2, lng0)
    near, far = model.seconds(lat0, lng0, to_lat, to_lng, at_local(depart_h), mode=mode)
    assert far >= near - 1e-9
    assert near >= 20.0


@given(
    seed=st.integers(min_value=0, max_value=2**32 - 1),
    n=st.integers(min_value=1, max_value=6),
    m=st.integers(min_value=1, max_value=6),
)
def test_matrix_equals_broadcast_seconds(seed: int, n: int, m: int) -> None:
    model = HaversineTravelModel()
    rng = np.random.default_rng(seed)
    from_lat, from_lng = 31.0 + rng.random(n) * 0.5, 121.2 + rng.random(n) * 0.5
    to_lat, to_lng = 31.0 + rng.random(m) * 0.5, 121.2 + rng.random(m) * 0.5
    at = MIDNIGHT_LOCAL + rng.integers(0, 86_400, n)
    modes = rng.integers(0, 3, n)
    got = model.matrix(from_lat, from_lng, to_lat, to_lng, at, mode=modes)
    expected = model.seconds(
        from_lat[:, None], from_lng[:, None], to_lat, to_lng, at[:, None], mode=modes[:, None]
    )
    np.testing.assert_allclose(got, expected)


def test_fit_rejects_an_unknown_loss() -> None:
    with pytest.raises(InvalidParameter, match="loss"):
        fit(synthetic_trips(50, seed=0), loss="l0")


# ------------------------------------------------- fast paths vs hour stepping


def reference_seconds(
    model: HaversineTravelModel,
    from_lat: float,
    from_lng: float,
    to_lat: float,
    to_lng: float,
    at: float,
    mode: TransportMode,
) -> float:
    """One trip stepped hour by hour in plain Python: slow, and obviously right.

    Whole days are skipped first (any 24 h covers the day's distance), then the
    ride advances boundary by boundary at each hour's speed; overhead comes after.
    """
    road_m = float(haversine_m(from_lat, from_lng, to_lat, to_lng)) * model.detour(mode)
    speeds = [float(v) for v in model.speed_profile(mode)]
    at_floor = np.floor(at)
    clock = float((at_floor + model.utc_offset_s) % 86_400 + (at - at_floor))
    elapsed = 0.0
    day_m = sum(speeds) * 3600
    whole_days = np.floor(road_m / day_m)
    elapsed += whole_days * 86_400
    road_m -= whole_days * day_m
    while True:
        hour = min(int(clock // 3600), 23)
        to_boundary = (hour + 1) * 3600 - clock
        if road_m <= speeds[hour] * to_boundary:
            return elapsed + road_m / speeds[hour] + model.overhead(mode)
        elapsed += to_boundary
        road_m -= speeds[hour] * to_boundary
        clock = (clock + to_boundary) % 86_400


def odd_model(seed: int) -> HaversineTravelModel:
    """Random non-round hourly speeds (so no sum is exact), detours and overheads."""
    rng = np.random.default_rng(seed)
    low = {TransportMode.WALK: 0.8, TransportMode.EBIKE: 2.5, TransportMode.CAR: 3.0}
    speeds = {m: tuple(low[m] + rng.random(24) * 2 * low[m]) for m in TransportMode}
    return HaversineTravelModel(
        speed_mps=speeds,
        detour_factor={m: 1.0 + float(rng.random()) for m in TransportMode},
        overhead_s={m: float(rng.random() * 300) for m in TransportMode},
    )


def tricky_departures(rng: np.random.Generator, n: int) -> np.ndarray:
    """Departures at, just before and just after hour boundaries and midnight, and random."""
    boundary = MIDNIGHT_LOCAL + rng.integers(0, 48, n) * 3600.0
    offset = rng.choice([-1.0, -1e-3, 0.0, 1e-3, 0.5, 1.0], n)
    random = MIDNIGHT_LOCAL + rng.random(n) * 3 * 86_400
    return np.where(rng.random(n) < 0.6, boundary + offset, random)


def trip_ends(rng: np.random.Generator, n: int, spread_deg: float) -> tuple[np.ndarray, ...]:
    """Points around Shanghai; a few coincide (zero length) or lie far away (days of riding)."""
    lat = 31.2 + (rng.random(n) - 0.5) * spread_deg
    lng = 121.4 + (rng.random(n) - 0.5) * spread_deg
    far = rng.random(n) < 0.1
    lat[far] += rng.uniform(-3.0, 3.0, far.sum())
    lng[far] += rng.uniform(-4.0, 4.0, far.sum())
    return lat, lng


MATCH = {"rtol": 1e-9, "atol": 1e-8}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matrix_equals_hour_stepping_reference(seed: int) -> None:
    model = HaversineTravelModel(overhead_s=30.0) if seed == 0 else odd_model(seed)
    rng = np.random.default_rng(seed)
    n, m = 24, 40
    from_lat, from_lng = trip_ends(rng, n, 0.4)
    to_lat, to_lng = trip_ends(rng, m, 0.4)
    to_lat[:3], to_lng[:3] = from_lat[:3], from_lng[:3]  # zero-length trips
    at = tricky_departures(rng, n)
    modes = rng.integers(0, 3, n)
    got = model.matrix(from_lat, from_lng, to_lat, to_lng, at, mode=modes)
    expected = np.array(
        [
            [
                reference_seconds(
                    model,
                    from_lat[i],
                    from_lng[i],
                    to_lat[j],
                    to_lng[j],
                    at[i],
                    TransportMode.from_code(int(modes[i])),
                )
                for j in range(m)
            ]
            for i in range(n)
        ]
    )
    assert (expected - model.overhead("walk") > 86_400).any()  # rides longer than a day
    np.testing.assert_allclose(got, expected, **MATCH)
    # One mode and one time for the whole matrix.
    for mode in TransportMode:
        one = model.matrix(from_lat, from_lng, to_lat, to_lng, at[5], mode=mode)
        ref = [
            reference_seconds(model, from_lat[2], from_lng[2], to_lat[j], to_lng[j], at[5], mode)
            for j in range(m)
        ]
        np.testing.assert_allclose(one[2], ref, **MATCH)


@pytest.mark.parametrize("seed", [3, 4])
def test_seconds_equals_hour_stepping_reference(seed: int) -> None:
    model = odd_model(seed) if seed == 3 else HaversineTravelModel(overhead_s=10.0)
    rng = np.random.default_rng(seed)
    n = 600
    from_lat, from_lng = trip_ends(rng, n, 0.5)
    to_lat, to_lng = trip_ends(rng, n, 0.5)
    at = tricky_departures(rng, n)
    modes = rng.integers(0, 3, n)
    got = model.seconds(from_lat, from_lng, to_lat, to_lng, at, mode=modes)
    expected = [
        reference_seconds(
            model,
            from_lat[k],
            from_lng[k],
            to_lat[k],
            to_lng[k],
            at[k],
            TransportMode.from_code(int(modes[k])),
        )
        for k in range(n)
    ]
    np.testing.assert_allclose(got, expected, **MATCH)


def test_matrix_with_per_pair_times_and_modes_equals_reference(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import geo.travel.model as travel_model

    monkeypatch.setattr(travel_model, "_BLOCK_ELEMENTS", 7)  # several row blocks, a ragged last one
    model = odd_model(5)
    rng = np.random.default_rng(5)
    n, m = 9, 4
    from_lat, from_lng = trip_ends(rng, n, 0.4)
    to_lat, to_lng = trip_ends(rng, m, 0.4)
    at = tricky_departures(rng, n * m).reshape(n, m)
    modes = rng.integers(0, 3, (n, m))
    got = model.matrix(from_lat, from_lng, to_lat, to_lng, at, mode=modes)
    by_row = model.matrix(from_lat, from_lng, to_lat, to_lng, at[:, 0], mode=modes[:, 0])
    for i in range(n):
        for j in range(m):
            mode = TransportMode.from_code(int(modes[i, j]))
            ref = reference_seconds(
                model, from_lat[i], from_lng[i], to_lat[j], to_lng[j], at[i, j], mode
            )
            np.testing.assert_allclose(got[i, j], ref, **MATCH)
        mode0 = TransportMode.from_code(int(modes[i, 0]))
        ref0 = reference_seconds(
            model, from_lat[i], from_lng[i], to_lat[0], to_lng[0], at[i, 0], mode0
        )
        np.testing.assert_allclose(by_row[i, 0], ref0, **MATCH)


def test_extreme_speed_profile_takes_the_corrected_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    import geo.travel.kernels as kernels

    # Few wide distance cells: the final-hour lookup is off by several hours and must settle.
    monkeypatch.setattr(kernels, "_MAX_CELLS", 3)
    profile = tuple(0.05 if h % 5 == 0 else 30.0 for h in range(24))
    model = HaversineTravelModel(speed_mps=dict.fromkeys(TransportMode, profile), overhead_s=5.0)
    rng = np.random.default_rng(6)
    n = 300
    from_lat, from_lng = trip_ends(rng, n, 2.0)
    to_lat, to_lng = trip_ends(rng, n, 2.0)
    at = tricky_departures(rng, n)
    got = model.seconds(from_lat, from_lng, to_lat, to_lng, at, mode="car")
    expected = [
        reference_seconds(
            model, from_lat[k], from_lng[k], to_lat[k], to_lng[k], at[k], TransportMode.CAR
        )
        for k in range(n)
    ]
    np.testing.assert_allclose(got, expected, **MATCH)
    grid = model.matrix(from_lat[:10], from_lng[:10], to_lat, to_lng, at[:10], mode="car")
    np.testing.assert_allclose(
        grid[:, 0],
        [
            reference_seconds(
                model, from_lat[i], from_lng[i], to_lat[0], to_lng[0], at[i], TransportMode.CAR
            )
            for i in range(10)
        ],
        **MATCH,
    )


# ------------------------------------------------- scalar fast path vs array path


def scalar_path_model(kind: str) -> HaversineTravelModel:
    """Hourly speeds (the default), random odd ones, or one flat speed per mode."""
    if kind == "default":
        overhead = {TransportMode.WALK: 0.0, TransportMode.EBIKE: 20.0, TransportMode.CAR: 90.0}
        return HaversineTravelModel(overhead_s=overhead)
    if kind == "odd":
        return odd_model(8)
    return flat_model(3.0, detour=1.2, overhead=5.0)


@pytest.mark.parametrize("kind", ["default", "odd", "flat"])
@pytest.mark.parametrize("mode", list(TransportMode))
def test_seconds_one_equals_the_array_path(
    kind: str, mode: TransportMode, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = scalar_path_model(kind)
    rng = np.random.default_rng(20 + mode.code)
    n = 600
    from_lat, from_lng = trip_ends(rng, n, 0.5)
    to_lat, to_lng = trip_ends(rng, n, 0.5)
    to_lat[:20], to_lng[:20] = from_lat[:20], from_lng[:20]  # zero length
    # 100 m to 10 km short of the antipode: months of riding, many whole days.
    miss = rng.uniform(1e-3, 0.1, (2, 20)) * rng.choice([-1.0, 1.0], (2, 20))
    to_lat[20:40] = -from_lat[20:40] + miss[0]
    to_lng[20:40] = from_lng[20:40] - 180.0 + miss[1]
    from_lat[40:45], to_lat[40:45] = 90.0, 89.99  # at the pole
    from_lng[45:50], to_lng[45:50] = 179.999, -179.999  # across the antimeridian
    from_lat[45:50] = to_lat[45:50] = -12.0
    # Departures at, just before and after hour boundaries and midnights over three days,
    # plus fractional seconds, 1970 and before, and far ahead.
    at = tricky_departures(rng, n)
    at[50:60] = MIDNIGHT_LOCAL + rng.random(10) * 3 * 86_400
    at[60:65] = [0.0, -1.0, -86_399.5, 4.1e9 + 0.25, 1e12]
    array = model.seconds(from_lat, from_lng, to_lat, to_lng, at, mode=mode)
    by_codes = model.seconds(from_lat, from_lng, to_lat, to_lng, at, mode=np.full(n, mode.code))
    assert (array[20:40] > 86_400).all()

    def no_array_path(*args: object, **kwargs: object) -> np.ndarray:
        raise AssertionError("seconds_one fell back to the array path")

    monkeypatch.setattr(HaversineTravelModel, "seconds", no_array_path)
    trips = zip(*(a.tolist() for a in (from_lat, from_lng, to_lat, to_lng, at)), strict=True)
    one = [
        model.seconds_one(a, b, c, d, e, mode=mode if k % 2 else mode.value)
        for k, (a, b, c, d, e) in enumerate(trips)
    ]
    assert all(type(s) is float for s in one)
    np.testing.assert_allclose(one, array, rtol=1e-9, atol=0.0)
    np.testing.assert_allclose(one, by_codes, rtol=1e-9, atol=0.0)
    assert [s == model.overhead(mode) for s in one[:20]] == [True] * 20


def test_seconds_one_across_hour_boundaries_is_continuous_like_the_array_path() -> None:
    # Departures swept through every local hour of two days in 61 s steps, 3 km car trips.
    model = HaversineTravelModel()
    at = MIDNIGHT_LOCAL - 3600.0 + np.arange(0.0, 2 * 86_400 + 7200, 61.0)
    to_lat = PEOPLES_SQUARE[0] + 3000 / 111_195.0
    array = model.seconds(*PEOPLES_SQUARE, to_lat, PEOPLES_SQUARE[1], at, mode="car")
    one = [model.seconds_one(*PEOPLES_SQUARE, to_lat, PEOPLES_SQUARE[1], a, "car") for a in at]
    np.testing.assert_allclose(one, array, rtol=1e-9, atol=0.0)
    assert len(set(np.round(array))) > 4  # the hourly speeds matter here


@pytest.mark.parametrize(
    ("trip", "mode"),
    [
        ((float("nan"), 121.0, 31.0, 121.0, 1.7e9), "ebike"),
        ((91.0, 121.0, 31.0, 121.0, 1.7e9), "ebike"),
        ((31.0, -180.5, 31.0, 121.0, 1.7e9), "ebike"),
        ((31.0, 121.0, -90.01, 121.0, 1.7e9), "ebike"),
        ((31.0, 121.0, 31.0, float("inf"), 1.7e9), "ebike"),
        ((31.0, 121.0, 31.0, 121.0, float("inf")), "ebike"),
        ((31.0, 121.0, 31.0, 121.0, float("nan")), "car"),
        ((31.0, 121.0, 31.0, 121.0, 1.7e9), "bus"),
        (("north", 121.0, 31.0, 121.0, 1.7e9), "walk"),
        (([31.0, 31.1], 121.0, 31.0, 121.0, 1.7e9), "walk"),
    ],
)
def test_seconds_one_raises_like_seconds(trip: tuple[object, ...], mode: object) -> None:
    model = HaversineTravelModel()
    with pytest.raises(GeoError) as array_error:
        model.seconds(*trip, mode=mode)  # type: ignore[arg-type, misc]
    with pytest.raises(type(array_error.value), match=re.escape(str(array_error.value))):
        model.seconds_one(*trip, mode=mode)  # type: ignore[arg-type, misc]


def test_seconds_one_takes_other_scalars_through_the_array_path() -> None:
    model = HaversineTravelModel()
    at = at_local(8.9)
    for trip in [
        (31, 121, 31.1, 121.1, at),  # ints
        (np.float64(31.2), np.float64(121.4), 31.25, 121.5, np.int64(at)),
        (np.array(31.2), 121.4, 31.25, 121.5, float(at)),
    ]:
        one = model.seconds_one(*trip, mode="car")  # type: ignore[arg-type]
        assert type(one) is float
        assert one == float(model.seconds(*trip, mode="car"))  # type: ignore[arg-type]
    assert model.seconds_one(*PEOPLES_SQUARE, *LUJIAZUI, at, 2) == float(  # type: ignore[arg-type]
        model.seconds(*PEOPLES_SQUARE, *LUJIAZUI, at, mode=2)
    )
    with pytest.raises(ShapeMismatch, match="one trip"):
        model.seconds_one(*PEOPLES_SQUARE, *LUJIAZUI, at, mode=[0, 1])  # type: ignore[arg-type]

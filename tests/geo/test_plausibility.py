"""One plausibility rule for a fix: ingest's walk, the ETA tracker and arrival never disagree."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geo.errors import InvalidParameter
from geo.eta import EtaConfig, EtaTracker, PingRejection
from geo.plausibility import (
    ANY_VEHICLE_MPS,
    DEFAULT_ACCURACY_M,
    Fix,
    judge,
    reachable,
    reachable_steps,
)
from geo.projection import haversine_one_m
from geo.travel import HaversineTravelModel, TransportMode, max_speed_mps

DEST = (31.23, 121.48)
T0 = 1.8e9


def _north(lat: float, metres: float) -> float:
    return lat + metres / 111_320.0


def test_reachable_counts_both_accuracy_radii_and_needs_time_to_pass() -> None:
    a = Fix(31.2, 121.4, T0, 20.0)
    # 190 m in 10 s is 19 m/s, but 150 m of it may be GPS error: 4 m/s of real riding.
    b = Fix(_north(31.2, 190.0), 121.4, T0 + 10, 130.0)
    assert reachable(a, b, max_speed_mps("ebike"))
    assert not reachable(a, Fix(b.lat, b.lng, T0 + 10, 0.0), max_speed_mps("ebike"))
    assert not reachable(a, Fix(a.lat, a.lng, T0, 0.0), 100.0)  # no time passed


def test_a_taxi_stretch_is_followed_within_two_fixes() -> None:
    kept, pending = Fix(31.17, 121.48, T0, 10.0), ()
    lat, accepted = kept.lat, []
    for i in range(1, 13):  # 25 m/s on an e-bike: every step too fast for the mode
        lat = _north(lat, 250.0)
        fix = Fix(lat, 121.48, T0 + 10 * i, 10.0)
        verdict = judge(kept, pending, fix, TransportMode.EBIKE)
        pending = verdict.pending
        if verdict.accepted:
            kept = fix
        accepted.append(verdict.accepted)
        assert verdict.accepted == verdict.reanchored
    assert accepted == [False, True] * 6


def test_a_stray_fix_is_forgotten_once_the_track_goes_on() -> None:
    kept = Fix(31.2, 121.4, T0, 10.0)
    stray = judge(kept, (), Fix(31.3, 121.4, T0 + 5, 10.0), "ebike")
    assert not stray.accepted
    assert len(stray.pending) == 1
    back = judge(kept, stray.pending, Fix(_north(31.2, 40.0), 121.4, T0 + 10, 10.0), "ebike")
    assert back.accepted
    assert not back.reanchored
    assert back.pending == ()


def test_two_stray_fixes_that_disagree_never_re_anchor() -> None:
    kept = Fix(31.2, 121.4, T0, 10.0)
    first = judge(kept, (), Fix(31.3, 121.4, T0 + 5, 10.0), "ebike")
    # 20 km from the first stray fix 5 s later: faster than any vehicle.
    second = judge(kept, first.pending, Fix(31.12, 121.4, T0 + 10, 10.0), "ebike")
    assert not second.accepted
    assert len(second.pending) == 1  # the chain starts again from the newer stray fix
    with pytest.raises(InvalidParameter, match="reanchor_after"):
        judge(kept, (), kept, "ebike", reanchor_after=0)


@st.composite
def _tracks(draw: st.DrawFn) -> tuple[str, list[Fix]]:
    mode = draw(st.sampled_from(["walk", "ebike", "car"]))
    n = draw(st.integers(2, 30))
    lat, lng, t = 31.17, 121.48, T0
    out = [Fix(lat, lng, t, DEFAULT_ACCURACY_M)]
    for _ in range(n):
        dt = draw(st.floats(1.0, 120.0))
        speed = draw(st.sampled_from([0.0, 2.0, 8.0, 14.0, 30.0, 60.0, 400.0]))
        heading = draw(st.floats(0.0, 2 * np.pi))
        metres = speed * dt
        lat = lat + metres * np.cos(heading) / 111_320.0
        lng = lng + metres * np.sin(heading) / (111_320.0 * np.cos(np.radians(lat)))
        t += dt
        acc = draw(st.sampled_from([DEFAULT_ACCURACY_M, 5.0, 50.0, 150.0]))
        out.append(Fix(float(lat), float(lng), t, acc))
    return mode, out


@settings(max_examples=150, deadline=None)
@given(_tracks())
def test_ingest_tracker_and_arrival_never_disagree_on_a_fix(track: tuple[str, list[Fix]]) -> None:
    mode, fixes = track
    start, rest = fixes[0], fixes[1:]
    model = HaversineTravelModel()
    tracker = EtaTracker.start(
        model, start.lat, start.lng, *DEST, start.t, mode=mode, accuracy_m=start.accuracy_m,
        config=EtaConfig(arrive_dwell_s=1e9),
    )  # fmt: skip
    kept, pending = start, ()
    radius = 200.0
    for fix in rest:
        # Ingest: the rule against the worker's position and the fixes held back.
        verdict = judge(kept, pending, fix, mode)
        pending = verdict.pending
        if verdict.accepted:
            kept = fix
        # The tracker judging on its own, with the same rule and mode.
        update = tracker.update(fix.lat, fix.lng, fix.t, fix.accuracy_m)
        assert (update.rejected is None) == verdict.accepted
        assert update.reanchored == verdict.reanchored
        if not verdict.accepted:
            assert update.rejected is PingRejection.IMPOSSIBLE_JUMP
        # What the stream shows is where arrival looks.
        s = tracker.state
        assert (s.lat, s.lng, s.t) == (kept.lat, kept.lng, kept.t)
        shown_inside = haversine_one_m(s.lat, s.lng, *DEST) <= radius
        assert shown_inside == (haversine_one_m(kept.lat, kept.lng, *DEST) <= radius)


@settings(max_examples=100, deadline=None)
@given(_tracks())
def test_the_vectorised_steps_are_the_rule(track: tuple[str, list[Fix]]) -> None:
    mode, fixes = track
    steps = reachable_steps(
        [f.lat for f in fixes], [f.lng for f in fixes], [f.t for f in fixes],
        [f.accuracy_m for f in fixes], max_speed_mps(mode),
    )  # fmt: skip
    want = [reachable(a, b, max_speed_mps(mode)) for a, b in itertools.pairwise(fixes)]
    assert steps.tolist() == want
    assert max_speed_mps(mode) <= ANY_VEHICLE_MPS

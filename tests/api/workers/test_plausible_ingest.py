"""Ingest's own walk over a worker's fixes agrees with the ETA tracker on every fix.

The ping path judges fixes in batches (a vectorised fast path, then one by one with the
fixes held back in the live state); the tracker judges them one at a time. Over random
tracks, split into random batches, both keep the same fixes and re-anchor on the same ones.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from api.core.live import MemoryLiveState
from api.workers.service import PingReason, _walk_track
from geo.eta import EtaConfig, EtaTracker, PingRejection
from geo.plausibility import Fix
from geo.travel import HaversineTravelModel

DEST = (31.23, 121.48)


@dataclass
class _Live:
    state: MemoryLiveState


@st.composite
def _tracks(draw: st.DrawFn) -> tuple[str, list[Fix], list[int]]:
    mode = draw(st.sampled_from(["walk", "ebike", "car"]))
    n = draw(st.integers(2, 40))
    lat, lng, t = 31.17, 121.48, 1.8e9
    fixes = [Fix(lat, lng, t, 15.0)]
    for _ in range(n):
        dt = draw(st.floats(1.0, 90.0))
        speed = draw(st.sampled_from([0.0, 3.0, 12.0, 25.0, 45.0, 500.0]))
        heading = draw(st.floats(0.0, 2 * np.pi))
        lat += speed * dt * np.cos(heading) / 111_320.0
        lng += speed * dt * np.sin(heading) / (111_320.0 * np.cos(np.radians(lat)))
        t += dt
        fixes.append(Fix(float(lat), float(lng), t, draw(st.sampled_from([5.0, 15.0, 80.0]))))
    cuts = sorted(draw(st.lists(st.integers(1, n), max_size=6, unique=True)))
    return mode, fixes, cuts


@settings(max_examples=120, deadline=None)
@given(_tracks())
def test_ingest_batches_and_the_tracker_keep_the_same_fixes(
    track: tuple[str, list[Fix], list[int]],
) -> None:
    mode, fixes, cuts = track
    start, rest = fixes[0], fixes[1:]
    tracker = EtaTracker.start(
        HaversineTravelModel(), start.lat, start.lng, *DEST, start.t, mode=mode,
        accuracy_m=start.accuracy_m, config=EtaConfig(arrive_dwell_s=1e9),
    )  # fmt: skip
    live = _Live(MemoryLiveState())
    kept = start
    bounds = [0, *[c for c in cuts if c < len(rest)], len(rest)]
    for lo, hi in itertools.pairwise(bounds):
        batch = rest[lo:hi]
        if not batch:
            continue
        arrays = [np.array([getattr(f, k) for f in batch]) for k in ("lat", "lng", "t")]
        acc = np.array([f.accuracy_m for f in batch])
        walk = asyncio.run(_walk_track(live, 7, mode, kept, *arrays, acc))  # type: ignore[arg-type]
        if walk.held is not None:
            asyncio.run(live.state.hold_fixes(7, walk.held))
        reanchored_here = False
        for fix, reason in zip(batch, walk.reasons.tolist(), strict=True):
            update = tracker.update(fix.lat, fix.lng, fix.t, fix.accuracy_m)
            assert (reason == "") == (update.rejected is None)
            if reason:
                assert reason == PingReason.IMPOSSIBLE_JUMP
                assert update.rejected is PingRejection.IMPOSSIBLE_JUMP
            else:
                kept = fix
                reanchored_here = reanchored_here or update.reanchored
        assert walk.reanchored == reanchored_here
        # The position arrival reads (ingest's kept fix) is the one the stream shows.
        s = tracker.state
        assert (s.lat, s.lng, s.t) == (kept.lat, kept.lng, kept.t)

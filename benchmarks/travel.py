"""Travel-time matrix and pairwise seconds of ``HaversineTravelModel`` vs a plain model, same run.

The dispatch benchmark's dense baseline builds a workers × orders travel-time
matrix; this measures that matrix alone. Ours integrates each mode's hourly
speed profile across hour boundaries (FIFO); the baseline is what a user
would write instead: haversine × detour / one constant speed per mode, no
hour profile, computed in row blocks into one preallocated matrix (the
numpy a careful user writes, not a strawman).

Points are uniform in a 40 km square around Shanghai, deterministic for a
seed; each worker (matrix row) has its own transport mode (walk 20 %, e-bike
70 %, car 10 %) and departs at ``--at-hour`` local time, so most e-bike and
walk rows cross hour boundaries. ``seconds`` is timed on ``--pairs`` random
pairs with per-pair departure times over a whole day and per-pair modes.

Usage: daojia bench travel [--orders N] [--workers M] [--pairs P] [--at-hour H]
       [--seed S] [--repeat K] [--json]
"""

from __future__ import annotations

import argparse
import gc
from datetime import UTC, datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

from benchmarks._common import Timing, add_common_args, emit, machine, peak_rss_mb, timed
from geo.projection import haversine_m
from geo.travel import CHINA_UTC_OFFSET_S, HaversineTravelModel, TransportMode

FloatArray = NDArray[np.float64]

CENTRE_LAT, CENTRE_LNG = 31.2304, 121.4737
HALF_SIDE_M = 20_000.0
_M_PER_DEG_LAT = 111_195.0
#: Share of walk, e-bike and car workers.
MODE_SHARES = (0.2, 0.7, 0.1)
#: 2026-01-05 00:00 local time (UTC+8), epoch seconds.
MIDNIGHT_LOCAL_S = int(datetime(2026, 1, 5, tzinfo=UTC).timestamp()) - CHINA_UTC_OFFSET_S
#: Pairs per block of the plain baseline (temporaries stay small).
BASELINE_BLOCK = 2_000_000


def city_points(n: int, rng: np.random.Generator) -> tuple[FloatArray, FloatArray]:
    """``n`` points uniform in the 40 km square around the centre, degrees."""
    m_per_deg_lng = _M_PER_DEG_LAT * np.cos(np.radians(CENTRE_LAT))
    x = rng.uniform(-HALF_SIDE_M, HALF_SIDE_M, n)
    y = rng.uniform(-HALF_SIDE_M, HALF_SIDE_M, n)
    return CENTRE_LAT + y / _M_PER_DEG_LAT, CENTRE_LNG + x / m_per_deg_lng


def plain_speed_mps(model: HaversineTravelModel) -> FloatArray:
    """One constant speed per mode (the day's mean): the hour-blind model's speeds."""
    return np.array([float(model.speed_profile(mode).mean()) for mode in TransportMode])


def plain_matrix(
    model: HaversineTravelModel,
    from_lat: FloatArray,
    from_lng: FloatArray,
    to_lat: FloatArray,
    to_lng: FloatArray,
    codes: NDArray[np.int8],
) -> FloatArray:
    """Baseline matrix: haversine × detour / constant speed + overhead, per-row mode, seconds."""
    speed = plain_speed_mps(model)
    detour = np.array([model.detour(mode) for mode in TransportMode])
    overhead = np.array([model.overhead(mode) for mode in TransportMode])
    n, m = from_lat.shape[0], to_lat.shape[0]
    out = np.empty((n, m))
    factor = (detour / speed)[codes][:, None]
    step = max(1, BASELINE_BLOCK // max(m, 1))
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        block = haversine_m(from_lat[lo:hi, None], from_lng[lo:hi, None], to_lat, to_lng)
        np.multiply(block, factor[lo:hi], out=out[lo:hi])
        out[lo:hi] += overhead[codes[lo:hi]][:, None]
    return out


def plain_seconds(
    model: HaversineTravelModel,
    from_lat: FloatArray,
    from_lng: FloatArray,
    to_lat: FloatArray,
    to_lng: FloatArray,
    codes: NDArray[np.int8],
) -> FloatArray:
    """Baseline pairwise seconds: haversine × detour / constant speed + overhead."""
    speed = plain_speed_mps(model)
    detour = np.array([model.detour(mode) for mode in TransportMode])
    overhead = np.array([model.overhead(mode) for mode in TransportMode])
    great_circle = haversine_m(from_lat, from_lng, to_lat, to_lng)
    return np.asarray(great_circle * (detour / speed)[codes] + overhead[codes])


def _timing(t: Timing, pairs: int) -> dict[str, float]:
    return {**t.as_dict(), "pairs_per_s": pairs / t.median}


def matrix_case(n_workers: int, n_orders: int, at_hour: float, seed: int, repeat: int) -> Any:
    """Time ours vs the plain baseline on one workers × orders matrix."""
    rng = np.random.default_rng(seed)
    w_lat, w_lng = city_points(n_workers, rng)
    o_lat, o_lng = city_points(n_orders, rng)
    codes = rng.choice(3, size=n_workers, p=MODE_SHARES).astype(np.int8)
    at = MIDNIGHT_LOCAL_S + round(at_hour * 3600)
    model = HaversineTravelModel()
    pairs = n_workers * n_orders
    gc.collect()
    ours_t, ours = timed(lambda: model.matrix(w_lat, w_lng, o_lat, o_lng, at, mode=codes), repeat)
    ours_mean = float(ours.mean())
    del ours
    gc.collect()
    base_t, base = timed(lambda: plain_matrix(model, w_lat, w_lng, o_lat, o_lng, codes), repeat)
    base_mean = float(base.mean())
    del base
    return {
        "shape": [n_workers, n_orders],
        "pairs": pairs,
        "ours": _timing(ours_t, pairs),
        "plain_baseline": _timing(base_t, pairs),
        "speedup": base_t.median / ours_t.median,
        "mean_travel_s_ours": ours_mean,
        "mean_travel_s_plain": base_mean,
    }


def seconds_case(n_pairs: int, seed: int, repeat: int) -> Any:
    """Time ``seconds`` on random pairs with per-pair departure times and modes."""
    rng = np.random.default_rng(seed + 1)
    from_lat, from_lng = city_points(n_pairs, rng)
    to_lat, to_lng = city_points(n_pairs, rng)
    at = MIDNIGHT_LOCAL_S + rng.integers(0, 86_400, n_pairs)
    codes = rng.choice(3, size=n_pairs, p=MODE_SHARES).astype(np.int8)
    model = HaversineTravelModel()
    gc.collect()
    ours_t, _ = timed(
        lambda: model.seconds(from_lat, from_lng, to_lat, to_lng, at, mode=codes), repeat
    )
    base_t, _ = timed(
        lambda: plain_seconds(model, from_lat, from_lng, to_lat, to_lng, codes), repeat
    )
    return {
        "pairs": n_pairs,
        "ours": _timing(ours_t, n_pairs),
        "plain_baseline": _timing(base_t, n_pairs),
        "speedup": base_t.median / ours_t.median,
    }


def _row(case: str, timing: dict[str, float], speedup: float | None) -> dict[str, Any]:
    return {
        "case": case,
        "median_s": timing["median_s"],
        "min_s": timing["min_s"],
        "max_s": timing["max_s"],
        "Mpairs/s": timing["pairs_per_s"] / 1e6,
        "speedup": speedup,
    }


def main(argv: list[str]) -> int:
    """Run the travel benchmark; prints a table or one JSON object."""
    parser = argparse.ArgumentParser(prog="daojia bench travel", description=__doc__)
    parser.add_argument("--orders", type=int, default=5_000, help="matrix columns (orders)")
    parser.add_argument("--workers", type=int, default=20_000, help="matrix rows (workers)")
    parser.add_argument("--pairs", type=int, default=1_000_000, help="pairs for seconds()")
    parser.add_argument(
        "--at-hour", type=float, default=16.5, help="local departure hour of the matrix rows"
    )
    add_common_args(parser)
    args = parser.parse_args(argv)
    for name in ("orders", "workers", "pairs", "repeat"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    if not 0 <= args.at_hour < 24:
        parser.error(f"--at-hour must be in [0, 24), got {args.at_hour}")

    matrix = matrix_case(args.workers, args.orders, args.at_hour, args.seed, args.repeat)
    seconds = seconds_case(args.pairs, args.seed, args.repeat)
    out: dict[str, Any] = {
        "benchmark": "travel",
        "orders": args.orders,
        "workers": args.workers,
        "pairs": args.pairs,
        "at_hour": args.at_hour,
        "seed": args.seed,
        "repeat": args.repeat,
        "matrix": matrix,
        "seconds": seconds,
        "peak_rss_mb": peak_rss_mb(),
        "machine": machine(),
    }
    rows = [
        _row("matrix ours (hourly, FIFO)", matrix["ours"], matrix["speedup"]),
        _row("matrix plain (constant speed)", matrix["plain_baseline"], None),
        _row("seconds ours", seconds["ours"], seconds["speedup"]),
        _row("seconds plain", seconds["plain_baseline"], None),
    ]
    emit(out, rows, args.json, f"travel: {args.workers} workers × {args.orders} orders")
    return 0

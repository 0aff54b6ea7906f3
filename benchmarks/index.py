"""WorkerIndex batch moves vs a per-ping Python loop, same pings, same run.

Workers start spread over a 40 km square around Shanghai; each ping moves a random worker
by a few tens of metres (a rider between two GPS fixes), so most pings stay in their H3
cell and some cross into the next. Ours applies each batch with one ``move_many`` call;
the baseline is the natural hand-written structure: a dict of per-cell sets updated ping by
ping with ``h3.latlng_to_cell``. After every batch both answer the same small radius query
(so lazily rebuilt buckets are paid for), and at the end their cells are compared.

Usage: daojia bench index [--moves 1000000] [--batch 100000] [--workers 200000] [--json]
"""

from __future__ import annotations

import argparse
import itertools
import time
from typing import Any

import h3.api.basic_int as h3i
import numpy as np
from numpy.typing import NDArray

from benchmarks._common import add_common_args, emit, machine, peak_rss_mb, timed
from dispatch.index import DEFAULT_RESOLUTION, WorkerIndex

CENTRE_LAT, CENTRE_LNG = 31.2304, 121.4737
HALF_SIDE_DEG = 0.18
PING_STEP_DEG = 0.0004  # ~40 m between fixes
QUERY_ORIGINS = 100
QUERY_RADIUS_M = 1000.0


def pings(
    n_workers: int, n_moves: int, seed: int
) -> tuple[
    NDArray[np.float64],
    NDArray[np.float64],
    NDArray[np.int64],
    NDArray[np.float64],
    NDArray[np.float64],
]:
    """Start positions and a deterministic stream of (worker id, lat, lng) pings."""
    rng = np.random.default_rng(seed)
    lat0 = CENTRE_LAT + rng.uniform(-HALF_SIDE_DEG, HALF_SIDE_DEG, n_workers)
    lng0 = CENTRE_LNG + rng.uniform(-HALF_SIDE_DEG, HALF_SIDE_DEG, n_workers)
    who = rng.integers(0, n_workers, n_moves)
    # Each worker's pings are a random walk from its start position.
    step_lat = rng.normal(0.0, PING_STEP_DEG, n_moves)
    step_lng = rng.normal(0.0, PING_STEP_DEG, n_moves)
    order = np.argsort(who, kind="stable")
    walk_lat = np.empty(n_moves)
    walk_lng = np.empty(n_moves)
    sorted_who = who[order]
    starts = np.flatnonzero(np.concatenate([[True], sorted_who[1:] != sorted_who[:-1]]))
    cum_lat = np.cumsum(step_lat[order])
    cum_lng = np.cumsum(step_lng[order])
    base = np.repeat(np.concatenate([[0.0], cum_lat])[starts], np.diff(np.append(starts, n_moves)))
    base_g = np.repeat(
        np.concatenate([[0.0], cum_lng])[starts], np.diff(np.append(starts, n_moves))
    )
    walk_lat[order] = lat0[sorted_who] + cum_lat - base
    walk_lng[order] = lng0[sorted_who] + cum_lng - base_g
    return lat0, lng0, who.astype(np.int64), walk_lat, walk_lng


class LoopIndex:
    """Baseline: per-cell Python sets, one ping at a time (what one writes first)."""

    def __init__(self, lat: NDArray[np.float64], lng: NDArray[np.float64], res: int) -> None:
        self.res = res
        self.cell: dict[int, int] = {}
        self.pos: dict[int, tuple[float, float]] = {}
        self.buckets: dict[int, set[int]] = {}
        for w, (a, b) in enumerate(zip(lat.tolist(), lng.tolist(), strict=True)):
            c = h3i.latlng_to_cell(a, b, res)
            self.cell[w] = c
            self.pos[w] = (a, b)
            self.buckets.setdefault(c, set()).add(w)

    def move_batch(self, who: list[int], lat: list[float], lng: list[float]) -> None:
        to_cell, cell, pos, buckets, res = (
            h3i.latlng_to_cell,
            self.cell,
            self.pos,
            self.buckets,
            self.res,
        )
        for w, a, b in zip(who, lat, lng, strict=True):
            c = to_cell(a, b, res)
            old = cell[w]
            if c != old:
                buckets[old].discard(w)
                buckets.setdefault(c, set()).add(w)
                cell[w] = c
            pos[w] = (a, b)

    def query(self, lat: list[float], lng: list[float], k: int) -> int:
        found = 0
        for a, b in zip(lat, lng, strict=True):
            for c in h3i.grid_disk(h3i.latlng_to_cell(a, b, self.res), k):
                found += len(self.buckets.get(c, ()))
        return found


def main(argv: list[str]) -> int:
    """Run the index benchmark; prints a table or one JSON object."""
    parser = argparse.ArgumentParser(prog="daojia bench index", description=__doc__)
    parser.add_argument("--moves", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=200_000)
    parser.add_argument("--resolution", type=int, default=DEFAULT_RESOLUTION)
    add_common_args(parser)
    args = parser.parse_args(argv)
    if args.moves < 1 or args.batch < 1 or args.workers < 1:
        parser.error("--moves, --batch and --workers must be >= 1")

    lat0, lng0, who, lat, lng = pings(args.workers, args.moves, args.seed)
    rng = np.random.default_rng(args.seed + 1)
    q_lat = CENTRE_LAT + rng.uniform(-HALF_SIDE_DEG, HALF_SIDE_DEG, QUERY_ORIGINS)
    q_lng = CENTRE_LNG + rng.uniform(-HALF_SIDE_DEG, HALF_SIDE_DEG, QUERY_ORIGINS)
    bounds = [*range(0, args.moves, args.batch), args.moves]
    batches = list(itertools.pairwise(bounds))
    ids = np.arange(args.workers, dtype=np.int64)
    found_ours = [0]

    def ours() -> WorkerIndex:
        index = WorkerIndex.from_arrays(ids, lat0, lng0, resolution=args.resolution)
        found_ours[0] = 0
        start_timer = _Stopwatch()
        for lo, hi in batches:
            with start_timer:
                index.move_many(who[lo:hi], lat[lo:hi], lng[lo:hi])
                found_ours[0] += index.within(q_lat, q_lng, QUERY_RADIUS_M)[0].size
        runs_ours.append(start_timer.total)
        return index

    def baseline() -> LoopIndex:
        index = LoopIndex(lat0, lng0, args.resolution)
        k = int(WorkerIndex(args.resolution).disk_k(QUERY_RADIUS_M))
        q_lat_l, q_lng_l = q_lat.tolist(), q_lng.tolist()
        start_timer = _Stopwatch()
        for lo, hi in batches:
            w_l, a_l, b_l = who[lo:hi].tolist(), lat[lo:hi].tolist(), lng[lo:hi].tolist()
            with start_timer:
                index.move_batch(w_l, a_l, b_l)
                index.query(q_lat_l, q_lng_l, k)
        runs_base.append(start_timer.total)
        return index

    runs_ours: list[float] = []
    runs_base: list[float] = []
    _, final = timed(ours, args.repeat)
    _, base_final = timed(baseline, args.repeat)
    ours_s = float(np.median(runs_ours))
    base_s = float(np.median(runs_base))
    cells_ours = final.cells(ids)
    cells_base = np.fromiter(
        (base_final.cell[w] for w in range(args.workers)), np.uint64, count=args.workers
    )
    crossed = int(
        (
            cells_ours
            != np.asarray(
                [
                    h3i.latlng_to_cell(a, b, args.resolution)
                    for a, b in zip(lat0.tolist(), lng0.tolist(), strict=True)
                ],
                dtype=np.uint64,
            )
        ).sum()
    )
    out: dict[str, Any] = {
        "benchmark": "index",
        "moves": args.moves,
        "batch": args.batch,
        "workers": args.workers,
        "resolution": args.resolution,
        "seed": args.seed,
        "repeat": args.repeat,
        "ours_s": ours_s,
        "ours_min_s": min(runs_ours),
        "ours_max_s": max(runs_ours),
        "moves_per_s": args.moves / ours_s,
        "baseline_s": base_s,
        "baseline_min_s": min(runs_base),
        "baseline_max_s": max(runs_base),
        "baseline_moves_per_s": args.moves / base_s,
        "speedup": base_s / ours_s,
        "same_cells_as_baseline": bool((cells_ours == cells_base).all()),
        "workers_changed_cell": crossed,
        "query_hits": found_ours[0],
        "peak_rss_mb": peak_rss_mb(),
        "machine": machine(),
    }
    emit(
        out,
        [{k: v for k, v in out.items() if k != "machine"}],
        args.json,
        "index: batch moves vs per-ping loop",
    )
    return 0


class _Stopwatch:
    """Accumulates wall time over ``with`` blocks (timing excludes input slicing)."""

    def __init__(self) -> None:
        self.total = 0.0
        self._start = 0.0

    def __enter__(self) -> None:
        self._start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.total += time.perf_counter() - self._start

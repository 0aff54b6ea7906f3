"""Vectorised geo hot paths vs the per-point libraries a user would loop over, same run.

Two paths every request and every ping goes through:
- WGS-84 -> GCJ-02: ``geo.coords.wgs84_to_gcj02`` on arrays vs a Python loop of
  ``prcoords.wgs_gcj`` (the oracle library);
- lat/lng -> H3 cell: ``geo.cells.latlng_to_cells`` vs a Python loop of
  ``h3.latlng_to_cell``, and h3ronpy's vectorised ``coordinates_to_cells`` when
  it is importable; for context also H3's own C ``latLngToCell`` in a C loop
  (``h3_c_library_loop``), which shows how much of the win is more than
  "no Python per point".

Points are deterministic for a seed: most clustered around big mainland cities,
the rest uniform over eastern mainland China. The per-point loops are timed on
the first ``--baseline-points`` points and scaled per point to ``--points``
(``baseline_points`` in the output); every output is compared with its
baseline's (``mismatches``).

Usage: daojia bench geo [--points N] [--seed S] [--res R] [--repeat K]
       [--baseline-points B] [--threads T] [--json]
"""

from __future__ import annotations

import argparse
import gc
from collections.abc import Callable
from typing import Any

import h3.api.basic_int as h3i
import numpy as np
from numpy.typing import NDArray

from benchmarks._common import Timing, add_common_args, emit, machine, peak_rss_mb, timed
from geo import cells
from geo.coords import in_mainland_china, wgs84_to_gcj02
from geo.projection import haversine_m

FloatArray = NDArray[np.float64]

#: (name, lat, lng, share of the clustered points, spread in degrees)
CITIES = (
    ("beijing", 39.9042, 116.4074, 0.16, 0.20),
    ("shanghai", 31.2304, 121.4737, 0.18, 0.18),
    ("guangzhou", 23.1291, 113.2644, 0.12, 0.15),
    ("shenzhen", 22.5431, 114.0579, 0.12, 0.10),
    ("chengdu", 30.5728, 104.0668, 0.10, 0.15),
    ("hangzhou", 30.2741, 120.1551, 0.09, 0.12),
    ("wuhan", 30.5928, 114.3055, 0.08, 0.12),
    ("xian", 34.3416, 108.9398, 0.07, 0.12),
    ("dalian", 38.9140, 121.6147, 0.08, 0.10),  # next to the H3 pentagon of base cell 24
)
#: Share of points clustered around CITIES; the rest is uniform over EAST_BOX.
CLUSTERED_SHARE = 0.8
#: (lat_min, lat_max, lng_min, lng_max) of "the east", trimmed to the mainland.
EAST_BOX = (21.0, 42.0, 105.0, 123.0)
#: GCJ-02 outputs closer than this (degrees, ~0.1 mm) count as identical.
GCJ_TOLERANCE_DEG = 1e-9


def china_points(n: int, seed: int) -> tuple[FloatArray, FloatArray]:
    """``n`` deterministic WGS-84 points (degrees) on the Chinese mainland."""
    rng = np.random.default_rng(seed)
    n_clustered = round(n * CLUSTERED_SHARE)
    shares = np.array([c[3] for c in CITIES])
    which = rng.choice(len(CITIES), size=n_clustered, p=shares / shares.sum())
    centre_lat = np.array([c[1] for c in CITIES])[which]
    centre_lng = np.array([c[2] for c in CITIES])[which]
    spread = np.array([c[4] for c in CITIES])[which]
    lat = centre_lat + rng.normal(0.0, 1.0, n_clustered) * spread
    lng = centre_lng + rng.normal(0.0, 1.0, n_clustered) * spread
    keep = in_mainland_china(lat, lng)
    lat_parts, lng_parts = [lat[keep]], [lng[keep]]
    have = int(keep.sum())
    lat_min, lat_max, lng_min, lng_max = EAST_BOX
    while have < n:
        m = 2 * (n - have) + 1000
        u_lat = rng.uniform(lat_min, lat_max, m)
        u_lng = rng.uniform(lng_min, lng_max, m)
        inside = in_mainland_china(u_lat, u_lng)
        lat_parts.append(u_lat[inside])
        lng_parts.append(u_lng[inside])
        have += int(inside.sum())
    all_lat = np.concatenate(lat_parts)[:n]
    all_lng = np.concatenate(lng_parts)[:n]
    order = rng.permutation(n)
    return np.ascontiguousarray(all_lat[order]), np.ascontiguousarray(all_lng[order])


def _rate(timing: Timing, points: int) -> dict[str, Any]:
    return {**timing.as_dict(), "points_per_s": points / timing.median}


def _scaled(timing: Timing, measured: int, points: int) -> dict[str, Any]:
    """A per-point loop timed on ``measured`` points, scaled to ``points``."""
    factor = points / measured
    return {
        "min_s": timing.min * factor,
        "median_s": timing.median * factor,
        "max_s": timing.max * factor,
        "points_per_s": measured / timing.median,
        "measured_points": measured,
    }


def gcj_case(lat: FloatArray, lng: FloatArray, base_n: int, repeat: int) -> dict[str, Any]:
    """Vectorised WGS-84 -> GCJ-02 vs a prcoords loop, with the largest disagreement."""
    import prcoords

    n = lat.size
    gc.collect()
    ours_t, (g_lat, g_lng) = timed(lambda: wgs84_to_gcj02(lat, lng), repeat)
    b_lat, b_lng = lat[:base_n].tolist(), lng[:base_n].tolist()
    wgs_gcj = prcoords.wgs_gcj

    def loop() -> list[Any]:
        return [wgs_gcj((a, b)) for a, b in zip(b_lat, b_lng, strict=True)]

    gc.collect()
    base_t, base_out = timed(loop, repeat)
    ref = np.array(base_out, dtype=np.float64).reshape(-1, 2)
    d_lat = np.abs(np.asarray(g_lat)[:base_n] - ref[:, 0])
    d_lng = np.abs(np.asarray(g_lng)[:base_n] - ref[:, 1])
    diff_m = haversine_m(
        np.asarray(g_lat)[:base_n], np.asarray(g_lng)[:base_n], ref[:, 0], ref[:, 1]
    )
    baseline = _scaled(base_t, base_n, n)
    return {
        "ours": _rate(ours_t, n),
        "prcoords_loop": baseline,
        "speedup": baseline["median_s"] / ours_t.median,
        "compared_points": base_n,
        "mismatches": int(((d_lat > GCJ_TOLERANCE_DEG) | (d_lng > GCJ_TOLERANCE_DEG)).sum()),
        "tolerance_deg": GCJ_TOLERANCE_DEG,
        "max_abs_diff_deg": float(max(d_lat.max(initial=0.0), d_lng.max(initial=0.0))),
        "max_diff_m": float(np.max(diff_m, initial=0.0)),
    }


def _h3ronpy_indexer() -> Callable[[FloatArray, FloatArray, int], NDArray[np.uint64]] | None:
    try:
        from h3ronpy.vector import coordinates_to_cells
    except ImportError:
        return None

    def index(lat: FloatArray, lng: FloatArray, res: int) -> NDArray[np.uint64]:
        return np.asarray(coordinates_to_cells(lat, lng, res)).astype(np.uint64, copy=False)

    return index


def h3_case(
    lat: FloatArray, lng: FloatArray, res: int, base_n: int, repeat: int, threads: int | None
) -> dict[str, Any]:
    """Vectorised lat/lng -> cell vs an h3-py loop and h3ronpy, with exactness checks."""
    n = lat.size
    n_threads = cells.default_threads(n) if threads is None else threads
    gc.collect()
    ours_t, ours = timed(lambda: cells.latlng_to_cells(lat, lng, res, threads=n_threads), repeat)
    gc.collect()
    single_t, single = timed(lambda: cells.latlng_to_cells(lat, lng, res, threads=1), repeat)
    assert isinstance(ours, np.ndarray)
    assert isinstance(single, np.ndarray)

    b_lat, b_lng = lat[:base_n].tolist(), lng[:base_n].tolist()
    to_cell = h3i.latlng_to_cell

    def loop() -> list[int]:
        return [to_cell(a, b, res) for a, b in zip(b_lat, b_lng, strict=True)]

    gc.collect()
    base_t, base_out = timed(loop, repeat)
    loop_cells = np.array(base_out, dtype=np.uint64)
    baseline = _scaled(base_t, base_n, n)

    exact_path = None
    h3_c: dict[str, Any] | None = None
    if cells._FAST is not None:
        fast = cells._FAST
        probe = np.empty(n, dtype=np.uint64)
        exact_path = int(fast.latlng_to_cells(lat, lng, probe, res, n_threads))
        # H3's own latLngToCell in a C loop (no Python per point): where the win comes from.
        gc.collect()
        c_t, _ = timed(lambda: fast.h3_latlng_to_cells(lat, lng, probe, res), repeat)
        h3_c = {
            **_rate(c_t, n),
            "speedup_over_loop": baseline["median_s"] / c_t.median,
            "mismatches": int((probe != ours).sum()),
        }

    out: dict[str, Any] = {
        "compiled": cells._FAST is not None,
        "threads": n_threads,
        "ours": _rate(ours_t, n),
        "ours_single_thread": _rate(single_t, n),
        "h3_loop": baseline,
        "speedup": baseline["median_s"] / ours_t.median,
        "speedup_single_thread": baseline["median_s"] / single_t.median,
        "compared_points": base_n,
        "mismatches": int((ours[:base_n] != loop_cells).sum() + (single != ours).sum()),
        "exact_path_points": exact_path,
        "h3_c_library_loop": h3_c,
        "h3ronpy": None,
        "speedup_vs_h3ronpy": None,
        "mismatches_h3ronpy": None,
    }
    h3ronpy_index = _h3ronpy_indexer()
    if h3ronpy_index is not None:
        gc.collect()
        ron_t, ron = timed(lambda: h3ronpy_index(lat, lng, res), repeat)
        out.update(
            h3ronpy=_rate(ron_t, n),
            h3ronpy_speedup_over_loop=baseline["median_s"] / ron_t.median,
            speedup_vs_h3ronpy=ron_t.median / ours_t.median,
            mismatches_h3ronpy=int((ron != ours).sum()),
        )
    return out


def main(argv: list[str]) -> int:
    """Run the geo benchmark; prints a table or one JSON object."""
    parser = argparse.ArgumentParser(prog="daojia bench geo", description=__doc__)
    parser.add_argument("--points", type=int, default=1_000_000, help="points to convert")
    parser.add_argument("--res", type=int, default=9, help="H3 resolution (0..15)")
    parser.add_argument(
        "--baseline-points",
        type=int,
        default=200_000,
        help="points the per-point loops run on (scaled per point to --points)",
    )
    parser.add_argument("--threads", type=int, default=None, help="threads for H3 indexing")
    add_common_args(parser)
    args = parser.parse_args(argv)
    if args.points < 1:
        parser.error(f"--points must be >= 1, got {args.points}")
    if not 0 <= args.res <= 15:
        parser.error(f"--res must be in 0..15, got {args.res}")
    if args.baseline_points < 1:
        parser.error(f"--baseline-points must be >= 1, got {args.baseline_points}")
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    base_n = min(args.points, args.baseline_points)

    lat, lng = china_points(args.points, args.seed)
    gcj = gcj_case(lat, lng, base_n, args.repeat)
    h3 = h3_case(lat, lng, args.res, base_n, args.repeat, args.threads)
    out: dict[str, Any] = {
        "benchmark": "geo",
        "points": args.points,
        "seed": args.seed,
        "res": args.res,
        "repeat": args.repeat,
        "baseline_points": base_n,
        "baseline_scaled": base_n < args.points,
        "gcj02": gcj,
        "h3": h3,
        "peak_rss_mb": peak_rss_mb(),
        "machine": machine(),
    }
    rows = [
        _row("gcj02 vectorised", gcj["ours"], None, gcj["mismatches"]),
        _row("gcj02 prcoords loop", gcj["prcoords_loop"], gcj["speedup"], None),
        _row(
            f"h3 vectorised ({h3['threads']} threads)", h3["ours"], h3["speedup"], h3["mismatches"]
        ),
        _row(
            "h3 vectorised (1 thread)", h3["ours_single_thread"], h3["speedup_single_thread"], None
        ),
        _row("h3 h3-py loop", h3["h3_loop"], None, None),
    ]
    if h3["h3_c_library_loop"] is not None:
        c_loop = h3["h3_c_library_loop"]
        rows.append(
            _row(
                "h3 C library loop (1 thread)",
                c_loop,
                c_loop["speedup_over_loop"],
                c_loop["mismatches"],
            )
        )
    if h3["h3ronpy"] is not None:
        rows.append(
            _row(
                "h3 h3ronpy",
                h3["h3ronpy"],
                h3["h3ronpy_speedup_over_loop"],
                h3["mismatches_h3ronpy"],
            )
        )
    emit(out, rows, args.json, f"geo: {args.points:,} points, res {args.res}, seed {args.seed}")
    return 0


def _row(
    path: str, timing: dict[str, Any], speedup: float | None, mismatches: int | None
) -> dict[str, Any]:
    return {
        "path": path,
        "median_s": timing["median_s"],
        "min_s": timing["min_s"],
        "max_s": timing["max_s"],
        "Mpoints_per_s": timing["points_per_s"] / 1e6,
        "speedup_over_loop": speedup if speedup is None else round(speedup, 2),
        "mismatches": mismatches,
        "scaled": "measured_points" in timing,
    }

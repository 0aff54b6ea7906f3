"""Location pings per second into LiveState, batched vs one ping per call, same run.

A deterministic fleet of ``--workers`` workers rides e-bikes around Shanghai; every
round each worker sends one ping (≈5 s apart, ≈25 m further on, so most pings stay in
their H3 cell and some cross into the next). ``--pings`` pings are cut into batches of
``--batch`` and fed to ``LiveState.update_positions`` (``ours``). Baselines on the
same backend and the first ``--baseline-pings`` pings:

- ``per_call``: the same API with one ping per call (what an endpoint that forwards
  pings one by one would do; on Redis that is two round trips per ping);
- ``direct_geoadd`` (Redis only): one plain ``GEOADD`` per ping, awaited — one round
  trip per ping and no ordering or cell sets at all, the floor of any unbatched design.

Each backend starts empty per repeat (Redis: a fresh key prefix, deleted afterwards;
the shared server is never flushed). Reported: pings/s, per-batch p50/p99 latency,
speedups, and ``consistent``: after the run every worker's stored position is its last
ping and the cell member sets equal the positions' cells.

Through the API (``api`` in each backend's section, unless ``--no-api``): the same
backend behind the real worker endpoint ``POST /v1/worker/pings`` — uvicorn (one
process) on a fresh database (``--database``) with ``--api-workers`` workers, each request one
worker's batch of ``--api-batch`` fixes (JSON, bearer token, validation, GCJ/WGS
checks, LiveState, tracking lookup), ``--api-concurrency`` requests in flight from a
lean keep-alive client (``benchmarks.stream.HttpConn``; ``http_sink`` is the ``Sink``).
Baseline on the same server in the same run: one ping per request. ``all_accepted``
says every fix was accepted (none flagged stale, out of order or a jump). Beside the
wall rate, the server process's CPU per fix (``server_cpu_us_per_ping``) and its
inverse ``pings_per_server_cpu_s``: what one API process sustains on a core of its own
(the wall rate shares this machine's cores with Redis and the load generator).

``ours_concurrent`` repeats ``ours`` with ``--concurrency`` (default 4) batches in flight, as a
server handling several worker-app requests at once would.

Usage: daojia bench ingest [--pings N] [--batch B] [--workers W] [--backend memory|redis|all]
       [--concurrency C] [--baseline-pings P] [--redis-url URL] [--no-api] [--api-pings N]
       [--api-batch B] [--api-workers W] [--api-concurrency C] [--api-baseline-pings P]
       [--repeat K] [--seed S] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import redis.asyncio as redis_asyncio
from numpy.typing import NDArray

from api.core.live import LiveState, MemoryLiveState, PingBatch, RedisLiveState
from benchmarks._common import Timing, add_common_args, emit, machine, peak_rss_mb
from benchmarks.stream import HttpConn, database_of, serve
from geo.cells import latlng_to_cells

#: Shanghai centre (WGS-84) and the spread of worker start points, degrees.
CENTRE = (31.2304, 121.4737)
SPREAD_DEG = 0.12
#: Seconds between two pings of one worker; metres per second of an e-bike.
PING_INTERVAL_S = 5.0
SPEED_MPS = 5.0
_M_PER_DEG = 111_320.0
DEFAULT_REDIS_URL = os.environ.get("DAOJIA_REDIS_URL") or "redis://127.0.0.1:6379/0"


@dataclass(frozen=True)
class Pings:
    """The generated stream, in arrival order."""

    worker_ids: NDArray[np.int64]
    lat: NDArray[np.float64]
    lng: NDArray[np.float64]
    ts: NDArray[np.float64]
    accuracy_m: NDArray[np.float64]

    def batch(self, start: int, stop: int) -> PingBatch:
        """Rows ``start:stop`` as a validated batch."""
        sl = slice(start, stop)
        return PingBatch.of(
            self.worker_ids[sl], self.lat[sl], self.lng[sl], self.ts[sl], self.accuracy_m[sl]
        )


def fleet_pings(n_pings: int, n_workers: int, seed: int) -> Pings:
    """``n_pings`` deterministic pings: rounds over all workers, each riding a straight line."""
    rng = np.random.default_rng(seed)
    k = np.arange(n_pings)
    worker = (k % n_workers).astype(np.int64)
    rnd = k // n_workers
    start_lat = CENTRE[0] + rng.normal(0.0, SPREAD_DEG, n_workers)
    start_lng = CENTRE[1] + rng.normal(0.0, SPREAD_DEG, n_workers)
    heading = rng.uniform(0.0, 2 * np.pi, n_workers)
    step_deg = SPEED_MPS * PING_INTERVAL_S / _M_PER_DEG
    lat = start_lat[worker] + np.cos(heading[worker]) * step_deg * rnd
    lng = start_lng[worker] + np.sin(heading[worker]) * step_deg * rnd / np.cos(
        np.radians(CENTRE[0])
    )
    # GPS noise of a few metres, and ping times jittered within the round.
    lat = lat + rng.normal(0.0, 5.0 / _M_PER_DEG, n_pings)
    lng = lng + rng.normal(0.0, 5.0 / _M_PER_DEG, n_pings)
    ts = 1.8e9 + rnd * PING_INTERVAL_S + (worker / n_workers) * PING_INTERVAL_S
    accuracy = rng.uniform(3.0, 30.0, n_pings)
    return Pings(worker.astype(np.int64), lat, lng, ts.astype(np.float64), accuracy)


#: A place pings go: ``LiveState.update_positions`` or the API's batch endpoint (``http_sink``).
Sink = Callable[[PingBatch], Awaitable[Any]]
#: Fixes of one API batch are this far apart (s); workers ride at this speed (m/s). The
#: position is a function of the fix time, so any two fixes of a worker, even from
#: different runs, imply exactly that speed: every fix is valid (none a jump or stale).
API_PING_GAP_S = 0.002
API_SPEED_MPS = 10.0


def http_sink(conn: HttpConn, token: str) -> Sink:
    """A ``Sink`` posting each batch as one request of the worker ``token``.

    The batch must be that worker's fixes (WGS-84, epoch-second times within the
    endpoint's freshness window). Returns the number of fixes the API accepted.
    """

    async def post(batch: PingBatch) -> int:
        pings = [
            {"lat": a, "lng": b, "ts": t, "accuracy_m": c}
            for a, b, t, c in zip(
                batch.lat.tolist(),
                batch.lng.tolist(),
                batch.ts.tolist(),
                batch.accuracy_m.tolist(),
                strict=True,
            )
        ]
        body = json.dumps({"pings": pings}).encode()
        status, raw = await conn.post("/v1/worker/pings", body, token)
        if status != 200:
            raise RuntimeError(f"POST /v1/worker/pings answered {status}: {raw[:200]!r}")
        return int(json.loads(raw)["accepted"])

    return post


def api_batch(worker: int, k: int, now: float, epoch: float) -> PingBatch:
    """``k`` fixes of ``worker`` ending at ``now``, ``API_PING_GAP_S`` apart, on its own line.

    The worker sets off at ``epoch`` (epoch seconds, the same for the whole benchmark).
    """
    ts = now - (k - 1 - np.arange(k)) * API_PING_GAP_S
    lat = CENTRE[0] + (worker % 100) * 0.002 + (ts - epoch) * API_SPEED_MPS / _M_PER_DEG
    lng = np.full(k, CENTRE[1] + (worker // 100) * 0.002)
    return PingBatch.of(np.full(k, worker), lat, lng, ts, np.full(k, 10.0))


async def _api_ingest(
    port: int, tokens: list[str], n: int, batch: int, concurrency: int, epoch: float
) -> tuple[float, int, list[float]]:
    """POST ``n`` fixes in requests of ``batch``, workers in turn.

    Returns wall seconds, fixes accepted, and seconds per request.
    """
    conns = [await HttpConn.open(port) for _ in range(concurrency)]
    requests = iter(range(-(-n // batch)))
    lat_s: list[float] = []
    accepted = 0

    async def lane(conn: HttpConn) -> None:
        nonlocal accepted
        for r in requests:  # lanes share the iterator: each request is sent once
            worker = r % len(tokens)
            b = api_batch(worker, min(batch, n - r * batch), time.time(), epoch)
            t0 = time.perf_counter()
            got = await http_sink(conn, tokens[worker])(b)  # read `accepted` after the await
            accepted += got
            lat_s.append(time.perf_counter() - t0)

    try:
        t0 = time.perf_counter()
        await asyncio.gather(*(lane(c) for c in conns))
        wall = time.perf_counter() - t0
    finally:
        for conn in conns:
            await conn.aclose()
    return wall, accepted, lat_s


def run_api(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    """Pings/s through the worker batch endpoint vs one ping per request (one server)."""
    n, base_n = args.api_pings, min(args.api_baseline_pings, args.api_pings)
    redis = args.redis_url if backend == "redis" else ""
    database = database_of(args.database)
    with serve(args.api_workers, redis=redis, with_orders=False, database=database) as server:
        port = server.port
        tokens = [token for _order, token, _customer in server.seeded]
        epoch = time.time() - 1.0

        def measure(count: int, batch: int) -> tuple[Timing, list[float], int, float]:
            """Timing, request latencies, fixes accepted, server CPU seconds per fix."""
            runs, lat_s, accepted = [], [], 0
            cpu0 = server.cpu_s()
            for _ in range(args.repeat):
                wall, got, lat = asyncio.run(
                    _api_ingest(port, tokens, count, batch, args.api_concurrency, epoch)
                )
                runs.append(wall)
                lat_s.extend(lat)
                accepted += got
            cpu_per_fix = (server.cpu_s() - cpu0) / (count * args.repeat)
            return Timing(tuple(runs)), lat_s, accepted, cpu_per_fix

        ours, ours_lat, ours_accepted, ours_cpu = measure(n, args.api_batch)
        base, base_lat, base_accepted, base_cpu = measure(base_n, 1)
    ours_rate, base_rate = n / ours.median, base_n / base.median
    return {
        "batched": {
            **ours.as_dict(), "pings_per_s": ours_rate,
            "requests_per_s": ours_rate / args.api_batch, **_percentiles(ours_lat),
            "sent": n * args.repeat, "accepted": ours_accepted,
            "server_cpu_us_per_ping": ours_cpu * 1e6,
            "pings_per_server_cpu_s": 1.0 / ours_cpu if ours_cpu > 0 else None,
        },
        "per_call": {
            **base.as_dict(), "pings_per_s": base_rate, "measured_pings": base_n,
            **_percentiles(base_lat), "sent": base_n * args.repeat, "accepted": base_accepted,
            "server_cpu_us_per_ping": base_cpu * 1e6,
            "pings_per_server_cpu_s": 1.0 / base_cpu if base_cpu > 0 else None,
        },
        "speedup": ours_rate / base_rate,
        "batch": args.api_batch,
        "workers": args.api_workers,
        "concurrency": args.api_concurrency,
        "server_processes": 1,
        "database": database,
        "all_accepted": (ours_accepted, base_accepted) == (n * args.repeat, base_n * args.repeat),
    }  # fmt: skip


@dataclass
class Backend:
    """One backend under test: how to make a fresh empty state and how to drop it."""

    name: str
    make: Callable[[], Awaitable[LiveState]]
    drop: Callable[[LiveState], Awaitable[None]]
    client: redis_asyncio.Redis | None = None


async def _ingest(
    state: LiveState, pings: Pings, n: int, batch: int, concurrency: int = 1
) -> tuple[float, list[float]]:
    """Feed the first ``n`` pings in batches, ``concurrency`` calls in flight.

    Returns wall seconds and per-batch seconds. Concurrent calls are what a server
    handling several worker-app requests at once does; they overlap our Python with
    Redis's work on another core.
    """
    sink: Sink = state.update_positions
    lat_s: list[float] = []
    starts = iter(range(0, n, batch))

    async def lane() -> None:
        for start in starts:  # lanes share the iterator: each batch is sent once
            b = pings.batch(start, min(n, start + batch))
            t0 = time.perf_counter()
            await sink(b)
            lat_s.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return time.perf_counter() - t0, lat_s


async def _consistent(state: LiveState, pings: Pings, n: int) -> bool:
    """Every worker's stored position is its last ping; member sets match those cells."""
    ids = np.unique(pings.worker_ids[:n])
    last = np.zeros(ids.size, dtype=np.int64)
    last[pings.worker_ids[:n]] = np.arange(n)  # later rows overwrite: the last ping wins
    got = await state.get_positions(ids)
    if not (
        got.found.all()
        and np.array_equal(got.lat, pings.lat[last])
        and np.array_equal(got.lng, pings.lng[last])
        and np.array_equal(got.ts, pings.ts[last])
    ):
        return False
    cells = latlng_to_cells(pings.lat[last], pings.lng[last], state.cell_res)
    members = await state.workers_in_cells(np.unique(cells))
    order = np.argsort(members.worker_ids)
    return bool(
        np.array_equal(members.worker_ids[order], ids)
        and np.array_equal(members.cells[order], cells)
    )


def _percentiles(samples: list[float]) -> dict[str, float]:
    arr = np.asarray(samples)
    return {
        "p50_ms": float(np.percentile(arr, 50) * 1e3),
        "p99_ms": float(np.percentile(arr, 99) * 1e3),
    }


async def _direct_geoadd(client: redis_asyncio.Redis, pings: Pings, n: int, key: str) -> float:
    """One awaited GEOADD per ping (one round trip each); seconds."""
    lat, lng, ids = pings.lat[:n].tolist(), pings.lng[:n].tolist(), pings.worker_ids[:n].tolist()
    t0 = time.perf_counter()
    for a, b, w in zip(lat, lng, ids, strict=True):
        await client.geoadd(key, (b, a, w))
    return time.perf_counter() - t0


async def run_backend(backend: Backend, pings: Pings, args: argparse.Namespace) -> dict[str, Any]:
    """Time ours and the baselines on one backend; returns its JSON section."""
    n, base_n = args.pings, min(args.baseline_pings, args.pings)
    consistent = True

    async def measure(count: int, batch: int, concurrency: int) -> tuple[Timing, list[float]]:
        nonlocal consistent
        runs: list[float] = []
        batch_lat: list[float] = []
        for _ in range(args.repeat):
            state = await backend.make()
            try:
                wall, lat_s = await _ingest(state, pings, count, batch, concurrency)
                runs.append(wall)
                batch_lat.extend(lat_s)
                consistent = consistent and await _consistent(state, pings, count)
            finally:
                await backend.drop(state)
        return Timing(tuple(runs)), batch_lat

    ours, ours_lat = await measure(n, args.batch, 1)
    base, _ = await measure(base_n, 1, 1)
    ours_rate, base_rate = n / ours.median, base_n / base.median
    section: dict[str, Any] = {
        "ours": {**ours.as_dict(), "pings_per_s": ours_rate, **_percentiles(ours_lat)},
        "per_call": {**base.as_dict(), "pings_per_s": base_rate, "measured_pings": base_n},
        "speedup": ours_rate / base_rate,
    }
    if args.concurrency > 1:
        conc, conc_lat = await measure(n, args.batch, args.concurrency)
        conc_rate = n / conc.median
        section["ours_concurrent"] = {
            **conc.as_dict(),
            "pings_per_s": conc_rate,
            "concurrency": args.concurrency,
            **_percentiles(conc_lat),
        }
        section["speedup_concurrent"] = conc_rate / base_rate
    if backend.client is not None:
        key = f"dj-bench:{uuid.uuid4().hex[:12]}:geo"
        runs = []
        try:
            for _ in range(args.repeat):
                await backend.client.delete(key)
                runs.append(await _direct_geoadd(backend.client, pings, base_n, key))
        finally:
            await backend.client.delete(key)
        direct = Timing(tuple(runs))
        direct_rate = base_n / direct.median
        section["direct_geoadd"] = {
            **direct.as_dict(),
            "pings_per_s": direct_rate,
            "measured_pings": base_n,
        }
        section["speedup_vs_direct_geoadd"] = ours_rate / direct_rate
    section["consistent"] = consistent
    return section


def _memory_backend() -> Backend:
    async def make() -> LiveState:
        return MemoryLiveState()

    async def drop(state: LiveState) -> None:
        await state.aclose()

    return Backend("memory", make, drop)


async def _redis_backend(url: str) -> Backend | str:
    """The Redis backend, or why it is unavailable."""
    client = redis_asyncio.Redis.from_url(url)
    try:
        await client.ping()
    except Exception as exc:  # any connection problem: report, do not crash the other backend
        await client.aclose()
        return f"{type(exc).__name__}: {exc}"

    async def make() -> LiveState:
        return RedisLiveState(client, prefix=f"dj-bench:{uuid.uuid4().hex[:12]}:")

    async def drop(state: LiveState) -> None:
        assert isinstance(state, RedisLiveState)
        await state.delete_all()

    return Backend("redis", make, drop, client)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The benchmark's options (``--help`` lists them)."""
    parser = argparse.ArgumentParser(
        prog="daojia bench ingest", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--pings", type=_positive, default=200_000, help="pings per run")
    parser.add_argument("--batch", type=_positive, default=1000, help="pings per call")
    parser.add_argument("--workers", type=_positive, default=20_000, help="distinct workers")
    parser.add_argument(
        "--backend", choices=("memory", "redis", "all"), default="all", help="LiveState adapter"
    )
    parser.add_argument(
        "--concurrency",
        type=_positive,
        default=4,
        help="batches in flight for an extra ours_concurrent case (1: no such case)",
    )
    parser.add_argument(
        "--baseline-pings", type=_positive, default=5000, help="pings the per-call baselines send"
    )
    parser.add_argument(
        "--redis-url", default=DEFAULT_REDIS_URL, help="Redis for the redis backend"
    )
    parser.add_argument(
        "--no-api", action="store_true", help="skip the runs through the HTTP batch endpoint"
    )
    parser.add_argument(
        "--database", choices=["auto", "postgres", "sqlite"], default="auto",
        help="the API's database for the HTTP runs (auto: PostgreSQL when it answers)",
    )  # fmt: skip
    parser.add_argument(
        "--api-pings",
        type=_positive,
        default=None,
        help="pings through the API per run (default: --pings, at most 50000)",
    )
    parser.add_argument(
        "--api-batch", type=_positive, default=100, help="pings per API request (max 100)"
    )
    parser.add_argument(
        "--api-workers",
        type=_positive,
        default=None,
        help="workers posting to the API (default: --workers, at most 1000)",
    )
    parser.add_argument(
        "--api-concurrency", type=_positive, default=8, help="API requests in flight"
    )
    parser.add_argument(
        "--api-baseline-pings",
        type=_positive,
        default=None,
        help="pings of the one-ping-per-request API baseline (default: --baseline-pings, "
        "at most 2000)",
    )
    add_common_args(parser)
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error(f"--repeat must be >= 1, got {args.repeat}")
    if args.api_batch > 100:
        parser.error(f"--api-batch must be <= 100 (the endpoint's limit), got {args.api_batch}")
    args.api_pings = args.api_pings or min(args.pings, 50_000)
    args.api_workers = args.api_workers or min(args.workers, 1000)
    args.api_baseline_pings = args.api_baseline_pings or min(args.baseline_pings, 2000)
    return args


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    pings = fleet_pings(args.pings, args.workers, args.seed)
    result: dict[str, Any] = {
        "pings": args.pings,
        "batch": args.batch,
        "workers": args.workers,
        "baseline_pings": min(args.baseline_pings, args.pings),
        "backend": args.backend,
        "concurrency": args.concurrency,
        "api": not args.no_api,
        "repeat": args.repeat,
        "seed": args.seed,
    }
    names = ("memory", "redis") if args.backend == "all" else (args.backend,)
    for name in names:
        if name == "memory":
            result["memory"] = await run_backend(_memory_backend(), pings, args)
            if not args.no_api:
                result["memory"]["api"] = await asyncio.to_thread(run_api, "memory", args)
            continue
        backend = await _redis_backend(args.redis_url)
        if isinstance(backend, str):
            result["redis"] = {"unavailable": backend}
            continue
        try:
            result["redis"] = await run_backend(backend, pings, args)
        finally:
            assert backend.client is not None
            await backend.client.aclose()
        if not args.no_api:
            result["redis"]["api"] = await asyncio.to_thread(run_api, "redis", args)
    result["peak_rss_mb"] = peak_rss_mb()
    result["machine"] = machine()
    return result


def main(argv: list[str]) -> int:
    """Run the benchmark; exit 1 if a result was inconsistent or a required Redis was down."""
    args = parse_args(argv)
    result = asyncio.run(_run(args))
    rows = []
    for name in ("memory", "redis"):
        section = result.get(name)
        if section is None:
            continue
        if "unavailable" in section:
            rows.append({"backend": name, "path": "unavailable: " + section["unavailable"]})
            continue
        speedups = {"ours": "speedup", "ours_concurrent": "speedup_concurrent"}
        for path, label in (
            ("ours", "batched"),
            ("ours_concurrent", f"batched x{args.concurrency}"),
            ("per_call", "per call"),
            ("direct_geoadd", "GEOADD/ping"),
        ):
            if path in section:
                timing = section[path]
                rows.append(
                    {
                        "backend": name,
                        "path": label,
                        "pings/s": round(timing["pings_per_s"]),
                        "p50 ms": timing.get("p50_ms"),
                        "p99 ms": timing.get("p99_ms"),
                        "speedup": section.get(speedups.get(path, "")),
                        "ok": section["consistent"] if path == "ours" else None,
                    }
                )
        api = section.get("api")
        if api is not None:
            for path, label in (
                ("batched", f"API batch {api['batch']}"),
                ("per_call", "API 1/req"),
            ):
                rows.append(
                    {
                        "backend": name,
                        "path": label,
                        "pings/s": round(api[path]["pings_per_s"]),
                        "p50 ms": api[path]["p50_ms"],
                        "p99 ms": api[path]["p99_ms"],
                        "speedup": api["speedup"] if path == "batched" else None,
                        "ok": api["all_accepted"] if path == "batched" else None,
                    }
                )
    emit(result, rows, args.json, f"ingest: {args.pings} pings, batch {args.batch}")
    sections = [result[n] for n in ("memory", "redis") if n in result]
    failed = any(
        not s.get("consistent", True) or not s.get("api", {}).get("all_accepted", True)
        for s in sections
    )
    required_down = args.backend == "redis" and "unavailable" in result["redis"]
    return 1 if failed or required_down else 0

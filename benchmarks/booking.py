"""Booking throughput over HTTP: ``daojia bench booking``.

Starts the API (uvicorn, sandbox payments) on a free port against a fresh
database — PostgreSQL+PostGIS when reachable, else SQLite (the output says which)
— with one enterprise, ``--workers`` workers and a few customers, then books:

* baseline: ``--baseline-bookings`` bookings one request at a time;
* ours: ``--bookings`` bookings with ``--concurrency`` requests in flight
  (an asyncio load loop over keep-alive connections, ``benchmarks.stream.HttpPool``:
  httpx cost more CPU per request than the server's booking, on the same two cores).

A ``--warmup`` of unmeasured concurrent bookings goes first (a fresh server opens
its database connections and prepares its statements during the first hundreds).
Every booking targets a slot that still has a free worker, so nearly all should be
201 (the slot engine may refuse a far worker whose ride home would end after the
shift); anything else is counted. Reported: bookings/s, p50/p99 latency (ms), CPU ms per
booking in the server processes, their PostgreSQL backends and the client, and
``speedup = ours bookings/s / baseline bookings/s``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from benchmarks._common import (
    add_common_args,
    emit,
    free_port,
    machine,
    peak_rss_mb,
    pg_drop,
    pg_reachable,
    pg_scratch,
    wait_healthy,
)

REPO = Path(__file__).resolve().parent.parent
TZ = ZoneInfo("Asia/Shanghai")
#: Slot starts (local) 90 min apart in an 8-20 shift: a 60-min visit, then up to 30 min to ride
#: to the next (the slot engine checks the real ride; the last one must leave time to get home).
SLOT_TIMES = [(8, 0), (9, 30), (11, 0), (12, 30), (14, 0), (15, 30), (17, 0), (18, 30)]
PASSWORD = "Bench-passw0rd"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="daojia bench booking", description=__doc__)
    p.add_argument("--bookings", type=int, default=5000, help="bookings in the concurrent run")
    p.add_argument("--concurrency", type=int, default=16,
                   help="requests in flight (500/s at ~30 ms is ~16 by Little's law)")  # fmt: skip
    p.add_argument("--baseline-bookings", type=int, default=200, help="sequential bookings")
    p.add_argument("--warmup", type=int, default=400,
                   help="unmeasured concurrent bookings first (connections, pools)")  # fmt: skip
    p.add_argument("--workers", type=int, default=200, help="workers of the enterprise")
    p.add_argument("--customers", type=int, default=8)
    p.add_argument("--backend", choices=["auto", "postgres", "sqlite"], default="auto")
    p.add_argument("--server-workers", type=int, default=0,
                   help="uvicorn processes (0: 2 on PostgreSQL, 1 on SQLite)")  # fmt: skip
    add_common_args(p, repeat=1)
    return p


async def _seed(url: str, n_workers: int, n_customers: int, seed: int) -> dict[str, Any]:
    import numpy as np
    import shapely
    from shapely.geometry import box

    from api.addresses.models import Address
    from api.auth.models import Role, User
    from api.auth.service import hash_password, make_password_hasher
    from api.catalog.models import Service, ServiceArea, ServiceCategory
    from api.core.db import make_engine, make_sessionmaker
    from api.core.geo_edge import point_cell
    from api.tenants.models import Enterprise, Worker

    rng = np.random.default_rng(seed)
    engine = make_engine(url)
    hasher = make_password_hasher(1, 8)
    pw = await hash_password(hasher, PASSWORD)
    shifts = [{"weekday": d, "start_min": 8 * 60, "end_min": 20 * 60} for d in range(7)]
    try:
        async with make_sessionmaker(engine)() as session:
            ent = Enterprise(code="bench", name="Bench")
            session.add(ent)
            await session.flush()
            bounds = (121.40, 31.15, 121.60, 31.30)
            session.add(ServiceArea(
                enterprise_id=ent.id, name="bench", city="上海",
                polygon_wkb=shapely.to_wkb(box(*bounds)), min_lng=bounds[0], min_lat=bounds[1],
                max_lng=bounds[2], max_lat=bounds[3],
            ))  # fmt: skip
            cat = ServiceCategory(code="bench", names={"zh-CN": "保洁"})
            session.add(cat)
            await session.flush()
            svc = Service(
                enterprise_id=ent.id, category_id=cat.id, names={"zh-CN": "保洁 1 小时"},
                price_fen=5900, duration_min=60, required_skills=["cleaning"], search_text="保洁",
            )  # fmt: skip
            session.add(svc)
            for i in range(n_workers):
                lat = 31.20 + 0.05 * float(rng.random())
                lng = 121.45 + 0.05 * float(rng.random())
                user = User(phone=f"1320{i:07d}", password_hash=pw, role=Role.WORKER.value,
                            enterprise_id=ent.id)  # fmt: skip
                session.add(user)
                await session.flush()
                session.add(Worker(
                    user_id=user.id, enterprise_id=ent.id, display_name=f"W{i}",
                    skills=["cleaning"], shifts=shifts, home_lat=lat, home_lng=lng,
                    home_cell=point_cell(lat, lng),
                ))  # fmt: skip
            customers = []
            for i in range(n_customers):
                user = User(phone=f"1330{i:07d}", password_hash=pw, role=Role.CUSTOMER.value)
                session.add(user)
                await session.flush()
                lat, lng = 31.225, 121.475
                addr = Address(
                    user_id=user.id, contact_name="客户", contact_phone="13800138000",
                    detail="某路", lat=lat, lng=lng, h3_cell=point_cell(lat, lng),
                )  # fmt: skip
                session.add(addr)
                await session.flush()
                customers.append((user.phone, addr.id))
            await session.commit()
            return {"service_id": svc.id, "customers": customers}
    finally:
        await engine.dispose()


class CpuMeter:
    """CPU seconds used by the server processes, their PostgreSQL backends and this client.

    On a shared machine wall-clock rates move with the neighbours' load; CPU time per
    booking does much less, and says where a booking's cost goes.
    """

    def __init__(self, server_pid: int, db_name: str | None) -> None:
        self.server_pid, self.db_name = server_pid, db_name

    def sample(self) -> dict[str, dict[int, float]]:
        import psutil

        def cpu(p: psutil.Process) -> float:
            t = p.cpu_times()
            return float(t.user + t.system)

        out: dict[str, dict[int, float]] = {"server": {}, "postgres": {}}
        try:
            server = psutil.Process(self.server_pid)
            for p in [server, *server.children(recursive=True)]:
                out["server"][p.pid] = cpu(p)
        except psutil.Error:
            pass
        if self.db_name:
            for p in psutil.process_iter(["name", "cmdline"]):
                try:
                    if self.db_name in " ".join(p.info["cmdline"] or ()):
                        out["postgres"][p.pid] = cpu(p)
                except psutil.Error:
                    continue
        out["client"] = {0: time.process_time()}
        return out

    @staticmethod
    def used(
        before: dict[str, dict[int, float]], after: dict[str, dict[int, float]]
    ) -> dict[str, float]:
        """CPU seconds per part between two samples (processes born in between count from 0)."""
        return {
            part: sum(v - before[part].get(pid, 0.0) for pid, v in after[part].items())
            for part in after
        }


@dataclass
class RunResult:
    """One load run: wall seconds, latencies (s), status counts and CPU seconds per part."""

    seconds: float
    latencies: list[float]
    statuses: Counter[int]
    cpu_s: dict[str, float] | None = None

    def summary(self) -> dict[str, Any]:
        ok = self.statuses.get(201, 0)
        lat = sorted(self.latencies)
        out = {
            "seconds": self.seconds,
            "bookings": ok,
            "bookings_per_s": ok / self.seconds if self.seconds else 0.0,
            "p50_ms": 1000 * statistics.median(lat),
            "p99_ms": 1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))],
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
        }
        if self.cpu_s is not None and ok:
            per = {k: 1000 * v / ok for k, v in self.cpu_s.items()}
            out["cpu_ms_per_booking"] = per | {"total": sum(per.values())}
        return out


def _slot_plan(n: int, per_slot: int, offset: int) -> list[str]:
    """``n`` slot starts, at most ``per_slot`` per slot, from the slot ``offset`` on."""
    start_day = (datetime.now(TZ) + timedelta(days=1)).date()
    out: list[str] = []
    k = offset
    while len(out) < n:
        day: date = start_day + timedelta(days=k // len(SLOT_TIMES))
        hour, minute = SLOT_TIMES[k % len(SLOT_TIMES)]
        moment = datetime(day.year, day.month, day.day, hour, minute, tzinfo=TZ).astimezone(UTC)
        out.extend([moment.isoformat()] * min(per_slot, n - len(out)))
        k += 1
    return out


async def _load(port: int, tokens: list[tuple[str, int]], service_id: int, slots: list[str],
                concurrency: int) -> RunResult:  # fmt: skip
    """Book every slot with ``concurrency`` requests in flight over keep-alive connections.

    The client is the lean loopback one of ``benchmarks.stream`` (httpx spent more CPU
    per request than the server's booking on this machine, and shares its two cores).
    """
    from benchmarks.stream import HttpPool

    sem = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    pool = HttpPool(port, concurrency)

    async def one(i: int, slot: str) -> None:
        token, address = tokens[i % len(tokens)]
        body = json.dumps({"service_id": service_id, "address_id": address, "slot_start": slot})
        async with sem:
            t0 = time.perf_counter()
            status, _ = await pool.post("/v1/orders", body.encode(), token)
            latencies.append(time.perf_counter() - t0)
        statuses[status] += 1

    try:
        t = time.perf_counter()
        await asyncio.gather(*(one(i, s) for i, s in enumerate(slots)))
        return RunResult(time.perf_counter() - t, latencies, statuses)
    finally:
        await pool.aclose()


def _measured(meter: CpuMeter, port: int, tokens: list[tuple[str, int]], service_id: int,
              slots: list[str], concurrency: int) -> RunResult:  # fmt: skip
    before = meter.sample()
    result = asyncio.run(_load(port, tokens, service_id, slots, concurrency))
    result.cpu_s = CpuMeter.used(before, meter.sample())
    return result


def _login(base: str, customers: list[tuple[str, int]]) -> list[tuple[str, int]]:
    import httpx

    out = []
    for phone, address in customers:
        resp = httpx.post(f"{base}/v1/auth/login", json={"phone": phone, "password": PASSWORD})
        resp.raise_for_status()
        out.append((resp.json()["access_token"], address))
    return out


def main(argv: list[str]) -> int:
    """Run the benchmark; prints a table or one JSON object."""
    args = _parser().parse_args(argv)
    from api.core import migrate

    backend = args.backend
    if backend == "auto":
        backend = "postgres" if pg_reachable() else "sqlite"
    tmp = Path(tempfile.mkdtemp(prefix="daojia-bench-booking-"))
    db_name = f"daojia_bench_booking_{os.getpid()}"
    if backend == "postgres":
        url = pg_scratch(db_name)
    else:
        url = f"sqlite+aiosqlite:///{tmp / 'bench.sqlite3'}"
    proc = None
    try:
        migrate.upgrade(url)
        world = asyncio.run(_seed(url, args.workers, args.customers, args.seed))
        port = free_port()
        server_workers = args.server_workers or (2 if backend == "postgres" else 1)
        env = {**os.environ, "DAOJIA_DATABASE_URL": url, "DAOJIA_VAR_DIR": str(tmp),
               "DAOJIA_JWT_SECRET": "bench-" + "b" * 40, "DAOJIA_ARGON2_TIME_COST": "1",
               "DAOJIA_ARGON2_MEMORY_KIB": "8", "DAOJIA_LOG_LEVEL": "WARNING",
               "DAOJIA_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}"}  # fmt: skip
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory", "--host",
             "127.0.0.1", "--port", str(port), "--workers", str(server_workers),
             "--log-level", "warning", "--no-access-log"],
            env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=(tmp / "server.log").open("wb"),
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        wait_healthy(base, proc)
        tokens = _login(base, world["customers"])
        meter = CpuMeter(proc.pid, db_name if backend == "postgres" else None)
        # The client imported the API to seed: freeze that heap, or the collector's full
        # passes over it stall the load loop and show up as server latency.
        gc.collect()
        gc.freeze()
        per_slot = args.workers
        offset = 0
        if args.warmup:
            # Not measured: opens the client's connections, grows both processes' database
            # pools and prepares their statements, as a server that has been up a while has.
            slots = _slot_plan(args.warmup, per_slot, offset)
            offset += -(-args.warmup // per_slot)
            asyncio.run(_load(port, tokens, world["service_id"], slots, args.concurrency))
        baseline_runs, ours_runs = [], []
        for _ in range(args.repeat):
            slots = _slot_plan(args.baseline_bookings, per_slot, offset)
            offset += -(-args.baseline_bookings // per_slot)
            baseline_runs.append(_measured(meter, port, tokens, world["service_id"], slots, 1))
            slots = _slot_plan(args.bookings, per_slot, offset)
            offset += -(-args.bookings // per_slot)
            ours_runs.append(_measured(meter, port, tokens, world["service_id"], slots,
                                       args.concurrency))  # fmt: skip
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        if backend == "postgres":
            pg_drop(db_name)
    baseline = _median_run(baseline_runs)
    ours = _median_run(ours_runs)
    result = {
        "benchmark": "booking",
        "backend": backend,
        "bookings": args.bookings,
        "baseline_bookings": args.baseline_bookings,
        "concurrency": args.concurrency,
        "warmup": args.warmup,
        "workers": args.workers,
        "customers": args.customers,
        "server_workers": server_workers,
        "repeat": args.repeat,
        "seed": args.seed,
        "ours": ours,
        "baseline": baseline,
        "speedup": ours["bookings_per_s"] / baseline["bookings_per_s"]
        if baseline["bookings_per_s"]
        else 0.0,
        "runs_bookings_per_s": [r.summary()["bookings_per_s"] for r in ours_runs],
        "peak_rss_mb": peak_rss_mb(),
        "machine": machine(),
    }
    rows = [
        {"case": f"concurrent x{args.concurrency}", **_row(ours)},
        {"case": "one at a time", **_row(baseline)},
    ]
    emit(result, rows, args.json, f"booking over HTTP on {backend}")
    return 0


def _row(summary: dict[str, Any]) -> dict[str, Any]:
    cpu = summary.get("cpu_ms_per_booking", {})
    return {k: summary[k] for k in ("bookings", "bookings_per_s", "p50_ms", "p99_ms")} | {
        "cpu ms/booking server+pg+client": "+".join(
            f"{cpu.get(k, 0.0):.2f}" for k in ("server", "postgres", "client")
        ),
        "statuses": str(summary["statuses"]),
    }


def _median_run(runs: list[RunResult]) -> dict[str, Any]:
    summaries = sorted((r.summary() for r in runs), key=lambda s: s["bookings_per_s"])
    return summaries[len(summaries) // 2]

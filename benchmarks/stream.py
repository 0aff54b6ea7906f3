"""Live tracking fan-out over WebSocket: ``daojia bench stream``.

Starts the API (uvicorn) on a free loopback port against a fresh SQLite database
with ``--clients`` orders already en route (one worker and one customer each),
opens one WebSocket subscriber per order (``/v1/orders/{id}/track``), and lets each
order's worker post a location ping every ``--interval`` seconds (phases spread
evenly) for ``--duration`` seconds, moving ~4 m/s toward the customer.

Measured per delivered position: client receive time minus the ping's timestamp,
which the worker sets to the moment it sends the ping — so the latency covers the
HTTP request, validation, LiveState, the ETA update and its database write, the
broker, and the WebSocket hop. Reported: p50/p99/max in ms, delivered/expected.
Live layer: in-process (one server process) unless ``--redis URL`` (unique key prefix,
removed afterwards; then ``--server-workers`` may be > 1).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks._common import add_common_args, emit, machine, peak_rss_mb

REPO = Path(__file__).resolve().parent.parent
SECRET = "bench-stream-" + "s" * 40
ORIGIN = (31.2200, 121.4700)  # workers start here (WGS-84)
DEST = (31.2380, 121.4700)  # every customer lives 2 km north
STEP_M = 20.0  # metres per ping (4 m/s at 5 s pings)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="daojia bench stream", description=__doc__)
    p.add_argument("--clients", type=int, default=100, help="WebSocket subscribers (orders)")
    p.add_argument("--interval", type=float, default=5.0, help="seconds between a worker's pings")
    p.add_argument("--duration", type=float, default=20.0, help="seconds of pinging")
    p.add_argument("--redis", default="", help="Redis URL for the live layer (default in-process)")
    p.add_argument("--server-workers", type=int, default=1, help="uvicorn processes (Redis only)")
    add_common_args(p, repeat=1)
    return p


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _seed(url: str, n: int) -> list[tuple[int, str, str]]:
    """n en-route orders; returns (order id, worker token, customer token) per order."""
    from api.auth.models import Role, User
    from api.auth.service import TokenConfig, encode_access_token
    from api.catalog.models import Service, ServiceCategory
    from api.db import make_engine, make_sessionmaker
    from api.dispatch.models import OrderTrack
    from api.enterprise.models import Enterprise, Worker
    from api.geo_edge import point_cell
    from api.orders.models import Order

    engine = make_engine(url)
    maker = make_sessionmaker(engine)
    now = datetime.now(UTC)
    config = TokenConfig(secret=SECRET, access_ttl_s=3600)
    out = []
    try:
        async with maker() as session:
            ent = Enterprise(code="bench", name="Bench")
            cat = ServiceCategory(code="bench", names={"en": "Bench"})
            session.add_all([ent, cat])
            await session.flush()
            svc = Service(
                enterprise_id=ent.id, category_id=cat.id, names={"en": "Cleaning"},
                descriptions={}, price_fen=100, duration_min=60, required_skills=[],
                popularity=0, search_text="bench",
            )  # fmt: skip
            session.add(svc)
            await session.flush()
            for i in range(n):
                wu = User(phone=f"1370000{i:04d}", role=Role.WORKER.value, enterprise_id=ent.id)
                cu = User(phone=f"1360000{i:04d}", role=Role.CUSTOMER.value)
                session.add_all([wu, cu])
                await session.flush()
                worker = Worker(
                    user_id=wu.id, enterprise_id=ent.id, display_name=f"W{i}", skills=[],
                    shifts=[], rating=5.0, home_lat=ORIGIN[0], home_lng=ORIGIN[1],
                    home_cell=point_cell(*ORIGIN),
                )  # fmt: skip
                session.add(worker)
                await session.flush()
                order = Order(
                    order_no=f"BENCH{i:08d}", customer_id=cu.id, enterprise_id=ent.id,
                    service_id=svc.id, worker_id=worker.id, status="pending_service",
                    dispatch_status="en_route", slot_start=now, slot_end=now + timedelta(hours=1),
                    duration_min=60, price_fen=100, surcharge_fen=0, amount_fen=100,
                    lat=DEST[0], lng=DEST[1], address_snapshot={}, quote_lines=[],
                )  # fmt: skip
                session.add(order)
                await session.flush()
                session.add(OrderTrack(order_id=order.id, service_code="123456", photos=[]))
                out.append(
                    (
                        order.id,
                        encode_access_token(config, wu, now),
                        encode_access_token(config, cu, now),
                    )
                )
            await session.commit()
    finally:
        await engine.dispose()
    return out


def _wait(base: str, proc: subprocess.Popen[bytes]) -> None:
    import httpx

    for _ in range(600):
        if proc.poll() is not None:
            raise RuntimeError("the API server exited during startup")
        try:
            if httpx.get(f"{base}/health", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the API server did not start")


async def _run(
    port: int, orders: list[tuple[int, str, str]], interval: float, duration: float
) -> dict[str, Any]:
    import httpx
    import websockets

    latencies: list[float] = []
    sent = 0
    accepted = 0
    stop = asyncio.Event()

    async def subscriber(order_id: int, token: str, ready: asyncio.Event) -> None:
        url = f"ws://127.0.0.1:{port}/v1/orders/{order_id}/track?token={token}"
        async with websockets.connect(url, max_queue=None) as ws:
            await ws.recv()  # the status snapshot: subscribed from here on
            ready.set()
            while not stop.is_set():
                try:
                    raw = await asyncio.wait_for(ws.recv(), timeout=0.5)
                except TimeoutError:
                    continue
                msg = json.loads(raw)
                if msg.get("type") == "position":
                    latencies.append(time.time() - float(msg["ts"]))

    async def worker(http: httpx.AsyncClient, token: str, phase: float, t0: float) -> None:
        nonlocal sent, accepted
        headers = {"Authorization": f"Bearer {token}"}
        k = 0
        while True:
            at = t0 + phase + k * interval
            if at - t0 >= duration:
                return
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            lat = ORIGIN[0] + (k * STEP_M) / 111_195.0
            body = {"pings": [{"lat": lat, "lng": ORIGIN[1], "ts": time.time()}]}
            resp = await http.post("/v1/worker/pings", json=body, headers=headers)
            sent += 1
            if resp.status_code == 200:
                accepted += int(resp.json()["accepted"])
            k += 1

    readies = [asyncio.Event() for _ in orders]
    subs = [
        asyncio.create_task(subscriber(oid, ctoken, ready))
        for (oid, _w, ctoken), ready in zip(orders, readies, strict=True)
    ]
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), timeout=120)
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=30
    ) as http:
        t0 = time.monotonic()
        n = len(orders)
        await asyncio.gather(
            *(
                worker(http, wtoken, interval * i / n, t0)
                for i, (_o, wtoken, _c) in enumerate(orders)
            )
        )
    await asyncio.sleep(2.0)  # let the last deliveries arrive
    stop.set()
    await asyncio.gather(*subs, return_exceptions=True)
    ms = sorted(x * 1000.0 for x in latencies)

    def pct(q: float) -> float:
        return ms[min(len(ms) - 1, int(q * len(ms)))] if ms else float("nan")

    return {
        "pings_sent": sent,
        "pings_accepted": accepted,
        "delivered": len(ms),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": ms[-1] if ms else float("nan"),
        "mean_ms": statistics.fmean(ms) if ms else float("nan"),
    }


def main(argv: list[str]) -> int:
    """Run the benchmark; prints a table or one JSON object."""
    args = _parser().parse_args(argv)
    if args.clients < 1 or args.interval <= 0 or args.duration <= 0:
        print("--clients, --interval and --duration must be positive", file=sys.stderr)
        return 2
    if args.server_workers > 1 and not args.redis:
        print("--server-workers > 1 needs --redis (in-process pub/sub)", file=sys.stderr)
        return 2
    from api import migrate

    tmp = Path(tempfile.mkdtemp(prefix="daojia-bench-stream-"))
    url = f"sqlite+aiosqlite:///{tmp / 'bench.sqlite3'}"
    prefix = f"djbench:{uuid.uuid4().hex[:10]}:"
    proc = None
    runs = []
    try:
        migrate.upgrade(url)
        orders = asyncio.run(_seed(url, args.clients))
        port = _free_port()
        env = {**os.environ, "DAOJIA_DATABASE_URL": url, "DAOJIA_VAR_DIR": str(tmp),
               "DAOJIA_JWT_SECRET": SECRET, "DAOJIA_ENVIRONMENT": "test",
               "DAOJIA_LOG_LEVEL": "WARNING", "DAOJIA_REDIS_PREFIX": prefix}  # fmt: skip
        if args.redis:
            env["DAOJIA_REDIS_URL"] = args.redis
        else:
            env.pop("DAOJIA_REDIS_URL", None)
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory", "--host",
             "127.0.0.1", "--port", str(port), "--workers", str(args.server_workers),
             "--log-level", "warning", "--no-access-log"],
            env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=(tmp / "server.log").open("wb"),
        )  # fmt: skip
        _wait(f"http://127.0.0.1:{port}", proc)
        for _ in range(args.repeat):
            runs.append(asyncio.run(_run(port, orders, args.interval, args.duration)))
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        if args.redis:
            asyncio.run(_drop_prefix(args.redis, prefix))
    best = sorted(runs, key=lambda r: r["p50_ms"])[len(runs) // 2]
    result = {
        "benchmark": "stream",
        "clients": args.clients,
        "interval_s": args.interval,
        "duration_s": args.duration,
        "live": "redis" if args.redis else "memory",
        "server_workers": args.server_workers,
        "repeat": args.repeat,
        **best,
        "runs_p50_ms": [r["p50_ms"] for r in runs],
        "peak_rss_mb": peak_rss_mb(),
        "machine": machine(),
    }
    rows = [
        {k: best[k] for k in ("pings_sent", "pings_accepted", "delivered")}
        | {k: round(best[k], 1) for k in ("p50_ms", "p99_ms", "max_ms")}
    ]
    title = f"stream: {args.clients} WebSocket clients, ping every {args.interval:g} s"
    emit(result, rows, args.json, title)
    return 0


async def _drop_prefix(url: str, prefix: str) -> None:
    import redis.asyncio as redis_asyncio

    client = redis_asyncio.from_url(url)
    try:
        keys = [k async for k in client.scan_iter(match=prefix + "*", count=1000)]
        if keys:
            await client.unlink(*keys)
    finally:
        await client.aclose()


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

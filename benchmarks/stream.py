"""Live tracking fan-out over WebSocket: ``daojia bench stream``.

Starts the API (uvicorn) on a free loopback port against a fresh database
(``--database``: PostgreSQL when it answers, as deployed, else SQLite) with
``--clients`` orders already en route (one worker and one customer each), opens one
WebSocket subscriber per order (``/v1/orders/{id}/track``), and lets each order's
worker send a location ping every ``--interval`` seconds (phases spread evenly) for
``--duration`` seconds, moving ~4 m/s toward the customer.

Measured per delivered position: client receive time minus the ping's timestamp,
which the worker sets to the moment it sends the ping — so the latency covers the
client's own connection wait, the ping's transport, validation, LiveState, the ETA
update, the broker, and the WebSocket hop. Reported: p50/p90/p99/max in ms,
delivered/expected (expected = accepted pings: one subscriber per order).

Workers send their pings as the worker app does while on duty, over its location
socket ``/v1/worker/live`` (``--pings ws``, default; one ack per ping), or as one
``POST /v1/worker/pings`` each (``--pings http``, a minimal keep-alive HTTP/1.1 client,
``HttpConn``). The clients run in ``--client-processes`` processes (subscribers and
workers split evenly, phases kept global) on ``benchmarks/_wsclient.py``, an
``asyncio.Protocol`` WebSocket client without permessage-deflate (as the mini-program's
``wx.connectSocket``): the ``websockets`` client cost ~0.3 ms of CPU per message, and a
load generator sharing the measured machine must not become what is measured. All
processes read the same machine clock (``time.time()``), so no offset correction is
needed. Client CPU per ping is reported beside the server's.

Live layer: in-process (one server process) unless ``--redis URL`` (unique key prefix,
removed afterwards; then ``--server-workers`` may be > 1).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

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
from benchmarks._wsclient import WsClient

REPO = Path(__file__).resolve().parent.parent
SECRET = "bench-stream-" + "s" * 40
ORIGIN = (31.2200, 121.4700)  # workers start here (WGS-84)
DEST = (31.2380, 121.4700)  # every customer lives 2 km north
STEP_M = 20.0  # metres per ping (4 m/s at 5 s pings)
#: WebSocket handshakes a client process has in flight while subscribing (each costs the
#: server an authorisation and a snapshot; thousands at once only exhaust its DB pool).
CONNECTS_IN_FLIGHT = 16


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="daojia bench stream", description=__doc__)
    p.add_argument("--clients", type=int, default=100, help="WebSocket subscribers (orders)")
    p.add_argument("--interval", type=float, default=5.0, help="seconds between a worker's pings")
    p.add_argument("--duration", type=float, default=20.0, help="seconds of pinging")
    p.add_argument("--redis", default="", help="Redis URL for the live layer (default in-process)")
    p.add_argument("--server-workers", type=int, default=1, help="uvicorn processes (Redis only)")
    p.add_argument(
        "--client-processes", type=int, default=2, help="processes running the WebSocket clients"
    )
    p.add_argument(
        "--pings",
        choices=["ws", "http"],
        default="ws",
        help="how workers send pings: their location socket /v1/worker/live (as the worker"
        " app on duty) or POST /v1/worker/pings",
    )
    p.add_argument(
        "--http-connections",
        type=int,
        default=32,
        help="keep-alive ping connections per process (--pings http)",
    )
    p.add_argument("--loop", default="uvloop", help="uvicorn --loop (auto, asyncio, uvloop)")
    p.add_argument("--http", default="httptools", help="uvicorn --http (auto, h11, httptools)")
    p.add_argument("--ws", default="auto", help="uvicorn --ws (auto, websockets, wsproto, ...)")
    p.add_argument("--database", choices=["auto", "postgres", "sqlite"], default="auto",
                   help="the API's database (auto: PostgreSQL when it answers)")  # fmt: skip
    add_common_args(p, repeat=1)
    return p


async def _seed(url: str, n: int, *, with_orders: bool = True) -> list[tuple[int, str, str]]:
    """n workers, each with an en-route order unless not ``with_orders``.

    Returns (order id, worker token, customer token) per worker (order id 0 and no
    customer token without orders).
    """
    from api.auth.models import Role, User
    from api.auth.service import TokenConfig, encode_access_token
    from api.catalog.models import Service, ServiceCategory
    from api.core.db import make_engine, make_sessionmaker
    from api.core.geo_edge import point_cell
    from api.orders.models import Order
    from api.tenants.models import Enterprise, Worker
    from api.tracking.models import OrderTrack

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
                if not with_orders:
                    out.append((0, encode_access_token(config, wu, now), ""))
                    continue
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


class HttpConn:
    """A minimal HTTP/1.1 keep-alive client for loopback benchmarks (JSON bodies only).

    httpx's pool costs more CPU per request than the server's whole ping handling, so
    a benchmark that drives thousands of requests a second through it measures the
    client; this writes the request bytes and reads one Content-Length response.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(cls, port: int) -> HttpConn:
        """A connection to the loopback server on ``port``."""
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def post(self, path: str, body: bytes, token: str) -> tuple[int, bytes]:
        """POST ``body`` (JSON) with a bearer token; returns (status, response body)."""
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self._writer.write(head.encode() + body)
        raw = await self._reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = next(
            (
                int(v)
                for k, _, v in (x.partition(":") for x in lines[1:])
                if k.lower() == "content-length"
            ),
            None,
        )
        if length is None:
            raise RuntimeError("response without Content-Length")
        return status, await self._reader.readexactly(length)

    async def aclose(self) -> None:
        """Close the connection."""
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()


class HttpPool:
    """Up to ``size`` keep-alive ``HttpConn`` to one port, handed out one request at a time."""

    def __init__(self, port: int, size: int) -> None:
        self._port = port
        self._idle: asyncio.Queue[HttpConn] = asyncio.Queue()
        self._free = size
        self._all: list[HttpConn] = []

    async def post(self, path: str, body: bytes, token: str) -> tuple[int, bytes]:
        """POST on an idle connection (opening one while under ``size``)."""
        if self._idle.empty() and self._free > 0:
            self._free -= 1
            conn = await HttpConn.open(self._port)
            self._all.append(conn)
        else:
            conn = await self._idle.get()
        try:
            result = await conn.post(path, body, token)
        except BaseException:
            self._all.remove(conn)
            self._free += 1
            await conn.aclose()
            raise
        self._idle.put_nowait(conn)
        return result

    async def aclose(self) -> None:
        """Close every connection."""
        for conn in self._all:
            await conn.aclose()


@dataclass(frozen=True)
class ClientPart:
    """What one client process runs: its orders and their global index (for the phase)."""

    port: int
    orders: list[tuple[int, int, str, str]]  # (global index, order id, worker, customer token)
    total: int
    interval: float
    duration: float
    http_connections: int
    pings: str = "ws"


def _client_process(part: ClientPart, ready: Any, start: Any, results: Any) -> None:
    """Entry point of a client process: subscribe, report ready, ping from ``start``."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # the plain loop works, only slower
        pass
    results.put(asyncio.run(_client_run(part, ready, start)))


async def _client_run(part: ClientPart, ready: Any, start: Any) -> dict[str, Any]:
    latencies: list[float] = []
    counts = {"sent": 0, "accepted": 0, "errors": 0, "subscribe_errors": 0}
    loop = asyncio.get_running_loop()
    connecting = asyncio.Semaphore(CONNECTS_IN_FLIGHT)
    subscribers: list[WsClient] = []

    async def subscribe(order_id: int, token: str) -> None:
        # No permessage-deflate: the mini-program's wx.connectSocket does not offer it.
        first = loop.create_future()

        def on_message(text: str, now: float) -> None:
            if not first.done():
                first.set_result(text)  # the status snapshot: subscribed from here on
            elif '"position"' in text:
                latencies.append(now - float(json.loads(text)["ts"]))

        try:
            async with connecting:  # a few handshakes at a time, as clients trickle in
                ws = await WsClient.open(
                    part.port, f"/v1/orders/{order_id}/track?token={token}", on_message
                )
                subscribers.append(ws)
                await asyncio.wait_for(first, timeout=600)
        except (OSError, ConnectionError, TimeoutError):
            # Counted and reported: a failed subscriber must not hang the run.
            counts["subscribe_errors"] += 1

    pool = HttpPool(part.port, part.http_connections)
    sockets: dict[str, WsClient] = {}  # worker token -> its location socket (--pings ws)
    acks: dict[str, asyncio.Future[str]] = {}

    async def open_socket(token: str) -> None:
        def on_ack(text: str, _now: float) -> None:
            waiting = acks.pop(token, None)
            if waiting is not None and not waiting.done():
                waiting.set_result(text)

        def on_lost() -> None:
            waiting = acks.pop(token, None)
            if waiting is not None and not waiting.done():
                waiting.set_exception(ConnectionError("the worker socket closed"))

        async with connecting:
            ws = await WsClient.open(part.port, f"/v1/worker/live?token={token}", on_ack)
            ws.on_lost(on_lost)
            sockets[token] = ws

    async def send(body: str, token: str) -> int:
        """One batch by the chosen transport; returns how many fixes were accepted."""
        if part.pings == "ws":
            acks[token] = waiting = loop.create_future()
            sockets[token].send(body)
            reply = json.loads(await asyncio.wait_for(waiting, timeout=120))
            return int(reply.get("accepted", 0))
        status, raw = await pool.post("/v1/worker/pings", body.encode(), token)
        return int(json.loads(raw)["accepted"]) if status == 200 else 0

    async def worker(index: int, token: str, t0: float) -> None:
        phase = part.interval * index / part.total
        k = 0
        while phase + k * part.interval < part.duration:
            await asyncio.sleep(max(0.0, t0 + phase + k * part.interval - time.time()))
            lat = ORIGIN[0] + (k * STEP_M) / 111_195.0
            # The ping's time is taken before waiting for a connection, so the latency
            # includes any wait in this client's own pool (conservative).
            body = json.dumps({"pings": [{"lat": lat, "lng": ORIGIN[1], "ts": time.time()}]})
            counts["sent"] += 1
            try:
                accepted = await send(body, token)
            except (OSError, asyncio.IncompleteReadError, RuntimeError, TimeoutError):
                counts["errors"] += 1
            else:
                counts["accepted"] += accepted  # not `+= await`: that reads before waiting
            k += 1

    await asyncio.gather(*(subscribe(oid, ctoken) for _i, oid, _w, ctoken in part.orders))
    if part.pings == "ws":
        await asyncio.gather(*(open_socket(w) for _i, _o, w, _c in part.orders))
    # Everything allocated so far lives to the end: keep the collector off it, so its
    # full passes over thousands of sockets do not stall receive timestamps.
    gc.collect()
    gc.freeze()
    ready.put(len(subscribers))
    t0 = await loop.run_in_executor(None, start.get)
    cpu0 = time.process_time()
    await asyncio.gather(*(worker(i, w, t0) for i, _o, w, _c in part.orders))
    await asyncio.sleep(3.0)  # let the last deliveries arrive
    cpu = time.process_time() - cpu0
    for ws in [*subscribers, *sockets.values()]:
        ws.close()
    await asyncio.wait(
        [asyncio.ensure_future(ws.closed) for ws in [*subscribers, *sockets.values()]],
        timeout=10,
    )
    await pool.aclose()
    return {"latencies": latencies, "client_cpu_s": cpu, **counts}


def _get_while_alive(queue: Any, procs: list[Any], *, timeout_s: float) -> Any:
    """The next item of ``queue``; raises as soon as a client process died without one."""
    import queue as queue_module

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            return queue.get(timeout=1.0)
        except queue_module.Empty:
            dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
            if dead:
                raise RuntimeError(f"a client process failed (exit codes {dead})") from None
    raise TimeoutError(f"no answer from the client processes in {timeout_s:.0f} s")


def _run(
    server: Served,
    interval: float,
    duration: float,
    processes: int,
    http_connections: int,
    pings: str = "ws",
) -> dict[str, Any]:
    """One measured run with ``processes`` client processes; merged latencies."""
    ctx = mp.get_context("spawn")
    ready, results = ctx.Queue(), ctx.Queue()
    starts = [ctx.Queue() for _ in range(processes)]
    orders = server.seeded
    indexed = [(i, *o) for i, o in enumerate(orders)]
    procs = []
    for p in range(processes):
        part = ClientPart(
            server.port,
            indexed[p::processes],
            len(orders),
            interval,
            duration,
            http_connections,
            pings,
        )
        proc = ctx.Process(target=_client_process, args=(part, ready, starts[p], results))
        proc.start()
        procs.append(proc)
    try:
        for _ in procs:
            _get_while_alive(ready, procs, timeout_s=900)
        # Every process's clock is this machine's clock: one start time serves all.
        t0 = time.time() + 1.0
        for q in starts:
            q.put(t0)
        cpu0 = server.cpu_s()
        parts = [_get_while_alive(results, procs, timeout_s=duration + 600) for _ in procs]
        # The server's CPU over the pinging (and the few seconds of draining after it).
        server_cpu = server.cpu_s() - cpu0
        wall = time.time() - t0
    finally:
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
    ms = np.sort(np.array([x for r in parts for x in r["latencies"]]) * 1000.0)

    def pct(q: float) -> float:
        return float(np.percentile(ms, q * 100)) if ms.size else float("nan")

    sent = sum(r["sent"] for r in parts)
    client_cpu = sum(r["client_cpu_s"] for r in parts)
    return {
        "client_cpu_ms_per_ping": client_cpu * 1000.0 / max(1, sent),
        "client_cpu_cores": client_cpu / wall,
        "server_cpu_ms_per_ping": server_cpu * 1000.0 / max(1, sent),
        "server_cpu_cores": server_cpu / wall,
        "pings_sent": sent,
        "pings_accepted": sum(r["accepted"] for r in parts),
        "ping_errors": sum(r["errors"] for r in parts),
        "subscribe_errors": sum(r["subscribe_errors"] for r in parts),
        "delivered": int(ms.size),
        "p50_ms": pct(0.50),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
        "max_ms": float(ms[-1]) if ms.size else float("nan"),
        "mean_ms": float(ms.mean()) if ms.size else float("nan"),
    }


def process_cpu_s(root: int) -> float:
    """CPU seconds (user + system) used so far by process ``root`` and its children."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if int(entry.name) == root or int(fields[1]) == root:
            total += int(fields[11]) + int(fields[12])
    return total / tick


@dataclass(frozen=True)
class Served:
    """A running API server: its port, the seeded rows (see ``_seed``) and its process."""

    port: int
    seeded: list[tuple[int, str, str]]
    pid: int

    def cpu_s(self) -> float:
        """CPU seconds the server's processes (uvicorn and its workers) used so far."""
        return process_cpu_s(self.pid)


@contextlib.contextmanager
def serve(
    n: int,
    *,
    redis: str = "",
    server_workers: int = 1,
    loop: str = "uvloop",
    http: str = "httptools",
    ws: str = "auto",
    with_orders: bool = True,
    database: str = "sqlite",
) -> Iterator[Served]:
    """The API under uvicorn on a free loopback port, on a fresh database (``sqlite``, or
    ``postgres``: a scratch PostGIS database, dropped afterwards) seeded with ``n``
    workers (and an en-route order each).

    Live layer in-process unless ``redis`` (a unique key prefix, deleted afterwards).
    """
    from api.core import migrate

    tmp = Path(tempfile.mkdtemp(prefix="daojia-bench-serve-"))
    db_name = f"daojia_bench_serve_{os.getpid()}"
    if database == "postgres":
        url = pg_scratch(db_name)
    else:
        url = f"sqlite+aiosqlite:///{tmp / 'bench.sqlite3'}"
    prefix = f"djbench:{uuid.uuid4().hex[:10]}:"
    proc = None
    try:
        migrate.upgrade(url)
        seeded = asyncio.run(_seed(url, n, with_orders=with_orders))
        port = free_port()
        env = {**os.environ, "DAOJIA_DATABASE_URL": url, "DAOJIA_VAR_DIR": str(tmp),
               "DAOJIA_JWT_SECRET": SECRET, "DAOJIA_ENVIRONMENT": "dev",
               "DAOJIA_LOG_LEVEL": "WARNING", "DAOJIA_REDIS_PREFIX": prefix}  # fmt: skip
        if redis:
            env["DAOJIA_REDIS_URL"] = redis
        else:
            env.pop("DAOJIA_REDIS_URL", None)
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory", "--host",
             "127.0.0.1", "--port", str(port), "--workers", str(server_workers),
             "--loop", loop, "--http", http, "--ws", ws,
             "--log-level", "warning", "--no-access-log"],
            env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=(tmp / "server.log").open("wb"),
        )  # fmt: skip
        wait_healthy(f"http://127.0.0.1:{port}", proc)
        yield Served(port, seeded, proc.pid)
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        if redis:
            asyncio.run(_drop_prefix(redis, prefix))
        if database == "postgres":
            pg_drop(db_name)


def database_of(choice: str) -> str:
    """``auto`` → PostgreSQL when it answers (as deployed), else SQLite."""
    if choice == "auto":
        return "postgres" if pg_reachable() else "sqlite"
    return choice


def main(argv: list[str]) -> int:
    """Run the benchmark; prints a table or one JSON object."""
    args = _parser().parse_args(argv)
    if (
        min(args.clients, args.client_processes, args.http_connections) < 1
        or args.interval <= 0
        or args.duration <= 0
    ):
        print(
            "--clients, --client-processes, --http-connections, --interval and --duration"
            " must be positive",
            file=sys.stderr,
        )
        return 2
    if args.server_workers > 1 and not args.redis:
        print("--server-workers > 1 needs --redis (in-process pub/sub)", file=sys.stderr)
        return 2
    runs = []
    database = database_of(args.database)
    with serve(
        args.clients, redis=args.redis, server_workers=args.server_workers,
        loop=args.loop, http=args.http, ws=args.ws, database=database,
    ) as server:  # fmt: skip
        processes = min(args.client_processes, args.clients)
        for _ in range(args.repeat):
            runs.append(
                _run(
                    server,
                    args.interval,
                    args.duration,
                    processes,
                    args.http_connections,
                    args.pings,
                )
            )
    best = sorted(runs, key=lambda r: r["p50_ms"])[len(runs) // 2]
    result = {
        "benchmark": "stream",
        "database": database,
        "clients": args.clients,
        "interval_s": args.interval,
        "duration_s": args.duration,
        "live": "redis" if args.redis else "memory",
        "server_workers": args.server_workers,
        "client_processes": min(args.client_processes, args.clients),
        "pings": args.pings,
        "http_connections": args.http_connections,
        "uvicorn": {"loop": args.loop, "http": args.http, "ws": args.ws},
        "repeat": args.repeat,
        **best,
        "expected": best["pings_accepted"],
        "runs_p50_ms": [r["p50_ms"] for r in runs],
        "peak_rss_mb": peak_rss_mb(),
        "machine": machine(),
    }
    rows = [
        {k: best[k] for k in ("pings_sent", "pings_accepted", "delivered")}
        | {k: round(best[k], 1) for k in ("p50_ms", "p90_ms", "p99_ms", "max_ms")}
        | {"server CPU ms/ping": round(best["server_cpu_ms_per_ping"], 2)}
    ]
    title = (
        f"stream: {args.clients} WebSocket clients, ping every {args.interval:g} s"
        f" over {'the worker socket' if args.pings == 'ws' else 'HTTP'}"
    )
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

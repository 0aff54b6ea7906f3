"""The production dispatcher process (``daojia dispatcher``): regions owned through Redis leases.

Each process announces itself (``LeaseStore.members``), finds the active regions (H3
res-5 parents of awaiting orders, live offers and online workers), and holds leases on
a fair share of them (``ceil(regions / live processes)``; a process over its share hands
one region back per tick). Leases live ``lease_ttl_ms`` (6 s) and are renewed every third
of it by their own task, so a killed process's regions are free again within one TTL and
another process takes them on its next tick (< 10 s in all).

Every tick runs ``Dispatcher.run_once(now, fences={region: token})``: the database
rejects a write with a token older than the newest it has seen for the region
(api/dispatcher/fencing.py), so a paused or partitioned holder cannot overwrite the new
owner's work. A new lease's token starts above the database's newest (``min_token``:
Redis forgets its counters on a restart) and is written to the fence at once.

Redis down: leases cannot be held, so the process drops them all, logs
``redis_unavailable`` once, keeps polling, and resumes when Redis answers again (the
database is the record; live state is rebuilt from the workers' next pings).
SIGTERM/SIGINT: finish the tick, release the leases, leave the member set, exit 0.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import time
import zlib
from dataclasses import dataclass

import anyio
import structlog
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.core.db import utcnow
from api.core.leases import Lease, StaleFencingToken
from api.core.live import LiveBackends
from api.core.settings import Settings
from api.dispatcher.fencing import fence, newest_token
from api.dispatcher.loop import Dispatcher

log = structlog.get_logger("api.dispatcher.runner")

#: Lease TTL: a dead process's regions are free again after at most this long.
LEASE_TTL_MS = 6_000
#: Errors meaning "Redis is not answering" (the client raises ConnectionError/TimeoutError).
REDIS_DOWN = (RedisError, OSError)


def default_owner() -> str:
    """``<host>-<pid>``: unique per process, without ':' (the lease value separator)."""
    return f"{socket.gethostname()}-{os.getpid()}".replace(":", "-")


@dataclass
class Held:
    """A lease this process holds and until when (monotonic) it may trust it locally."""

    lease: Lease
    trusted_until: float


class RegionRunner:
    """One dispatcher process: leases, renewals and per-region ticks (see the module doc)."""

    def __init__(
        self,
        maker: async_sessionmaker[AsyncSession],
        live: LiveBackends,
        settings: Settings,
        *,
        owner: str | None = None,
        lease_ttl_ms: int = LEASE_TTL_MS,
        tick_s: float | None = None,
    ) -> None:
        self.maker = maker
        self.live = live
        self.settings = settings
        self.owner = owner or default_owner()
        self.lease_ttl_ms = lease_ttl_ms
        self.tick_s = tick_s
        self.dispatcher = Dispatcher(maker, live, settings)
        self.held: dict[int, Held] = {}
        self.redis_ok = True

    # ------------------------------------------------------------------ lifecycle

    async def run(self, stop: anyio.Event) -> None:
        """Dispatch until ``stop`` is set, then release every lease."""
        log.info("dispatcher_started", owner=self.owner, lease_ttl_ms=self.lease_ttl_ms)
        try:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(self._renew_forever)
                while not stop.is_set():
                    interval = await self.step()
                    with anyio.move_on_after(interval):
                        await stop.wait()
                tasks.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await self._shutdown()

    async def _shutdown(self) -> None:
        released = sorted(self.held)
        for region in released:
            await self._drop(region, release=True)
        with contextlib.suppress(*REDIS_DOWN):
            await self.live.leases.leave(self.owner)
        log.info("dispatcher_stopped", owner=self.owner, released=[f"{r:x}" for r in released])

    # ------------------------------------------------------------------ one step

    async def step(self) -> float:
        """Balance leases, run one tick over the held regions; seconds until the next step.

        Never raises: Redis errors drop every lease until Redis answers again; any other
        error (the database away, a bad row) is logged and the next step tries again.
        """
        interval = self.tick_s or await self._interval()
        try:
            await self._step()
        except REDIS_DOWN as exc:
            self._redis_down(exc)
        except Exception as exc:
            log.exception("dispatch_step_failed", owner=self.owner, error=type(exc).__name__)
        return interval

    async def _step(self) -> None:
        now = utcnow()
        members = await self.live.leases.members(self.owner, self.lease_ttl_ms)
        regions = await self.dispatcher.active_regions(now)
        if not self.redis_ok:
            self.redis_ok = True
            log.info("redis_available", owner=self.owner)
        await self._balance(regions, members)
        fences = self._trusted()
        if not fences:
            return
        report = await self.dispatcher.run_once(now, fences=fences)
        for region in report.stale_regions:
            log.warning("lease_fenced_off", region=f"{region:x}", owner=self.owner)
            await self._drop(region, release=True)

    async def _interval(self) -> float:
        # DAOJIA_DISPATCH_TICK_S=0 switches the API's embedded dispatcher off; here it means
        # the default pace.
        base = self.settings.dispatch_tick_s or 2.0
        try:
            return await self.dispatcher.tick_interval_s(base)
        except Exception:  # the database is away: poll at the configured pace
            return base

    def _trusted(self) -> dict[int, int]:
        """Held regions whose lease is still inside its locally trusted lifetime."""
        now = time.monotonic()
        return {r: h.lease.fencing_token for r, h in self.held.items() if h.trusted_until > now}

    def _redis_down(self, exc: BaseException) -> None:
        if self.redis_ok:
            log.warning(
                "redis_unavailable",
                owner=self.owner,
                error=type(exc).__name__,
                dropped=[f"{r:x}" for r in sorted(self.held)],
            )
        self.redis_ok = False
        # Without Redis nobody can prove ownership: stop writing for every region now.
        self.held.clear()

    # ------------------------------------------------------------------ leases

    def _order(self, regions: set[int]) -> list[int]:
        """Regions in an owner-specific order, so processes starting together spread out."""
        salt = zlib.crc32(self.owner.encode())
        return sorted(regions, key=lambda r: zlib.crc32(r.to_bytes(8, "big"), salt))

    async def _balance(self, regions: set[int], members: list[str]) -> None:
        """Release regions over the fair share or without work, acquire free ones up to it."""
        wanted = regions | set(self.held)
        share = math.ceil(len(wanted) / max(1, len(members)))
        for region in [r for r in self.held if r not in regions]:
            await self._drop(region, release=True)
        if len(self.held) > share:
            # Hand back one region per step: the other processes pick it up next tick.
            await self._drop(self._order(set(self.held))[-1], release=True)
        for region in self._order(regions - set(self.held)):
            if len(self.held) >= share:
                break
            await self._acquire(region)

    async def _acquire(self, region: int) -> None:
        async with self.maker() as session:
            floor = await newest_token(session, region)
        lease = await self.live.leases.acquire(
            region, self.owner, self.lease_ttl_ms, min_token=floor
        )
        if lease is None:
            return
        started = time.monotonic()
        try:
            # Claim the fence now: from here on the previous holder's writes fail.
            async with self.maker() as session:
                await fence(session, region, lease.fencing_token)
                await session.commit()
        except StaleFencingToken:
            await self.live.leases.release(lease)
            return
        self.held[region] = Held(lease, started + self._trust_s())
        log.info(
            "lease_acquired", region=f"{region:x}", token=lease.fencing_token, owner=self.owner
        )

    def _trust_s(self) -> float:
        # Stop trusting a lease a bit before Redis could expire it (clock rates differ).
        return self.lease_ttl_ms / 1000.0 * 0.8

    async def _drop(self, region: int, *, release: bool) -> None:
        held = self.held.pop(region, None)
        if held is None or not release:
            return
        with contextlib.suppress(*REDIS_DOWN):
            await self.live.leases.release(held.lease)
        log.info("lease_released", region=f"{region:x}", owner=self.owner)

    async def _renew_forever(self) -> None:
        while True:
            await anyio.sleep(self.lease_ttl_ms / 3000.0)
            await self.renew_all()

    async def renew_all(self) -> None:
        """Renew every held lease (the renewal task does this every third of the TTL)."""
        for region, held in list(self.held.items()):
            started = time.monotonic()
            try:
                ok = await self.live.leases.renew(held.lease)
            except REDIS_DOWN as exc:
                self._redis_down(exc)
                return
            except Exception as exc:  # keep renewing; the trust window runs out meanwhile
                log.exception("lease_renew_failed", error=type(exc).__name__)
                continue
            if self.held.get(region) is not held:
                continue  # dropped while we waited
            if ok:
                held.trusted_until = started + self._trust_s()
            else:
                self.held.pop(region, None)
                log.warning("lease_lost", region=f"{region:x}", owner=self.owner)


async def run_dispatcher(
    settings: Settings,
    *,
    owner: str | None = None,
    tick_s: float | None = None,
    lease_ttl_ms: int = LEASE_TTL_MS,
    stop: anyio.Event | None = None,
) -> None:
    """Connect to the database and Redis from ``settings`` and dispatch until SIGTERM/SIGINT."""
    import signal

    import redis.asyncio as redis_asyncio

    from api.core.db import make_engine, make_sessionmaker
    from api.core.live import make_live
    from api.dispatcher.push import attach as attach_push

    if not settings.redis_url:
        raise ValueError("daojia dispatcher needs DAOJIA_REDIS_URL (leases live in Redis)")
    engine = make_engine(settings.effective_database_url)
    client = redis_asyncio.from_url(
        settings.redis_url, socket_timeout=2.0, socket_connect_timeout=1.0
    )
    live = make_live(settings.redis_url, client=client, prefix=settings.redis_prefix)
    attach_push(engine, live.broker)  # offers reach the workers' sockets in the API processes
    stop = stop or anyio.Event()
    runner = RegionRunner(
        make_sessionmaker(engine),
        live,
        settings,
        owner=owner,
        lease_ttl_ms=lease_ttl_ms,
        tick_s=tick_s,
    )

    async def on_signal() -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                log.info("dispatcher_stopping", signal=signal.Signals(signum).name)
                stop.set()
                return

    try:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(on_signal)
            await runner.run(stop)
            tasks.cancel_scope.cancel()
    finally:
        await live.aclose()
        await client.aclose()
        await engine.dispose()

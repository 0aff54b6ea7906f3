"""Fault tests of the production dispatcher: real ``daojia dispatcher`` processes on
PostgreSQL and a private Redis server, scripted workers, and a kill in the middle.

* SIGKILL one of two dispatchers: the other takes its regions over (bounded wait of 10 s),
  every order ends accepted, no order ever had two live offers, no stale-token write.
* SIGKILL Redis and restart it empty on the same port: the dispatchers keep running,
  stop writing while it is gone, resume with tokens above every token the database saw,
  and every order (including those paid while Redis was down) ends accepted.

The test process plays the workers: it keeps the idle ones online in LiveState (as their
pings would, also right after Redis comes back) and answers offers by script (attempt 0:
a third decline, a third let the 3 s accept timeout pass, a third accept; later attempts
accept). It samples the database for orders with two live offers throughout.
Never skipped under CI=true (tests/services.require).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import h3
import pytest
import redis.asyncio as redis_asyncio
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.auth.models import Role, User
from api.catalog.models import Service, ServiceCategory
from api.core import migrate
from api.core.db import make_engine, make_sessionmaker, utcnow
from api.core.leases import RedisLeases
from api.core.live import LiveBackends, PingBatch, WorkerState, make_live
from api.core.settings import Settings
from api.dispatcher import offer_flow
from api.dispatcher.models import LIVE_STATES, DispatchDecision, DispatchOffer, OfferMode
from api.dispatcher.positions import region_of
from api.orders.models import Order, OrderEvent
from api.tenants.models import Enterprise, Worker
from tests.api.e2e.server import REPO, free_port, fresh_database
from tests.services import require

pytestmark = [pytest.mark.slow, pytest.mark.integration]

#: The centres of four H3 res-5 regions around Shanghai: every worker and order lies within
#: ~1.5 km of one, well inside its region (edge ~9 km), so the regions are exactly these.
CENTRES = [
    h3.cell_to_latlng(h3.int_to_str(region_of(lat, lng)))
    for lat, lng in [(31.23, 121.47), (31.23, 121.80), (31.00, 121.47), (31.45, 121.25)]
]
WORKERS_PER_REGION = 7
OFFER_TIMEOUT_S = 3
TICK_S = 0.5
TAKEOVER_BOUND_S = 10.0
ALL_WEEK = [{"weekday": d, "start_min": 0, "end_min": 24 * 60} for d in range(7)]


# ------------------------------------------------------------------ processes


def _need_redis_server() -> str:
    path = shutil.which("redis-server")
    require(path is not None, "redis-server binary not on PATH")
    assert path is not None
    return path


@dataclass
class RedisServer:
    """A private redis-server without persistence on ``port`` (never the shared 6379)."""

    binary: str
    port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--protected-mode", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        import redis

        while True:
            try:
                redis.Redis(port=self.port, socket_connect_timeout=0.2).ping()
                return
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start on {self.port}") from None
                time.sleep(0.05)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@contextmanager
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer(_need_redis_server(), free_port())
    server.start()
    try:
        yield server
    finally:
        server.kill()


@dataclass
class DispatcherProcess:
    """One ``daojia dispatcher`` subprocess; its log goes to a file for failure messages."""

    owner: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]


@contextmanager
def dispatchers(
    owners: list[str], database_url: str, redis_url: str, prefix: str, tmp: Path
) -> Iterator[dict[str, DispatcherProcess]]:
    env = dict(os.environ)
    env.update(
        DAOJIA_DATABASE_URL=database_url,
        DAOJIA_REDIS_URL=redis_url,
        DAOJIA_REDIS_PREFIX=prefix,
        DAOJIA_OFFER_TIMEOUT_S=str(OFFER_TIMEOUT_S),
        DAOJIA_VAR_DIR=str(tmp / "var"),
        DAOJIA_LOG_LEVEL="INFO",
    )
    procs: dict[str, DispatcherProcess] = {}
    try:
        for owner in owners:
            log_path = tmp / f"{owner}.log"
            with log_path.open("wb") as out:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "daojia", "dispatcher", "--owner", owner,
                     "--tick-s", str(TICK_S)],
                    env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                )  # fmt: skip
            procs[owner] = DispatcherProcess(owner, proc, log_path)
        yield procs
    finally:
        for p in procs.values():
            if p.proc.poll() is None:
                p.proc.send_signal(signal.SIGTERM)
        for p in procs.values():
            try:
                p.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.proc.kill()
                p.proc.wait()


# ------------------------------------------------------------------ the city


@dataclass
class City:
    """Ids of the seeded rows, the workers' homes, and the regions they fall in."""

    enterprise_id: int
    service_id: int
    customer_id: int
    workers: dict[int, tuple[int, float, float]]  # worker id -> (user id, lat, lng)
    regions: list[int]
    order_seq: int = 0


async def seed_city(maker: async_sessionmaker[AsyncSession]) -> City:
    regions = [region_of(lat, lng) for lat, lng in CENTRES]
    assert len(set(regions)) == len(CENTRES), "the test centres must lie in distinct regions"
    assert all(region_of(lat + 0.012, lng - 0.012) == region_of(lat, lng) for lat, lng in CENTRES)
    async with maker() as session:
        ent = Enterprise(code=f"fault-{uuid.uuid4().hex[:6]}", name="FAULT")
        session.add(ent)
        await session.flush()
        cat = ServiceCategory(code=f"cat-{uuid.uuid4().hex[:6]}", names={"en": "Cleaning"})
        session.add(cat)
        await session.flush()
        svc = Service(
            enterprise_id=ent.id, category_id=cat.id, names={"en": "Cleaning"},
            descriptions={}, price_fen=9900, duration_min=120, required_skills=["cleaning"],
            popularity=1, search_text="cleaning",
        )  # fmt: skip
        customer = User(phone=f"130{uuid.uuid4().int % 10**8:08d}", role=Role.CUSTOMER.value)
        session.add_all([svc, customer])
        await session.flush()
        workers: dict[int, tuple[int, float, float]] = {}
        for c, (lat0, lng0) in enumerate(CENTRES):
            for k in range(WORKERS_PER_REGION):
                lat, lng = lat0 + 0.002 * k, lng0 - 0.002 * k
                user = User(
                    phone=f"131{c:02d}{k:02d}{uuid.uuid4().int % 10**4:04d}",
                    role=Role.WORKER.value,
                    enterprise_id=ent.id,
                )
                session.add(user)
                await session.flush()
                worker = Worker(
                    user_id=user.id, enterprise_id=ent.id, display_name=f"W{c}-{k}",
                    skills=["cleaning"], shifts=ALL_WEEK, rating=4.5,
                    home_lat=lat, home_lng=lng, home_cell=0,
                )  # fmt: skip
                session.add(worker)
                await session.flush()
                workers[worker.id] = (user.id, lat, lng)
        await session.commit()
        return City(ent.id, svc.id, customer.id, workers, regions)


async def add_orders(maker: async_sessionmaker[AsyncSession], city: City, per_region: int) -> None:
    """Paid orders awaiting dispatch (待服务), ``per_region`` near each centre, slot in 1 h."""
    now = utcnow()
    async with maker() as session:
        for lat0, lng0 in CENTRES:
            for _ in range(per_region):
                city.order_seq += 1
                n = city.order_seq
                start = now + timedelta(hours=1)
                session.add(
                    Order(
                        order_no=f"F{uuid.uuid4().hex[:12]}{n:04d}",
                        customer_id=city.customer_id, enterprise_id=city.enterprise_id,
                        service_id=city.service_id, status="pending_service",
                        dispatch_status="awaiting_dispatch", slot_start=start,
                        slot_end=start + timedelta(hours=2), duration_min=120,
                        price_fen=9900, amount_fen=9900,
                        lat=lat0 + 0.001 * (n % 5), lng=lng0 + 0.001 * (n % 3),
                        paid_at=now,
                    )
                )  # fmt: skip
        await session.commit()


# ------------------------------------------------------------------ the workers


@dataclass
class Workers:
    """The scripted worker apps: presence refresh and offer answers; the live-offer sampler."""

    maker: async_sessionmaker[AsyncSession]
    live: LiveBackends
    city: City
    settings: Settings = field(default_factory=Settings)
    answered: set[int] = field(default_factory=set)
    committed: set[int] = field(default_factory=set)
    double_live: list[tuple[int, int]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    async def keep_online(self) -> None:
        while True:
            idle = [w for w in self.city.workers if w not in self.committed]
            if idle:
                batch = PingBatch.of(
                    idle,
                    [self.city.workers[w][1] for w in idle],
                    [self.city.workers[w][2] for w in idle],
                    [time.time()] * len(idle),
                    states=[WorkerState.ONLINE.value] * len(idle),
                )
                # Redis may be down: the apps keep trying, as real ones do.
                with contextlib.suppress(Exception):
                    await self.live.state.update_positions(batch)
            await asyncio.sleep(0.5)

    async def answer(self) -> None:
        while True:
            await self._answer_once()
            await self._sample()
            await asyncio.sleep(0.25)

    async def _answer_once(self) -> None:
        async with self.maker() as session:
            offers = list(
                await session.scalars(
                    select(DispatchOffer).where(
                        DispatchOffer.state == "offered",
                        DispatchOffer.id.not_in(self.answered or {0}),
                    )
                )
            )
            attempts = {
                o.id: await session.scalar(
                    select(func.count(DispatchOffer.id)).where(
                        DispatchOffer.order_id == o.order_id,
                        DispatchOffer.mode == OfferMode.AUTO.value,
                        DispatchOffer.id < o.id,
                    )
                )
                for o in offers
            }
        for offer in offers:
            self.answered.add(offer.id)
            script = offer.order_id % 3 if attempts[offer.id] == 0 else 2
            if script == 1:
                continue  # never answers: the offer times out
            async with self.maker() as session:
                worker = await session.get(Worker, offer.worker_id)
                assert worker is not None
                try:
                    if script == 0:
                        await offer_flow.decline_offer(
                            session, worker, offer.id, "busy", settings=self.settings, now=utcnow()
                        )
                    else:
                        user = await session.get(User, worker.user_id)
                        assert user is not None
                        self.committed.add(worker.id)
                        await offer_flow.take_offer(
                            session,
                            self.live,
                            worker,
                            user,
                            offer.id,
                            OfferMode.AUTO,
                            settings=self.settings,
                            now=utcnow(),
                        )
                except offer_flow.OfferGone:
                    self.committed.discard(worker.id)
                except Exception as exc:  # Redis may be down after the commit
                    self.errors.append(f"offer {offer.id}: {type(exc).__name__}")

    async def _sample(self) -> None:
        async with self.maker() as session:
            rows = (
                await session.execute(
                    select(DispatchOffer.order_id, func.count(DispatchOffer.id))
                    .where(DispatchOffer.state.in_(LIVE_STATES))
                    .group_by(DispatchOffer.order_id)
                    .having(func.count(DispatchOffer.id) > 1)
                )
            ).all()
        self.double_live.extend((int(a), int(b)) for a, b in rows)


@asynccontextmanager
async def scripted_workers(
    maker: async_sessionmaker[AsyncSession], redis_url: str, prefix: str, city: City
) -> AsyncIterator[Workers]:
    client = redis_asyncio.from_url(redis_url, socket_timeout=1.0, socket_connect_timeout=0.5)
    live = make_live(redis_url, client=client, prefix=prefix)
    workers = Workers(maker, live, city)
    tasks = [asyncio.create_task(workers.keep_online()), asyncio.create_task(workers.answer())]
    try:
        yield workers
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await live.aclose()
        await client.aclose()


# ------------------------------------------------------------------ waiting and checking


async def wait_for(what: str, check: Any, bound_s: float, procs: dict[str, Any]) -> float:
    """Poll ``check()`` until true; fail with ``what`` and the logs after ``bound_s``."""
    start = time.monotonic()
    while not await check():
        if time.monotonic() - start > bound_s:
            logs = "\n".join(f"--- {o}\n{p.log_tail()}" for o, p in procs.items())
            pytest.fail(f"{what}: not within {bound_s} s\n{logs}")
        await asyncio.sleep(0.1)
    took = time.monotonic() - start
    print(f"\n{what}: {took:.2f} s")
    return took


async def count_offers(maker: async_sessionmaker[AsyncSession]) -> int:
    async with maker() as session:
        return int(await session.scalar(select(func.count(DispatchOffer.id))) or 0)


async def all_accepted(maker: async_sessionmaker[AsyncSession]) -> bool:
    async with maker() as session:
        left = await session.scalar(
            select(func.count(Order.id)).where(Order.dispatch_status != "accepted")
        )
        return left == 0


async def max_tokens(session: AsyncSession) -> dict[int, int]:
    """Region -> the newest fencing token among its offers so far."""
    rows = await session.execute(
        select(DispatchOffer.region, func.max(DispatchOffer.fencing_token)).group_by(
            DispatchOffer.region
        )
    )
    return {int(r): int(t) for r, t in rows.all()}


async def holders(leases: RedisLeases, regions: list[int]) -> dict[int, str | None]:
    out: dict[int, str | None] = {}
    for region in regions:
        try:
            lease = await leases.holder(region)
        except Exception:  # Redis down
            lease = None
        out[region] = lease.owner if lease else None
    return out


async def check_history(maker: async_sessionmaker[AsyncSession], workers: Workers) -> None:
    """Every order accepted once; offers, decisions and events agree; tokens never go back."""
    assert workers.double_live == [], f"orders with two live offers: {workers.double_live}"
    async with maker() as session:
        orders = list(await session.scalars(select(Order).order_by(Order.id)))
        offers = list(await session.scalars(select(DispatchOffer).order_by(DispatchOffer.id)))
        decisions = list(await session.scalars(select(DispatchDecision)))
        events = list(await session.scalars(select(OrderEvent).order_by(OrderEvent.id)))
    by_order: dict[int, list[DispatchOffer]] = defaultdict(list)
    for o in offers:
        by_order[o.order_id].append(o)
    decided = defaultdict(int)
    for d in decisions:
        decided[d.order_id] += 1
    for order in orders:
        mine = by_order[order.id]
        assert order.dispatch_status == "accepted", (order.id, [o.state for o in mine])
        assert [o.state for o in mine].count("accepted") == 1, (order.id, mine)
        accepted = next(o for o in mine if o.state == "accepted")
        assert order.worker_id == accepted.worker_id
        workers_offered = [o.worker_id for o in mine if o.mode == OfferMode.AUTO.value]
        # Offered twice in one attempt would repeat a worker (the rest were excluded).
        assert len(workers_offered) == len(set(workers_offered)), (order.id, workers_offered)
        assert decided[order.id] == len(workers_offered), order.id
        assert all(o.state not in LIVE_STATES for o in mine)
        kinds = [e.event for e in events if e.order_id == order.id]
        assert kinds.count("offered") >= 1
        assert kinds.count("accepted") == 1
    # A stale holder's write would show up as an older token after a newer one.
    last: dict[int, int] = {}
    for o in offers:
        assert o.fencing_token >= last.get(o.region, 0), (o.id, o.region, o.fencing_token)
        assert o.fencing_token > 0
        last[o.region] = o.fencing_token


@pytest.fixture
def pg_url(tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated PostgreSQL+PostGIS database of its own."""
    with fresh_database("postgres", tmp_path, f"fault{uuid.uuid4().hex[:6]}") as url:
        migrate.upgrade(url)
        yield url


# ------------------------------------------------------------------ the tests


@dataclass
class Run:
    """A running fault scenario: the database, the seeded city, the workers, the processes."""

    maker: async_sessionmaker[AsyncSession]
    city: City
    workers: Workers
    procs: dict[str, DispatcherProcess]
    #: The test's own checks of the finished history (run before the database closes).
    after: Callable[[async_sessionmaker[AsyncSession]], Awaitable[None]] = field(
        default=lambda maker: asyncio.sleep(0)
    )


@asynccontextmanager
async def fault_run(
    url: str, redis_srv: RedisServer, prefix: str, tmp: Path, owners: list[str]
) -> AsyncIterator[Run]:
    """Seed, start the workers and ``owners`` dispatchers, wait for the first offers; after
    the body, wait for every order, stop everything and check the history."""
    engine = make_engine(url)
    maker = make_sessionmaker(engine)
    try:
        city = await seed_city(maker)
        await add_orders(maker, city, per_region=3)
        async with scripted_workers(maker, redis_srv.url, prefix, city) as workers:
            with dispatchers(owners, url, redis_srv.url, prefix, tmp) as procs:

                async def some_offers() -> bool:
                    return await count_offers(maker) >= 4

                await wait_for("first offers", some_offers, 60, procs)
                run = Run(maker, city, workers, procs)
                yield run
                # A declined or lapsed offer keeps that worker out for the core's miss
                # cooldown (OfferPolicy.miss_cooldown_s, 60 s): allow a few such rounds.
                await wait_for("every order accepted", lambda: all_accepted(maker), 180, procs)
                for p in procs.values():
                    if p.proc.returncode != -signal.SIGKILL:  # all but a killed one run on
                        assert p.proc.poll() is None, f"{p.owner} died:\n{p.log_tail()}"
            # SIGTERM: a clean exit that hands every region back at once.
            for p in procs.values():
                assert p.proc.returncode in (0, -signal.SIGKILL), (p.owner, p.log_tail())
            leases = RedisLeases(
                redis_asyncio.from_url(redis_srv.url), prefix=prefix, owns_client=True
            )
            try:
                assert set((await holders(leases, city.regions)).values()) == {None}
            finally:
                await leases.aclose()
        await check_history(maker, workers)
        await run.after(maker)
    finally:
        await engine.dispose()


def test_killing_a_dispatcher_moves_its_regions_and_loses_nothing(
    pg_url: str, tmp_path: Path
) -> None:
    prefix = f"djfault:{uuid.uuid4().hex[:8]}:"
    with redis_server() as redis_srv:
        asyncio.run(_kill_a_dispatcher(pg_url, redis_srv, prefix, tmp_path))


async def _kill_a_dispatcher(url: str, redis_srv: RedisServer, prefix: str, tmp: Path) -> None:
    leases = RedisLeases(redis_asyncio.from_url(redis_srv.url), prefix=prefix, owns_client=True)
    pair = ["fault-a", "fault-b"]
    try:
        async with fault_run(url, redis_srv, prefix, tmp, pair) as run:

            async def both_own_regions() -> bool:
                return set((await holders(leases, run.city.regions)).values()) == set(pair)

            await wait_for("both dispatchers hold regions", both_own_regions, 30, run.procs)
            held = await holders(leases, run.city.regions)
            victim = max(pair, key=lambda o: list(held.values()).count(o))
            survivor = next(o for o in pair if o != victim)
            victim_regions = [r for r, o in held.items() if o == victim]
            run.procs[victim].proc.send_signal(signal.SIGKILL)
            run.procs[victim].proc.wait()
            async with run.maker() as session:
                last_id_at_kill = int(await session.scalar(select(func.max(DispatchOffer.id))) or 0)
                before = await max_tokens(session)
            await add_orders(run.maker, run.city, per_region=2)  # paid while it is gone

            async def taken_over() -> bool:
                now = await holders(leases, victim_regions)
                return all(o == survivor for o in now.values())

            took = await wait_for(
                f"{survivor} takes over {victim}'s regions", taken_over, TAKEOVER_BOUND_S, run.procs
            )
            print(f"\ntakeover of {len(victim_regions)} region(s) after {took:.2f} s")

            async def newer_tokens_after_the_kill(maker: async_sessionmaker[AsyncSession]) -> None:
                async with maker() as session:
                    later = list(
                        await session.scalars(
                            select(DispatchOffer).where(
                                DispatchOffer.id > last_id_at_kill,
                                DispatchOffer.region.in_(victim_regions),
                            )
                        )
                    )
                for o in later:
                    assert o.fencing_token > before.get(o.region, 0), (o.id, o.region)

            run.after = newer_tokens_after_the_kill
    finally:
        await leases.aclose()


def test_losing_redis_loses_no_order_and_dispatch_resumes(pg_url: str, tmp_path: Path) -> None:
    prefix = f"djfault:{uuid.uuid4().hex[:8]}:"
    with redis_server() as redis_srv:
        asyncio.run(_kill_redis(pg_url, redis_srv, prefix, tmp_path))


async def _kill_redis(url: str, redis_srv: RedisServer, prefix: str, tmp: Path) -> None:
    async with fault_run(url, redis_srv, prefix, tmp, ["fault-c", "fault-d"]) as run:
        redis_srv.kill()
        killed_at = utcnow()
        await add_orders(run.maker, run.city, per_region=2)  # paid while Redis is gone
        async with run.maker() as session:
            tokens_before = await max_tokens(session)
        await asyncio.sleep(4)
        restarted_at = utcnow()
        for p in run.procs.values():
            assert p.proc.poll() is None, f"{p.owner} died without Redis:\n{p.log_tail()}"
        redis_srv.start()  # empty: no leases, no counters, no live state

        async def quiet_while_down_then_newer_tokens(
            maker: async_sessionmaker[AsyncSession],
        ) -> None:
            for p in run.procs.values():
                assert "redis_unavailable" in p.log_path.read_text(), p.owner
            async with maker() as session:
                offers = list(await session.scalars(select(DispatchOffer)))
            # Nothing was offered while Redis was gone (after the first failed call)...
            quiet_from = killed_at + timedelta(seconds=2.5)
            during = [o.id for o in offers if quiet_from <= o.offered_at < restarted_at]
            assert during == [], f"offers written without Redis: {during}"
            # ...and the new leases' tokens start above every token the database had seen.
            after = [o for o in offers if o.offered_at >= restarted_at]
            assert after, "dispatch did not resume"
            for o in after:
                assert o.fencing_token > tokens_before.get(o.region, 0), (o.id, o.region)

        run.after = quiet_while_down_then_newer_tokens

"""RegionRunner in one process (both live layers): fair shares, takeover after a silent peer,
and a paused holder fenced off by the database. The real processes are in
test_fault_tolerance.py; here each runner is stepped by hand."""

from __future__ import annotations

import math
import time
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.db import utcnow
from api.core.settings import Settings
from api.dispatcher.models import DispatchOffer
from api.dispatcher.positions import region_of
from api.dispatcher.runner import Held, RegionRunner
from api.orders.models import Order
from tests.api.dispatcher.conftest import online, paid_order
from tests.api.orders.world import World

#: Two points in different H3 res-5 regions (the orders are moved there after booking).
PLACES = [(31.23, 121.48), (31.45, 121.25)]
TTL_MS = 2000


def _runner(client: TestClient, settings: Settings, owner: str) -> RegionRunner:
    app: Any = client.app
    return RegionRunner(
        app.state.sessionmaker, app.state.live, settings, owner=owner, lease_ttl_ms=TTL_MS
    )


def test_runners_share_regions_take_over_a_silent_peer_and_fence_it_off(
    client: TestClient, world: World, run_db: Any, settings: Settings
) -> None:
    assert len({region_of(*p) for p in PLACES}) == 2
    for place in PLACES:
        oid = paid_order(client, world, run_db, hour=10)

        async def move(session: AsyncSession, oid: int = oid, place: Any = place) -> None:
            await session.execute(
                update(Order).where(Order.id == oid).values(lat=place[0], lng=place[1])
            )

        run_db(move)
    regions = {region_of(*p) for p in PLACES}
    a, b = _runner(client, settings, "run-a"), _runner(client, settings, "run-b")
    assert client.portal is not None
    step = client.portal.call

    step(a.step)
    assert set(a.held) == regions  # alone: everything
    step(b.step)
    assert b.held == {}  # all taken; b now counts as a member
    step(a.step)
    assert len(a.held) == 1  # over its share of ceil(2 / 2): hands one back
    step(b.step)
    assert len(b.held) == 1
    assert set(a.held) | set(b.held) == regions

    # a goes silent (a GC pause, a partition): its lease and membership expire.
    (a_region, a_lease) = next(iter(a.held.items()))
    time.sleep(TTL_MS / 1000 * 1.5)
    step(b.step)
    assert set(b.held) == regions
    assert b.held[a_region].lease.fencing_token > a_lease.lease.fencing_token

    # a wakes up still believing in its lease: it does not trust it any more...
    assert a._trusted() == {}
    # ...and even if it did, the database rejects its token (b claimed the fence on
    # acquiring): with workers online there, a's offer write fails its fence check.
    place = next(p for p in PLACES if region_of(*p) == a_region)
    for _, acc in world.workers_a:
        online(client, acc.headers, *place)
    a_lease.trusted_until = math.inf
    report = step(lambda: a.dispatcher.run_once(utcnow(), fences=a._trusted()))
    assert report.stale_regions == frozenset({a_region})
    assert report.offered == 0
    step(b.renew_all)  # (its renewal task, when it runs as a process)
    step(b.step)  # the rightful owner offers it
    assert [(o.fencing_token, o.region) for o in _offers(run_db)] == [
        (b.held[a_region].lease.fencing_token, a_region)
    ]
    assert b.held[a_region].lease.fencing_token > a_lease.lease.fencing_token


def _offers(run_db: Any) -> list[DispatchOffer]:
    async def get(session: AsyncSession) -> list[DispatchOffer]:
        return list(await session.scalars(select(DispatchOffer)))

    result: list[DispatchOffer] = run_db(get)
    return result


def test_without_redis_a_step_drops_every_lease_and_the_process_stays_up(db: str) -> None:
    """Redis gone: no lease can be proven, so none is trusted; the step returns normally."""
    import asyncio

    import redis.asyncio as redis_asyncio

    from api.core.db import make_engine, make_sessionmaker
    from api.core.leases import Lease
    from api.core.live import make_live
    from api.core.settings import Environment
    from tests.api.e2e.server import free_port

    async def scenario() -> tuple[float, bool, dict[int, Any]]:
        engine = make_engine(db)
        client = redis_asyncio.from_url(
            f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5
        )
        live = make_live(client=client, prefix="djdown:")
        runner = RegionRunner(
            make_sessionmaker(engine),
            live,
            Settings(environment=Environment.TEST, database_url=db),
            owner="lonely",
            tick_s=0.5,
        )
        runner.held[1] = Held(Lease(1, "lonely", 3, 6000), trusted_until=math.inf)
        try:
            interval = await runner.step()
            return interval, runner.redis_ok, runner.held
        finally:
            await client.aclose()
            await engine.dispose()

    assert asyncio.run(scenario()) == (0.5, False, {})


def test_the_dispatcher_command_needs_redis(monkeypatch: Any) -> None:
    from typer.testing import CliRunner

    from daojia.cli import app

    monkeypatch.delenv("DAOJIA_REDIS_URL", raising=False)
    result = CliRunner().invoke(app, ["dispatcher"])
    assert result.exit_code == 2
    assert "DAOJIA_REDIS_URL" in result.output

"""The database side of region leases, on SQLite and PostgreSQL: the fence check rejects a
stale token, and no order ever has two live offers (partial unique index)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.db import make_engine, make_sessionmaker
from api.core.leases import MemoryLeases, StaleFencingToken
from api.dispatcher.fencing import fence, newest_token
from api.dispatcher.models import DispatchOffer, OfferMode, OfferState
from api.dispatcher.positions import region_of
from tests.api.dispatcher.conftest import Clock, offers_of, online, paid_order, tick
from tests.api.orders.world import World

REGION = region_of(31.2304, 121.4737)
NEAR = (31.225, 121.475)


def _in_db(url: str, fn: Callable[[AsyncSession], Awaitable[Any]]) -> Any:
    async def go() -> Any:
        engine = make_engine(url)
        try:
            async with make_sessionmaker(engine)() as session:
                return await fn(session)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def test_fence_accepts_newer_and_equal_tokens_and_rejects_older(db: str) -> None:
    async def scenario(session: AsyncSession) -> list[int]:
        seen = [await newest_token(session, REGION)]
        await fence(session, REGION, 5)  # absent row: inserted
        await session.commit()
        seen.append(await newest_token(session, REGION))
        await fence(session, REGION, 5)  # the same holder writes again
        await fence(session, REGION, 7)
        await session.commit()
        with pytest.raises(StaleFencingToken):
            await fence(session, REGION, 6)
        await session.rollback()
        seen.append(await newest_token(session, REGION))
        await fence(session, REGION + 1, 1)  # regions are independent
        await session.commit()
        return seen

    assert _in_db(db, scenario) == [0, 5, 7]


def test_a_stale_holders_write_rolls_back_whole(db: str) -> None:
    """The old holder's transaction fails its fence after the new holder claimed it."""

    async def scenario(session: AsyncSession) -> int:
        leases = MemoryLeases()
        floor = await newest_token(session, REGION)
        old = await leases.acquire(REGION, "old", 1000, min_token=floor)
        assert old is not None
        await fence(session, REGION, old.fencing_token)
        await session.commit()
        await leases.release(old)  # expired, as far as the others can tell
        floor = await newest_token(session, REGION)
        new = await leases.acquire(REGION, "new", 1000, min_token=floor)
        assert new is not None
        assert new.fencing_token > old.fencing_token
        await fence(session, REGION, new.fencing_token)
        await session.commit()
        with pytest.raises(StaleFencingToken):
            await fence(session, REGION, old.fencing_token)
        await session.rollback()
        return await newest_token(session, REGION)

    assert _in_db(db, scenario) == 2


def _order_and_workers_online(client: TestClient, world: World, run_db: Any) -> int:
    oid = paid_order(client, world, run_db, hour=10)
    for _, acc in world.workers_a:
        online(client, acc.headers, *NEAR)
    return oid


def test_an_order_never_has_two_live_offers(
    client: TestClient, world: World, run_db: Any, clock: Clock
) -> None:
    oid = _order_and_workers_online(client, world, run_db)
    assert tick(client, clock).offered == 1
    first = offers_of(run_db, oid)[0]
    other = next(w for w, _ in world.workers_a if w != first.worker_id)

    def second(state: OfferState, mode: OfferMode) -> Callable[[AsyncSession], Awaitable[None]]:
        async def add(session: AsyncSession) -> None:
            session.add(
                DispatchOffer(
                    order_id=oid,
                    worker_id=other if mode is OfferMode.AUTO else None,
                    mode=mode.value,
                    state=state.value,
                    region=first.region,
                    fencing_token=0,
                    offered_at=clock.now,
                    expires_at=clock.now + timedelta(seconds=30),
                )
            )
            await session.flush()

        return add

    for state, mode in ((OfferState.OFFERED, OfferMode.AUTO), (OfferState.OPEN, OfferMode.GRAB)):
        with pytest.raises(IntegrityError):
            run_db(second(state, mode))
    # Closed offers are history, any number of them.
    run_db(second(OfferState.DECLINED, OfferMode.AUTO))
    run_db(second(OfferState.EXPIRED, OfferMode.AUTO))
    # And the dispatcher does not offer it again while the first offer lives.
    clock.advance(1)
    assert tick(client, clock).offered == 0
    assert [o.state for o in offers_of(run_db, oid)].count("offered") == 1


def test_a_fenced_tick_only_touches_its_regions_and_stops_when_stale(
    client: TestClient, world: World, run_db: Any, clock: Clock
) -> None:
    oid = _order_and_workers_online(client, world, run_db)
    app: Any = client.app
    assert client.portal is not None
    order_region = region_of(*_latlng(run_db, oid))
    run = app.state.dispatcher.run_once
    elsewhere = client.portal.call(lambda: run(clock.now, fences={order_region + 1: 3}))
    assert elsewhere.offered == 0
    assert offers_of(run_db, oid) == []

    async def newer(session: AsyncSession) -> None:
        await fence(session, order_region, 9)

    run_db(newer)  # another holder already wrote with token 9
    stale = client.portal.call(lambda: run(clock.now, fences={order_region: 8}))
    assert stale.stale_regions == frozenset({order_region})
    assert offers_of(run_db, oid) == []
    fresh = client.portal.call(lambda: run(clock.now, fences={order_region: 10}))
    assert fresh.offered == 1
    assert not fresh.stale_regions
    assert [(o.fencing_token, o.region) for o in offers_of(run_db, oid)] == [(10, order_region)]


def _latlng(run_db: Any, order_id: int) -> tuple[float, float]:
    from api.orders.models import Order

    async def get(session: AsyncSession) -> tuple[float, float]:
        order = await session.get(Order, order_id)
        assert order is not None
        return order.lat, order.lng

    result: tuple[float, float] = run_db(get)
    return result

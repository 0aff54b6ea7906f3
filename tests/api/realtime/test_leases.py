"""Region leases on both adapters: exclusivity, renewal, and fencing of a paused holder."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from api.core.leases import (
    FencingLedger,
    LeaseLost,
    LeaseStore,
    LeaseUnavailable,
    MemoryLeases,
    RedisLeases,
    RegionLease,
    StaleFencingToken,
    check_fencing,
)
from geo.cells import latlng_to_cells
from tests.api.realtime.conftest import FakeClock

REGION = latlng_to_cells(31.2304, 121.4737, 5)
OTHER_REGION = latlng_to_cells(39.9042, 116.4074, 5)


async def pause_past_ttl(leases: LeaseStore, clock: FakeClock, region: int, ttl_ms: int) -> None:
    """The holder stalls until its lease has expired (fake time in memory, real in Redis)."""
    if isinstance(leases, MemoryLeases):
        clock.advance(ttl_ms / 1000.0 + 0.001)
        return
    # Redis expires the key on its own clock: wait for that, however long it takes.
    while await leases.holder(region) is not None:
        await asyncio.sleep(ttl_ms / 4000.0)


async def test_one_holder_at_a_time_and_tokens_only_grow(leases: LeaseStore) -> None:
    a = await leases.acquire(REGION, "dispatcher-a", 10_000)
    assert a is not None
    assert await leases.acquire(REGION, "dispatcher-b", 10_000) is None
    holder = await leases.holder(REGION)
    assert holder is not None
    assert (holder.owner, holder.fencing_token) == ("dispatcher-a", a.fencing_token)
    # Regions are independent.
    elsewhere = await leases.acquire(OTHER_REGION, "dispatcher-b", 10_000)
    assert elsewhere is not None
    assert await leases.renew(a)
    assert await leases.release(a)
    assert not await leases.release(a)  # twice is harmless
    b = await leases.acquire(REGION, "dispatcher-b", 10_000)
    assert b is not None
    assert b.fencing_token > a.fencing_token
    assert not await leases.renew(a)  # an old lease cannot extend the new one


async def test_a_paused_holders_late_write_is_fenced_off(
    leases: LeaseStore, clock: FakeClock
) -> None:
    db = FencingLedger()  # stands in for the database's per-region fence
    ttl_ms = 200
    a = RegionLease(leases, REGION, "dispatcher-a", ttl_ms)
    assert await a.acquire()
    db.accept(REGION, a.fencing_token)  # A writes while it holds the lease
    token_a = a.fencing_token

    await pause_past_ttl(leases, clock, REGION, ttl_ms)
    b = RegionLease(leases, REGION, "dispatcher-b", 10_000)
    assert await b.acquire()
    assert b.fencing_token > token_a
    db.accept(REGION, b.fencing_token)

    # A wakes up, still believing it owns the region, and writes: the database refuses.
    assert a.held
    with pytest.raises(StaleFencingToken):
        db.accept(REGION, token_a)
    assert db.latest(REGION) == b.fencing_token
    # Its renewal fails too, after which it knows.
    assert not await a.renew()
    with pytest.raises(LeaseLost):
        _ = a.fencing_token
    db.accept(REGION, b.fencing_token)  # the new owner keeps writing
    await b.release()


async def test_context_manager_acquires_and_releases(leases: LeaseStore) -> None:
    async with RegionLease(leases, REGION, "a", 10_000) as lease:
        assert lease.held
        with pytest.raises(LeaseUnavailable):
            async with RegionLease(leases, REGION, "b", 10_000):
                pass  # pragma: no cover - never entered
    assert not lease.held
    assert await leases.holder(REGION) is None


async def test_tokens_stay_above_the_databases_after_redis_forgets_them(
    leases: LeaseStore, redis_client: Any, prefix: str
) -> None:
    first = await leases.acquire(REGION, "a", 10_000)
    assert first is not None
    await leases.release(first)
    if redis_client is not None:
        assert isinstance(leases, RedisLeases)
        await redis_client.delete(*leases.keys(REGION))  # Redis restarted, counter gone
    # The dispatcher reads the newest token its region's rows carry and passes it on.
    latest_in_db = first.fencing_token + 41
    again = await leases.acquire(REGION, "a", 10_000, min_token=latest_in_db)
    assert again is not None
    assert again.fencing_token == latest_in_db + 1
    check_fencing(latest_in_db, again.fencing_token)


async def test_members_announce_and_expire(leases: LeaseStore, clock: FakeClock) -> None:
    """Dispatchers count each other through ``members``; a silent one drops out in one TTL."""
    assert await leases.members("a", 300) == ["a"]
    assert await leases.members("b", 10_000) == ["a", "b"]
    await pause_past_ttl_of(leases, clock, "a", 300)
    assert await leases.members("b", 10_000) == ["b"]
    await leases.members("c", 10_000)
    await leases.leave("c")
    assert await leases.members("b", 10_000) == ["b"]


async def pause_past_ttl_of(leases: LeaseStore, clock: FakeClock, owner: str, ttl_ms: int) -> None:
    """Let ``owner``'s announcement expire (fake time in memory, real in Redis)."""
    if isinstance(leases, MemoryLeases):
        clock.advance(ttl_ms / 1000.0 + 0.001)
        return
    await asyncio.sleep(ttl_ms / 1000.0 + 0.05)


def test_fencing_rule() -> None:
    assert check_fencing(None, 3) == 3
    assert check_fencing(3, 3) == 3  # the same holder writing again
    assert check_fencing(3, 5) == 5
    with pytest.raises(StaleFencingToken):
        check_fencing(5, 4)
    assert issubclass(StaleFencingToken, PermissionError)
    ledger = FencingLedger()
    ledger.accept(1, 2)
    ledger.accept(2, 1)  # regions are fenced separately
    with pytest.raises(StaleFencingToken):
        ledger.accept(1, 1)
    assert (ledger.latest(1), ledger.latest(2), ledger.latest(3)) == (2, 1, None)


def test_bad_lease_parameters() -> None:
    leases = MemoryLeases()
    with pytest.raises(ValueError, match="ttl_ms"):
        asyncio.run(leases.acquire(REGION, "a", 0))
    with pytest.raises(ValueError, match="owner"):
        RegionLease(leases, REGION, "a:b", 1000)

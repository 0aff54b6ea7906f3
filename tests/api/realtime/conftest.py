"""Fixtures of the live layer: every test runs on the in-process and the Redis adapter.

Redis is the shared server at 127.0.0.1:6379 (``DAOJIA_TEST_REDIS_URL`` overrides); each
test gets its own key prefix and deletes only its own keys afterwards — never FLUSHDB.
Without Redis the Redis cases skip locally and fail under CI=true (tests/services.py).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable
from functools import cache

import pytest
import redis
import redis.asyncio as redis_asyncio

from api.core.broker import Broker, MemoryBroker, RedisBroker
from api.core.leases import LeaseStore, MemoryLeases, RedisLeases
from api.core.live import LiveState, MemoryLiveState, RedisLiveState
from tests.services import require

REDIS_URL = os.environ.get("DAOJIA_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
KINDS = ["memory", "redis"]


@cache
def redis_reachable() -> tuple[bool, str]:
    """Whether the test Redis answers PING (asked once per session)."""
    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1.0, socket_timeout=2.0)
        try:
            client.ping()
        finally:
            client.close()
    except redis.RedisError as exc:
        return False, f"Redis not reachable at {REDIS_URL}: {exc}"
    return True, ""


async def delete_prefix(client: redis_asyncio.Redis, prefix: str) -> int:
    """Delete every key under ``prefix`` (only ours: the server is shared)."""
    keys = [key async for key in client.scan_iter(match=prefix + "*", count=1000)]
    return int(await client.unlink(*keys)) if keys else 0


class FakeClock:
    """A clock tests move by hand (seconds); ``ms`` is the same clock in milliseconds."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def ms(self) -> float:
        """The clock in milliseconds (what ``MemoryBroker`` takes)."""
        return self.now * 1000.0

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += seconds


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    """``memory`` or ``redis``; the Redis case needs the server."""
    if request.param == "redis":
        ok, reason = redis_reachable()
        require(ok, reason)
    return str(request.param)


@pytest.fixture
def prefix() -> str:
    """A key prefix no other test (or engineer) uses."""
    return f"dj-test:{uuid.uuid4().hex[:12]}:"


@pytest.fixture
async def redis_client(kind: str, prefix: str) -> AsyncIterator[redis_asyncio.Redis | None]:
    """A client on the test Redis for the Redis case (None for memory); cleans our keys."""
    if kind != "redis":
        yield None
        return
    client = redis_asyncio.Redis.from_url(REDIS_URL)
    try:
        yield client
    finally:
        await delete_prefix(client, prefix)
        await client.aclose()


@pytest.fixture
def clock() -> FakeClock:
    """The memory adapters' clock (Redis keeps real time)."""
    return FakeClock()


@pytest.fixture
def new_live(
    kind: str, prefix: str, redis_client: redis_asyncio.Redis | None
) -> Callable[..., LiveState]:
    """Build a live state of the current kind (more than one share the same Redis keys)."""
    memory: list[MemoryLiveState] = []

    def make(**kwargs: object) -> LiveState:
        if redis_client is None:
            if not memory:
                memory.append(MemoryLiveState(**kwargs))  # type: ignore[arg-type]
            return memory[0]
        return RedisLiveState(redis_client, prefix=prefix, **kwargs)  # type: ignore[arg-type]

    return make


@pytest.fixture
def live(new_live: Callable[..., LiveState]) -> LiveState:
    """A live state with the default resolution and staleness."""
    return new_live()


@pytest.fixture
def broker(prefix: str, redis_client: redis_asyncio.Redis | None, clock: FakeClock) -> Broker:
    """A broker of the current kind (the memory one on the fake clock)."""
    if redis_client is None:
        return MemoryBroker(clock=clock.ms)
    return RedisBroker(redis_client, prefix=prefix)


@pytest.fixture
def leases(prefix: str, redis_client: redis_asyncio.Redis | None, clock: FakeClock) -> LeaseStore:
    """A lease store of the current kind (the memory one on the fake clock)."""
    if redis_client is None:
        return MemoryLeases(clock=clock)
    return RedisLeases(redis_client, prefix=prefix)

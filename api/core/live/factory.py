"""``make_live``: the live layer of one process (broker, live state, leases) by Redis URL."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Self

import redis.asyncio as redis_asyncio

from api.core.broker import (
    DEFAULT_PREFIX,
    Broker,
    MemoryBroker,
    RedisBroker,
)
from api.core.leases import LeaseStore, MemoryLeases, RedisLeases
from api.core.live.batch import DEFAULT_CELL_RES, DEFAULT_STALE_AFTER_S, LiveState
from api.core.live.coalesce import Coalescer
from api.core.live.memory import MemoryLiveState
from api.core.live.redis_state import RedisLiveState


class HasRedisUrl(Protocol):
    """Anything with a ``redis_url`` (``api.core.settings.Settings`` qualifies)."""

    redis_url: str | None


@dataclass
class LiveBackends:
    """The live layer of one process: broker, live state, region leases."""

    broker: Broker
    state: LiveState
    leases: LeaseStore
    #: On Redis: ``state`` with concurrent position calls merged (the ping path's).
    coalescer: Coalescer | None = None

    @property
    def positions(self) -> LiveState | Coalescer:
        """What the ping path reads and writes positions through: ``state`` itself in
        process, its ``Coalescer`` on Redis (concurrent pings share round trips)."""
        return self.coalescer or self.state

    async def aclose(self) -> None:
        """Close all three (a shared client is closed once, by whoever owns it)."""
        await self.broker.aclose()
        await self.state.aclose()
        await self.leases.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def make_live(
    source: str | HasRedisUrl | None = None,
    *,
    client: redis_asyncio.Redis | None = None,
    prefix: str = DEFAULT_PREFIX,
    cell_res: int = DEFAULT_CELL_RES,
    stale_after_s: float = DEFAULT_STALE_AFTER_S,
) -> LiveBackends:
    """Pick the live layer by Redis URL: none/empty/``memory://`` -> in-process, else Redis.

    ``source`` is a URL or a settings object with ``redis_url``. Pass ``client`` to share
    the app's lifespan client (it is then not closed here).
    """
    url = source if source is None or isinstance(source, str) else source.redis_url
    if client is None and (not url or url.startswith("memory://")):
        return LiveBackends(
            MemoryBroker(),
            MemoryLiveState(cell_res=cell_res, stale_after_s=stale_after_s),
            MemoryLeases(),
        )
    owns = client is None
    redis_client = client if client is not None else redis_asyncio.from_url(str(url))
    # One shared connection pool; the live state (closed second) closes it if we made it.
    state = RedisLiveState(
        redis_client,
        prefix=prefix,
        cell_res=cell_res,
        stale_after_s=stale_after_s,
        owns_client=owns,
    )
    return LiveBackends(
        RedisBroker(redis_client, prefix=prefix), state, RedisLeases(redis_client, prefix=prefix),
        Coalescer(state),
    )  # fmt: skip

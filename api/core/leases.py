"""Region leases with fencing tokens: which dispatcher owns an H3 res-5 region right now.

A TTL lease alone cannot guarantee exclusivity: a holder that pauses (GC, a stalled
VM, a slow disk) past its TTL still believes it owns the region while another process
has taken it over. So every acquisition gets a **fencing token** that only ever
increases per region, and the database — the record — rejects any write carrying a
token older than the newest it has seen for that region (``check_fencing``). The
stale holder's late write then fails instead of overwriting the new owner's work.

The database rule, in SQL terms (one row per region, or a column on the written rows)::

    UPDATE region_fence SET fencing_token = :token
     WHERE region = :region AND fencing_token <= :token;   -- 0 rows => reject the write

run in the same transaction as the dispatch write. ``FencingLedger`` is the in-memory
equivalent and the executable statement of that rule.

Redis (``RedisLeases``): ``P{r:<region>}:lease`` holds ``<token>:<owner>`` with a PX
TTL, ``P{r:<region>}:fence`` is the token counter (INCR); both carry the region's hash
tag, so each Lua script touches one Cluster slot. Redis has no persistence here: after
a loss the counter restarts, so ``acquire(..., min_token=)`` takes the newest token the
database has seen and never issues one at or below it.

Dispatchers also announce themselves (``members``: a sorted set scored by expiry,
``P{dispatchers}:members``) so each can take a fair share of the regions and a dead one
drops out of the count within one TTL.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, Self, runtime_checkable

import redis.asyncio as redis_asyncio
from redis.exceptions import NoScriptError

from api.core.broker import DEFAULT_PREFIX, check_prefix, region_tag


class LeaseError(Exception):
    """Base class of lease errors."""


class LeaseUnavailable(LeaseError, RuntimeError):
    """Another owner holds the region's lease."""


class LeaseLost(LeaseError, RuntimeError):
    """The lease expired or was taken over; stop writing for this region."""


class StaleFencingToken(LeaseError, PermissionError):
    """A write carries an older fencing token than the newest seen for its region."""


@dataclass(frozen=True)
class Lease:
    """A held lease: who owns which region, with which fencing token, for how long."""

    region: int
    owner: str
    fencing_token: int
    ttl_ms: int


def _check_ttl(ttl_ms: int) -> None:
    if isinstance(ttl_ms, bool) or not isinstance(ttl_ms, int) or ttl_ms < 1:
        raise ValueError(f"ttl_ms must be an int >= 1, got {ttl_ms!r}")


def _check_owner(owner: str) -> None:
    if not isinstance(owner, str) or not owner or ":" in owner:
        raise ValueError(f"owner must be a non-empty string without ':', got {owner!r}")


def check_fencing(latest_seen: int | None, token: int) -> int:
    """The database rule: accept ``token`` unless older than ``latest_seen``; return the newest.

    Equal tokens pass (the same holder writes many times during its lease). Raises
    ``StaleFencingToken`` for an older one.
    """
    if latest_seen is not None and token < latest_seen:
        raise StaleFencingToken(
            f"fencing token {token} is older than the latest seen {latest_seen}"
        )
    return token if latest_seen is None else max(latest_seen, token)


class FencingLedger:
    """Newest fencing token seen per region, checking every write (``check_fencing``)."""

    def __init__(self) -> None:
        self._latest: dict[int, int] = {}

    def accept(self, region: int, token: int) -> None:
        """Record a write by ``token`` in ``region``, or raise ``StaleFencingToken``."""
        self._latest[int(region)] = check_fencing(self._latest.get(int(region)), int(token))

    def latest(self, region: int) -> int | None:
        """Newest token seen for ``region`` (None before the first write)."""
        return self._latest.get(int(region))


@runtime_checkable
class LeaseStore(Protocol):
    """Acquire, renew and release region leases; tokens increase per region."""

    async def acquire(
        self, region: int, owner: str, ttl_ms: int, *, min_token: int = 0
    ) -> Lease | None:
        """Take the region if free; None if someone holds it. Token > ``min_token``."""
        ...

    async def renew(self, lease: Lease) -> bool:
        """Extend the TTL if ``lease`` is still the current one; False if lost."""
        ...

    async def release(self, lease: Lease) -> bool:
        """Give the region up if ``lease`` is still the current one."""
        ...

    async def holder(self, region: int) -> Lease | None:
        """The current lease of ``region`` (None if free or expired)."""
        ...

    async def members(self, owner: str, ttl_ms: int) -> list[str]:
        """Announce ``owner`` alive for ``ttl_ms``; every owner alive now, sorted."""
        ...

    async def leave(self, owner: str) -> None:
        """Withdraw ``owner``'s announcement (graceful shutdown)."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


class MemoryLeases:
    """``LeaseStore`` in one process; ``clock`` (seconds, monotonic) lets tests jump time."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._held: dict[int, tuple[Lease, float]] = {}
        self._counter: dict[int, int] = {}
        self._members: dict[str, float] = {}

    def _current(self, region: int) -> Lease | None:
        held = self._held.get(region)
        if held is None:
            return None
        if self._clock() >= held[1]:
            del self._held[region]
            return None
        return held[0]

    async def acquire(
        self, region: int, owner: str, ttl_ms: int, *, min_token: int = 0
    ) -> Lease | None:
        """Take the region if free; None if someone holds it. Token > ``min_token``."""
        _check_ttl(ttl_ms)
        _check_owner(owner)
        region = int(region)
        if self._current(region) is not None:
            return None
        token = max(self._counter.get(region, 0), int(min_token)) + 1
        self._counter[region] = token
        lease = Lease(region, owner, token, ttl_ms)
        self._held[region] = (lease, self._clock() + ttl_ms / 1000.0)
        return lease

    async def renew(self, lease: Lease) -> bool:
        """Extend the TTL if ``lease`` is still the current one; False if lost."""
        if self._current(lease.region) != lease:
            return False
        self._held[lease.region] = (lease, self._clock() + lease.ttl_ms / 1000.0)
        return True

    async def release(self, lease: Lease) -> bool:
        """Give the region up if ``lease`` is still the current one."""
        if self._current(lease.region) != lease:
            return False
        del self._held[lease.region]
        return True

    async def holder(self, region: int) -> Lease | None:
        """The current lease of ``region`` (None if free or expired)."""
        return self._current(int(region))

    async def members(self, owner: str, ttl_ms: int) -> list[str]:
        """Announce ``owner`` alive for ``ttl_ms``; every owner alive now, sorted."""
        _check_ttl(ttl_ms)
        _check_owner(owner)
        now = self._clock()
        self._members[owner] = now + ttl_ms / 1000.0
        self._members = {o: t for o, t in self._members.items() if t > now}
        return sorted(self._members)

    async def leave(self, owner: str) -> None:
        """Withdraw ``owner``'s announcement (graceful shutdown)."""
        self._members.pop(owner, None)

    async def aclose(self) -> None:
        """Nothing to release."""


# KEYS: lease, fence counter. ARGV: owner, ttl ms, min token.
_ACQUIRE_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local token = redis.call('INCR', KEYS[2])
local floor = tonumber(ARGV[3])
if token <= floor then
  token = floor + 1
  redis.call('SET', KEYS[2], token)
end
redis.call('SET', KEYS[1], token .. ':' .. ARGV[1], 'PX', ARGV[2])
return token
"""
# KEYS: lease. ARGV: expected value, ttl ms.
_RENEW_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
# KEYS: lease. ARGV: expected value.
_RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# KEYS: members zset (score = expiry, server ms). ARGV: owner, ttl ms.
_MEMBERS_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""
_LEASE_SCRIPTS = {
    "acquire": _ACQUIRE_LUA,
    "renew": _RENEW_LUA,
    "release": _RELEASE_LUA,
    "members": _MEMBERS_LUA,
}
_LEASE_SHA = {name: hashlib.sha1(src.encode()).hexdigest() for name, src in _LEASE_SCRIPTS.items()}


class RedisLeases:
    """``LeaseStore`` on Redis: INCR'd token + SET NX PX, renew/release by compare (Lua)."""

    def __init__(
        self,
        client: redis_asyncio.Redis,
        *,
        prefix: str = DEFAULT_PREFIX,
        owns_client: bool = False,
    ) -> None:
        self.client = client
        self.prefix = check_prefix(prefix)
        self._owns_client = owns_client

    @classmethod
    def from_url(cls, url: str, *, prefix: str = DEFAULT_PREFIX) -> RedisLeases:
        """Leases on their own client for ``url`` (closed by ``aclose``)."""
        return cls(redis_asyncio.from_url(url), prefix=prefix, owns_client=True)

    def keys(self, region: int) -> tuple[str, str]:
        """(lease key, fence counter key) of a region."""
        tag = self.prefix + region_tag(region)
        return f"{tag}:lease", f"{tag}:fence"

    async def _eval(self, name: str, keys: list[str], *args: Any) -> Any:
        try:
            return await self.client.evalsha(_LEASE_SHA[name], len(keys), *keys, *args)
        except NoScriptError:  # a restarted Redis has forgotten the scripts
            await self.client.script_load(_LEASE_SCRIPTS[name])
            return await self.client.evalsha(_LEASE_SHA[name], len(keys), *keys, *args)

    async def acquire(
        self, region: int, owner: str, ttl_ms: int, *, min_token: int = 0
    ) -> Lease | None:
        """Take the region if free; None if someone holds it. Token > ``min_token``."""
        _check_ttl(ttl_ms)
        _check_owner(owner)
        token = await self._eval("acquire", list(self.keys(region)), owner, ttl_ms, int(min_token))
        if token is None:
            return None
        return Lease(int(region), owner, int(token), ttl_ms)

    async def renew(self, lease: Lease) -> bool:
        """Extend the TTL if ``lease`` is still the current one; False if lost."""
        value = f"{lease.fencing_token}:{lease.owner}"
        return bool(await self._eval("renew", [self.keys(lease.region)[0]], value, lease.ttl_ms))

    async def release(self, lease: Lease) -> bool:
        """Give the region up if ``lease`` is still the current one."""
        value = f"{lease.fencing_token}:{lease.owner}"
        return bool(await self._eval("release", [self.keys(lease.region)[0]], value))

    async def holder(self, region: int) -> Lease | None:
        """The current lease of ``region`` (None if free or expired)."""
        lease_key = self.keys(region)[0]
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.get(lease_key)
            pipe.pttl(lease_key)
            value, ttl = await pipe.execute()
        if value is None:
            return None
        token, _, owner = value.decode().partition(":")
        return Lease(int(region), owner, int(token), max(int(ttl), 0))

    def members_key(self) -> str:
        """The sorted set of live dispatchers (one hash tag: one Cluster slot)."""
        return f"{self.prefix}{{dispatchers}}:members"

    async def members(self, owner: str, ttl_ms: int) -> list[str]:
        """Announce ``owner`` alive for ``ttl_ms``; every owner alive now, sorted.

        Expiry is scored by the Redis server's clock, so hosts' clocks need not agree.
        """
        _check_ttl(ttl_ms)
        _check_owner(owner)
        raw = await self._eval("members", [self.members_key()], owner, ttl_ms)
        return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in raw)

    async def leave(self, owner: str) -> None:
        """Withdraw ``owner``'s announcement (graceful shutdown)."""
        await self.client.zrem(self.members_key(), owner)

    async def aclose(self) -> None:
        """Close the client if this store created it."""
        if self._owns_client:
            await self.client.aclose()


class RegionLease:
    """One owner's lease on one region: acquire, renew, release, and its fencing token.

    ``async with RegionLease(store, region, owner, ttl_ms):`` acquires or raises
    ``LeaseUnavailable``, and releases on exit. Renew well inside the TTL (say every
    third of it); when ``renew`` returns False, stop writing: the token is stale.
    """

    def __init__(self, store: LeaseStore, region: int, owner: str, ttl_ms: int) -> None:
        _check_ttl(ttl_ms)
        _check_owner(owner)
        self.store = store
        self.region = int(region)
        self.owner = owner
        self.ttl_ms = ttl_ms
        self.lease: Lease | None = None

    @property
    def fencing_token(self) -> int:
        """Token to write alongside every database write for this region."""
        if self.lease is None:
            raise LeaseLost(f"no lease held on region {self.region:x}")
        return self.lease.fencing_token

    @property
    def held(self) -> bool:
        """True while we believe we hold it (the database has the last word)."""
        return self.lease is not None

    async def acquire(self, *, min_token: int = 0) -> bool:
        """Try to take the region; True on success."""
        self.lease = await self.store.acquire(
            self.region, self.owner, self.ttl_ms, min_token=min_token
        )
        return self.lease is not None

    async def renew(self) -> bool:
        """Extend the lease; False (and no longer held) if it was lost."""
        if self.lease is None:
            return False
        if not await self.store.renew(self.lease):
            self.lease = None
            return False
        return True

    async def release(self) -> None:
        """Give the region up (harmless if already lost)."""
        if self.lease is not None:
            await self.store.release(self.lease)
            self.lease = None

    async def __aenter__(self) -> Self:
        if not await self.acquire():
            raise LeaseUnavailable(f"region {self.region:x} is held by another owner")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.release()  # whether or not the block raised

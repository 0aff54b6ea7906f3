"""Message broker: at-most-once pub/sub for live fan-out, at-least-once streams for the rest.

Two delivery contracts, deliberately kept apart (shared/INTEGRATIONS.md, Redis):

- ``publish``/``subscribe`` — live fan-out (positions, ETAs on ``order:{id}``). Only
  subscribers connected at publish time receive a message; nothing is stored or
  acknowledged. Losing one position is harmless: the next ping supersedes it.
- ``enqueue``/``consume``/``ack``/``claim_stale`` — a durable queue for things that must
  arrive (Redis Streams + consumer groups). A message stays pending for its group until
  acked; a consumer that died leaves it pending and another takes it over with
  ``claim_stale``. Delivery is at least once, so handlers must be idempotent. Without
  Redis persistence "durable" means "survives the consumer", not "survives Redis": the
  PostgreSQL outbox stays the record and re-enqueues after a Redis loss.

``MemoryBroker`` is the embedded default (one process, asyncio); ``RedisBroker`` wraps a
``redis.asyncio`` client. Both pass the same test suite (tests/api/realtime).

Key naming: every Redis key and channel gets the broker's ``prefix``; keys that belong
to a region carry the hash tag ``{r:<res-5 cell hex>}`` (``region_tag``) so one region's
keys share a Redis Cluster slot and Lua scripts over them stay legal on a cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable

import pydantic_core
import redis.asyncio as redis_asyncio
import structlog
from redis.exceptions import ResponseError

_log = structlog.get_logger("api.core.broker")

#: H3 resolution of a region: the unit a dispatcher owns and Redis keys are tagged by.
REGION_RES = 5
#: Prefix of every key and channel unless the caller picks another (tests use unique ones).
DEFAULT_PREFIX = "dj:"
# A prefix must not contain braces: the first {...} in a key is its Cluster hash tag.
_PREFIX_RE = re.compile(r"^[A-Za-z0-9_.:\-]{0,64}$")
# The single field a stream entry carries: the message bytes.
_FIELD = b"d"


class BrokerError(RuntimeError):
    """Base class of broker failures that are not plain connection errors."""


class InvalidKeyPrefix(ValueError):
    """A key prefix would break hash tagging (braces) or is not printable ASCII."""


def check_prefix(prefix: str) -> str:
    """Return ``prefix`` if it is a safe key prefix, else raise ``InvalidKeyPrefix``."""
    if not isinstance(prefix, str) or not _PREFIX_RE.match(prefix):
        raise InvalidKeyPrefix(
            f"prefix must be <= 64 chars of [A-Za-z0-9_.:-] (no braces), got {prefix!r}"
        )
    return prefix


def worker_channel(worker_id: int) -> str:
    """The pub/sub channel of one worker's live socket (offers, assignments, withdrawals)."""
    return f"worker:{int(worker_id)}"


def region_tag(region: int) -> str:
    """The Redis Cluster hash tag of a region (an H3 res-5 cell as int): ``{r:<hex>}``."""
    return "{r:%015x}" % int(region)  # noqa: UP031 - fixed width, same as H3's string form


def encode_message(message: bytes | Mapping[str, Any]) -> bytes:
    """Bytes as they are; a mapping as compact UTF-8 JSON."""
    if isinstance(message, bytes | bytearray | memoryview):
        return bytes(message)
    if isinstance(message, Mapping):
        # pydantic-core's encoder: compact UTF-8 like json.dumps(separators=(",", ":"),
        # ensure_ascii=False) at a fraction of the CPU, and NaN/inf as null (valid JSON).
        return pydantic_core.to_json(dict(message))
    raise TypeError(f"message must be bytes or a mapping, got {type(message).__name__}")


@dataclass(frozen=True)
class Message:
    """One pub/sub message as a subscriber receives it.

    One ``Message`` is shared by every local subscriber of its channel, so ``json()``
    decodes once per message, not once per subscriber; treat the result as read-only.
    """

    channel: str
    data: bytes

    def json(self) -> Any:
        """The payload decoded as JSON (what a dict ``publish`` sent); decoded once."""
        return self._decoded

    @functools.cached_property
    def _decoded(self) -> Any:
        return pydantic_core.from_json(self.data)


@dataclass(frozen=True)
class Delivery:
    """One stream entry handed to a consumer; ``ack`` it once handled."""

    stream: str
    id: str
    data: bytes

    def json(self) -> Any:
        """The payload decoded as JSON (what a dict ``enqueue`` sent)."""
        return pydantic_core.from_json(self.data)


@runtime_checkable
class Subscription(Protocol):
    """An open subscription: an async context manager and an async iterator of messages."""

    async def __aenter__(self) -> Self:
        """Subscribe; messages published after this returns are delivered."""
        ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Unsubscribe and release the connection."""
        ...

    def __aiter__(self) -> AsyncIterator[Message]:
        """Iterate over messages until the subscription is closed."""
        ...

    async def get(self, timeout_s: float | None = None) -> Message | None:
        """The next message, or None if none arrived within ``timeout_s`` seconds."""
        ...


@runtime_checkable
class Broker(Protocol):
    """Live fan-out (at most once) and a durable queue (at least once)."""

    async def publish(self, channel: str, message: bytes | Mapping[str, Any]) -> int:
        """Send to the subscribers connected now; returns how many received it."""
        ...

    def subscribe(self, *channels: str) -> Subscription:
        """A subscription to ``channels``; use ``async with``, then iterate or ``get``."""
        ...

    async def subscribers(self, channel: str) -> int:
        """How many subscribers ``channel`` has now (Redis: processes), for presence checks."""
        ...

    async def enqueue(
        self, stream: str, message: bytes | Mapping[str, Any], *, maxlen: int | None = None
    ) -> str:
        """Append to ``stream``; returns the entry id (``<ms>-<seq>``, increasing)."""
        ...

    async def ensure_group(self, stream: str, group: str, *, from_start: bool = True) -> None:
        """Create consumer ``group`` on ``stream`` if missing (from the first entry by default)."""
        ...

    async def consume(
        self, stream: str, group: str, consumer: str, *, count: int = 10, block_ms: int = 0
    ) -> list[Delivery]:
        """Up to ``count`` never-delivered entries for ``consumer``; pending until acked.

        ``block_ms`` > 0 waits up to that long for one; 0 returns at once (unlike Redis's
        ``BLOCK 0``, which waits forever). Creates the group if it does not exist.
        """
        ...

    async def ack(self, stream: str, group: str, *ids: str) -> int:
        """Mark entries handled for ``group``; returns how many were pending."""
        ...

    async def claim_stale(
        self, stream: str, group: str, consumer: str, *, min_idle_ms: int, count: int = 100
    ) -> list[Delivery]:
        """Take over entries pending longer than ``min_idle_ms`` (their consumer died)."""
        ...

    async def pending(self, stream: str, group: str) -> int:
        """How many entries of ``group`` are delivered but not acked."""
        ...

    async def aclose(self) -> None:
        """Release connections; subscriptions end."""
        ...


def _channels(channels: tuple[str, ...]) -> tuple[str, ...]:
    if not channels:
        raise ValueError("subscribe needs at least one channel")
    return tuple(dict.fromkeys(channels))  # a channel named twice is one subscription


def _check_count(count: int, name: str = "count") -> None:
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"{name} must be an int >= 1, got {count!r}")


def _check_ms(value: int, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be an int >= 0 (milliseconds), got {value!r}")


# --------------------------------------------------------------------------- in-process


#: Messages a local subscriber may have waiting before the oldest is dropped.
DEFAULT_MAX_PENDING = 1000


class LocalSubscription:
    """One local subscriber: a bounded queue fed by its process's ``FanOut``.

    When the queue is full the oldest message is dropped (``dropped`` counts them): a
    slow reader gets the newest positions rather than a growing backlog, and never holds
    up the other subscribers of the channel (delivery never waits).
    """

    def __init__(self, fanout: FanOut, channels: tuple[str, ...], max_pending: int) -> None:
        self._fanout = fanout
        self.channels = channels
        self._queue: asyncio.Queue[Message] = asyncio.Queue(max_pending)
        self.dropped = 0
        self._closed = False

    async def __aenter__(self) -> Self:
        await self._fanout.attach(self)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._closed = True  # unsubscribes whether or not the block raised
        await self._fanout.detach(self)

    def deliver(self, message: Message) -> None:
        """Queue ``message`` without waiting (drop the oldest when full)."""
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(message)

    def __aiter__(self) -> AsyncIterator[Message]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Message]:
        while not self._closed:
            yield await self._queue.get()

    async def get(self, timeout_s: float | None = None) -> Message | None:
        """The next message, or None if none arrived within ``timeout_s`` seconds."""
        if not self._queue.empty():  # wait_for(..., 0) would time out even with one queued
            return self._queue.get_nowait()
        try:
            # asyncio.timeout, not wait_for: no extra task per message (thousands of readers).
            async with asyncio.timeout(timeout_s):
                return await self._queue.get()
        except TimeoutError:
            return None


class FanOut:
    """A process's local subscribers by channel: one upstream subscription, many readers.

    ``deliver`` hands one ``Message`` to every local subscriber of its channel (one
    object, so its JSON is decoded at most once). Subclasses hear when a channel gets
    its first local subscriber (``_opened``) and loses its last (``_closed``): the
    Redis adapter subscribes and unsubscribes its single shared connection there.
    """

    def __init__(self) -> None:
        self.subscribers: dict[str, set[LocalSubscription]] = {}

    async def attach(self, sub: LocalSubscription) -> None:
        """Register ``sub``; returns once messages published from now on reach it."""
        new = []
        for channel in sub.channels:
            subs = self.subscribers.get(channel)
            if subs is None:
                subs = self.subscribers[channel] = set()
                new.append(channel)
            subs.add(sub)
        try:
            await self._opened(new, sub.channels)
        except BaseException:
            await self.detach(sub)
            raise

    async def detach(self, sub: LocalSubscription) -> None:
        """Forget ``sub``; channels left without local subscribers are closed upstream."""
        gone = []
        for channel in sub.channels:
            subs = self.subscribers.get(channel)
            if subs is None:
                continue
            subs.discard(sub)
            if not subs:
                del self.subscribers[channel]
                gone.append(channel)
        if gone:
            await self._closed(gone)

    def deliver(self, channel: str, data: bytes) -> int:
        """Hand ``data`` to every local subscriber of ``channel``; returns how many."""
        subs = self.subscribers.get(channel)
        if not subs:
            return 0
        message = Message(channel, data)
        for sub in tuple(subs):
            sub.deliver(message)
        return len(subs)

    async def _opened(self, new: list[str], channels: tuple[str, ...]) -> None:
        """Channels ``new`` got their first local subscriber (of ``channels``)."""

    async def _closed(self, gone: list[str]) -> None:
        """Channels ``gone`` lost their last local subscriber."""


@dataclass
class _Pending:
    consumer: str
    delivered_at_ms: float
    deliveries: int


@dataclass
class _Group:
    last_delivered: tuple[int, int]
    pending: dict[str, _Pending] = field(default_factory=dict)


@dataclass
class _Stream:
    entries: dict[str, bytes] = field(default_factory=dict)
    groups: dict[str, _Group] = field(default_factory=dict)
    last_id: tuple[int, int] = (0, 0)
    changed: asyncio.Event = field(default_factory=asyncio.Event)


def _parse_id(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


class MemoryBroker:
    """The in-process broker (one event loop): same contracts as ``RedisBroker``.

    ``clock`` returns milliseconds and drives stream ids and idle times, so tests can
    make a consumer "die" for a minute without waiting a minute.
    """

    def __init__(
        self, *, max_pending: int = DEFAULT_MAX_PENDING, clock: Callable[[], float] | None = None
    ) -> None:
        _check_count(max_pending, "max_pending")
        self._max_pending = max_pending
        self._clock = clock or (lambda: time.time() * 1000.0)
        self.fanout = FanOut()
        self._streams: dict[str, _Stream] = {}

    async def publish(self, channel: str, message: bytes | Mapping[str, Any]) -> int:
        """Send to the subscribers connected now; returns how many received it."""
        return self.fanout.deliver(channel, encode_message(message))

    def subscribe(self, *channels: str) -> Subscription:
        """A subscription to ``channels``; use ``async with``, then iterate or ``get``."""
        return LocalSubscription(self.fanout, _channels(channels), self._max_pending)

    async def subscribers(self, channel: str) -> int:
        """How many local subscribers ``channel`` has now."""
        return len(self.fanout.subscribers.get(channel, ()))

    def _stream(self, stream: str) -> _Stream:
        return self._streams.setdefault(stream, _Stream())

    async def enqueue(
        self, stream: str, message: bytes | Mapping[str, Any], *, maxlen: int | None = None
    ) -> str:
        """Append to ``stream``; returns the entry id (``<ms>-<seq>``, increasing)."""
        data = encode_message(message)
        s = self._stream(stream)
        ms = int(self._clock())
        # Same rule as Redis: ids never go backwards, even if the clock does.
        new_id = (ms, 0) if ms > s.last_id[0] else (s.last_id[0], s.last_id[1] + 1)
        s.last_id = new_id
        entry_id = f"{new_id[0]}-{new_id[1]}"
        s.entries[entry_id] = data
        if maxlen is not None:
            _check_count(maxlen, "maxlen")
            for old in list(itertools.islice(s.entries, max(0, len(s.entries) - maxlen))):
                del s.entries[old]
        s.changed.set()
        s.changed = asyncio.Event()
        return entry_id

    async def ensure_group(self, stream: str, group: str, *, from_start: bool = True) -> None:
        """Create consumer ``group`` on ``stream`` if missing (from the first entry by default)."""
        s = self._stream(stream)
        if group not in s.groups:
            s.groups[group] = _Group(last_delivered=(0, 0) if from_start else s.last_id)

    async def consume(
        self, stream: str, group: str, consumer: str, *, count: int = 10, block_ms: int = 0
    ) -> list[Delivery]:
        """Up to ``count`` never-delivered entries for ``consumer``; pending until acked."""
        _check_count(count)
        _check_ms(block_ms, "block_ms")
        await self.ensure_group(stream, group)
        s = self._streams[stream]
        out = self._take_new(stream, s, group, consumer, count)
        if out or block_ms == 0:
            return out
        try:
            await asyncio.wait_for(s.changed.wait(), block_ms / 1000.0)
        except TimeoutError:
            return []
        return self._take_new(stream, s, group, consumer, count)

    def _take_new(
        self, stream: str, s: _Stream, group: str, consumer: str, count: int
    ) -> list[Delivery]:
        g = s.groups[group]
        now = self._clock()
        out: list[Delivery] = []
        for entry_id, data in s.entries.items():
            if len(out) == count:
                break
            parsed = _parse_id(entry_id)
            if parsed <= g.last_delivered:
                continue
            g.last_delivered = parsed
            g.pending[entry_id] = _Pending(consumer, now, 1)
            out.append(Delivery(stream, entry_id, data))
        return out

    async def ack(self, stream: str, group: str, *ids: str) -> int:
        """Mark entries handled for ``group``; returns how many were pending."""
        g = self._streams.get(stream, _Stream()).groups.get(group)
        if g is None:
            return 0
        return sum(g.pending.pop(entry_id, None) is not None for entry_id in ids)

    async def claim_stale(
        self, stream: str, group: str, consumer: str, *, min_idle_ms: int, count: int = 100
    ) -> list[Delivery]:
        """Take over entries pending longer than ``min_idle_ms`` (their consumer died)."""
        _check_ms(min_idle_ms, "min_idle_ms")
        _check_count(count)
        s = self._streams.get(stream)
        g = s.groups.get(group) if s is not None else None
        if s is None or g is None:
            return []
        now = self._clock()
        out: list[Delivery] = []
        for entry_id in sorted(g.pending, key=_parse_id):
            if len(out) == count:
                break
            p = g.pending[entry_id]
            if now - p.delivered_at_ms < min_idle_ms:
                continue
            if entry_id not in s.entries:  # trimmed away meanwhile: Redis drops these too
                del g.pending[entry_id]
                continue
            g.pending[entry_id] = _Pending(consumer, now, p.deliveries + 1)
            out.append(Delivery(stream, entry_id, s.entries[entry_id]))
        return out

    async def pending(self, stream: str, group: str) -> int:
        """How many entries of ``group`` are delivered but not acked."""
        s = self._streams.get(stream)
        g = s.groups.get(group) if s is not None else None
        return 0 if g is None else len(g.pending)

    async def aclose(self) -> None:
        """Forget every stream; open subscriptions simply stop receiving."""
        self.fanout.subscribers.clear()
        self._streams.clear()


# --------------------------------------------------------------------------- Redis


#: Seconds to wait for Redis to confirm a SUBSCRIBE before giving up.
SUBSCRIBE_TIMEOUT_S = 5.0


class RedisFanOut(FanOut):
    """All of a process's subscriptions on ONE Redis pub/sub connection, fanned out locally.

    A channel is SUBSCRIBEd when its first local subscriber arrives and UNSUBSCRIBEd when
    its last leaves; one reader task takes every message off the connection and hands it
    to the channel's local queues. So a process holds one pub/sub connection however many
    WebSockets it serves (a connection per subscriber would exhaust the client's pool),
    and Redis sends each message to a process once. redis-py re-subscribes the channels
    after a reconnect; messages published meanwhile are lost (pub/sub is at most once).
    """

    def __init__(self, client: redis_asyncio.Redis, prefix: str) -> None:
        super().__init__()
        self._client = client
        self._prefix = prefix
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None
        # Channels whose SUBSCRIBE is not confirmed yet, and who waits for that.
        self._confirmed: dict[str, asyncio.Future[None]] = {}
        self._send_lock = asyncio.Lock()

    @property
    def connections(self) -> int:
        """Redis connections held for pub/sub: 1 once anything subscribed, else 0."""
        return 0 if self._pubsub is None or self._pubsub.connection is None else 1

    async def _opened(self, new: list[str], channels: tuple[str, ...]) -> None:
        loop = asyncio.get_running_loop()
        for channel in new:
            self._confirmed[channel] = loop.create_future()
        if new:
            async with self._send_lock:
                if self._pubsub is None:
                    self._pubsub = self._client.pubsub()
                await self._pubsub.subscribe(*(self._prefix + c for c in new))
                if self._reader is None:
                    self._reader = asyncio.create_task(self._read(), name="broker-fanout")
        # Only once the server confirmed does it route our channels to this connection:
        # then "published after subscribe returned" really is delivered. A subscriber of
        # a channel whose SUBSCRIBE is still in flight waits for the same confirmation.
        waiting = [f for c in channels if (f := self._confirmed.get(c)) is not None]
        if waiting:
            try:
                await asyncio.wait_for(asyncio.gather(*waiting), SUBSCRIBE_TIMEOUT_S)
            except TimeoutError:
                raise BrokerError(f"Redis did not confirm SUBSCRIBE of {channels}") from None

    async def _closed(self, gone: list[str]) -> None:
        for channel in gone:
            waiter = self._confirmed.pop(channel, None)
            if waiter is not None and not waiter.done():
                waiter.cancel()
        if self._pubsub is None:
            return
        async with self._send_lock:
            # A connection error here is harmless: redis-py re-subscribes only what is
            # still wanted, and a channel nobody reads is dropped by the next reconnect.
            with contextlib.suppress(redis_asyncio.ConnectionError, OSError):
                await self._pubsub.unsubscribe(*(self._prefix + c for c in gone))

    async def _read(self) -> None:
        while True:
            try:
                raw = await self._pubsub.get_message(timeout=None)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # connection lost: redis-py reconnects on the next read
                _log.warning("broker_fanout_read_failed", error=type(exc).__name__)
                await asyncio.sleep(0.5)
                continue
            if raw is None:
                continue
            kind = raw["type"]
            channel = raw["channel"]
            name = (channel.decode() if isinstance(channel, bytes) else str(channel)).removeprefix(
                self._prefix
            )
            if kind == "message":
                data = raw["data"]
                self.deliver(name, data if isinstance(data, bytes) else str(data).encode())
            elif kind == "subscribe":
                waiter = self._confirmed.pop(name, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)

    async def aclose(self) -> None:
        """Stop the reader and release the pub/sub connection; subscribers stop receiving."""
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        if self._pubsub is not None:
            await self._pubsub.aclose()
            self._pubsub = None
        for waiter in self._confirmed.values():
            waiter.cancel()
        self._confirmed.clear()
        self.subscribers.clear()


def _decode_id(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisBroker:
    """``Broker`` over Redis: PUBLISH/SUBSCRIBE and Streams with consumer groups.

    Takes a ``redis.asyncio.Redis`` created with ``decode_responses=False`` (the app's
    lifespan client). ``block_ms`` must stay below the client's socket timeout.
    """

    def __init__(
        self,
        client: redis_asyncio.Redis,
        *,
        prefix: str = DEFAULT_PREFIX,
        owns_client: bool = False,
        max_pending: int = DEFAULT_MAX_PENDING,
    ) -> None:
        _check_count(max_pending, "max_pending")
        self.client = client
        self.prefix = check_prefix(prefix)
        self._owns_client = owns_client
        self._max_pending = max_pending
        self.fanout = RedisFanOut(client, self.prefix)

    @classmethod
    def from_url(cls, url: str, *, prefix: str = DEFAULT_PREFIX) -> RedisBroker:
        """A broker on its own client for ``url`` (closed by ``aclose``)."""
        return cls(redis_asyncio.from_url(url), prefix=prefix, owns_client=True)

    async def publish(self, channel: str, message: bytes | Mapping[str, Any]) -> int:
        """Send to the subscribers connected now; returns how many processes received it.

        Each process subscribes once per channel however many local subscribers it
        serves, so Redis counts processes (0 still means nobody listens).
        """
        return int(await self.client.publish(self.prefix + channel, encode_message(message)))

    def subscribe(self, *channels: str) -> Subscription:
        """A subscription to ``channels``; use ``async with``, then iterate or ``get``.

        Shares this broker's one pub/sub connection with every other subscription.
        """
        return LocalSubscription(self.fanout, _channels(channels), self._max_pending)

    async def subscribers(self, channel: str) -> int:
        """How many processes subscribe ``channel`` now (``PUBSUB NUMSUB``; each process
        subscribes a channel once however many local subscribers it serves)."""
        reply: Any = await self.client.pubsub_numsub(self.prefix + channel)
        return int(reply[0][1]) if reply else 0

    async def enqueue(
        self, stream: str, message: bytes | Mapping[str, Any], *, maxlen: int | None = None
    ) -> str:
        """Append to ``stream``; returns the entry id (``<ms>-<seq>``, increasing)."""
        if maxlen is not None:
            _check_count(maxlen, "maxlen")
        entry_id = await self.client.xadd(
            self.prefix + stream,
            {_FIELD: encode_message(message)},
            maxlen=maxlen,
            approximate=False,
        )
        return _decode_id(entry_id)

    async def ensure_group(self, stream: str, group: str, *, from_start: bool = True) -> None:
        """Create consumer ``group`` on ``stream`` if missing (from the first entry by default)."""
        try:
            await self.client.xgroup_create(
                self.prefix + stream, group, id="0" if from_start else "$", mkstream=True
            )
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def _deliveries(self, stream: str, entries: Any) -> list[Delivery]:
        out = []
        for entry_id, fields in entries or ():
            if fields is None:  # deleted while pending
                continue
            out.append(Delivery(stream, _decode_id(entry_id), fields.get(_FIELD, b"")))
        return out

    async def consume(
        self, stream: str, group: str, consumer: str, *, count: int = 10, block_ms: int = 0
    ) -> list[Delivery]:
        """Up to ``count`` never-delivered entries for ``consumer``; pending until acked."""
        _check_count(count)
        _check_ms(block_ms, "block_ms")
        key = self.prefix + stream
        for attempt in range(2):
            try:
                reply = await self.client.xreadgroup(
                    group, consumer, {key: ">"}, count=count, block=block_ms or None
                )
                break
            except ResponseError as exc:
                # NOGROUP: first use, or Redis lost everything (no persistence) -> recreate.
                if "NOGROUP" not in str(exc) or attempt:
                    raise
                await self.ensure_group(stream, group)
        out: list[Delivery] = []
        streams: Any = reply or ()
        for _name, entries in streams:
            out.extend(self._deliveries(stream, entries))
        return out

    async def ack(self, stream: str, group: str, *ids: str) -> int:
        """Mark entries handled for ``group``; returns how many were pending."""
        if not ids:
            return 0
        return int(await self.client.xack(self.prefix + stream, group, *ids))

    async def claim_stale(
        self, stream: str, group: str, consumer: str, *, min_idle_ms: int, count: int = 100
    ) -> list[Delivery]:
        """Take over entries pending longer than ``min_idle_ms`` (their consumer died)."""
        _check_ms(min_idle_ms, "min_idle_ms")
        _check_count(count)
        key = self.prefix + stream
        out: list[Delivery] = []
        start = "0-0"
        while len(out) < count:
            try:
                reply = await self.client.xautoclaim(
                    key, group, consumer, min_idle_ms, start_id=start, count=count - len(out)
                )
            except ResponseError as exc:
                if "NOGROUP" in str(exc):
                    return out
                raise
            next_start, entries = _decode_id(reply[0]), reply[1]
            out.extend(self._deliveries(stream, entries))
            if next_start == "0-0":
                break
            start = next_start
        return out

    async def pending(self, stream: str, group: str) -> int:
        """How many entries of ``group`` are delivered but not acked."""
        try:
            info = await self.client.xpending(self.prefix + stream, group)
        except ResponseError as exc:
            if "NOGROUP" in str(exc):
                return 0
            raise
        return int(info["pending"])

    async def aclose(self) -> None:
        """End the shared subscription; close the client if this broker created it."""
        await self.fanout.aclose()
        if self._owns_client:
            await self.client.aclose()

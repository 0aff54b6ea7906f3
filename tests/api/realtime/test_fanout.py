"""One shared subscription per process, fanned out to local subscribers (both adapters)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import pytest
import redis.asyncio as redis_asyncio

from api.core.broker import (
    Broker,
    FanOut,
    LocalSubscription,
    MemoryBroker,
    RedisBroker,
    RedisFanOut,
)

SUBSCRIBERS = 40
MESSAGES = 25


MakeBroker = Callable[..., contextlib.AbstractAsyncContextManager[Broker]]


@pytest.fixture
def make_broker(prefix: str, redis_client: redis_asyncio.Redis | None) -> MakeBroker:
    """A broker of the current kind with a small per-subscriber queue (closed afterwards)."""

    @contextlib.asynccontextmanager
    async def make(max_pending: int = 1000) -> AsyncIterator[Broker]:
        broker: Broker
        if redis_client is None:
            broker = MemoryBroker(max_pending=max_pending)
        else:
            broker = RedisBroker(redis_client, prefix=prefix, max_pending=max_pending)
        try:
            yield broker
        finally:
            await broker.aclose()

    return make


def _fanout(broker: Broker) -> FanOut:
    assert isinstance(broker, MemoryBroker | RedisBroker)
    return broker.fanout


async def _numsub(broker: Broker, channel: str) -> int | None:
    """Redis subscriptions (connections) on ``channel``; None for the memory broker."""
    if not isinstance(broker, RedisBroker):
        return None
    reply = await broker.client.pubsub_numsub(broker.prefix + channel)
    return int(reply[0][1])


async def _until_numsub(broker: Broker, channel: str, want: int) -> int | None:
    """NUMSUB once it reached ``want`` (UNSUBSCRIBE is not awaited by the server's reply)."""
    got = await _numsub(broker, channel)
    for _ in range(50):
        if got is None or got == want:
            return got
        await asyncio.sleep(0.05)
        got = await _numsub(broker, channel)
    return got


async def test_every_subscriber_of_a_channel_gets_every_message_in_order(
    make_broker: MakeBroker,
) -> None:
    async with make_broker() as broker, contextlib.AsyncExitStack() as stack:
        subs = [
            await stack.enter_async_context(broker.subscribe("order:7")) for _ in range(SUBSCRIBERS)
        ]
        other = await stack.enter_async_context(broker.subscribe("order:8"))
        for i in range(MESSAGES):
            await broker.publish("order:7", {"seq": i})
        await broker.publish("order:8", {"seq": "other"})
        for sub in subs:
            got = [await sub.get(timeout_s=5.0) for _ in range(MESSAGES)]
            assert [m.json()["seq"] for m in got if m is not None] == list(range(MESSAGES))
            assert await sub.get(timeout_s=0) is None  # nothing of order:8 leaked in
        message = await other.get(timeout_s=5.0)
        assert message is not None
        assert message.json() == {"seq": "other"}


async def test_one_redis_subscription_however_many_local_subscribers(
    make_broker: MakeBroker,
) -> None:
    async with make_broker() as broker, contextlib.AsyncExitStack() as stack:
        channels = [f"order:{i}" for i in range(10)]
        for channel in channels:
            for _ in range(5):
                await stack.enter_async_context(broker.subscribe(channel))
        assert all(len(_fanout(broker).subscribers[c]) == 5 for c in channels)
        if isinstance(broker, RedisBroker):
            assert isinstance(broker.fanout, RedisFanOut)
            assert broker.fanout.connections == 1
            for channel in channels:
                assert await _numsub(broker, channel) == 1
            # Redis delivers once to the process, which hands it to all five.
            assert await broker.publish(channels[0], b"x") == 1
        else:
            assert await broker.publish(channels[0], b"x") == 5


async def test_leaving_cleans_up_and_a_returning_subscriber_is_served(
    make_broker: MakeBroker,
) -> None:
    async with make_broker() as broker:
        async with broker.subscribe("order:3") as a, broker.subscribe("order:3", "order:4"):
            assert set(_fanout(broker).subscribers) == {"order:3", "order:4"}
            await broker.publish("order:3", b"both")
            assert (await a.get(timeout_s=5.0)) is not None
        assert _fanout(broker).subscribers == {}
        assert await _until_numsub(broker, "order:3", 0) in (None, 0)
        assert await broker.publish("order:3", b"nobody") == 0
        # Straight back in after the last one left: the channel is subscribed again.
        async with broker.subscribe("order:3") as again:
            await broker.publish("order:3", b"again")
            message = await again.get(timeout_s=5.0)
            assert message is not None
            assert message.data == b"again"


async def test_subscribers_joining_at_once_all_receive(make_broker: MakeBroker) -> None:
    async with make_broker() as broker, contextlib.AsyncExitStack() as stack:
        # All join the same new channel concurrently: the later ones wait for the
        # confirmation of the first one's SUBSCRIBE instead of returning too early.
        subs = await asyncio.gather(
            *(stack.enter_async_context(broker.subscribe("order:5")) for _ in range(20))
        )
        await broker.publish("order:5", b"first")
        for sub in subs:
            message = await sub.get(timeout_s=5.0)
            assert message is not None
            assert message.data == b"first"


async def test_a_slow_subscriber_drops_its_oldest_and_blocks_nobody(
    make_broker: MakeBroker,
) -> None:
    async with (
        make_broker(max_pending=3) as broker,
        broker.subscribe("order:6") as slow,
        broker.subscribe("order:6") as fast,
    ):
        got = []
        for i in range(10):
            await broker.publish("order:6", {"i": i})
            message = await fast.get(timeout_s=5.0)
            assert message is not None
            got.append(message.json()["i"])
        assert got == list(range(10))
        # The one that never read keeps only the newest three and says what it lost.
        assert isinstance(slow, LocalSubscription)
        assert slow.dropped == 7
        kept = [await slow.get(timeout_s=1.0) for _ in range(3)]
        assert [m.json()["i"] for m in kept if m is not None] == [7, 8, 9]
        assert await slow.get(timeout_s=0) is None


async def test_a_message_is_decoded_once_for_all_subscribers(make_broker: MakeBroker) -> None:
    async with make_broker() as broker, broker.subscribe("c") as a, broker.subscribe("c") as b:
        await broker.publish("c", {"k": 1})
        ma, mb = await a.get(timeout_s=5.0), await b.get(timeout_s=5.0)
        assert ma is not None
        assert mb is not None
        assert ma is mb  # one Message object fanned out
        assert ma.json() is mb.json()


def test_subscribe_needs_a_channel() -> None:
    with pytest.raises(ValueError, match="at least one channel"):
        MemoryBroker().subscribe()

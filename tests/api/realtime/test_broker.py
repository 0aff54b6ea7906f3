"""Broker on both adapters: pub/sub is at most once, streams are at least once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from api.core.broker import (
    Broker,
    InvalidKeyPrefix,
    MemoryBroker,
    RedisBroker,
    check_prefix,
    encode_message,
    region_tag,
)
from tests.api.realtime.conftest import FakeClock


async def test_pubsub_reaches_only_subscribers_connected_at_publish_time(broker: Broker) -> None:
    assert await broker.publish("order:1", b"before anyone listens") == 0
    async with broker.subscribe("order:1") as first, broker.subscribe("order:1") as second:
        # Memory counts subscribers; Redis counts processes (one shared subscription each).
        expected = 2 if isinstance(broker, MemoryBroker) else 1
        assert await broker.publish("order:1", {"eta_s": 300, "worker": "张师傅"}) == expected
        assert await broker.publish("order:2", b"other order") == 0
        for sub in (first, second):
            message = await sub.get(timeout_s=5.0)
            assert message is not None
            # The first message each sees is the one sent after it subscribed.
            assert message.channel == "order:1"
            assert message.json() == {"eta_s": 300, "worker": "张师傅"}
    # Both gone: nobody receives, and nothing is kept for later.
    assert await broker.publish("order:1", b"after") == 0
    async with broker.subscribe("order:1") as late:
        assert await broker.publish("order:1", b"fresh") == 1
        message = await late.get(timeout_s=5.0)
        assert message is not None
        assert message.data == b"fresh"


async def test_a_subscription_iterates_in_publish_order(broker: Broker) -> None:
    async with broker.subscribe("order:9", "order:10") as sub:
        for i in range(5):
            await broker.publish(f"order:{9 + i % 2}", {"seq": i})
        received: list[tuple[str, Any]] = []
        async for message in sub:
            received.append((message.channel, message.json()["seq"]))
            if len(received) == 5:
                break
    assert received == [(f"order:{9 + i % 2}", i) for i in range(5)]


async def test_stream_redelivers_what_a_dead_consumer_left_and_ack_stops_it(
    broker: Broker,
) -> None:
    ids = [await broker.enqueue("outbox", {"n": i}) for i in range(3)]
    assert ids == sorted(ids, key=lambda x: tuple(int(p) for p in x.split("-")))
    first = await broker.consume("outbox", "relay", "a", count=2)
    assert [d.id for d in first] == ids[:2]
    assert await broker.pending("outbox", "relay") == 2
    # "a" dies without acking. Its entries are not handed out as new ones ...
    rest = await broker.consume("outbox", "relay", "b", count=10)
    assert [d.json() for d in rest] == [{"n": 2}]
    assert await broker.ack("outbox", "relay", rest[0].id) == 1
    # ... nor claimed before they have been idle long enough ...
    assert await broker.claim_stale("outbox", "relay", "b", min_idle_ms=3_600_000) == []
    # ... but taken over once they are.
    claimed = await broker.claim_stale("outbox", "relay", "b", min_idle_ms=0)
    assert [(d.id, d.json()) for d in claimed] == [(ids[0], {"n": 0}), (ids[1], {"n": 1})]
    assert await broker.ack("outbox", "relay", *(d.id for d in claimed)) == 2
    assert await broker.ack("outbox", "relay", ids[0]) == 0  # already acked
    assert await broker.pending("outbox", "relay") == 0
    assert await broker.claim_stale("outbox", "relay", "b", min_idle_ms=0) == []
    assert await broker.consume("outbox", "relay", "b") == []
    # Another group gets every entry independently.
    other = await broker.consume("outbox", "audit", "x", count=10)
    assert [d.id for d in other] == ids


async def test_a_blocked_consumer_wakes_up_for_a_new_entry(broker: Broker) -> None:
    await broker.ensure_group("jobs", "workers")

    async def later() -> str:
        await asyncio.sleep(0.05)
        return await broker.enqueue("jobs", b"job-1")

    deliveries, entry_id = await asyncio.gather(
        broker.consume("jobs", "workers", "w1", block_ms=1500), later()
    )
    # With a long enough block the entry arrives in this call; otherwise in the next.
    if not deliveries:
        deliveries = await broker.consume("jobs", "workers", "w1")
    assert [(d.id, d.data) for d in deliveries] == [(entry_id, b"job-1")]


async def test_a_group_created_late_still_sees_earlier_entries(broker: Broker) -> None:
    await broker.enqueue("events", b"one")
    await broker.ensure_group("events", "late", from_start=True)
    await broker.ensure_group("events", "late")  # idempotent
    await broker.ensure_group("events", "tail", from_start=False)
    await broker.enqueue("events", b"two")
    assert [d.data for d in await broker.consume("events", "late", "c")] == [b"one", b"two"]
    assert [d.data for d in await broker.consume("events", "tail", "c")] == [b"two"]


async def test_consume_recovers_after_redis_forgot_the_stream(
    broker: Broker, redis_client: Any, prefix: str
) -> None:
    await broker.enqueue("outbox", b"x")
    assert len(await broker.consume("outbox", "relay", "a")) == 1
    # A restart without persistence: Redis forgets the stream and its groups; an
    # in-process broker is simply new.
    if redis_client is not None:
        await redis_client.delete(prefix + "outbox")
    else:
        broker = MemoryBroker()
    assert await broker.consume("outbox", "relay", "a") == []
    assert await broker.pending("outbox", "relay") == 0
    await broker.enqueue("outbox", b"y")
    assert [d.data for d in await broker.consume("outbox", "relay", "a")] == [b"y"]


def test_memory_idle_time_follows_its_clock() -> None:
    clock = FakeClock()

    async def go() -> None:
        broker = MemoryBroker(clock=clock.ms)
        await broker.enqueue("s", b"m")
        assert len(await broker.consume("s", "g", "a")) == 1
        clock.advance(29.0)
        assert await broker.claim_stale("s", "g", "b", min_idle_ms=30_000) == []
        clock.advance(2.0)
        assert [d.data for d in await broker.claim_stale("s", "g", "b", min_idle_ms=30_000)] == [
            b"m"
        ]
        # Claiming resets the idle time: "b" now has 30 s before someone else may take it.
        assert await broker.claim_stale("s", "g", "c", min_idle_ms=30_000) == []

    asyncio.run(go())


def test_memory_subscriber_that_falls_behind_keeps_the_newest() -> None:
    async def go() -> None:
        broker = MemoryBroker(max_pending=2)
        async with broker.subscribe("c") as sub:
            for i in range(4):
                await broker.publish("c", {"i": i})
            got = [(await sub.get(0))]
            got.append(await sub.get(0))
            assert [m.json()["i"] for m in got if m is not None] == [2, 3]
            assert await sub.get(0) is None

    asyncio.run(go())


def test_keys_and_payloads() -> None:
    assert region_tag(0x85309AB3FFFFFFF) == "{r:85309ab3fffffff}"
    assert encode_message({"a": "上海"}) == '{"a":"上海"}'.encode()
    assert encode_message(b"raw") == b"raw"
    with pytest.raises(TypeError):
        encode_message("text")  # type: ignore[arg-type]
    assert check_prefix("dj:") == "dj:"
    with pytest.raises(InvalidKeyPrefix):
        check_prefix("{dj}:")
    with pytest.raises(ValueError, match="count"):
        asyncio.run(MemoryBroker().consume("s", "g", "c", count=0))
    assert isinstance(MemoryBroker(), Broker)
    assert RedisBroker.__init__ is not None

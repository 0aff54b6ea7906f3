"""LiveState on both adapters: ordering, cell membership, states, eviction, rebuild."""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import redis.exceptions
from hypothesis import given, settings
from hypothesis import strategies as st

from api.core.live import (
    KEEP_STATE,
    Coalescer,
    InvalidPing,
    LiveState,
    MemoryLiveState,
    PingBatch,
    RedisLiveState,
    WorkerState,
    WrongResolution,
    cells_to_hex,
    hex_to_cells,
    latest_per_worker,
    make_live,
    run_pipeline,
)
from geo.cells import cell_to_parent, latlng_to_cells
from tests.api.realtime.conftest import REDIS_URL, delete_prefix, redis_reachable
from tests.services import require

SHANGHAI = (31.2304, 121.4737)
BEIJING = (39.9042, 116.4074)
HANGZHOU = (30.2741, 120.1551)
# A box around Shanghai spanning several res-5 regions, so random walks cross regions.
BOX = (31.05, 31.45, 121.25, 121.70)
CODES = [KEEP_STATE, *(s.code for s in WorkerState)]


def ping(
    worker_id: int, lat: float, lng: float, ts: float, state: WorkerState | None = None
) -> PingBatch:
    """A one-ping batch."""
    return PingBatch.of(
        [worker_id], [lat], [lng], [ts], states=[state.code if state else KEEP_STATE]
    )


async def member_sets(live: LiveState) -> dict[int, frozenset[int]]:
    """Cell -> worker ids as the adapter stores them (not through workers_in_cells)."""
    assert isinstance(live, MemoryLiveState | RedisLiveState)
    return await live.member_sets()


# --------------------------------------------------------------------------- oracle


@dataclass
class Oracle:
    """The specification, one worker at a time: newest ping wins, offline leaves cells."""

    cell_res: int
    stale_after_s: float
    last: dict[int, tuple[float, int]] = field(default_factory=dict)
    pos: dict[int, tuple[float, float, float, int]] = field(default_factory=dict)

    def update(self, batch: PingBatch) -> None:
        for i in range(len(batch)):
            wid, ts = int(batch.worker_ids[i]), float(batch.ts[i])
            seen = self.last.get(wid)
            if seen is not None and seen[0] >= ts:
                continue
            code = int(batch.states[i])
            state = code or (seen[1] if seen else WorkerState.ONLINE.code)
            self.last[wid] = (ts, state)
            self.pos[wid] = (float(batch.lat[i]), float(batch.lng[i]), ts, state)

    def set_state(self, wid: int, state: WorkerState) -> bool:
        if wid not in self.pos:
            return False
        lat, lng, ts, _ = self.pos[wid]
        self.pos[wid] = (lat, lng, ts, state.code)
        self.last[wid] = (self.last[wid][0], state.code)
        return True

    def evict(self, now: float) -> int:
        gone = [w for w, p in self.pos.items() if p[2] < now - self.stale_after_s]
        for w in gone:
            del self.pos[w]
        return len(gone)

    def members(self) -> dict[int, frozenset[int]]:
        out: dict[int, set[int]] = {}
        for wid, (lat, lng, _, state) in self.pos.items():
            if state != WorkerState.OFFLINE.code:
                out.setdefault(latlng_to_cells(lat, lng, self.cell_res), set()).add(wid)
        return {c: frozenset(ws) for c, ws in out.items()}


def sequential(batch: PingBatch) -> list[PingBatch]:
    """Split a batch into one-ping batches in the adapters' order (newest per worker last)."""
    rows = latest_per_worker(batch)
    return [batch.take(np.array([r])) for r in rows.tolist()]


async def assert_matches(live: LiveState, oracle: Oracle, worker_ids: list[int]) -> None:
    """Positions, states and member sets equal the oracle's, exactly."""
    got = await live.get_positions(worker_ids)
    for i, wid in enumerate(worker_ids):
        want = oracle.pos.get(wid)
        assert bool(got.found[i]) == (want is not None), wid
        if want is not None:
            assert (got.lat[i], got.lng[i], got.ts[i]) == want[:3]
            assert int(got.states[i]) == want[3]
            assert int(got.cells[i]) == latlng_to_cells(want[0], want[1], live.cell_res)
    expected = oracle.members()
    assert await member_sets(live) == expected
    # The public query agrees with the stored sets, and with the positions.
    cells = np.array(sorted(expected), dtype=np.uint64)
    in_cells = await live.workers_in_cells(cells)
    pairs = {(int(c), int(w)) for c, w in zip(in_cells.cells, in_cells.worker_ids, strict=True)}
    assert pairs == {(c, w) for c, ws in expected.items() for w in ws}


def random_ops(seed: int, n_ops: int, n_workers: int) -> list[tuple[str, Any]]:
    """A seeded mix of ping batches (out of order, ties, state codes), states and evictions."""
    rng = random.Random(seed)
    ops: list[tuple[str, Any]] = []
    for _ in range(n_ops):
        roll = rng.random()
        if roll < 0.75:
            n = rng.randint(1, 6)
            ops.append(
                (
                    "batch",
                    PingBatch.of(
                        [rng.randrange(n_workers) for _ in range(n)],
                        [rng.uniform(BOX[0], BOX[1]) for _ in range(n)],
                        [rng.uniform(BOX[2], BOX[3]) for _ in range(n)],
                        [float(rng.randint(0, 60)) for _ in range(n)],
                        [rng.uniform(0, 30) for _ in range(n)],
                        [rng.choice(CODES) for _ in range(n)],
                    ),
                )
            )
        elif roll < 0.92:
            ops.append(("state", (rng.randrange(n_workers), rng.choice(list(WorkerState)))))
        else:
            ops.append(("evict", float(rng.randint(0, 80))))
    return ops


async def run_ops(live: LiveState, oracle: Oracle, ops: list[tuple[str, Any]]) -> None:
    """Apply ``ops`` to both; compare the answers of every step."""
    for op, arg in ops:
        if op == "batch":
            await live.update_positions(arg)
            for one in sequential(arg):
                oracle.update(one)
        elif op == "state":
            wid, state = arg
            assert await live.set_worker_state(wid, state) == oracle.set_state(wid, state)
        else:
            assert await live.evict_stale(arg) == oracle.evict(arg)


# --------------------------------------------------------------------------- tests


async def test_out_of_order_ping_never_moves_a_worker_back(live: LiveState) -> None:
    first = await live.update_positions(ping(7, *SHANGHAI, ts=100.0))
    assert first.applied.tolist() == [True]
    moved = await live.update_positions(ping(7, *HANGZHOU, ts=110.0))
    assert moved.applied.tolist() == [True]
    # Late and duplicate pings of the old position: both refused, nothing moves.
    late = await live.update_positions(ping(7, *SHANGHAI, ts=105.0))
    again = await live.update_positions(ping(7, *SHANGHAI, ts=110.0))
    assert (late.stale, again.stale) == (1, 1)
    assert late.applied.tolist() == again.applied.tolist() == [False]
    pos = await live.get_positions([7])
    assert (pos.lat[0], pos.lng[0], pos.ts[0]) == (*HANGZHOU, 110.0)
    shanghai_cell = latlng_to_cells(*SHANGHAI, live.cell_res)
    hangzhou_cell = latlng_to_cells(*HANGZHOU, live.cell_res)
    assert (await live.workers_in_cells([shanghai_cell])).worker_ids.tolist() == []
    assert (await live.workers_in_cells([hangzhou_cell])).worker_ids.tolist() == [7]


async def test_newest_ping_of_a_worker_in_a_batch_wins_whatever_the_row_order(
    live: LiveState,
) -> None:
    batch = PingBatch.of([1, 2, 1, 1], [31.20, 31.30, 31.22, 31.21], [121.4] * 4, [5, 5, 9, 7])
    result = await live.update_positions(batch)
    assert result.applied.tolist() == [False, True, True, False]
    assert (result.stale, result.superseded) == (0, 2)
    pos = await live.get_positions([1, 2, 3])
    assert pos.found.tolist() == [True, True, False]
    # Ids no ping can carry are simply unknown (in Redis they must not alias a real key).
    unknown = await live.get_positions([-(10**16) + 1, 10**16 + 1, 2 - 10**16])
    assert unknown.found.tolist() == [False, False, False]
    assert pos.lat[0] == 31.22
    assert pos.state(0) is WorkerState.ONLINE
    assert pos.state(2) is None


async def test_a_move_across_regions_leaves_the_old_region_for_good(live: LiveState) -> None:
    a = latlng_to_cells(*SHANGHAI, live.cell_res)
    b = latlng_to_cells(*BEIJING, live.cell_res)
    assert cell_to_parent(a, 5) != cell_to_parent(b, 5)
    await live.update_positions(ping(3, *SHANGHAI, ts=10.0))
    await live.update_positions(ping(3, *BEIJING, ts=20.0))
    # Late pings from the old region and from a third one are both older: refused.
    await live.update_positions(ping(3, *SHANGHAI, ts=15.0))
    await live.update_positions(ping(3, *HANGZHOU, ts=19.0))
    assert await member_sets(live) == {b: frozenset({3})}
    pos = await live.get_positions([3])
    assert (pos.lat[0], pos.lng[0]) == BEIJING
    # ... and the worker can come back later.
    await live.update_positions(ping(3, *SHANGHAI, ts=30.0))
    assert await member_sets(live) == {a: frozenset({3})}


async def test_offline_workers_leave_the_cells_and_busy_ones_stay(live: LiveState) -> None:
    cell = latlng_to_cells(*SHANGHAI, live.cell_res)
    await live.update_positions(PingBatch.of([1, 2], [SHANGHAI[0]] * 2, [SHANGHAI[1]] * 2, [1, 1]))
    assert await live.set_worker_state(1, WorkerState.OFFLINE)
    assert await live.set_worker_state(2, "busy")
    assert not await live.set_worker_state(99, WorkerState.BUSY)  # never seen
    assert (await live.workers_in_cells([cell])).worker_ids.tolist() == [2]
    pos = await live.get_positions([1, 2])
    assert (pos.state(0), pos.state(1)) == (WorkerState.OFFLINE, WorkerState.BUSY)
    # A later ping keeps the state unless it carries one.
    await live.update_positions(ping(1, *SHANGHAI, ts=2.0))
    assert (await live.workers_in_cells([cell])).worker_ids.tolist() == [2]
    await live.update_positions(ping(1, *SHANGHAI, ts=3.0, state=WorkerState.ONLINE))
    assert (await live.workers_in_cells([cell])).worker_ids.tolist() == [1, 2]


async def test_stale_workers_are_evicted_and_late_pings_do_not_revive_them(
    new_live: Callable[..., LiveState],
) -> None:
    live = new_live(stale_after_s=60.0)
    await live.update_positions(PingBatch.of([1, 2], [31.2, 31.3], [121.4, 121.5], [100, 200]))
    assert await live.evict_stale(now=200.0) == 1  # worker 1 is 100 s old
    assert (await live.get_positions([1, 2])).found.tolist() == [False, True]
    assert not await live.set_worker_state(1, WorkerState.BUSY)
    assert (await live.update_positions(ping(1, 31.2, 121.4, ts=90.0))).stale == 1
    assert (await live.get_positions([1])).found.tolist() == [False]
    await live.update_positions(ping(1, 31.25, 121.45, ts=210.0))
    assert (await live.get_positions([1])).found.tolist() == [True]
    assert await live.evict_stale(now=200.0) == 0


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_membership_matches_positions_after_a_seeded_random_sequence(
    new_live: Callable[..., LiveState], seed: int
) -> None:
    # Short staleness so evictions happen within the 0..60 s of generated pings.
    live = new_live(stale_after_s=30.0)
    oracle = Oracle(live.cell_res, 30.0)
    await run_ops(live, oracle, random_ops(seed, n_ops=120, n_workers=12))
    await assert_matches(live, oracle, list(range(12)))


@settings(max_examples=60)
@given(seed=st.integers(0, 2**32 - 1), n_ops=st.integers(1, 60), n_workers=st.integers(1, 8))
def test_memory_membership_is_exact_for_any_operation_sequence(
    seed: int, n_ops: int, n_workers: int
) -> None:
    async def go() -> None:
        live = MemoryLiveState(cell_res=7, stale_after_s=30.0)
        oracle = Oracle(7, 30.0)
        await run_ops(live, oracle, random_ops(seed, n_ops, n_workers))
        await assert_matches(live, oracle, list(range(n_workers)))

    asyncio.run(go())


async def test_restart_loses_nothing_when_rebuilt_from_a_snapshot(
    new_live: Callable[..., LiveState], redis_client: Any, prefix: str
) -> None:
    live = new_live()
    oracle = Oracle(live.cell_res, live.stale_after_s)
    await run_ops(live, oracle, random_ops(11, n_ops=80, n_workers=20))
    before = await live.get_positions(list(range(20)))
    members = await member_sets(live)
    snapshot = await live.snapshot()
    assert sorted(snapshot.worker_ids.tolist()) == sorted(oracle.pos)

    # The "restart": Redis forgets our keys (never the whole server); memory starts over.
    if redis_client is not None:
        assert await delete_prefix(redis_client, prefix) > 0
        assert (await live.get_positions(list(range(20)))).found.sum() == 0
        fresh: LiveState = live
    else:
        fresh = MemoryLiveState(cell_res=live.cell_res, stale_after_s=live.stale_after_s)
    await fresh.restore(snapshot)

    after = await fresh.get_positions(list(range(20)))
    for name in ("found", "lat", "lng", "ts", "states", "cells"):
        np.testing.assert_array_equal(getattr(after, name), getattr(before, name), err_msg=name)
    np.testing.assert_array_equal(after.accuracy_m, before.accuracy_m)
    assert await member_sets(fresh) == members
    # Ordering survives too: a ping older than the restored one is still refused.
    newest = int(np.argmax(np.where(before.found, before.ts, -1)))
    late = await fresh.update_positions(ping(newest, *HANGZHOU, ts=before.ts[newest] - 1))
    assert late.stale == 1


async def test_concurrent_ingesters_converge_on_the_newest_ping(
    new_live: Callable[..., LiveState],
) -> None:
    a, b = new_live(), new_live()
    rng = random.Random(5)
    batches = [
        PingBatch.of(
            list(range(10)),
            [rng.uniform(BOX[0], BOX[1]) for _ in range(10)],
            [rng.uniform(BOX[2], BOX[3]) for _ in range(10)],
            [float(t)] * 10,
        )
        for t in rng.sample(range(1, 41), 40)
    ]
    await asyncio.gather(
        *(live.update_positions(batch) for live, batch in zip([a, b] * 20, batches, strict=True))
    )
    newest = max(batches, key=lambda batch: float(batch.ts[0]))
    oracle = Oracle(a.cell_res, a.stale_after_s)
    oracle.update(newest)
    await assert_matches(a, oracle, list(range(10)))
    await assert_matches(b, oracle, list(range(10)))


async def test_bad_input_is_refused_with_typed_errors(live: LiveState) -> None:
    with pytest.raises(InvalidPing, match="lat"):
        PingBatch.of([1], [float("nan")], [121.0], [1.0])
    with pytest.raises(InvalidPing, match="rows"):
        PingBatch.of([1, 2], [31.0], [121.0], [1.0])
    with pytest.raises(InvalidPing, match="ts"):
        PingBatch.of([1], [31.0], [121.0], [float("inf")])
    with pytest.raises(InvalidPing, match="worker_ids"):
        PingBatch.of([-1], [31.0], [121.0], [1.0])
    with pytest.raises(ValueError, match="states"):
        PingBatch.of([1], [31.0], [121.0], [1.0], states=[9])
    with pytest.raises(InvalidPing, match="accuracy_m"):
        PingBatch.of([1], [31.0], [121.0], [1.0], accuracy_m=[-2.0])
    floats: Any = np.zeros(1)
    with pytest.raises(InvalidPing, match="int64"):
        PingBatch(floats, floats, floats, floats, floats, np.zeros(1, dtype=np.uint8))
    coarse = latlng_to_cells(*SHANGHAI, live.cell_res - 1)
    with pytest.raises(WrongResolution):
        await live.workers_in_cells([coarse])
    empty = await live.update_positions(PingBatch.of([], [], [], []))
    assert empty.applied.size == 0


def test_hex_round_trip_is_exact() -> None:
    cells = latlng_to_cells(np.array([31.2, 39.9, -33.9]), np.array([121.4, 116.4, 151.2]), 9)
    hexes = cells_to_hex(cells)
    assert [h.decode() for h in hexes] == [f"{int(c):016x}" for c in cells]
    np.testing.assert_array_equal(hex_to_cells(hexes), cells)


async def test_make_live_picks_the_adapter_by_url(prefix: str) -> None:
    memory = make_live(None)
    assert isinstance(memory.state, MemoryLiveState)

    class SettingsLike:
        redis_url: str | None = "memory://"

    assert isinstance(make_live(SettingsLike()).state, MemoryLiveState)
    ok, reason = redis_reachable()
    require(ok, reason)
    async with make_live(REDIS_URL, prefix=prefix) as backends:
        assert isinstance(backends.state, RedisLiveState)
        await backends.state.update_positions(ping(1, *SHANGHAI, ts=1.0))
        assert (await backends.state.get_positions([1])).found.tolist() == [True]
        assert isinstance(backends.state, RedisLiveState)
        await backends.state.delete_all()


async def test_restore_refills_a_partial_loss_and_is_idempotent(
    live: LiveState, redis_client: Any, prefix: str
) -> None:
    # Two regions, so losing one Cluster shard's worth of keys is possible.
    lat, lng = zip(SHANGHAI, BEIJING, strict=True)
    await live.update_positions(PingBatch.of([1, 2], lat, lng, [10.0, 20.0]))
    assert await live.set_worker_state(2, WorkerState.BUSY)
    snapshot = await live.snapshot()
    members = await member_sets(live)
    if redis_client is not None:
        # Lose the region keys but keep the directory that remembers both pings.
        lost = [k async for k in redis_client.scan_iter(match=prefix + "{r:*", count=1000)]
        assert await redis_client.unlink(*lost) == len(lost) > 0
        assert (await live.get_positions([1, 2])).found.tolist() == [False, False]
    replayed = await live.restore(snapshot)
    assert replayed.stale == 0
    again = await live.restore(snapshot)  # replaying twice changes nothing
    assert again.stale == 0
    pos = await live.get_positions([1, 2])
    assert pos.found.tolist() == [True, True]
    assert (pos.lat.tolist(), pos.ts.tolist()) == ([SHANGHAI[0], BEIJING[0]], [10.0, 20.0])
    assert pos.state(1) is WorkerState.BUSY
    assert await member_sets(live) == members
    # Ordinary updates still refuse a replay of the same time.
    assert (await live.update_positions(ping(1, *HANGZHOU, ts=10.0))).stale == 1


async def test_scripts_are_loaded_again_after_redis_forgot_them(
    redis_client: Any, prefix: str
) -> None:
    if redis_client is None:
        return  # nothing to forget in process; the Redis case is the point
    # A script this Redis has never seen stands in for one lost in a restart; flushing
    # the script cache of the shared server would hurt everyone else.
    source = f"-- {prefix}\nreturn redis.call('INCR', KEYS[1])"
    sha = hashlib.sha1(source.encode()).hexdigest()
    key = prefix + "counter"

    def build(pipe: Any) -> None:
        pipe.evalsha(sha, 1, key)
        pipe.incr(key)

    # The refused script is sent again after the rest ran: each command ran once.
    assert await run_pipeline(redis_client, build, {"x": source}) == [2, 1]
    assert int(await redis_client.get(key)) == 2
    assert await run_pipeline(redis_client, build, {"x": source}) == [3, 4]  # loaded now

    def broken(pipe: Any) -> None:
        pipe.evalsha(sha, 1, key)
        pipe.hset(key, "f", "v")  # wrong type: a real error is raised, not retried

    with pytest.raises(redis.exceptions.ResponseError, match="WRONGTYPE"):
        await run_pipeline(redis_client, broken, {"x": source})

    # A lone command goes without a pipeline, and is loaded and sent again the same way.
    lone = f"-- {prefix} lone\nreturn redis.call('INCRBY', KEYS[1], 10)"
    lone_sha = hashlib.sha1(lone.encode()).hexdigest()

    def one(pipe: Any) -> None:
        pipe.evalsha(lone_sha, 1, key)

    assert await run_pipeline(redis_client, one, {"y": lone}) == [15]
    assert await run_pipeline(redis_client, one, {"y": lone}) == [25]
    assert int(await redis_client.get(key)) == 25


async def test_make_live_shares_a_client_without_closing_it(redis_client: Any, prefix: str) -> None:
    if redis_client is None:
        return  # the memory layer has no client to share
    backends = make_live("redis://ignored.invalid:1/0", client=redis_client, prefix=prefix)
    assert isinstance(backends.state, RedisLiveState)
    assert backends.state.client is redis_client
    await backends.aclose()
    assert await redis_client.ping()  # the app's lifespan still owns and closes it


# --------------------------------------------------------------------------- coalescing


class CountingState:
    """A live state that counts the calls reaching it (and can fail them)."""

    def __init__(self, inner: LiveState) -> None:
        self.inner = inner
        self.reads: list[int] = []
        self.writes: list[int] = []
        self.fail: Exception | None = None

    async def get_positions(self, worker_ids: Any) -> Any:
        self.reads.append(len(worker_ids))
        return await self.inner.get_positions(worker_ids)

    async def update_positions(self, batch: PingBatch) -> Any:
        self.writes.append(len(batch))
        if self.fail is not None:
            raise self.fail
        return await self.inner.update_positions(batch)


async def test_concurrent_pings_share_one_call_of_each_kind(live: LiveState) -> None:
    counting = CountingState(live)
    merged = Coalescer(counting)  # type: ignore[arg-type]
    spots = [(SHANGHAI[0] + 0.01 * i, SHANGHAI[1], 100.0 + i) for i in range(10)]
    # Alone, a call goes out at once and as it is.
    lone = await merged.update_positions(ping(100, *spots[0]))
    assert lone.applied.tolist() == [True]
    assert counting.writes == [1]
    results = await asyncio.gather(
        *(merged.update_positions(ping(100 + i, *spot)) for i, spot in enumerate(spots[1:], 1))
    )
    assert [r.applied.tolist() for r in results] == [[True]] * 9
    assert [(r.stale, r.superseded) for r in results] == [(0, 0)] * 9
    assert counting.writes == [1, 9]  # nine requests, one batch
    got = await asyncio.gather(*(merged.get_positions([100 + i, 999]) for i in range(10)))
    assert counting.reads == [20]
    for i, pos in enumerate(got):
        assert pos.worker_ids.tolist() == [100 + i, 999]
        assert pos.found.tolist() == [True, False]
        assert (float(pos.lat[0]), float(pos.ts[0])) == (spots[i][0], spots[i][2])
    # Straight from the state: the merged writes stored every worker's fix.
    direct = await live.get_positions([100 + i for i in range(10)])
    assert direct.lat.tolist() == [s[0] for s in spots]


async def test_a_merged_write_keeps_the_newest_fix_of_a_worker(live: LiveState) -> None:
    counting = CountingState(live)
    merged = Coalescer(counting)  # type: ignore[arg-type]
    await merged.update_positions(ping(7, *SHANGHAI, ts=10.0))
    newer, older, other = await asyncio.gather(
        merged.update_positions(ping(7, *HANGZHOU, ts=30.0)),
        merged.update_positions(ping(7, *BEIJING, ts=20.0)),
        merged.update_positions(ping(8, *BEIJING, ts=5.0)),
    )
    assert counting.writes == [1, 3]
    assert (newer.applied.tolist(), newer.stale, newer.superseded) == ([True], 0, 0)
    assert (older.applied.tolist(), older.stale, older.superseded) == ([False], 0, 1)
    assert other.applied.tolist() == [True]
    stale = await merged.update_positions(ping(7, *SHANGHAI, ts=25.0))
    assert (stale.applied.tolist(), stale.stale, stale.superseded) == ([False], 1, 0)
    pos = await live.get_positions([7])
    assert (float(pos.lat[0]), float(pos.ts[0])) == (HANGZHOU[0], 30.0)


async def test_a_failed_merged_call_fails_every_caller_and_the_next_one_runs(
    live: LiveState,
) -> None:
    counting = CountingState(live)
    merged = Coalescer(counting)  # type: ignore[arg-type]
    counting.fail = ConnectionError("redis went away")
    results = await asyncio.gather(
        *(merged.update_positions(ping(i, *SHANGHAI, ts=10.0)) for i in range(3)),
        return_exceptions=True,
    )
    assert [type(r) for r in results] == [ConnectionError] * 3
    counting.fail = None
    assert (await merged.update_positions(ping(1, *SHANGHAI, ts=11.0))).applied.tolist() == [True]


async def test_a_cancelled_caller_leaves_the_others_their_answers(live: LiveState) -> None:
    merged = Coalescer(live)
    await merged.update_positions(ping(1, *SHANGHAI, ts=10.0))
    first = asyncio.ensure_future(merged.get_positions([1]))
    await asyncio.sleep(0)  # its call is in flight
    gone = asyncio.ensure_future(merged.get_positions([1]))
    kept = asyncio.ensure_future(merged.get_positions([1]))
    await asyncio.sleep(0)
    gone.cancel()
    assert bool((await first).found[0])
    assert bool((await kept).found[0])
    with pytest.raises(asyncio.CancelledError):
        await gone


def test_the_ping_path_merges_only_on_redis() -> None:
    memory = make_live(None)
    assert memory.coalescer is None
    assert memory.positions is memory.state
    if redis_reachable():
        on_redis = make_live(REDIS_URL, prefix="djtest:coalesce:")
        assert isinstance(on_redis.coalescer, Coalescer)
        assert on_redis.positions is on_redis.coalescer
        assert on_redis.coalescer.state is on_redis.state
        asyncio.run(on_redis.aclose())

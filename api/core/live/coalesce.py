"""``Coalescer``: concurrent position reads and writes of one process, grouped into shared calls.

Each location ping reads its worker's last fix and writes the new one: on Redis that is
four round trips per request, and with hundreds of workers pinging a process spends
most of a ping's CPU in the client library, one worker at a time. ``Coalescer`` sits
between the ping path and a ``LiveState``: a call that arrives while a call of the same
kind is in flight waits for it to finish and then goes out with every other call that
queued meanwhile, as one ``get_positions`` or ``update_positions`` (group commit). An
idle process sends a lone call at once, so nothing waits for a timer; a busy one makes
a round trip per group instead of per request.

A merged write is one ``LiveState`` batch, with that batch's rules: a worker's newest
fix wins, an older fix of the same worker in another request of the group is
``superseded`` (as if that request had come second), and each caller gets its own rows
of ``applied`` with the stale/superseded counts of those rows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import fields
from typing import Generic, TypeVar

import numpy as np
from numpy.typing import ArrayLike

from api.core.live.batch import (
    LiveState,
    PingBatch,
    Positions,
    UpdateResult,
    as_array,
    latest_per_worker,
)

In = TypeVar("In")
Out = TypeVar("Out")


class _Group(Generic[In, Out]):
    """Calls of one kind: at most one merged call in flight, the rest queue for the next."""

    def __init__(self, run: Callable[[list[In]], Awaitable[list[Out]]]) -> None:
        self._run = run
        self._queued: list[tuple[In, asyncio.Future[Out]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def call(self, item: In) -> Out:
        waiting: asyncio.Future[Out] = asyncio.get_running_loop().create_future()
        self._queued.append((item, waiting))
        if self._flusher is None:
            self._flusher = asyncio.ensure_future(self._flush())
        return await waiting

    async def _flush(self) -> None:
        live: list[tuple[In, asyncio.Future[Out]]] = []
        try:
            while self._queued:
                group, self._queued = self._queued, []
                live = [(item, fut) for item, fut in group if not fut.done()]  # not cancelled
                if not live:
                    continue
                try:
                    results = await self._run([item for item, _ in live])
                except Exception as exc:  # every caller of the group sees the failure
                    for _, fut in live:
                        if not fut.done():
                            fut.set_exception(exc)
                    continue
                for (_, fut), result in zip(live, results, strict=True):
                    if not fut.done():
                        fut.set_result(result)
                live = []
        except BaseException:  # cancelled (shutdown): nobody may wait forever
            for _, fut in [*live, *self._queued]:
                fut.cancel()
            self._queued = []
            raise
        finally:
            self._flusher = None


class Coalescer:
    """``get_positions`` / ``update_positions`` of ``state``, concurrent calls merged."""

    def __init__(self, state: LiveState) -> None:
        self.state = state
        self._reads: _Group[np.ndarray, Positions] = _Group(self._read)
        self._writes: _Group[PingBatch, UpdateResult] = _Group(self._write)

    async def get_positions(self, worker_ids: ArrayLike) -> Positions:
        """As ``LiveState.get_positions``."""
        return await self._reads.call(as_array(worker_ids, np.int64, "worker_ids"))

    async def update_positions(self, batch: PingBatch) -> UpdateResult:
        """As ``LiveState.update_positions`` (merged calls: see "coalescing" above)."""
        return await self._writes.call(batch)

    async def _read(self, asks: list[np.ndarray]) -> list[Positions]:
        if len(asks) == 1:
            return [await self.state.get_positions(asks[0])]
        got = await self.state.get_positions(np.concatenate(asks))
        out, start = [], 0
        for ids in asks:
            end = start + ids.size
            out.append(Positions(**{f.name: getattr(got, f.name)[start:end] for f in fields(got)}))
            start = end
        return out

    async def _write(self, batches: list[PingBatch]) -> list[UpdateResult]:
        if len(batches) == 1:
            return [await self.state.update_positions(batches[0])]
        columns = {f.name: [getattr(b, f.name) for b in batches] for f in fields(PingBatch)}
        merged = PingBatch(**{name: np.concatenate(parts) for name, parts in columns.items()})
        result = await self.state.update_positions(merged)
        newest = np.zeros(len(merged), dtype=bool)
        newest[latest_per_worker(merged)] = True
        out, start = [], 0
        for b in batches:
            end = start + len(b)
            applied = result.applied[start:end]
            superseded = int((~newest[start:end]).sum())
            out.append(UpdateResult(applied, len(b) - int(applied.sum()) - superseded, superseded))
            start = end
        return out

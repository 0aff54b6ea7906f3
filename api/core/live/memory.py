"""``LiveState`` in one process: dicts and sets, the embedded default."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from api.core.live import batch as common
from api.core.live.batch import (
    DEFAULT_CELL_RES,
    DEFAULT_STALE_AFTER_S,
    OFFLINE_CODE,
    ONLINE_CODE,
    CellMembers,
    HeldFix,
    PingBatch,
    Positions,
    UpdateResult,
    WorkerState,
)
from geo.cells import latlng_to_cells


class MemoryLiveState:
    """``LiveState`` in one process: dicts and sets, no awaits inside an update (atomic)."""

    def __init__(
        self, *, cell_res: int = DEFAULT_CELL_RES, stale_after_s: float = DEFAULT_STALE_AFTER_S
    ) -> None:
        common.check_config(cell_res, stale_after_s)
        self.cell_res = cell_res
        self.stale_after_s = stale_after_s
        # worker id -> (ts, lat, lng, accuracy_m, state code, cell)
        self._records: dict[int, tuple[float, float, float, float, int, int]] = {}
        # worker id -> (newest ping ts, state): outlives eviction, like the Redis
        # directory, so a late ping of an evicted worker cannot bring back an old position.
        self._last: dict[int, tuple[float, int]] = {}
        self._members: dict[int, set[int]] = {}
        # worker id -> fixes held back as suspected jumps (geo.plausibility)
        self._held: dict[int, list[HeldFix]] = {}

    def _leave(self, worker_id: int, cell: int) -> None:
        members = self._members.get(cell)
        if members is not None:
            members.discard(worker_id)
            if not members:
                del self._members[cell]

    async def update_positions(self, batch: PingBatch) -> UpdateResult:
        """Apply a batch; a ping older than the worker's stored one changes nothing."""
        return self._update(batch, restoring=False)

    def _update(self, batch: PingBatch, *, restoring: bool) -> UpdateResult:
        rows = common.latest_per_worker(batch)
        applied = np.zeros(len(batch), dtype=bool)
        if rows.size == 0:
            return UpdateResult(applied, 0, 0)
        # A restore may replay exactly the newest ping (equal time) to refill what was lost.
        newer_only = not restoring
        cells = latlng_to_cells(batch.lat[rows], batch.lng[rows], self.cell_res).tolist()
        stale = 0
        records, last = self._records, self._last
        for row, cell, wid, ts, lat, lng, acc, code in zip(
            rows.tolist(),
            cells,
            batch.worker_ids[rows].tolist(),
            batch.ts[rows].tolist(),
            batch.lat[rows].tolist(),
            batch.lng[rows].tolist(),
            batch.accuracy_m[rows].tolist(),
            batch.states[rows].tolist(),
            strict=True,
        ):
            seen = last.get(wid)
            if seen is not None and (seen[0] > ts or (newer_only and seen[0] == ts)):
                stale += 1
                continue
            state = code or (seen[1] if seen is not None else ONLINE_CODE)
            old = records.get(wid)
            was_member = old is not None and old[4] != OFFLINE_CODE
            is_member = state != OFFLINE_CODE
            if was_member and old is not None and (not is_member or old[5] != cell):
                self._leave(wid, old[5])
            if is_member and (not was_member or old is None or old[5] != cell):
                self._members.setdefault(cell, set()).add(wid)
            records[wid] = (ts, lat, lng, acc, state, cell)
            last[wid] = (ts, state)
            applied[row] = True
        return UpdateResult(applied, stale, len(batch) - rows.size)

    async def get_positions(self, worker_ids: ArrayLike) -> Positions:
        """Current position and state of each worker (``found`` False if unknown)."""
        ids = common.as_array(worker_ids, np.int64, "worker_ids")
        out = common.empty_positions(ids)
        for i, wid in enumerate(ids.tolist()):
            rec = self._records.get(wid)
            if rec is None:
                continue
            out.found[i] = True
            out.ts[i], out.lat[i], out.lng[i], out.accuracy_m[i] = rec[0], rec[1], rec[2], rec[3]
            out.states[i] = rec[4]
            out.cells[i] = rec[5]
        return out

    async def workers_in_cells(self, cells: ArrayLike) -> CellMembers:
        """Online and busy workers whose current cell (at ``cell_res``) is in ``cells``."""
        wanted = common.check_cells(cells, self.cell_res)
        pairs = [(c, w) for c in wanted.tolist() for w in self._members.get(c, ())]
        return common.members_from_pairs(pairs)

    async def set_worker_state(self, worker_id: int, state: WorkerState | str) -> bool:
        """Set a known worker's state; False if the worker has no position."""
        code = WorkerState(state).code
        wid = int(worker_id)
        rec = self._records.get(wid)
        if rec is None:
            return False
        if rec[4] != OFFLINE_CODE and code == OFFLINE_CODE:
            self._leave(wid, rec[5])
        elif rec[4] == OFFLINE_CODE and code != OFFLINE_CODE:
            self._members.setdefault(rec[5], set()).add(wid)
        self._records[wid] = (*rec[:4], code, rec[5])
        self._last[wid] = (self._last[wid][0], code)
        return True

    async def held_fixes(self, worker_id: int) -> list[HeldFix]:
        """Fixes held back as suspected jumps, oldest first."""
        return list(self._held.get(int(worker_id), ()))

    async def hold_fixes(self, worker_id: int, fixes: Sequence[HeldFix]) -> None:
        """Replace the worker's held fixes (empty clears; eviction drops them too)."""
        if fixes:
            self._held[int(worker_id)] = list(fixes)
        else:
            self._held.pop(int(worker_id), None)

    async def evict_stale(self, now: float) -> int:
        """Drop workers whose last ping is older than ``now - stale_after_s``; returns how many."""
        cutoff = now - self.stale_after_s
        gone = [wid for wid, rec in self._records.items() if rec[0] < cutoff]
        for wid in gone:
            rec = self._records.pop(wid)
            self._leave(wid, rec[5])
            self._held.pop(wid, None)
        return len(gone)

    async def snapshot(self) -> PingBatch:
        """Every current worker as a ping batch with states (for ``restore``)."""
        ids = sorted(self._records)
        recs = [self._records[w] for w in ids]
        return PingBatch.of(
            ids,
            [r[1] for r in recs],
            [r[2] for r in recs],
            [r[0] for r in recs],
            [r[3] for r in recs],
            np.array([r[4] for r in recs], dtype=np.uint8),
        )

    async def restore(self, batch: PingBatch) -> UpdateResult:
        """Rebuild from a snapshot or the database's last pings (newer state wins)."""
        return self._update(batch, restoring=True)

    async def aclose(self) -> None:
        """Nothing to release."""

    async def member_sets(self) -> dict[int, frozenset[int]]:
        """Cell -> workers, as stored (tests compare it with the positions)."""
        return {cell: frozenset(ws) for cell, ws in self._members.items()}

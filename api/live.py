"""LiveState: where each worker is now, and which workers are in which H3 cell.

Pings arrive in batches (struct of arrays, WGS-84 already: the API converts GCJ-02 at
the edge). ``update_positions`` keeps, per worker, only the newest ping it has ever
seen: an older ping (out of order, retried, replayed) never moves a worker back. Every
accepted move takes the worker out of its old cell's member set and into the new one
in the same atomic step, so ``workers_in_cells`` — the candidate search's first cut —
always agrees with ``get_positions``. Offline workers keep their last position but
leave the member sets. Nothing here is the record: ``snapshot()`` returns a
``PingBatch`` and ``restore`` replays one, which is how the state is rebuilt from the
database (or a snapshot) after a Redis loss.

Adapters: ``MemoryLiveState`` (dicts, the embedded default) and ``RedisLiveState``
(Lua scripts over pipelined batches). Redis layout, ``P`` = key prefix::

    P{r:<region>}:pos          hash   worker id -> 48-byte record (see REC_DTYPE)
    P{r:<region>}:c:<cell>     set    worker ids in that cell (online/busy only)
    P{d:<shard>}:dir           hash   worker id -> ts, region, state (the per-worker order)
    Pregions                   set    regions that hold any key (snapshot, eviction)

Region keys share the hash tag of the worker's res-5 region, so the script that moves a
worker between cells of one region is a single-slot script, legal on Redis Cluster.
Which region a worker is in, and the newest ping time, live in a directory sharded by
worker id. An update therefore takes two round trips per batch: (1) the directory
script accepts or rejects each ping by time and reports the worker's previous region;
(2) one script per region applies the accepted pings, and when a worker crossed into
another region, a script on the old region removes it and leaves a tombstone carrying
the ping time, so a late ping racing in from another ingester cannot resurrect it there.
Each region script re-checks the time against its own record, so concurrent ingesters
converge on the newest ping.

What is exact and what converges: one region's positions and member sets change together
in one script, so within a region they always agree. A worker crossing regions is in
both for the instant between the two scripts of one pipeline, and two ingesters racing
on the same worker may apply a state change one ping late; the next ping settles both.
The directory outlives ``evict_stale`` (it is one small entry per worker), so a late
ping of an evicted worker is still recognised as old.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Generic, Protocol, Self, TypeAlias, TypeVar, runtime_checkable

import numpy as np
import redis.asyncio as redis_asyncio
from numpy.typing import ArrayLike, NDArray
from redis.exceptions import NoScriptError

from api.broker import (
    DEFAULT_PREFIX,
    REGION_RES,
    Broker,
    MemoryBroker,
    RedisBroker,
    check_prefix,
)
from api.leases import LeaseStore, MemoryLeases, RedisLeases
from geo.cells import cell_to_parent, get_resolution, latlng_to_cells

IntArray: TypeAlias = NDArray[np.int64]
FloatArray: TypeAlias = NDArray[np.float64]
CellArray: TypeAlias = NDArray[np.uint64]
CodeArray: TypeAlias = NDArray[np.uint8]

#: Default H3 resolution of the member sets (edge ≈ 460 m): at e-bike speed a worker
#: changes cell every minute or two, and a k=2 disk is a ~2 km first cut.
DEFAULT_CELL_RES = 8
#: Default age (seconds since the last ping) after which ``evict_stale`` drops a worker.
DEFAULT_STALE_AFTER_S = 300.0
#: Worker ids are stored in Redis as 16 zero-padded decimal digits.
MAX_WORKER_ID = 10**16 - 1


class LiveStateError(Exception):
    """Base class of LiveState errors."""


class InvalidPing(LiveStateError, ValueError):
    """A ping batch has mismatched lengths, bad coordinates, ids or times."""


class WrongResolution(LiveStateError, ValueError):
    """Cells passed to ``workers_in_cells`` are not at the store's ``cell_res``."""


class WorkerState(enum.StrEnum):
    """Availability of a worker as the live layer sees it."""

    ONLINE = "online"
    OFFLINE = "offline"
    BUSY = "busy"

    @property
    def code(self) -> int:
        """The one-byte code stored in records and ``PingBatch.states``."""
        return _STATE_CODE[self]

    @classmethod
    def from_code(cls, code: int) -> WorkerState | None:
        """The state for a stored code; None for ``KEEP_STATE``/unknown."""
        return _CODE_STATE.get(int(code))


#: ``PingBatch.states`` value meaning "leave the worker's state as it is".
KEEP_STATE = 0
_STATE_CODE = {
    WorkerState.ONLINE: ord("n"),
    WorkerState.OFFLINE: ord("f"),
    WorkerState.BUSY: ord("b"),
}
_CODE_STATE = {code: state for state, code in _STATE_CODE.items()}
_OFFLINE = _STATE_CODE[WorkerState.OFFLINE]
_ONLINE = _STATE_CODE[WorkerState.ONLINE]

#: One stored position, fixed width so Lua slices it and numpy decodes many at once.
REC_DTYPE = np.dtype(
    [
        ("ts", "<f8"),
        ("lat", "<f8"),
        ("lng", "<f8"),
        ("acc", "<f4"),
        ("state", "u1"),
        ("pad", "V3"),
        ("cell", "S16"),  # lowercase hex; all zeros = tombstone (left this region)
    ]
)
_TOMB = b"0" * 16


def _as(values: ArrayLike, dtype: Any, name: str) -> NDArray[Any]:
    try:
        arr = np.asarray(values, dtype=dtype)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidPing(f"{name} must be numeric, got {values!r}") from exc
    if arr.ndim != 1:
        raise InvalidPing(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


def _first_bad(mask: NDArray[np.bool_]) -> int:
    return int(np.flatnonzero(mask)[0])


@dataclass(frozen=True)
class PingBatch:
    """Pings as parallel arrays: one row per ping, WGS-84 degrees, epoch seconds, metres.

    ``accuracy_m`` is NaN where unknown; ``states`` holds ``WorkerState.code`` values
    or ``KEEP_STATE``. Build with ``PingBatch.of`` (coerces and validates).
    """

    worker_ids: IntArray
    lat: FloatArray
    lng: FloatArray
    ts: FloatArray
    accuracy_m: FloatArray
    states: CodeArray

    def __post_init__(self) -> None:
        for name, dtype in _BATCH_DTYPES.items():
            arr = getattr(self, name)
            if not isinstance(arr, np.ndarray) or arr.dtype != dtype or arr.ndim != 1:
                raise InvalidPing(f"{name} must be a 1-d {dtype} array (use PingBatch.of)")
        n = self.worker_ids.shape[0]
        for name in ("lat", "lng", "ts", "accuracy_m", "states"):
            if getattr(self, name).shape != (n,):
                raise InvalidPing(
                    f"{name} must have the {n} rows of worker_ids, got {getattr(self, name).shape}"
                )
        checks = (
            ("worker_ids", (self.worker_ids < 0) | (self.worker_ids > MAX_WORKER_ID), "0..10^16-1"),
            ("lat", ~(np.abs(self.lat) <= 90.0), "finite and within ±90"),
            ("lng", ~(np.abs(self.lng) <= 180.0), "finite and within ±180"),
            ("ts", ~np.isfinite(self.ts), "finite epoch seconds"),
            ("accuracy_m", (self.accuracy_m < 0) | np.isinf(self.accuracy_m), ">= 0 or NaN"),
            ("states", ~_VALID_CODE_TABLE[self.states], "a WorkerState code or KEEP_STATE"),
        )
        for name, bad, rule in checks:
            if bad.any():
                i = _first_bad(bad)
                raise InvalidPing(f"{name}[{i}] must be {rule}, got {getattr(self, name)[i]!r}")

    @classmethod
    def of(
        cls,
        worker_ids: ArrayLike,
        lat: ArrayLike,
        lng: ArrayLike,
        ts: ArrayLike,
        accuracy_m: ArrayLike | None = None,
        states: ArrayLike | None = None,
    ) -> PingBatch:
        """Coerce and validate; ``states`` may be ``WorkerState`` values or codes."""
        ids = _as(worker_ids, np.int64, "worker_ids")
        n = ids.shape[0]
        acc = (
            np.full(n, np.nan) if accuracy_m is None else _as(accuracy_m, np.float64, "accuracy_m")
        )
        if states is None:
            codes = np.zeros(n, dtype=np.uint8)
        else:
            raw: Any = states
            if not isinstance(raw, np.ndarray):
                raw = list(raw)
            if len(raw) and isinstance(raw[0], str):
                codes = np.array([WorkerState(str(s)).code for s in raw], dtype=np.uint8)
            else:
                codes = _as(raw, np.uint8, "states")
        return cls(
            ids,
            _as(lat, np.float64, "lat"),
            _as(lng, np.float64, "lng"),
            _as(ts, np.float64, "ts"),
            acc,
            codes,
        )

    def __len__(self) -> int:
        return int(self.worker_ids.shape[0])

    def take(self, rows: NDArray[Any]) -> PingBatch:
        """The pings at ``rows`` (indices or a boolean mask)."""
        return PingBatch(
            self.worker_ids[rows],
            self.lat[rows],
            self.lng[rows],
            self.ts[rows],
            self.accuracy_m[rows],
            self.states[rows],
        )


_BATCH_DTYPES = {
    "worker_ids": np.dtype(np.int64),
    "lat": np.dtype(np.float64),
    "lng": np.dtype(np.float64),
    "ts": np.dtype(np.float64),
    "accuracy_m": np.dtype(np.float64),
    "states": np.dtype(np.uint8),
}
_VALID_CODES = np.array([KEEP_STATE, *_STATE_CODE.values()], dtype=np.uint8)
#: Indexed by a uint8 code: whether it is valid (a lookup instead of np.isin per batch).
_VALID_CODE_TABLE = np.zeros(256, dtype=bool)
_VALID_CODE_TABLE[_VALID_CODES] = True


@dataclass(frozen=True)
class UpdateResult:
    """What ``update_positions`` did with each ping of the batch.

    ``applied[i]`` is True when ping ``i`` became its worker's current position. A
    ping is not applied when its worker already has a newer one (``stale``), or when a
    newer ping of the same worker is in the same batch (``superseded``).
    """

    applied: NDArray[np.bool_]
    stale: int
    superseded: int


@dataclass(frozen=True)
class Positions:
    """Current positions of the asked-for workers, in the order asked (``found``: known)."""

    worker_ids: IntArray
    found: NDArray[np.bool_]
    lat: FloatArray
    lng: FloatArray
    ts: FloatArray
    accuracy_m: FloatArray
    states: CodeArray
    cells: CellArray

    def state(self, i: int) -> WorkerState | None:
        """The state of row ``i`` (None when the worker is unknown)."""
        return WorkerState.from_code(int(self.states[i])) if self.found[i] else None


@dataclass(frozen=True)
class CellMembers:
    """Workers in the asked-for cells: parallel arrays, sorted by (cell, worker id)."""

    worker_ids: IntArray
    cells: CellArray


@runtime_checkable
class LiveState(Protocol):
    """Worker positions and states; per-cell membership for candidate search."""

    cell_res: int
    stale_after_s: float

    async def update_positions(self, batch: PingBatch) -> UpdateResult:
        """Apply a batch; a ping older than the worker's stored one changes nothing."""
        ...

    async def get_positions(self, worker_ids: ArrayLike) -> Positions:
        """Current position and state of each worker (``found`` False if unknown)."""
        ...

    async def workers_in_cells(self, cells: ArrayLike) -> CellMembers:
        """Online and busy workers whose current cell (at ``cell_res``) is in ``cells``."""
        ...

    async def set_worker_state(self, worker_id: int, state: WorkerState | str) -> bool:
        """Set a known worker's state; False if the worker has no position."""
        ...

    async def evict_stale(self, now: float) -> int:
        """Drop workers whose last ping is older than ``now - stale_after_s``; returns how many."""
        ...

    async def snapshot(self) -> PingBatch:
        """Every current worker as a ping batch with states (for ``restore``)."""
        ...

    async def restore(self, batch: PingBatch) -> UpdateResult:
        """Rebuild from a snapshot or the database's last pings (newer state wins)."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


def _check_config(cell_res: int, stale_after_s: float) -> None:
    if (
        isinstance(cell_res, bool)
        or not isinstance(cell_res, int)
        or not REGION_RES <= cell_res <= 15
    ):
        raise ValueError(f"cell_res must be an int in {REGION_RES}..15, got {cell_res!r}")
    if not (math.isfinite(stale_after_s) and stale_after_s > 0):
        raise ValueError(f"stale_after_s must be positive and finite, got {stale_after_s!r}")


def latest_per_worker(batch: PingBatch) -> NDArray[np.int64]:
    """Row indices of each worker's newest ping in ``batch`` (ties: the later row wins)."""
    if len(batch) == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((np.arange(len(batch)), batch.ts, batch.worker_ids))
    ids_sorted = batch.worker_ids[order]
    last = np.ones(order.size, dtype=bool)
    last[:-1] = ids_sorted[1:] != ids_sorted[:-1]
    return order[last].astype(np.int64)


def _check_cells(cells: ArrayLike, res: int) -> CellArray:
    arr = np.unique(np.asarray(cells, dtype=np.uint64).reshape(-1))
    if arr.size:
        got = get_resolution(arr)
        if (got != res).any():
            raise WrongResolution(
                f"cells must be at resolution {res}, got {int(got[got != res][0])}"
            )
    return arr


# --------------------------------------------------------------------------- in-process


class MemoryLiveState:
    """``LiveState`` in one process: dicts and sets, no awaits inside an update (atomic)."""

    def __init__(
        self, *, cell_res: int = DEFAULT_CELL_RES, stale_after_s: float = DEFAULT_STALE_AFTER_S
    ) -> None:
        _check_config(cell_res, stale_after_s)
        self.cell_res = cell_res
        self.stale_after_s = stale_after_s
        # worker id -> (ts, lat, lng, accuracy_m, state code, cell)
        self._records: dict[int, tuple[float, float, float, float, int, int]] = {}
        # worker id -> (newest ping ts, state): outlives eviction, like the Redis
        # directory, so a late ping of an evicted worker cannot bring back an old position.
        self._last: dict[int, tuple[float, int]] = {}
        self._members: dict[int, set[int]] = {}

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
        rows = latest_per_worker(batch)
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
            state = code or (seen[1] if seen is not None else _ONLINE)
            old = records.get(wid)
            was_member = old is not None and old[4] != _OFFLINE
            is_member = state != _OFFLINE
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
        ids = _as(worker_ids, np.int64, "worker_ids")
        out = _empty_positions(ids)
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
        wanted = _check_cells(cells, self.cell_res)
        pairs = [(c, w) for c in wanted.tolist() for w in self._members.get(c, ())]
        return _members_from_pairs(pairs)

    async def set_worker_state(self, worker_id: int, state: WorkerState | str) -> bool:
        """Set a known worker's state; False if the worker has no position."""
        code = WorkerState(state).code
        wid = int(worker_id)
        rec = self._records.get(wid)
        if rec is None:
            return False
        if rec[4] != _OFFLINE and code == _OFFLINE:
            self._leave(wid, rec[5])
        elif rec[4] == _OFFLINE and code != _OFFLINE:
            self._members.setdefault(rec[5], set()).add(wid)
        self._records[wid] = (*rec[:4], code, rec[5])
        self._last[wid] = (self._last[wid][0], code)
        return True

    async def evict_stale(self, now: float) -> int:
        """Drop workers whose last ping is older than ``now - stale_after_s``; returns how many."""
        cutoff = now - self.stale_after_s
        gone = [wid for wid, rec in self._records.items() if rec[0] < cutoff]
        for wid in gone:
            rec = self._records.pop(wid)
            self._leave(wid, rec[5])
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


def _empty_positions(ids: IntArray) -> Positions:
    n = ids.size
    return Positions(
        worker_ids=ids,
        found=np.zeros(n, dtype=bool),
        lat=np.full(n, np.nan),
        lng=np.full(n, np.nan),
        ts=np.full(n, np.nan),
        accuracy_m=np.full(n, np.nan),
        states=np.zeros(n, dtype=np.uint8),
        cells=np.zeros(n, dtype=np.uint64),
    )


def _members_from_pairs(pairs: list[tuple[int, int]]) -> CellMembers:
    pairs.sort()
    return CellMembers(
        worker_ids=np.array([w for _, w in pairs], dtype=np.int64),
        cells=np.array([c for c, _ in pairs], dtype=np.uint64),
    )


# --------------------------------------------------------------------------- Redis

_HEX_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_HEX_SHIFTS = np.arange(60, -1, -4, dtype=np.uint64)
_HEX_VALUE = np.zeros(256, dtype=np.uint64)
_HEX_VALUE[np.frombuffer(b"0123456789abcdef", dtype=np.uint8)] = np.arange(16, dtype=np.uint64)


def cells_to_hex(cells: CellArray) -> NDArray[np.bytes_]:
    """uint64 cells as 16-character lowercase hex (``S16``), vectorised."""
    nibbles = (cells.reshape(-1, 1) >> _HEX_SHIFTS) & np.uint64(15)
    return np.ascontiguousarray(_HEX_DIGITS[nibbles]).view("S16").reshape(-1)


_POW10 = 10 ** np.arange(15, -1, -1, dtype=np.int64)


def ids_to_keys(ids: IntArray) -> NDArray[np.bytes_]:
    """Worker ids as Redis keys: 16 zero-padded decimal digits (``S16``), vectorised."""
    digits = (ids.reshape(-1, 1) // _POW10) % 10 + ord("0")
    return np.ascontiguousarray(digits.astype(np.uint8)).view("S16").reshape(-1)


def hex_to_cells(hexes: NDArray[np.bytes_]) -> CellArray:
    """16-character hex (``S16``) back to uint64, vectorised."""
    raw = np.ascontiguousarray(hexes, dtype="S16").view(np.uint8).reshape(-1, 16)
    out: CellArray = (_HEX_VALUE[raw] << _HEX_SHIFTS).sum(axis=1, dtype=np.uint64)
    return out


# Lua: worker ids arrive as their keys, 16 zero-padded decimal digits (fixed width, so
# the scripts slice them out of one blob; formatting them in Lua cost a third of a ping).
# Directory script. KEYS[1] = P{d:<shard>}:dir. ARGV[1] = n x (key c16, ts f8, region c16,
# state u1); ARGV[2] = '1' to accept a ping as old as the stored one (restore). Per ping
# it returns 18 bytes: status ('S' stale, 'N' new, 'K' same region, 'M' moved), the
# previous region (hex) and the state to apply.
_DIR_LUA = """
local blob, dir, equal_ok = ARGV[1], KEYS[1], ARGV[2] == '1'
local call, sub, unpack = redis.call, string.sub, struct.unpack
local out = {}
for off = 0, #blob - 41, 41 do
  local key, ts = sub(blob, off + 1, off + 16), unpack('<d', blob, off + 17)
  local region, state = sub(blob, off + 25, off + 40), sub(blob, off + 41, off + 41)
  local cur = call('HGET', dir, key)
  local seen = cur and unpack('<d', cur)
  if seen and (seen > ts or (seen == ts and not equal_ok)) then
    out[#out + 1] = 'S' .. sub(cur, 9, 25)
  else
    local status, old = 'N', '0000000000000000'
    if cur then
      old = sub(cur, 9, 24)
      if state == '\\0' then state = sub(cur, 25, 25) end
      if old == region then status = 'K' else status = 'M' end
    elseif state == '\\0' then
      state = 'n'
    end
    call('HSET', dir, key, sub(blob, off + 17, off + 40) .. state)
    out[#out + 1] = status .. old .. state
  end
end
return table.concat(out)
"""

# Region script. KEYS[1] = P{r:R}:pos. ARGV[1] = cell-set key prefix, ARGV[2] = n x
# (key c16, record 48 bytes), ARGV[3] = '1' to rewrite an equally old record (restore).
# Applies a record only if newer than the stored one; moves set membership in the same
# step. Returns one byte per record: '1' applied, '0' refused (another ingester stored a
# newer ping meanwhile).
_REGION_LUA = """
local blob, setp, pos, equal_ok = ARGV[2], ARGV[1], KEYS[1], ARGV[3] == '1'
local call, sub, unpack = redis.call, string.sub, struct.unpack
local TOMB = '0000000000000000'
local applied = {}
for off = 0, #blob - 64, 64 do
  local key, ts = sub(blob, off + 1, off + 16), unpack('<d', blob, off + 17)
  local rec = sub(blob, off + 17, off + 64)
  local cur = call('HGET', pos, key)
  local seen = cur and unpack('<d', cur)
  if not seen or seen < ts or (equal_ok and seen == ts) then
    -- Same state and cell (the common ping) leaves the member sets alone.
    if not cur or sub(cur, 29) ~= sub(rec, 29) then
      local cell = sub(rec, 33)
      local now = sub(rec, 29, 29) ~= 'f' and cell ~= TOMB
      local oldcell = cur and sub(cur, 33)
      local was = cur and oldcell ~= TOMB and sub(cur, 29, 29) ~= 'f'
      if was and (not now or oldcell ~= cell) then call('SREM', setp .. oldcell, key) end
      if now and (not was or oldcell ~= cell) then call('SADD', setp .. cell, key) end
    end
    call('HSET', pos, key, rec)
    applied[#applied + 1] = '1'
  else
    applied[#applied + 1] = '0'
  end
end
return table.concat(applied)
"""

# State script (one region). ARGV: cell-set key prefix, worker id, state byte.
_STATE_LUA = """
local cur = redis.call('HGET', KEYS[1], ARGV[2])
if not cur or string.sub(cur, 33, 48) == '0000000000000000' then return 0 end
local cell, old, new = string.sub(cur, 33, 48), string.sub(cur, 29, 29), ARGV[3]
if old ~= 'f' and new == 'f' then redis.call('SREM', ARGV[1] .. cell, ARGV[2]) end
if old == 'f' and new ~= 'f' then redis.call('SADD', ARGV[1] .. cell, ARGV[2]) end
redis.call('HSET', KEYS[1], ARGV[2], string.sub(cur, 1, 28) .. new .. string.sub(cur, 30))
return 1
"""

# Eviction script (one region), one HSCAN step: no per-ping time index to maintain, at
# the price of reading every record once per sweep (sweeps are rare, pings are not).
# ARGV: cell-set key prefix, HSCAN cursor, cutoff epoch s, HSCAN COUNT.
# Returns {next cursor, live workers evicted}.
_EVICT_LUA = """
local call, sub = redis.call, string.sub
local res = call('HSCAN', KEYS[1], ARGV[2], 'COUNT', ARGV[4])
local cutoff, fields, live = tonumber(ARGV[3]), res[2], 0
for i = 1, #fields, 2 do
  local key = fields[i]
  -- Re-read: HSCAN may repeat a field, and its value is only a hint.
  local cur = struct.unpack('<d', fields[i + 1]) < cutoff and call('HGET', KEYS[1], key)
  if cur and struct.unpack('<d', cur) < cutoff then
    local cell = sub(cur, 33, 48)
    if cell ~= '0000000000000000' then
      live = live + 1
      if sub(cur, 29, 29) ~= 'f' then call('SREM', ARGV[1] .. cell, key) end
    end
    call('HDEL', KEYS[1], key)
  end
end
return {res[1], live}
"""

#: Records one eviction step looks at (keeps each call short: Redis is single-threaded).
_EVICT_CHUNK = 1000
_DIR_DTYPE = np.dtype([("key", "S16"), ("ts", "<f8"), ("region", "S16"), ("state", "u1")])
_REGION_DTYPE = np.dtype([("key", "S16"), ("rec", REC_DTYPE)])
_STATUS_DTYPE = np.dtype([("status", "S1"), ("old", "S16"), ("state", "u1")])


_SCRIPTS = {"dir": _DIR_LUA, "region": _REGION_LUA, "state": _STATE_LUA, "evict": _EVICT_LUA}
_SHA = {name: hashlib.sha1(src.encode()).hexdigest() for name, src in _SCRIPTS.items()}


async def run_pipeline(
    client: redis_asyncio.Redis,
    build: Callable[[Any], None],
    scripts: Mapping[str, str],
) -> list[Any]:
    """Build and run a non-transactional pipeline of EVALSHA (and other) commands.

    redis-py's ``Script`` objects add a SCRIPT EXISTS round trip to every pipeline; we
    call EVALSHA directly and, on NOSCRIPT (a restarted Redis has no scripts), load
    ``scripts`` and send again exactly the refused commands — never one that ran, whose
    second answer could differ (the directory would call its own pings stale). The
    resent scripts thus run after the pipeline's other commands: build pipelines whose
    commands do not depend on each other's order.
    """
    pipe = client.pipeline(transaction=False)
    build(pipe)
    stack = list(pipe.command_stack)
    if len(stack) == 1:
        # One command (a lone worker's ping: the common request) skips the pipeline
        # machinery, ~30 % of the client's CPU per round trip.
        args, options = stack[0]
        try:
            return [await client.execute_command(*args, **options)]  # type: ignore[no-untyped-call]
        except NoScriptError:
            await _load_scripts(client, scripts)
            return [await client.execute_command(*args, **options)]  # type: ignore[no-untyped-call]
    async with pipe:
        replies = list(await pipe.execute(raise_on_error=False))
    refused = [i for i, r in enumerate(replies) if isinstance(r, NoScriptError)]
    if refused:
        await _load_scripts(client, scripts)
        async with client.pipeline(transaction=False) as pipe:
            for i in refused:
                args, options = stack[i]
                pipe.execute_command(*args, **options)
            for i, reply in zip(refused, await pipe.execute(raise_on_error=False), strict=True):
                replies[i] = reply
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies


async def _load_scripts(client: redis_asyncio.Redis, scripts: Mapping[str, str]) -> None:
    """Load ``scripts`` into a Redis that forgot them (a restart)."""
    for source in scripts.values():
        await client.script_load(source)


def group_rows(keys: NDArray[Any]) -> list[tuple[int, NDArray[np.intp]]]:
    """(key, row indices) for each distinct integer key, rows kept in their input order."""
    if keys.size == 0:
        return []
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    return [
        (int(ordered[start]), grp)
        for start, grp in zip(starts.tolist(), np.split(order, starts[1:]), strict=True)
    ]


class RedisLiveState:
    """``LiveState`` on Redis (see the module docstring for the key layout and protocol).

    Takes a ``redis.asyncio.Redis`` with ``decode_responses=False``; ``prefix`` isolates
    deployments and test runs; ``dir_shards`` spreads the worker directory over slots.
    """

    def __init__(
        self,
        client: redis_asyncio.Redis,
        *,
        prefix: str = DEFAULT_PREFIX,
        cell_res: int = DEFAULT_CELL_RES,
        stale_after_s: float = DEFAULT_STALE_AFTER_S,
        dir_shards: int = 16,
        owns_client: bool = False,
    ) -> None:
        _check_config(cell_res, stale_after_s)
        if isinstance(dir_shards, bool) or not isinstance(dir_shards, int) or dir_shards < 1:
            raise ValueError(f"dir_shards must be an int >= 1, got {dir_shards!r}")
        self.client = client
        self.prefix = check_prefix(prefix)
        self.cell_res = cell_res
        self.stale_after_s = stale_after_s
        self.dir_shards = dir_shards
        self._owns_client = owns_client

    async def _run(self, build: Callable[[Any], None]) -> list[Any]:
        return await run_pipeline(self.client, build, _SCRIPTS)

    @staticmethod
    def _eval(pipe: Any, script: str, keys: list[str], args: list[Any]) -> None:
        pipe.evalsha(_SHA[script], len(keys), *keys, *args)

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> RedisLiveState:
        """A live state on its own client for ``url`` (closed by ``aclose``)."""
        return cls(redis_asyncio.from_url(url), owns_client=True, **kwargs)

    # key names ---------------------------------------------------------------
    def _dir_key(self, shard: int) -> str:
        return f"{self.prefix}{{d:{shard}}}:dir"

    def _region_keys(self, region_hex: str) -> tuple[str, str]:
        # H3's own string form is the 15 hex digits after the leading 0.
        tag = f"{self.prefix}{{r:{region_hex[1:]}}}"
        return f"{tag}:pos", f"{tag}:c:"

    def region_keys(self, region: int) -> tuple[str, str]:
        """(positions hash, cell-set key prefix) of a region, for tests and tools."""
        return self._region_keys("%016x" % int(region))  # noqa: UP031

    def _regions_key(self) -> str:
        return f"{self.prefix}regions"

    # updates -----------------------------------------------------------------
    async def update_positions(self, batch: PingBatch) -> UpdateResult:
        """Apply a batch; a ping older than the worker's stored one changes nothing."""
        return await self._update(batch, restoring=False)

    async def _update(self, batch: PingBatch, *, restoring: bool) -> UpdateResult:
        rows = latest_per_worker(batch)
        applied = np.zeros(len(batch), dtype=bool)
        if rows.size == 0:
            return UpdateResult(applied, 0, 0)
        # A restore may replay exactly the newest ping (equal time): after a partial loss
        # (one Cluster shard) the directory may remember a ping whose region record is gone.
        equal_ok = b"1" if restoring else b"0"
        ids = batch.worker_ids[rows]
        ts = batch.ts[rows]
        cells = latlng_to_cells(batch.lat[rows], batch.lng[rows], self.cell_res)
        regions = cell_to_parent(cells, REGION_RES)
        regions_hex = cells_to_hex(regions)

        # Round trip 1: the directory orders pings per worker and names the old region.
        dir_rows = np.empty(rows.size, dtype=_DIR_DTYPE)
        keys = ids_to_keys(ids)
        dir_rows["key"] = keys
        dir_rows["ts"] = ts
        dir_rows["region"] = regions_hex
        dir_rows["state"] = batch.states[rows]
        shard_groups = group_rows(ids % self.dir_shards)

        def directory(pipe: Any) -> None:
            for shard, grp in shard_groups:
                blob = dir_rows[grp].tobytes()
                self._eval(pipe, "dir", [self._dir_key(shard)], [blob, equal_ok])

        replies = await self._run(directory)
        status = np.empty(rows.size, dtype=_STATUS_DTYPE)
        for (_shard, grp), reply in zip(shard_groups, replies, strict=True):
            status[grp] = np.frombuffer(reply, dtype=_STATUS_DTYPE)
        ok = status["status"] != b"S"
        moved = status["status"] == b"M"

        # Round trip 2: one script per region applies; old regions of movers get tombstones.
        recs = np.zeros(rows.size, dtype=_REGION_DTYPE)
        recs["key"] = keys
        recs["rec"]["ts"] = ts
        recs["rec"]["lat"] = batch.lat[rows]
        recs["rec"]["lng"] = batch.lng[rows]
        recs["rec"]["acc"] = batch.accuracy_m[rows]
        recs["rec"]["state"] = status["state"]
        recs["rec"]["cell"] = cells_to_hex(cells)
        tombs = recs[moved].copy()
        tombs["rec"]["cell"] = _TOMB
        accepted = np.flatnonzero(ok)
        live_groups = group_rows(regions[accepted])
        tomb_groups = group_rows(hex_to_cells(status["old"][moved]))

        def apply(pipe: Any) -> None:
            for region, grp in live_groups:
                pos, setp = self._region_keys("%016x" % region)  # noqa: UP031
                blob = recs[accepted[grp]].tobytes()
                self._eval(pipe, "region", [pos], [setp, blob, equal_ok])
            for region, grp in tomb_groups:
                pos, setp = self._region_keys("%016x" % region)  # noqa: UP031
                self._eval(pipe, "region", [pos], [setp, tombs[grp].tobytes(), equal_ok])
            if live_groups:
                pipe.sadd(self._regions_key(), *("%016x" % r for r, _ in live_groups))  # noqa: UP031

        replies = await self._run(apply)
        # Replies: one per live region (in order), then tombstones and SADD.
        for (_region, grp), flags in zip(live_groups, replies[: len(live_groups)], strict=True):
            applied[rows[accepted[grp]]] = np.frombuffer(flags, dtype=np.uint8) == ord("1")
        return UpdateResult(applied, rows.size - int(applied.sum()), len(batch) - rows.size)

    async def _directory(self, ids: IntArray) -> tuple[NDArray[np.bool_], NDArray[np.bytes_]]:
        """(known, region hex) of each worker id, from the directory shards."""
        shard_groups = group_rows(ids % self.dir_shards)
        keys = ids_to_keys(ids)

        def fetch(pipe: Any) -> None:
            for shard, grp in shard_groups:
                pipe.hmget(self._dir_key(shard), keys[grp].tolist())

        replies = await self._run(fetch)
        known = np.zeros(ids.size, dtype=bool)
        regions = np.zeros(ids.size, dtype="S16")
        for (_shard, where), values in zip(shard_groups, replies, strict=True):
            for i, value in zip(where.tolist(), values, strict=True):
                if value is not None:
                    known[i] = True
                    regions[i] = value[8:24]
        # Out-of-range ids have no key of their own (they would alias a real one).
        known &= (ids >= 0) & (ids <= MAX_WORKER_ID)
        return known, regions

    async def get_positions(self, worker_ids: ArrayLike) -> Positions:
        """Current position and state of each worker (``found`` False if unknown)."""
        ids = _as(worker_ids, np.int64, "worker_ids")
        out = _empty_positions(ids)
        if ids.size == 0:
            return out
        known, regions = await self._directory(ids)
        wanted = np.unique(regions[known]).tolist()
        keys = ids_to_keys(ids)

        def fetch(pipe: Any) -> None:
            for region in wanted:
                sel = known & (regions == region)
                pipe.hmget(self._region_keys(region.decode())[0], keys[sel].tolist())

        replies = await self._run(fetch)
        rows: list[int] = []
        values: list[bytes] = []
        for region, region_values in zip(wanted, replies, strict=True):
            where = np.flatnonzero(known & (regions == region))
            for i, value in zip(where.tolist(), region_values, strict=True):
                if value is not None:
                    rows.append(i)
                    values.append(value)
        raw = np.zeros(ids.size, dtype=REC_DTYPE)
        raw[rows] = np.frombuffer(b"".join(values), dtype=REC_DTYPE)
        found = np.zeros(ids.size, dtype=bool)
        found[rows] = True
        found &= raw["cell"] != _TOMB
        out.found[:] = found
        out.ts[found] = raw["ts"][found]
        out.lat[found] = raw["lat"][found]
        out.lng[found] = raw["lng"][found]
        out.accuracy_m[found] = raw["acc"][found]
        out.states[found] = raw["state"][found]
        out.cells[found] = hex_to_cells(raw["cell"][found])
        return out

    async def workers_in_cells(self, cells: ArrayLike) -> CellMembers:
        """Online and busy workers whose current cell (at ``cell_res``) is in ``cells``."""
        wanted = _check_cells(cells, self.cell_res)
        if wanted.size == 0:
            return _members_from_pairs([])
        cell_hex = cells_to_hex(wanted).tolist()
        region_hex = cells_to_hex(cell_to_parent(wanted, REGION_RES)).tolist()

        def fetch(pipe: Any) -> None:
            for c, r in zip(cell_hex, region_hex, strict=True):
                pipe.smembers(self._region_keys(r.decode())[1] + c.decode())

        replies = await self._run(fetch)
        pairs = [
            (cell, int(w))
            for cell, members in zip(wanted.tolist(), replies, strict=True)
            for w in members
        ]
        return _members_from_pairs(pairs)

    async def set_worker_state(self, worker_id: int, state: WorkerState | str) -> bool:
        """Set a known worker's state; False if the worker has no position.

        The region record and member sets change first, then the directory's state,
        which the worker's next pings carry forward. A ping racing this call from
        another process may apply the previous state once; the next ping corrects it.
        """
        code = bytes([WorkerState(state).code])
        wid = int(worker_id)
        if not 0 <= wid <= MAX_WORKER_ID:
            return False
        key = ids_to_keys(np.array([wid], dtype=np.int64))[0]
        known, regions = await self._directory(np.array([wid], dtype=np.int64))
        if not known[0]:
            return False
        pos, setp = self._region_keys(regions[0].decode())

        def change(pipe: Any) -> None:
            self._eval(pipe, "state", [pos], [setp, key, code])

        reply = await self._run(change)
        if not reply[0]:
            return False
        shard_key = self._dir_key(wid % self.dir_shards)
        cur: Any = await self.client.hget(shard_key, key)
        if cur is not None:
            await self.client.hset(shard_key, key, cur[:24] + code)
        return True

    async def _regions(self) -> list[str]:
        members: Any = await self.client.smembers(self._regions_key())
        return sorted(m.decode() for m in members)

    async def evict_stale(self, now: float) -> int:
        """Drop workers whose last ping is older than ``now - stale_after_s``; returns how many."""
        cutoff = repr(float(now) - self.stale_after_s)
        evicted = 0
        for region in await self._regions():
            pos, setp = self._region_keys(region)
            cursor = b"0"
            while True:

                def step(
                    pipe: Any, pos: str = pos, setp: str = setp, cursor: bytes = cursor
                ) -> None:
                    self._eval(pipe, "evict", [pos], [setp, cursor, cutoff, _EVICT_CHUNK])

                ((cursor, live),) = await self._run(step)
                evicted += int(live)
                if cursor in (b"0", 0, "0"):
                    break
        return evicted

    async def snapshot(self) -> PingBatch:
        """Every current worker as a ping batch with states (for ``restore``)."""
        ids: list[int] = []
        chunks: list[bytes] = []
        for region in await self._regions():
            async for key, value in self.client.hscan_iter(self._region_keys(region)[0]):
                ids.append(int(key))
                chunks.append(value)
        raw = np.frombuffer(b"".join(chunks), dtype=REC_DTYPE)
        keep = raw["cell"] != _TOMB
        order = np.argsort(np.array(ids, dtype=np.int64)[keep], kind="stable")
        raw = raw[keep][order]
        return PingBatch.of(
            np.array(ids, dtype=np.int64)[keep][order],
            raw["lat"],
            raw["lng"],
            raw["ts"],
            raw["acc"].astype(np.float64),
            raw["state"],
        )

    async def restore(self, batch: PingBatch) -> UpdateResult:
        """Rebuild from a snapshot or the database's last pings (newer state wins)."""
        return await self._update(batch, restoring=True)

    async def member_sets(self) -> dict[int, frozenset[int]]:
        """Cell -> workers, as stored in the member sets (tests compare it with positions)."""
        out: dict[int, frozenset[int]] = {}
        async for key in self.client.scan_iter(match=self.prefix + "{r:*}:c:*", count=1000):
            members: Any = await self.client.smembers(key)
            if members:
                out[int(key.rsplit(b":", 1)[1], 16)] = frozenset(int(m) for m in members)
        return out

    async def delete_all(self) -> int:
        """Delete every key under this prefix (tests; simulating a Redis loss). Returns count."""
        deleted = 0
        batch: list[bytes] = []
        async for key in self.client.scan_iter(match=self.prefix + "*", count=1000):
            batch.append(key)
            if len(batch) >= 500:
                deleted += int(await self.client.unlink(*batch))
                batch.clear()
        if batch:
            deleted += int(await self.client.unlink(*batch))
        return deleted

    async def aclose(self) -> None:
        """Close the client if this live state created it."""
        if self._owns_client:
            await self.client.aclose()


# --------------------------------------------------------------------------- factory


class HasRedisUrl(Protocol):
    """Anything with a ``redis_url`` (``api.settings.Settings`` qualifies)."""

    redis_url: str | None


# --------------------------------------------------------------------------- coalescing
#
# Concurrent position reads and writes of one process, grouped into shared calls.
#
# Each location ping reads its worker's last fix and writes the new one: on Redis that is
# four round trips per request, and with hundreds of workers pinging a process spends
# most of a ping's CPU in the client library, one worker at a time. ``Coalescer`` sits
# between the ping path and a ``LiveState``: a call that arrives while a call of the same
# kind is in flight waits for it to finish and then goes out with every other call that
# queued meanwhile, as one ``get_positions`` or ``update_positions`` (group commit). An
# idle process sends a lone call at once, so nothing waits for a timer; a busy one makes
# a round trip per group instead of per request.
#
# A merged write is one ``LiveState`` batch, with that batch's rules: a worker's newest
# fix wins, an older fix of the same worker in another request of the group is
# ``superseded`` (as if that request had come second), and each caller gets its own rows
# of ``applied`` with the stale/superseded counts of those rows.

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
        return await self._reads.call(_as(worker_ids, np.int64, "worker_ids"))

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

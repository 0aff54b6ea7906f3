"""``LiveState`` on Redis: Lua scripts over pipelined batches, keys hash-tagged by region."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import redis.asyncio as redis_asyncio
from numpy.typing import ArrayLike, NDArray
from redis.exceptions import NoScriptError

from api.core.broker import (
    DEFAULT_PREFIX,
    REGION_RES,
    check_prefix,
)
from api.core.live import batch as common
from api.core.live.batch import (
    DEFAULT_CELL_RES,
    DEFAULT_STALE_AFTER_S,
    MAX_WORKER_ID,
    REC_DTYPE,
    TOMBSTONE_CELL,
    CellArray,
    CellMembers,
    HeldFix,
    IntArray,
    PingBatch,
    Positions,
    UpdateResult,
    WorkerState,
)
from geo.cells import cell_to_parent, latlng_to_cells

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
        common.check_config(cell_res, stale_after_s)
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
        rows = common.latest_per_worker(batch)
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
        tombs["rec"]["cell"] = TOMBSTONE_CELL
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
        ids = common.as_array(worker_ids, np.int64, "worker_ids")
        out = common.empty_positions(ids)
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
        found &= raw["cell"] != TOMBSTONE_CELL
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
        wanted = common.check_cells(cells, self.cell_res)
        if wanted.size == 0:
            return common.members_from_pairs([])
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
        return common.members_from_pairs(pairs)

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

    def _held_key(self, worker_id: int) -> str:
        return f"{self.prefix}held:{int(worker_id)}"

    async def held_fixes(self, worker_id: int) -> list[HeldFix]:
        """Fixes held back as suspected jumps, oldest first (one GET)."""
        raw: Any = await self.client.get(self._held_key(worker_id))
        if not raw:
            return []
        return [(float(a), float(b), float(t), float(c)) for a, b, t, c in json.loads(raw)]

    async def hold_fixes(self, worker_id: int, fixes: Sequence[HeldFix]) -> None:
        """Replace the worker's held fixes; they expire with the position (``stale_after_s``)."""
        key = self._held_key(worker_id)
        if not fixes:
            await self.client.delete(key)
            return
        ttl_ms = max(1, int(self.stale_after_s * 1000))
        await self.client.set(key, json.dumps([list(f) for f in fixes]), px=ttl_ms)

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
        keep = raw["cell"] != TOMBSTONE_CELL
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

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

Modules: ``batch`` (ping batches, results, errors, the ``LiveState`` protocol),
``memory`` and ``redis_state`` (the two adapters), ``coalesce`` (``Coalescer``: the
ping path's concurrent calls merged), ``factory`` (``make_live``, ``LiveBackends``).
"""

from __future__ import annotations

from api.core.live.batch import (
    DEFAULT_CELL_RES,
    DEFAULT_STALE_AFTER_S,
    KEEP_STATE,
    MAX_WORKER_ID,
    REC_DTYPE,
    CellArray,
    CellMembers,
    CodeArray,
    FloatArray,
    HeldFix,
    IntArray,
    InvalidPing,
    LiveState,
    LiveStateError,
    PingBatch,
    Positions,
    UpdateResult,
    WorkerState,
    WrongResolution,
    latest_per_worker,
)
from api.core.live.coalesce import Coalescer
from api.core.live.factory import HasRedisUrl, LiveBackends, make_live
from api.core.live.memory import MemoryLiveState
from api.core.live.redis_state import (
    RedisLiveState,
    cells_to_hex,
    group_rows,
    hex_to_cells,
    ids_to_keys,
    run_pipeline,
)

__all__ = [
    "DEFAULT_CELL_RES",
    "DEFAULT_STALE_AFTER_S",
    "KEEP_STATE",
    "MAX_WORKER_ID",
    "REC_DTYPE",
    "CellArray",
    "CellMembers",
    "Coalescer",
    "CodeArray",
    "FloatArray",
    "HasRedisUrl",
    "HeldFix",
    "IntArray",
    "InvalidPing",
    "LiveBackends",
    "LiveState",
    "LiveStateError",
    "MemoryLiveState",
    "PingBatch",
    "Positions",
    "RedisLiveState",
    "UpdateResult",
    "WorkerState",
    "WrongResolution",
    "cells_to_hex",
    "group_rows",
    "hex_to_cells",
    "ids_to_keys",
    "latest_per_worker",
    "make_live",
    "run_pipeline",
]

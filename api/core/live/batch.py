"""The live layer's data: ping batches, worker states, results, errors, the LiveState protocol."""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from api.core.broker import (
    REGION_RES,
)
from geo.cells import get_resolution

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
OFFLINE_CODE = _STATE_CODE[WorkerState.OFFLINE]
ONLINE_CODE = _STATE_CODE[WorkerState.ONLINE]

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
TOMBSTONE_CELL = b"0" * 16


def as_array(values: ArrayLike, dtype: Any, name: str) -> NDArray[Any]:
    try:
        arr = np.asarray(values, dtype=dtype)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidPing(f"{name} must be numeric, got {values!r}") from exc
    if arr.ndim != 1:
        raise InvalidPing(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


def first_bad(mask: NDArray[np.bool_]) -> int:
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
                i = first_bad(bad)
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
        ids = as_array(worker_ids, np.int64, "worker_ids")
        n = ids.shape[0]
        acc = (
            np.full(n, np.nan)
            if accuracy_m is None
            else as_array(accuracy_m, np.float64, "accuracy_m")
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
                codes = as_array(raw, np.uint8, "states")
        return cls(
            ids,
            as_array(lat, np.float64, "lat"),
            as_array(lng, np.float64, "lng"),
            as_array(ts, np.float64, "ts"),
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


#: A fix held back as a suspected jump: (lat, lng, epoch seconds, accuracy metres).
HeldFix = tuple[float, float, float, float]


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

    async def held_fixes(self, worker_id: int) -> list[HeldFix]:
        """Fixes held back as suspected jumps (``geo.plausibility``), oldest first."""
        ...

    async def hold_fixes(self, worker_id: int, fixes: Sequence[HeldFix]) -> None:
        """Replace the worker's held fixes (empty clears; they expire after ``stale_after_s``)."""
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


def check_config(cell_res: int, stale_after_s: float) -> None:
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


def check_cells(cells: ArrayLike, res: int) -> CellArray:
    arr = np.unique(np.asarray(cells, dtype=np.uint64).reshape(-1))
    if arr.size:
        got = get_resolution(arr)
        if (got != res).any():
            raise WrongResolution(
                f"cells must be at resolution {res}, got {int(got[got != res][0])}"
            )
    return arr


def empty_positions(ids: IntArray) -> Positions:
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


def members_from_pairs(pairs: list[tuple[int, int]]) -> CellMembers:
    pairs.sort()
    return CellMembers(
        worker_ids=np.array([w for _, w in pairs], dtype=np.int64),
        cells=np.array([c for c, _ in pairs], dtype=np.uint64),
    )

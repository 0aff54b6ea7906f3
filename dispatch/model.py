"""Struct-of-arrays inputs of the matching core: workers (Fleet), orders (OrderBatch), skills.

Every array is 1-D, read-only and indexed by row; ids are int64. Times are int64 epoch
seconds, durations int64 seconds, money int64 fen. Validation happens on construction and
every error names the field and the first offending index.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from dispatch._validate import as_array, check_finite_range, check_latlng, check_unique
from dispatch.errors import InvalidInput, ShapeMismatch, UnknownSkill, UnknownWorker

#: Transport modes by code, as stored in ``Fleet.mode``; names match geo.travel.TransportMode.
TRANSPORT_MODES: tuple[str, ...] = ("walk", "ebike", "car")
#: Default transport mode code of a worker (ebike: the common case for home services).
DEFAULT_MODE = 1
#: Sentinel for "no time limit" in int64 epoch-second fields.
NO_LIMIT_S = np.iinfo(np.int64).max
#: Sentinel for "no enterprise" / "no preferred worker".
NONE_ID = -1
#: Highest rating a worker can have (stars).
MAX_RATING = 5.0

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
MaskArray = NDArray[np.uint64]


@dataclass(frozen=True)
class SkillCatalog:
    """Skill names mapped to bits of a uint64 mask (at most 64 skills), in the given order."""

    names: tuple[str, ...]
    _bits: Mapping[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = tuple(self.names)
        if len(names) > 64:
            raise InvalidInput(f"names must hold at most 64 skills, got {len(names)}")
        seen: dict[str, int] = {}
        for i, name in enumerate(names):
            if not isinstance(name, str) or not name:
                raise InvalidInput(f"names[{i}] must be a non-empty string, got {name!r}")
            if name in seen:
                raise InvalidInput(f"names[{i}] duplicates names[{seen[name]}]: {name!r}")
            seen[name] = i
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "_bits", seen)

    def bit(self, name: str) -> int:
        """Bit position of skill ``name``; raises UnknownSkill if it is not in the catalog."""
        try:
            return self._bits[name]
        except KeyError:
            raise UnknownSkill(
                f"skill {name!r} is not in the catalog ({', '.join(self.names) or 'empty'})"
            ) from None

    def mask(self, names: Iterable[str]) -> int:
        """The uint64 mask (as int) with the bits of every skill in ``names`` set."""
        out = 0
        for name in names:
            out |= 1 << self.bit(name)
        return out

    def masks(self, per_row: Sequence[Iterable[str]]) -> MaskArray:
        """One mask per row of skill names, as a uint64 array."""
        return np.array([self.mask(row) for row in per_row], dtype=np.uint64)

    def decode(self, mask: int) -> tuple[str, ...]:
        """Skill names whose bits are set in ``mask``."""
        return tuple(name for i, name in enumerate(self.names) if (int(mask) >> i) & 1)


def _mode_codes(values: ArrayLike | None, n: int) -> NDArray[np.uint8]:
    if values is None:
        out = np.full(n, DEFAULT_MODE, dtype=np.uint8)
        out.setflags(write=False)
        return out
    raw = np.asarray(values)
    if raw.dtype.kind in "US" or raw.dtype == object:
        lookup = {name: code for code, name in enumerate(TRANSPORT_MODES)}
        if raw.ndim != 1 or raw.shape[0] != n:
            raise ShapeMismatch(f"mode must be 1-D of length {n}, got shape {raw.shape}")
        codes = np.empty(n, dtype=np.uint8)
        for i, name in enumerate(raw.tolist()):
            key = getattr(name, "value", name)
            if key not in lookup:
                raise InvalidInput(f"mode[{i}] must be one of {TRANSPORT_MODES}, got {name!r}")
            codes[i] = lookup[key]
        codes.setflags(write=False)
        return codes
    out = as_array(raw, "mode", np.uint8, n)
    check_finite_range(out, "mode", 0, len(TRANSPORT_MODES) - 1)
    return out


def _ids(ids: ArrayLike, name: str) -> IntArray:
    arr = as_array(ids, name, np.int64, None)
    check_unique(arr, name)
    return arr


def _filled(
    values: ArrayLike | None, name: str, dtype: type[np.generic], n: int, default: Any
) -> NDArray[Any]:
    if values is None:
        out = np.full(n, default, dtype=dtype)
        out.setflags(write=False)
        return out
    return as_array(values, name, dtype, n)


@dataclass(frozen=True, eq=False)
class Fleet:
    """Workers as parallel arrays (row i is one worker); build with ``Fleet.from_arrays``.

    ``skills`` is a uint64 bitmask (see SkillCatalog); ``rating`` in stars [0, 5];
    ``reputation`` in [0, 1]; ``shift_end_s`` epoch seconds (NO_LIMIT_S: none);
    ``load_today`` orders served today; ``recent_earnings_fen`` fen; ``enterprise_id``
    the worker's enterprise (NONE_ID: independent); ``mode`` codes into TRANSPORT_MODES.
    """

    ids: IntArray
    lat: FloatArray
    lng: FloatArray
    available: BoolArray
    skills: MaskArray
    rating: FloatArray
    reputation: FloatArray
    shift_end_s: IntArray
    load_today: IntArray
    recent_earnings_fen: IntArray
    enterprise_id: IntArray
    mode: NDArray[np.uint8]

    def __post_init__(self) -> None:
        n = self.ids.shape[0]
        for name in self.__dataclass_fields__:
            arr = getattr(self, name)
            if not isinstance(arr, np.ndarray) or arr.shape != (n,):
                raise ShapeMismatch(f"{name} must be a 1-D array of length {n}")
        check_latlng(self.lat, self.lng)
        check_finite_range(self.rating, "rating", 0.0, MAX_RATING)
        check_finite_range(self.reputation, "reputation", 0.0, 1.0)
        check_finite_range(self.load_today, "load_today", 0)
        check_finite_range(self.recent_earnings_fen, "recent_earnings_fen", 0)
        check_finite_range(self.enterprise_id, "enterprise_id", NONE_ID)
        check_finite_range(self.mode, "mode", 0, len(TRANSPORT_MODES) - 1)

    @classmethod
    def from_arrays(
        cls,
        ids: ArrayLike,
        lat: ArrayLike,
        lng: ArrayLike,
        *,
        available: ArrayLike | None = None,
        skills: ArrayLike | None = None,
        rating: ArrayLike | None = None,
        reputation: ArrayLike | None = None,
        shift_end_s: ArrayLike | None = None,
        load_today: ArrayLike | None = None,
        recent_earnings_fen: ArrayLike | None = None,
        enterprise_id: ArrayLike | None = None,
        mode: ArrayLike | None = None,
    ) -> Fleet:
        """Validate and build a Fleet; omitted fields take permissive defaults.

        Defaults: available, no skills, rating 5, reputation 1, no shift end, no load,
        independent, ebike. Raises InvalidInput/ShapeMismatch/DuplicateId naming the field.
        """
        id_arr = _ids(ids, "ids")
        n = id_arr.shape[0]
        return cls(
            ids=id_arr,
            lat=as_array(lat, "lat", np.float64, n),
            lng=as_array(lng, "lng", np.float64, n),
            available=_filled(available, "available", np.bool_, n, True),
            skills=_filled(skills, "skills", np.uint64, n, 0),
            rating=_filled(rating, "rating", np.float64, n, MAX_RATING),
            reputation=_filled(reputation, "reputation", np.float64, n, 1.0),
            shift_end_s=_filled(shift_end_s, "shift_end_s", np.int64, n, NO_LIMIT_S),
            load_today=_filled(load_today, "load_today", np.int64, n, 0),
            recent_earnings_fen=_filled(recent_earnings_fen, "recent_earnings_fen", np.int64, n, 0),
            enterprise_id=_filled(enterprise_id, "enterprise_id", np.int64, n, NONE_ID),
            mode=_mode_codes(mode, n),
        )

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def rows_of(self, worker_ids: ArrayLike) -> IntArray:
        """Row index of each worker id; raises UnknownWorker for an id not in the fleet."""
        wanted = np.atleast_1d(np.asarray(worker_ids, dtype=np.int64))
        if len(self) == 0:
            if wanted.size:
                raise UnknownWorker(f"worker_ids[0] = {int(wanted[0])} not in fleet")
            return np.zeros(0, dtype=np.int64)
        order = np.argsort(self.ids, kind="stable")
        pos = np.minimum(np.searchsorted(self.ids, wanted, sorter=order), len(self) - 1)
        rows = order[pos]
        bad = self.ids[rows] != wanted
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise UnknownWorker(f"worker_ids[{i}] = {int(wanted[i])} not in fleet")
        return rows.astype(np.int64)


def _ragged(
    excluded: Sequence[ArrayLike] | ArrayLike | None, offsets_in: ArrayLike | None, n: int
) -> tuple[IntArray, IntArray]:
    """Normalise exclusions to (flat worker ids, offsets of length n + 1)."""
    if excluded is None:
        if offsets_in is not None:
            raise InvalidInput("excluded_offsets given without excluded_worker_ids")
        flat = np.zeros(0, dtype=np.int64)
        offsets = np.zeros(n + 1, dtype=np.int64)
    elif offsets_in is not None:
        flat = as_array(
            excluded,  # type: ignore[arg-type]
            "excluded_worker_ids",
            np.int64,
            None,
        )
        offsets = as_array(offsets_in, "excluded_offsets", np.int64, n + 1)
        if offsets[0] != 0 or offsets[-1] != flat.shape[0]:
            raise InvalidInput(
                f"excluded_offsets must start at 0 and end at {flat.shape[0]}, "
                f"got {offsets[0]} and {offsets[-1]}"
            )
        steps = np.diff(offsets)
        if (steps < 0).any():
            i = int(np.flatnonzero(steps < 0)[0])
            raise InvalidInput(f"excluded_offsets[{i + 1}] must be >= excluded_offsets[{i}]")
    else:
        rows = list(excluded)  # type: ignore[arg-type]
        if len(rows) != n:
            raise ShapeMismatch(
                f"excluded_worker_ids must hold {n} rows (one per order), got {len(rows)}"
            )
        parts = [
            as_array(
                np.atleast_1d(np.asarray(r)).astype(np.int64, copy=False)
                if np.size(r)
                else np.zeros(0, np.int64),
                f"excluded_worker_ids[{i}]",
                np.int64,
                None,
            )
            for i, r in enumerate(rows)
        ]
        lengths = np.array([p.shape[0] for p in parts], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        flat = np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)
    flat = np.array(flat, dtype=np.int64)
    offsets = np.array(offsets, dtype=np.int64)
    flat.setflags(write=False)
    offsets.setflags(write=False)
    return flat, offsets


@dataclass(frozen=True, eq=False)
class OrderBatch:
    """On-demand orders as parallel arrays (row i is one order); build with ``from_arrays``.

    ``required_skills`` uint64 mask; ``service_s`` duration in seconds (> 0);
    ``latest_start_s`` latest acceptable start, epoch seconds (NO_LIMIT_S: none);
    ``priority`` member priority >= 0 (0: ordinary); ``preferred_worker_id`` (NONE_ID: none);
    exclusions as CSR: order i excludes ``excluded_worker_ids[excluded_offsets[i]:
    excluded_offsets[i + 1]]``; ``enterprise_id`` restricts to that enterprise's workers
    (NONE_ID: any worker).
    """

    ids: IntArray
    lat: FloatArray
    lng: FloatArray
    required_skills: MaskArray
    service_s: IntArray
    latest_start_s: IntArray
    priority: FloatArray
    preferred_worker_id: IntArray
    excluded_worker_ids: IntArray
    excluded_offsets: IntArray
    enterprise_id: IntArray

    def __post_init__(self) -> None:
        n = self.ids.shape[0]
        for name in self.__dataclass_fields__:
            arr = getattr(self, name)
            want = {"excluded_worker_ids": None, "excluded_offsets": n + 1}.get(name, n)
            if (
                not isinstance(arr, np.ndarray)
                or arr.ndim != 1
                or (want is not None and arr.shape[0] != want)
            ):
                raise ShapeMismatch(f"{name} must be a 1-D array of length {want}")
        check_latlng(self.lat, self.lng)
        check_finite_range(self.service_s, "service_s", 1)
        check_finite_range(self.priority, "priority", 0.0)
        check_finite_range(self.preferred_worker_id, "preferred_worker_id", NONE_ID)
        check_finite_range(self.enterprise_id, "enterprise_id", NONE_ID)
        if self.excluded_offsets[-1] != self.excluded_worker_ids.shape[0]:
            raise ShapeMismatch("excluded_offsets[-1] must equal len(excluded_worker_ids)")

    @classmethod
    def from_arrays(
        cls,
        ids: ArrayLike,
        lat: ArrayLike,
        lng: ArrayLike,
        *,
        required_skills: ArrayLike | None = None,
        service_s: ArrayLike | None = None,
        latest_start_s: ArrayLike | None = None,
        priority: ArrayLike | None = None,
        preferred_worker_id: ArrayLike | None = None,
        excluded_worker_ids: Sequence[ArrayLike] | ArrayLike | None = None,
        excluded_offsets: ArrayLike | None = None,
        enterprise_id: ArrayLike | None = None,
    ) -> OrderBatch:
        """Validate and build an OrderBatch; omitted fields take permissive defaults.

        ``excluded_worker_ids`` is either a list with one array of worker ids per order, or
        a flat array with ``excluded_offsets`` (CSR, ``len(offsets) == len(ids) + 1``). Defaults: no
        skills, 3600 s service, no latest start, priority 0, no preference, no exclusions,
        open to every enterprise.
        """
        id_arr = _ids(ids, "ids")
        n = id_arr.shape[0]
        flat, offsets = _ragged(excluded_worker_ids, excluded_offsets, n)
        return cls(
            ids=id_arr,
            lat=as_array(lat, "lat", np.float64, n),
            lng=as_array(lng, "lng", np.float64, n),
            required_skills=_filled(required_skills, "required_skills", np.uint64, n, 0),
            service_s=_filled(service_s, "service_s", np.int64, n, 3600),
            latest_start_s=_filled(latest_start_s, "latest_start_s", np.int64, n, NO_LIMIT_S),
            priority=_filled(priority, "priority", np.float64, n, 0.0),
            preferred_worker_id=_filled(
                preferred_worker_id, "preferred_worker_id", np.int64, n, NONE_ID
            ),
            excluded_worker_ids=flat,
            excluded_offsets=offsets,
            enterprise_id=_filled(enterprise_id, "enterprise_id", np.int64, n, NONE_ID),
        )

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def excluded_for(self, row: int) -> IntArray:
        """Worker ids excluded from order row ``row``."""
        return self.excluded_worker_ids[self.excluded_offsets[row] : self.excluded_offsets[row + 1]]

"""Input normalisation for dispatch's struct-of-arrays inputs; every error names field and index."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from dispatch.errors import DuplicateId, InvalidInput, ShapeMismatch


def first_index(mask: NDArray[np.bool_]) -> int:
    """Index of the first True in a 1-D mask."""
    return int(np.flatnonzero(mask)[0])


def as_array(
    values: ArrayLike, name: str, dtype: type[np.generic] | np.dtype[Any], n: int | None
) -> NDArray[Any]:
    """Return ``values`` as a read-only 1-D array of ``dtype`` and length ``n`` (if given)."""
    try:
        raw = np.asarray(values)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{name} must be an array, got {values!r}") from exc
    if raw.ndim != 1:
        raise ShapeMismatch(f"{name} must be 1-D, got shape {raw.shape}")
    if n is not None and raw.shape[0] != n:
        raise ShapeMismatch(f"{name} must have length {n} (one per id), got {raw.shape[0]}")
    target = np.dtype(dtype)
    if raw.dtype == target:
        out = raw
    else:
        if target.kind in "iu" and raw.dtype.kind == "f":
            finite = np.isfinite(raw)
            if not finite.all():
                i = first_index(~finite)
                raise InvalidInput(f"{name}[{i}] must be finite, got {raw[i]}")
            if (raw != np.round(raw)).any():
                i = first_index(raw != np.round(raw))
                raise InvalidInput(f"{name}[{i}] must be an integer, got {raw[i]}")
        if target.kind in "iub" and raw.dtype.kind not in "iubf":
            raise InvalidInput(f"{name} must be numeric, got dtype {raw.dtype}")
        if target.kind == "u" and raw.dtype.kind in "if" and raw.size and (raw < 0).any():
            i = first_index(raw < 0)
            raise InvalidInput(f"{name}[{i}] must be >= 0, got {raw[i]}")
        try:
            out = raw.astype(target)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"{name} must be convertible to {target}, got {raw.dtype}") from exc
    out = np.array(out, copy=out is raw)  # own the data so callers cannot mutate it underneath
    out.setflags(write=False)
    return out


def check_finite_range(
    arr: NDArray[Any], name: str, lo: float | None = None, hi: float | None = None
) -> None:
    """Raise InvalidInput naming the first element that is NaN/inf or outside [lo, hi]."""
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr)
        if bad.any():
            i = first_index(bad)
            raise InvalidInput(f"{name}[{i}] must be finite, got {arr[i]}")
    if lo is not None:
        bad = arr < lo
        if bad.any():
            i = first_index(bad)
            raise InvalidInput(f"{name}[{i}] must be >= {lo:g}, got {arr[i]}")
    if hi is not None:
        bad = arr > hi
        if bad.any():
            i = first_index(bad)
            raise InvalidInput(f"{name}[{i}] must be <= {hi:g}, got {arr[i]}")


def check_unique(ids: NDArray[np.int64], name: str) -> None:
    """Raise DuplicateId naming the first repeated id and both of its indices."""
    if ids.size < 2:
        return
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    dup = sorted_ids[1:] == sorted_ids[:-1]
    if dup.any():
        k = first_index(dup)
        first, second = sorted(int(x) for x in order[k : k + 2])
        raise DuplicateId(
            f"{name}[{second}] duplicates {name}[{first}]: id {int(sorted_ids[k])} appears twice"
        )


def check_latlng(lat: NDArray[np.float64], lng: NDArray[np.float64]) -> None:
    """Raise InvalidInput unless every lat is in [-90, 90] and lng in [-180, 180] (degrees)."""
    for name, arr, bound in (("lat", lat, 90.0), ("lng", lng, 180.0)):
        bad = ~(np.abs(arr) <= bound)  # NaN fails the comparison too
        if bad.any():
            i = first_index(bad)
            raise InvalidInput(f"{name}[{i}] must be finite and within ±{bound:g}, got {arr[i]}")

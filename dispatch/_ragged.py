"""Vectorised helpers for ragged (CSR) arrays: expanding ranges without Python loops."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

IntArray = NDArray[np.int64]


def expand_ranges(starts: IntArray, counts: IntArray) -> tuple[IntArray, IntArray]:
    """Concatenate ``arange(starts[i], starts[i] + counts[i])`` for every i.

    Returns ``(values, owner)`` where ``owner[j]`` is the i that produced ``values[j]``.
    """
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    owner = np.repeat(np.arange(counts.shape[0], dtype=np.int64), counts)
    if total == 0:
        return np.zeros(0, dtype=np.int64), owner
    first = np.zeros(counts.shape[0], dtype=np.int64)
    np.cumsum(counts[:-1], out=first[1:])
    values = np.arange(total, dtype=np.int64) - np.repeat(first - starts, counts)
    return values, owner


def offsets_from_sorted(keys: IntArray, n: int) -> IntArray:
    """CSR offsets (length n + 1) of a sorted array of keys in [0, n)."""
    return np.searchsorted(keys, np.arange(n + 1, dtype=np.int64)).astype(np.int64)


def member(keys: IntArray, universe: IntArray) -> NDArray[np.bool_]:
    """Whether each key occurs in ``universe`` (sort + binary search; no hashing)."""
    if universe.size == 0 or keys.size == 0:
        return np.zeros(keys.shape, dtype=np.bool_)
    ordered = np.sort(universe)
    pos = np.minimum(np.searchsorted(ordered, keys), ordered.size - 1)
    return np.asarray(ordered[pos] == keys)

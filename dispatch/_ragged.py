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


def compact(values: IntArray) -> tuple[IntArray, IntArray]:
    """``np.unique(values, return_inverse=True)`` for non-negative ints, without a sort.

    A presence mask over [0, max] and its running count give the sorted distinct values
    and each value's rank in O(n + max); falls back to np.unique when max is far larger
    than n (small pieces of a big index space).
    """
    values = np.asarray(values, dtype=np.int64).reshape(-1)
    if values.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    top = int(values.max()) + 1
    if top > 8 * values.size + 1024:
        uniq, inverse = np.unique(values, return_inverse=True)
        return uniq.astype(np.int64), inverse.reshape(-1).astype(np.int64)
    present = np.zeros(top, dtype=np.bool_)
    present[values] = True
    rank = np.cumsum(present, dtype=np.int64) - 1
    return np.flatnonzero(present).astype(np.int64), rank[values]

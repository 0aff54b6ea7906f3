"""Type stub of the compiled batch H3 indexer (geo/_h3fast.c)."""

from typing_extensions import Buffer

def latlng_to_cells(lat: Buffer, lng: Buffer, out: Buffer, res: int, threads: int) -> int:
    """Write the cell of each point (float64 degrees) into ``out`` (uint64); refused get 0.

    Returns how many points were refused (left for the exact path).
    """

def h3_latlng_to_cells(lat: Buffer, lng: Buffer, out: Buffer, res: int) -> int:
    """H3's own latLngToCell per point, single thread; returns the number of failures."""

def grid_disks(cells: Buffer, out: Buffer, offsets: Buffer, k: int) -> int:
    """Sorted disks of radius ``k`` packed into ``out``; ``offsets`` gets n + 1 entries.

    ``out`` needs room for ``len(cells) * (3k(k+1) + 1)`` cells. Returns the total.
    """

def cells_to_latlng(cells: Buffer, lat: Buffer, lng: Buffer) -> None:
    """Write each cell's centre (degrees) into ``lat`` and ``lng`` (float64)."""

def valid_cells(cells: Buffer, ok: Buffer) -> int:
    """Write H3's isValidCell of each index into ``ok`` (bool); return how many are valid."""

def grid_distances(a: Buffer, b: Buffer, out: Buffer) -> None:
    """Write gridDistance of each pair into ``out`` (int64), -1 where H3 cannot say."""

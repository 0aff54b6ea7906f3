"""Type stub of the compiled batch H3 indexer (geo/_h3fast.c)."""

from typing_extensions import Buffer

def latlng_to_cells(lat: Buffer, lng: Buffer, out: Buffer, res: int, threads: int) -> int:
    """Write the cell of each point (float64 degrees) into ``out`` (uint64); refused get 0.

    Returns how many points were refused (left for the exact path).
    """

def h3_latlng_to_cells(lat: Buffer, lng: Buffer, out: Buffer, res: int) -> int:
    """H3's own latLngToCell per point, single thread; returns the number of failures."""

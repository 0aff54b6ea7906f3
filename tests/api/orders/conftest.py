"""Order fixtures: the booking world (see world.py)."""

from __future__ import annotations

from tests.api.orders.world import world

__all__ = ["world"]

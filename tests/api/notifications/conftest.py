"""Notification fixtures: the booking world (orders write the outbox)."""

from __future__ import annotations

from tests.api.orders.world import world

__all__ = ["world"]

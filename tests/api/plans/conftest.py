"""Day-plan fixtures: the dispatch test setup (booking world, hand-moved clock, live layer)."""

from __future__ import annotations

from tests.api.dispatcher.conftest import clock, live_kind, redis_prefix, settings, world

__all__ = ["clock", "live_kind", "redis_prefix", "settings", "world"]

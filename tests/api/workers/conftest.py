"""Worker-flow tests share the dispatcher fixtures (world, clock, live layer paired with the DB)."""

from __future__ import annotations

from tests.api.dispatcher.conftest import clock, live_kind, redis_prefix, settings, world

__all__ = ["clock", "live_kind", "redis_prefix", "settings", "world"]

"""Tracking tests share the dispatch fixtures (world, clock, live layer paired with the DB)."""

from __future__ import annotations

from tests.api.dispatcher.conftest import clock, live_kind, redis_prefix, settings, world

__all__ = ["clock", "live_kind", "redis_prefix", "settings", "world"]

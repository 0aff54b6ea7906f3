"""Enterprise board fixtures: the dispatch test setup (booking world, hand-moved clock, live
layer paired with the database: in-process with SQLite, Redis with PostgreSQL), and a world
whose enterprise A has no worker profile yet (worker profiles)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import Account
from tests.api.dispatcher.conftest import clock, live_kind, redis_prefix, settings, world
from tests.api.orders.world import World, build_world

__all__ = ["clock", "live_kind", "redis_prefix", "settings", "world"]


@pytest.fixture
def bare_world(
    client: TestClient,
    make_user: Callable[..., Account],
    make_enterprise: Callable[[str], int],
    run_db: Any,
) -> World:
    """The booking world without workers in enterprise A (B keeps its one worker)."""
    return build_world(make_user, make_enterprise, run_db, n_workers=0)

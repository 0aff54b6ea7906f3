"""Suite-wide settings only; fixtures live next to the tests that use them."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

# Deterministic examples in CI so a red run can be reproduced exactly.
settings.register_profile(
    "ci", derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test marked ``postgres_only`` exists for the PostgreSQL (+ Redis) backend only:
    its SQLite parametrisation is not collected, so CI never reports it as skipped."""
    items[:] = [
        item
        for item in items
        if not (item.get_closest_marker("postgres_only") and "[sqlite" in item.nodeid)
    ]

"""Fixtures of the simulation tests: a small Shanghai day (seconds to simulate)."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulations.city import CityDay, Scenario, generate, load_scenario

EXAMPLE = (
    Path(__file__).resolve().parents[2] / "simulations" / "scenarios" / "shanghai_saturday.yaml"
)


@pytest.fixture(scope="session")
def example() -> Scenario:
    """The example scenario as shipped."""
    return load_scenario(EXAMPLE)


@pytest.fixture(scope="session")
def small(example: Scenario) -> Scenario:
    """Jingan alone at 35 % demand and half its fleet: ~60 orders, 23 workers in 3 km."""
    return example.scaled(only_district="Jingan", demand=0.35, workers=0.5)


@pytest.fixture(scope="session")
def small_city(small: Scenario) -> CityDay:
    """The small scenario's day with its own seed."""
    return generate(small)

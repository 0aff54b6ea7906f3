"""A deterministic city day: districts, Poisson demand by hour and weekday, workers, shifts.

A :class:`Scenario` is the whole description (loadable from YAML/JSON with line-accurate
errors, demand fittable from a CSV of historical orders); :func:`generate` turns it and a
seed into a :class:`CityDay`: struct-of-arrays orders and workers with every random draw
the engine needs already made (actual service durations, customer patience, booked-order
cancellations), so the same scenario and seed give the same day under any policy.

Units: times are int64 epoch seconds (UTC), durations int64 seconds, positions WGS-84
degrees, money int64 fen. Local hours use the scenario's UTC offset (China: +8 h).
"""

from simulations.city.day import NEVER, NOT_BOOKED, CityDay, FloatArray, IntArray
from simulations.city.files import (
    dump_scenario,
    load_scenario,
    scenario_from_dict,
    scenario_to_dict,
)
from simulations.city.fit import DemandFit, fit_demand, with_fit
from simulations.city.generation import generate, queue_city
from simulations.city.scenario import (
    SECONDS_PER_DAY,
    WEEKDAYS,
    Customers,
    Demand,
    Disruptions,
    District,
    Scenario,
    ScenarioError,
    ServiceType,
    WorkerGroup,
)

__all__ = [
    "NEVER",
    "NOT_BOOKED",
    "SECONDS_PER_DAY",
    "WEEKDAYS",
    "CityDay",
    "Customers",
    "Demand",
    "DemandFit",
    "Disruptions",
    "District",
    "FloatArray",
    "IntArray",
    "Scenario",
    "ScenarioError",
    "ServiceType",
    "WorkerGroup",
    "dump_scenario",
    "fit_demand",
    "generate",
    "load_scenario",
    "queue_city",
    "scenario_from_dict",
    "scenario_to_dict",
    "with_fit",
]

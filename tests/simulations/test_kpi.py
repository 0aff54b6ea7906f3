"""KPI definitions on hand-made outcomes, and the tidy table."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from simulations.city import CityDay
from simulations.engine import OrderOutcome, Policy, SimResult, simulate
from simulations.kpi import UNITS, gini, kpi_table, kpis, write_table


def test_gini_known_values() -> None:
    assert gini([5, 5, 5, 5]) == pytest.approx(0.0)
    assert gini([0, 0, 0, 10]) == pytest.approx(0.75)  # n-1/n for one earner
    assert gini([1, 2, 3, 4]) == pytest.approx(0.25)
    assert np.isnan(gini([]))


@pytest.fixture(scope="module")
def result(small_city: CityDay) -> SimResult:
    return simulate(small_city, Policy())


def test_kpis_match_their_definitions(result: SimResult) -> None:
    c = result.city
    k = kpis(result)
    served = result.outcome == OrderOutcome.SERVED
    assert k["orders"] == c.n_orders
    assert k["served"] == served.sum()
    assert k["fill_rate"] == pytest.approx(served.mean())
    # Promises as kept by the engine: a booking may have moved to a later slot.
    on_time = served & (result.start_s <= result.promised_s + c.grace_s)
    booked = c.booked_start_s >= 0
    booked_cancelled = (result.outcome == OrderOutcome.CANCELLED) & booked
    assert k["on_time_rate"] == pytest.approx(on_time.sum() / (c.n_orders - booked_cancelled.sum()))
    assert k["booked_orders"] + k["on_demand_orders"] == c.n_orders
    assert k["booked_on_time_rate"] == pytest.approx(
        (on_time & booked).sum() / (booked.sum() - booked_cancelled.sum())
    )
    assert k["on_demand_on_time_rate"] == pytest.approx((on_time & ~booked).sum() / (~booked).sum())
    # Time to assign: on-demand orders only (booked ones are assigned by their day plan).
    waits = (result.assigned_at - c.release_s)[(result.assigned_at >= 0) & ~booked]
    assert k["time_to_assign_p50_s"] == pytest.approx(np.median(waits))
    assert k["booking_refused"] == (result.outcome == OrderOutcome.REFUSED).sum()
    assert k["travel_km_per_order"] == pytest.approx(
        result.travel_m[served].sum() / 1000 / served.sum()
    )
    assert 0 < k["utilisation"] < 1
    assert k["declined_offers"] == result.declines.sum()
    late = k["late_0_5_min"] + k["late_5_15_min"] + k["late_15_30_min"] + k["late_30_60_min"]
    late += k["late_over_60_min"]
    assert late == (served & (result.start_s > result.promised_s)).sum()


def test_late_starts_lower_on_time_rate(result: SimResult) -> None:
    pushed = replace(result, start_s=np.where(result.start_s >= 0, result.start_s + 3600, -1))
    assert kpis(pushed)["on_time_rate"] < kpis(result)["on_time_rate"]
    # An hour later: at least 30 min past a booked slot's end (plans start at its start).
    assert kpis(pushed)["lateness_p50_min"] >= 30


def test_tidy_table_covers_city_and_districts(result: SimResult, tmp_path: Path) -> None:
    rows = kpi_table(result, run="t")
    districts = {r.district for r in rows}
    assert districts == {"all", *result.city.district_names}
    assert {r.metric for r in rows} == set(UNITS)
    paths = write_table(rows, tmp_path / "k.csv")
    with paths[0].open() as fh:
        back = list(csv.DictReader(fh))
    assert len(back) == len(rows)
    assert back[0].keys() == {"run", "policy", "district", "metric", "value", "unit"}

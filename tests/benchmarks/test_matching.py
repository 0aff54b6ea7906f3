"""The matching benchmark runs at a tiny size and reports the agreed keys."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import matching

KEYS = {
    "orders",
    "workers",
    "seed",
    "city",
    "candidates_s",
    "solve_s",
    "total_s",
    "total_cpu_s",
    "assigned",
    "total_cost",
    "dense_s",
    "dense_cost",
    "dense_assigned",
    "speedup",
    "gap_pct",
    "certified",
    "unassigned_that_dense_assigns",
    "peak_rss_mb",
}


@pytest.mark.parametrize("city", ["uniform", "clustered"])
def test_tiny_run_reports_keys_and_matches_dense(
    city: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = matching.main(
        [
            "--orders",
            "60",
            "--workers",
            "150",
            "--city",
            city,
            "--repeat",
            "1",
            "--seed",
            "3",
            "--json",
        ]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= KEYS
    assert out["orders"] == 60
    assert out["city"] == city
    assert out["certified"] is True
    assert out["gap_pct"] == pytest.approx(0.0)
    assert out["total_cost"] == pytest.approx(out["dense_cost"])
    assert out["unassigned_that_dense_assigns"] == 0


def test_more_orders_than_workers_uses_penalty_columns(capsys: pytest.CaptureFixture[str]) -> None:
    assert matching.main(["--orders", "40", "--workers", "25", "--repeat", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["dense_assigned"] <= 25
    assert out["gap_pct"] == pytest.approx(0.0)


def test_city_is_deterministic() -> None:
    a_orders, a_fleet = matching.city(30, 50, "clustered", 7)
    b_orders, b_fleet = matching.city(30, 50, "clustered", 7)
    assert (a_orders.lat == b_orders.lat).all()
    assert (a_fleet.lng == b_fleet.lng).all()


def test_no_dense_skips_baseline(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        matching.main(
            ["--orders", "20", "--workers", "40", "--repeat", "1", "--no-dense", "--json"]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["dense_s"] is None
    assert out["speedup"] is None


@pytest.mark.parametrize("city", ["surge", "hotspots"])
def test_surge_cities_report_rounds_pairs_and_gap_bound(
    city: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--orders", "90", "--workers", "300", "--city", city, "--repeat", "1", "--json"]
    assert matching.main([*argv, "--surge-ratio", "6", "--hotspots", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= KEYS | {"rounds", "pairs", "gap_bound", "surge_ratio", "hotspots"}
    assert out["hotspots"] == 2
    assert out["certified"] is True
    assert out["gap_bound"] == 0.0
    assert out["gap_pct"] == pytest.approx(0.0)
    assert out["unassigned_that_dense_assigns"] == 0


def test_budget_option_reaches_match(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--orders", "60", "--workers", "200", "--city", "surge", "--repeat", "1"]
    assert matching.main([*argv, "--budget-s", "5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["budget_s"] == 5.0
    assert out["gap_bound"] >= 0.0


def test_surge_city_holds_the_asked_ratio_in_its_hotspot() -> None:
    a_orders, a_fleet = matching.surge_city(600, 2000, 3, surge_ratio=4.0)
    b_orders, b_fleet = matching.surge_city(600, 2000, 3, surge_ratio=4.0)
    assert (a_orders.lat == b_orders.lat).all()
    assert (a_fleet.lng == b_fleet.lng).all()
    kx = matching._M_PER_DEG_LAT * np.cos(np.radians(matching.CENTRE_LAT))

    def from_centre_m(lat: np.ndarray, lng: np.ndarray) -> np.ndarray:
        dy = (lat - matching.CENTRE_LAT) * matching._M_PER_DEG_LAT
        return np.asarray(np.hypot((lng - matching.CENTRE_LNG) * kx, dy))

    # One hotspot sits at the centre: a third of the orders (and a few even ones) in 1 km,
    # with a quarter as many workers as the hotspot's orders.
    orders_in = int((from_centre_m(a_orders.lat, a_orders.lng) <= 1000.0).sum())
    workers_in = int((from_centre_m(a_fleet.lat, a_fleet.lng) <= 1000.0).sum())
    assert 200 <= orders_in <= 215
    assert workers_in == 50

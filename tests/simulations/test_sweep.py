"""Sweeps: grid runs (serial and on local Ray), bisection for the workers a district needs."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulations.city import Scenario, ScenarioError
from simulations.sweep import bisect_district, grid, run_grid


def test_grid_is_the_full_product() -> None:
    pts = grid([1.0, 2.0], ["auto", "grab"], ["default", "fair"], [1.0])
    assert len(pts) == 8
    assert {(p.mode, p.weights) for p in pts} == {
        ("auto", "default"),
        ("auto", "fair"),
        ("grab", "default"),
        ("grab", "fair"),
    }
    with pytest.raises(ScenarioError, match="mode"):
        grid([1.0], ["lottery"])


def test_serial_grid_more_workers_more_on_time(small: Scenario) -> None:
    res = run_grid(small, grid([0.5, 2.0]), backend="serial", show_progress=False)
    assert [r["workers"] for r in res] == [0.5, 2.0]
    assert res[1]["n_workers"] > res[0]["n_workers"]
    assert res[1]["on_time_rate"] > res[0]["on_time_rate"]


def test_bisection_finds_the_smallest_passing_count(small: Scenario) -> None:
    answer = bisect_district(small.scaled(demand=0.5), "Jingan", 0.8)
    probes = answer["probes"]
    needed = answer["needed"]
    assert needed is not None
    assert probes[needed] >= 0.8
    below = [n for n, rate in probes.items() if n < needed]
    assert max(below) == needed - 1
    assert probes[needed - 1] < 0.8
    with pytest.raises(ScenarioError, match="target"):
        bisect_district(small, "Jingan", 1.5)


@pytest.mark.slow
def test_ray_grid_plot_and_workers_needed(small: Scenario, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from simulations.city import dump_scenario
    from simulations.cli import app

    path = tmp_path / "s.yaml"
    dump_scenario(small.scaled(demand=0.5), path)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        [
            "sweep",
            str(path),
            "--workers",
            "0.5,1,2,3",
            "--modes",
            "auto,grab",
            "--target",
            "0.8",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert (out / "sweep.png").stat().st_size > 10_000
    assert (out / "workers_needed.png").stat().st_size > 5_000
    rows = (out / "sweep.csv").read_text().splitlines()
    assert len(rows) == 1 + 8
    assert "Jingan" in result.output
    assert "workers needed" in result.output
    assert "<img" in (out / "report.html").read_text()
    import ray

    assert ray.is_initialized()

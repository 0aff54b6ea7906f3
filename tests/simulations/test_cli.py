"""The typer sub-app: run and replay end to end; bad scenarios exit 2 with the line."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from simulations.city import Scenario, dump_scenario
from simulations.cli import app


@pytest.mark.slow
def test_run_then_replay(small: Scenario, tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    dump_scenario(small, path)
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["run", str(path), "--out", str(out)])
    assert res.exit_code == 0, res.output
    for name in ("kpis.csv", "summary.json", "events.jsonl", "day.png"):
        assert (out / name).stat().st_size > 0, name
    assert "on_time_rate" in res.output
    res = CliRunner().invoke(
        app,
        [
            "replay",
            str(out / "events.jsonl"),
            "--mode",
            "grab",
            "--weight",
            "fairness_per_order=120",
            "--out",
            str(tmp_path / "rp"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "auto → grab" in res.output
    assert (tmp_path / "rp" / "compare.csv").read_text().startswith("metric,recorded,replayed")


def test_bad_scenario_exits_2_naming_field_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "name: x\n"
        "demand: {orders_per_day: 10, hourly_profile: [1,1,1,1,1,1,1,1,1,1,1,1,\n"
        "  1,1,1,1,1,1,1,1,1,1,1,1]}\n"
        "districts:\n"
        "  - {name: A, lat: 31.2, lng: 121.4, radius_km: 2, demand_weight: 1}\n"
        "services:\n"
        "  - {name: s, skill: cleaning, duration_min: 60}\n"
        "workers:\n"
        "  - {district: A, count: 2, shift: '08:00-18:00', skills: [cleaning]}\n"
        "  - {district: B, count: 2, shift: '08:00-18:00', skills: [cleaning]}\n",
        encoding="utf-8",
    )
    res = CliRunner().invoke(app, ["run", str(path), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2
    assert "bad.yaml:10" in res.output
    assert "workers[1].district" in res.output
    assert "unknown district 'B'" in res.output

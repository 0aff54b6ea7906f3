"""The plan_day benchmark runs end to end at a tiny size and prints one JSON object."""

from __future__ import annotations

import json

import pytest

from benchmarks import plan_day


def test_plan_day_bench_json(capsys: pytest.CaptureFixture[str]) -> None:
    code = plan_day.main(["--visits", "12", "--workers", "2", "--time-limit", "0.5", "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert {"runs", "timing", "speedup", "seed", "visits", "workers", "machine"} <= out.keys()
    assert {r["solver"] for r in out["runs"]} == {"ours", "ortools"}
    for run in out["runs"]:
        assert run["feasible"], run["first_problem"]
        assert run["served"] + run["dropped"] == 12

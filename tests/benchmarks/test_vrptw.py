"""The Solomon benchmark runs end to end at a tiny size and prints one JSON object."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import vrptw

INSTANCES = Path(vrptw.DEFAULT_INSTANCES)


def test_vrptw_json_has_rows_and_summary(capsys: pytest.CaptureFixture[str]) -> None:
    if not (INSTANCES / "C101.vrp").exists():
        pytest.skip(f"Solomon data not found in {INSTANCES}")
    code = vrptw.main(
        [
            "--instances",
            str(INSTANCES),
            "--only",
            "C101",
            "--time-limit",
            "0.3",
            "--solver",
            "ours",
            "--json",
        ]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert {"instances", "summary", "time_limit_s", "seed", "machine"} <= out.keys()
    (row,) = out["instances"]
    assert {"instance", "solver", "vehicles", "distance", "gap_pct", "runtime_s"} <= row.keys()
    assert row["instance"] == "C101"
    assert row["solver"] == "ours"
    assert row["feasible"] is True
    assert row["distance"] >= 827.3 - 1e-9  # never better than the best known
    assert out["summary"]["ours"]["solved"] == 1


def test_checker_rejects_a_missing_customer() -> None:
    if not (INSTANCES / "C101.vrp").exists():
        pytest.skip(f"Solomon data not found in {INSTANCES}")
    inst = vrptw.read_instance(INSTANCES / "C101.vrp")
    ok, _, why = vrptw.check_routes(inst, [[c] for c in range(2, inst.n)][: inst.vehicles])
    assert not ok
    assert why

"""The simulate benchmark runs end to end at a tiny size and prints one JSON object."""

from __future__ import annotations

import json

import pytest

from benchmarks import simulate


def test_simulate_bench_city_day_json(capsys: pytest.CaptureFixture[str]) -> None:
    code = simulate.main(["--orders", "60", "--workers", "20", "--sweep-points", "0", "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert {"city_day", "orders", "workers", "seed", "machine", "peak_rss_mb"} <= out.keys()
    assert abs(out["orders"] - 60) < 40
    assert out["workers"] == 20
    day = out["city_day"]
    assert day["median_s"] > 0
    assert day["match_calls"] > 0
    assert 0 <= day["on_time_rate"] <= 1


@pytest.mark.slow
def test_simulate_bench_sweep_on_ray(capsys: pytest.CaptureFixture[str]) -> None:
    code = simulate.main(
        [
            "--orders",
            "40",
            "--workers",
            "10",
            "--sweep-points",
            "4",
            "--sweep-orders",
            "60",
            "--sweep-workers",
            "15",
            "--json",
        ]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    sweep = out["sweep"]
    assert sweep["points"] == 4
    assert sweep["same_kpis"], "Ray and serial runs of one point must agree"
    assert sweep["speedup"] > 0

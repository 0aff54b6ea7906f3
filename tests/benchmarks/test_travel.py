"""The travel benchmark runs end to end at a tiny size and prints one JSON object."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import travel
from geo.travel import HaversineTravelModel


def test_travel_bench_json(capsys: pytest.CaptureFixture[str]) -> None:
    code = travel.main(
        [
            "--orders",
            "30",
            "--workers",
            "50",
            "--pairs",
            "2000",
            "--repeat",
            "2",
            "--seed",
            "4",
            "--json",
        ]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["orders"], out["workers"], out["pairs"], out["seed"]) == (30, 50, 2000, 4)
    assert {"matrix", "seconds", "peak_rss_mb", "machine", "at_hour", "repeat"} <= out.keys()
    assert out["matrix"]["shape"] == [50, 30]
    for case in ("matrix", "seconds"):
        result = out[case]
        assert result["speedup"] > 0
        for path in ("ours", "plain_baseline"):
            timing = result[path]
            assert timing["min_s"] <= timing["median_s"] <= timing["max_s"]
            assert timing["pairs_per_s"] > 0
    assert out["matrix"]["mean_travel_s_ours"] > 0
    assert out["matrix"]["mean_travel_s_plain"] > 0


def test_plain_baseline_is_haversine_at_constant_speed() -> None:
    model = HaversineTravelModel(overhead_s=12.0)
    rng = np.random.default_rng(0)
    lat, lng = travel.city_points(5, rng)
    codes = np.array([0, 1, 2, 1, 0], dtype=np.int8)
    matrix = travel.plain_matrix(model, lat, lng, lat[:3], lng[:3], codes)
    pairs = travel.plain_seconds(
        model, lat[:, None], lng[:, None], lat[None, :3], lng[None, :3], codes[:, None]
    )
    np.testing.assert_allclose(matrix, pairs)
    np.testing.assert_allclose(np.diag(matrix[:3]), 12.0)


def test_travel_bench_rejects_bad_arguments() -> None:
    with pytest.raises(SystemExit):
        travel.main(["--orders", "0", "--json"])
    with pytest.raises(SystemExit):
        travel.main(["--at-hour", "24", "--json"])

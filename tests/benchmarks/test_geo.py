"""The geo benchmark runs end to end at a tiny size and prints one JSON object."""

from __future__ import annotations

import json

import pytest

from benchmarks import geo
from geo.coords import in_mainland_china


def test_geo_bench_json(capsys: pytest.CaptureFixture[str]) -> None:
    code = geo.main(
        ["--points", "3000", "--baseline-points", "1000", "--repeat", "1", "--seed", "3", "--json"]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert {"points", "seed", "res", "repeat", "baseline_points", "gcj02", "h3"} <= out.keys()
    assert {"peak_rss_mb", "machine"} <= out.keys()
    assert (out["points"], out["seed"], out["baseline_points"]) == (3000, 3, 1000)
    assert out["baseline_scaled"] is True
    for case, baseline in (("gcj02", "prcoords_loop"), ("h3", "h3_loop")):
        result = out[case]
        assert result["mismatches"] == 0
        assert result["speedup"] > 0
        for path in ("ours", baseline):
            assert {"min_s", "median_s", "max_s", "points_per_s"} <= result[path].keys()
            assert result[path]["min_s"] <= result[path]["median_s"] <= result[path]["max_s"]
    assert out["h3"]["threads"] >= 1
    if out["h3"]["h3_c_library_loop"] is not None:
        assert out["h3"]["h3_c_library_loop"]["mismatches"] == 0
    if out["h3"]["h3ronpy"] is not None:
        assert out["h3"]["mismatches_h3ronpy"] == 0


def test_china_points_are_deterministic_and_on_the_mainland() -> None:
    lat, lng = geo.china_points(2000, seed=5)
    again_lat, again_lng = geo.china_points(2000, seed=5)
    assert lat.shape == lng.shape == (2000,)
    assert (lat == again_lat).all()
    assert (lng == again_lng).all()
    assert not (lat == geo.china_points(2000, seed=6)[0]).all()
    assert in_mainland_china(lat, lng).all()


def test_geo_bench_rejects_bad_arguments() -> None:
    with pytest.raises(SystemExit):
        geo.main(["--points", "0", "--json"])
    with pytest.raises(SystemExit):
        geo.main(["--res", "16", "--json"])

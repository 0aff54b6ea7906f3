"""The index benchmark runs at a tiny size, reports its keys and agrees with its baseline."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import index


def test_tiny_run_reports_keys(capsys: pytest.CaptureFixture[str]) -> None:
    code = index.main(
        ["--moves", "3000", "--batch", "1000", "--workers", "500", "--repeat", "1", "--json"]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    for key in (
        "moves",
        "batch",
        "seed",
        "moves_per_s",
        "baseline_moves_per_s",
        "speedup",
        "ours_s",
        "baseline_s",
        "peak_rss_mb",
    ):
        assert key in out
    assert out["moves"] == 3000
    assert out["same_cells_as_baseline"] is True
    assert out["workers_changed_cell"] > 0


def test_pings_are_random_walks_from_the_start() -> None:
    lat0, _lng0, who, lat, _lng = index.pings(10, 200, seed=1)
    first = [int(np.flatnonzero(who == w)[0]) for w in np.unique(who)]
    jump = np.abs(lat[first] - lat0[who[first]])
    assert (jump < 0.01).all()  # the first ping is one step away, not a teleport

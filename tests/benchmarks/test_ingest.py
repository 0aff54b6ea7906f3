"""The ingest benchmark runs end to end at a tiny size and prints one JSON object."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import ingest
from tests.api.realtime.conftest import REDIS_URL, redis_reachable
from tests.services import require


def _check_section(section: dict[str, object], pings: int) -> None:
    assert section["consistent"] is True
    for path in ("ours", "per_call"):
        timing = section[path]
        assert isinstance(timing, dict)
        assert timing["min_s"] <= timing["median_s"] <= timing["max_s"]
        assert timing["pings_per_s"] > 0
    ours = section["ours"]
    assert isinstance(ours, dict)
    assert 0 < ours["p50_ms"] <= ours["p99_ms"]
    assert ours["pings_per_s"] == pytest.approx(pings / ours["median_s"])
    assert isinstance(section["speedup"], float)
    assert section["speedup"] > 0


def test_ingest_bench_memory_json(capsys: pytest.CaptureFixture[str]) -> None:
    code = ingest.main(
        [
            *("--pings", "600", "--batch", "100", "--workers", "150"),
            *("--backend", "memory", "--baseline-pings", "50"),
            *("--repeat", "1", "--seed", "4", "--json"),
        ]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["pings"], out["batch"], out["workers"], out["seed"]) == (600, 100, 150, 4)
    assert out["baseline_pings"] == 50
    assert {"peak_rss_mb", "machine", "memory"} <= out.keys()
    assert "redis" not in out
    _check_section(out["memory"], 600)


def test_ingest_bench_redis_json(capsys: pytest.CaptureFixture[str]) -> None:
    ok, reason = redis_reachable()
    require(ok, reason)
    code = ingest.main(
        [
            *("--pings", "400", "--batch", "100", "--workers", "120"),
            *("--backend", "redis", "--baseline-pings", "40"),
            *("--repeat", "1", "--concurrency", "2", "--redis-url", REDIS_URL, "--json"),
        ]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    section = out["redis"]
    _check_section(section, 400)
    assert section["ours_concurrent"]["concurrency"] == 2
    assert section["direct_geoadd"]["measured_pings"] == 40
    assert section["speedup_vs_direct_geoadd"] > 0


def test_fleet_pings_are_deterministic_ordered_per_worker_and_moving() -> None:
    a = ingest.fleet_pings(3000, 500, seed=2)
    b = ingest.fleet_pings(3000, 500, seed=2)
    for name in ("worker_ids", "lat", "lng", "ts", "accuracy_m"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.lat, ingest.fleet_pings(3000, 500, seed=3).lat)
    # Every worker's pings come in time order, so the last one must be what is stored.
    for w in (0, 17, 499):
        assert np.all(np.diff(a.ts[a.worker_ids == w]) > 0)
    assert len(a.batch(0, 100)) == 100


def test_ingest_bench_rejects_bad_arguments() -> None:
    with pytest.raises(SystemExit):
        ingest.main(["--pings", "0", "--json"])
    with pytest.raises(SystemExit):
        ingest.main(["--backend", "postgres", "--json"])

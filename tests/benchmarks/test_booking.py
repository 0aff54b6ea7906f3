"""The booking benchmark runs end to end at a tiny size (real server, SQLite) and prints JSON."""

from __future__ import annotations

import json

import pytest

from benchmarks import booking


@pytest.mark.slow
def test_booking_bench_tiny_sqlite_json(capsys: pytest.CaptureFixture[str]) -> None:
    code = booking.main(
        [
            *("--bookings", "24", "--concurrency", "6", "--baseline-bookings", "4"),
            *("--workers", "6", "--customers", "2", "--backend", "sqlite", "--json"),
        ]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["backend"] == "sqlite"
    assert (out["bookings"], out["concurrency"], out["workers"]) == (24, 6, 6)
    # Every booking had a free worker: all 201, none lost.
    assert out["ours"]["statuses"] == {"201": 24}
    assert out["baseline"]["statuses"] == {"201": 4}
    for section in ("ours", "baseline"):
        assert out[section]["bookings_per_s"] > 0
        assert 0 < out[section]["p50_ms"] <= out[section]["p99_ms"]
    assert out["speedup"] == pytest.approx(
        out["ours"]["bookings_per_s"] / out["baseline"]["bookings_per_s"]
    )

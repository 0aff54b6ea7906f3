"""The stream benchmark runs end to end at a tiny size (real uvicorn server) and prints JSON."""

from __future__ import annotations

import json

import pytest

from benchmarks import stream


@pytest.mark.slow
def test_stream_bench_tiny_json(capsys: pytest.CaptureFixture[str]) -> None:
    code = stream.main(["--clients", "3", "--interval", "1", "--duration", "3", "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["clients"], out["live"]) == (3, "memory")
    # Three workers, three pings each, all accepted and all delivered to their subscriber.
    assert out["pings_sent"] == 9
    assert out["pings_accepted"] == 9
    assert out["delivered"] == 9
    assert 0 < out["p50_ms"] <= out["p99_ms"] <= out["max_ms"]
    assert out["pings"] == "ws"


@pytest.mark.slow
def test_stream_bench_over_http_too(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--clients", "2", "--interval", "1", "--duration", "2", "--pings", "http", "--json"]
    assert stream.main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["pings"], out["pings_accepted"], out["delivered"]) == ("http", 4, 4)


def test_stream_bench_refuses_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert stream.main(["--clients", "0"]) == 2
    assert stream.main(["--server-workers", "2"]) == 2
    assert "needs --redis" in capsys.readouterr().err

"""The shared benchmark plumbing: timings, JSON output, the `daojia bench` dispatcher."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from benchmarks._common import Timing, emit, machine, peak_rss_mb, timed
from daojia.cli import app


def test_timed_repeats_and_reports_order_statistics() -> None:
    calls: list[int] = []
    timing, result = timed(lambda: calls.append(1) or len(calls), repeat=4)
    assert result == 4
    assert len(timing.runs) == 4
    assert timing.min <= timing.median <= timing.max


def test_timed_rejects_zero_repeats() -> None:
    with pytest.raises(ValueError, match="repeat must be >= 1"):
        timed(lambda: None, repeat=0)


def test_timing_median_of_known_runs() -> None:
    assert Timing((3.0, 1.0, 2.0)).as_dict() == {"min_s": 1.0, "median_s": 2.0, "max_s": 3.0}


def test_emit_json_prints_exactly_one_object(capsys: pytest.CaptureFixture[str]) -> None:
    import numpy as np

    emit({"n": np.int64(3), "xs": np.arange(2)}, None, as_json=True, title="t")
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert json.loads(out) == {"n": 3, "xs": [0, 1]}


def test_machine_facts_and_memory() -> None:
    facts = machine()
    assert facts["cores"] >= 1
    assert peak_rss_mb() > 1.0


def test_bench_list_and_unknown_name() -> None:
    runner = CliRunner()
    listed = runner.invoke(app, ["bench", "list"])
    assert listed.exit_code == 0
    assert "benchmarks:" in listed.output
    unknown = runner.invoke(app, ["bench", "no_such_benchmark"])
    assert unknown.exit_code == 2
    assert "unknown benchmark" in unknown.output

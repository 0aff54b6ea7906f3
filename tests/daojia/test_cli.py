"""The `daojia` command line: cheap to start, every group reachable through it."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from daojia.cli import app
from tests.test_layers import loaded_after

HEAVY = ("api", "simulations", "benchmarks", "dispatch", "geo", "numpy", "fastapi", "rich")


def test_help_imports_no_layer_below_the_command_line() -> None:
    loaded = loaded_after(
        "import sys\nfrom daojia.cli import app\nsys.argv = ['daojia', '--help']\n"
        "try:\n    app()\nexcept SystemExit:\n    pass"
    )
    assert "typer" in loaded  # the probe did run the command line
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))


def test_help_lists_every_command() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0, result.output
    for command in ("simulate", "bench", "db", "seed", "dispatcher", "serve", "demo"):
        assert command in result.output


def test_simulate_is_forwarded_to_the_simulator_app() -> None:
    helped = CliRunner().invoke(app, ["simulate", "--help"])
    assert helped.exit_code == 0, helped.output
    assert "simulate [OPTIONS] COMMAND" in helped.output  # usage names the group once
    for command in ("run", "replay", "sweep"):
        assert command in helped.output
    run_help = CliRunner().invoke(app, ["simulate", "run", "--help"])
    assert run_help.exit_code == 0, run_help.output
    assert "--out" in run_help.output
    unknown = CliRunner().invoke(app, ["simulate", "no-such-command"])
    assert unknown.exit_code == 2
    assert "no-such-command" in unknown.output


def test_python_dash_m_daojia_runs_the_same_app() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "daojia", "bench", "list"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "matching" in result.stdout

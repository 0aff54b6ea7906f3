"""Plots leave the process as they found it: importing them picks no matplotlib backend."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_plots_changes_no_backend_and_loads_no_pyplot() -> None:
    probe = (
        "import sys, matplotlib\n"
        "before = dict.__getitem__(matplotlib.rcParams, 'backend')\n"
        "import simulations.plots\n"
        "after = dict.__getitem__(matplotlib.rcParams, 'backend')\n"
        "print(before is after or before == after, 'matplotlib.pyplot' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["True", "False"]

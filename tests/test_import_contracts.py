"""`make lint` holds the layers: import-linter fails on an import that crosses them.

The tree's Python files and pyproject.toml are copied to a temporary folder; the copy
passes as it is, and fails once a forbidden import is added to it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("geo", "dispatch", "api", "simulations", "benchmarks", "daojia")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _copy_tree(dest: Path) -> Path:
    """The project's packages (Python files only) and pyproject.toml under dest."""
    for package in PACKAGES:
        for src in (REPO / package).rglob("*.py"):
            out = dest / src.relative_to(REPO)
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, out)
    shutil.copyfile(REPO / "pyproject.toml", dest / "pyproject.toml")
    return dest


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    """lint-imports on `tree`: its packages come first on the path, not the installed ones."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=tree, env=env, capture_output=True, text=True
    )


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _copy_tree(tmp_path_factory.mktemp("tree"))


def test_the_tree_keeps_every_contract(tree: Path) -> None:
    result = _lint(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "forbidden", "contract"),
    [
        ("geo/cells.py", "import api", "geo is the bottom layer"),
        ("dispatch/assign/solve.py", "import simulations", "dispatch imports only geo"),
        ("api/core/errors.py", "import benchmarks", "api imports dispatch and geo"),
        ("simulations/kpi.py", "import api.core", "simulations imports only dispatch and geo"),
        # Inside api/: a domain reaching up the stated order, infrastructure reaching a domain.
        ("api/orders/state.py", "import api.payments.service", "api domains import only"),
        ("api/catalog/service.py", "import api.orders.models", "api domains import only"),
        ("api/core/db.py", "import api.auth.models", "api domains import only"),
        ("api/orders/state.py", "import api.models", "api domains import only"),
    ],
)
def test_a_forbidden_import_breaks_its_contract(
    tree: Path, tmp_path: Path, module: str, forbidden: str, contract: str
) -> None:
    copy = tmp_path / "tree"
    shutil.copytree(tree, copy)
    target = copy / module
    target.write_text(target.read_text() + f"\n{forbidden}  # crosses a layer\n")
    result = _lint(copy)
    assert result.returncode != 0, result.stdout
    # Layers above the changed one may break too: they now import it indirectly.
    broken = [line for line in result.stdout.splitlines() if line.endswith("BROKEN")]
    assert any(line.startswith(contract) for line in broken), result.stdout

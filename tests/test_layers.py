"""Which layers an import pulls in: the pure core stays pure, the API stays below the simulator.

Each probe runs in a fresh interpreter, so modules other tests imported do not count.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

WEB_DB_REDIS = {"fastapi", "starlette", "sqlalchemy", "redis", "httpx", "asyncpg"}


def loaded_after(code: str) -> set[str]:
    """Top-level packages a fresh interpreter holds after running `code`."""
    probe = f"{code}\nimport sys\nprint(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    return set(out.splitlines()[-1].split())  # the last line: what ran before may print


def test_api_app_loads_no_simulator_or_benchmark() -> None:
    loaded = loaded_after("import api.app")
    assert "fastapi" in loaded  # the probe did import the app
    assert loaded.isdisjoint({"simulations", "benchmarks", "daojia"}), loaded


def test_geo_and_dispatch_load_no_web_database_or_redis_module() -> None:
    every_module = (
        "import importlib, pkgutil, geo, dispatch\n"
        "for pkg in (geo, dispatch):\n"
        "    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
        "        importlib.import_module(m.name)"
    )
    loaded = loaded_after(every_module)
    assert {"geo", "dispatch", "numpy"} <= loaded
    assert loaded.isdisjoint(WEB_DB_REDIS | {"api", "simulations", "benchmarks"}), sorted(
        loaded & (WEB_DB_REDIS | {"api", "simulations", "benchmarks"})
    )


# SQLAlchemy's statement builders: a router that imports one builds a query itself.
SQL_CONSTRUCTORS = {
    "select",
    "update",
    "delete",
    "insert",
    "text",
    "func",
    "and_",
    "or_",
    "not_",
    "exists",
    "union",
    "union_all",
    "literal",
    "literal_column",
    "table",
    "column",
    "case",
    "cast",
}
# AsyncSession methods that run SQL.
SESSION_QUERIES = {"execute", "scalar", "scalars", "get", "stream", "stream_scalars"}


def _router_modules() -> list[Path]:
    api = Path(__file__).resolve().parents[1] / "api"
    return sorted(
        p for p in api.rglob("*.py") if p.name == "router.py" or p.name.endswith("_router.py")
    )


def _sql_in(path: Path) -> list[str]:
    """Where the module builds or runs SQL: imports of query builders, session queries."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sqlalchemy"):
            found += [
                f"{node.lineno}: imports {a.name}" for a in node.names if a.name in SQL_CONSTRUCTORS
            ]
        elif isinstance(node, ast.Import):
            found += [
                f"{node.lineno}: imports {a.name}" for a in node.names if a.name == "sqlalchemy"
            ]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in SESSION_QUERIES
            and isinstance(node.func.value, ast.Name)
            and "session" in node.func.value.id
        ):
            found.append(f"{node.lineno}: {node.func.value.id}.{node.func.attr}(...)")
    return found


def test_there_are_routers_to_check() -> None:
    names = {p.parent.name for p in _router_modules()}
    assert {"orders", "payments", "tracking", "workers"} <= names, names


@pytest.mark.parametrize("path", _router_modules(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_routers_build_and_run_no_sql(path: Path) -> None:
    """HTTP only: the queries live in the domain's service (STYLE.md, one folder per domain)."""
    assert _sql_in(path) == [], path

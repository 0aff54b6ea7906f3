"""Which layers an import pulls in: the pure core stays pure, the API stays below the simulator.

Each probe runs in a fresh interpreter, so modules other tests imported do not count.
"""

from __future__ import annotations

import subprocess
import sys

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

"""Shared plumbing for benchmarks: repeats, medians, peak memory, table/JSON output.

Every benchmark module exposes ``main(argv: list[str]) -> int`` and uses
``add_common_args`` so ``--repeat``, ``--seed`` and ``--json`` mean the same
everywhere (shared/BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVar

T = TypeVar("T")


def add_common_args(parser: argparse.ArgumentParser, *, repeat: int = 3) -> None:
    """Add ``--repeat``, ``--seed`` and ``--json`` to a benchmark's parser."""
    parser.add_argument("--repeat", type=int, default=repeat, help="runs per case; median reported")
    parser.add_argument("--seed", type=int, default=0, help="seed for generated inputs")
    parser.add_argument("--json", action="store_true", help="print exactly one JSON object")


@dataclass(frozen=True)
class Timing:
    """Wall-clock seconds of repeated runs of one thing."""

    runs: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    @property
    def min(self) -> float:
        return min(self.runs)

    @property
    def max(self) -> float:
        return max(self.runs)

    def as_dict(self) -> dict[str, float]:
        return {"min_s": self.min, "median_s": self.median, "max_s": self.max}


def timed(fn: Callable[[], T], repeat: int) -> tuple[Timing, T]:
    """Run ``fn`` ``repeat`` times; return the timings and the last result."""
    if repeat < 1:
        raise ValueError(f"repeat must be >= 1, got {repeat}")
    runs: list[float] = []
    result: T
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        runs.append(time.perf_counter() - start)
    return Timing(tuple(runs)), result


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def machine() -> dict[str, Any]:
    """The facts a reader needs to compare figures: cores, memory, Python, date."""
    try:
        mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        mem_gib = float("nan")
    return {
        "cores": os.cpu_count(),
        "ram_gib": round(mem_gib, 1),
        "python": platform.python_version(),
        "date": date.today().isoformat(),
    }


def emit(
    result: dict[str, Any], rows: Sequence[dict[str, Any]] | None, as_json: bool, title: str
) -> None:
    """Print one JSON object (``--json``) or a readable rich table of ``rows``."""
    if as_json:
        json.dump(result, sys.stdout, default=_jsonable)
        sys.stdout.write("\n")
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=title)
    rows = list(rows or [result])
    columns = list(dict.fromkeys(k for row in rows for k in row))
    for col in columns:
        table.add_column(col, justify="right")
    for row in rows:
        table.add_row(*(_fmt(row.get(col)) for col in columns))
    console.print(table)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):  # numpy scalars and arrays alike
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


PG = {
    "host": os.environ.get("PGHOST", "127.0.0.1"),
    "port": int(os.environ.get("PGPORT", "5432")),
    "user": os.environ.get("PGUSER", "postgres"),
}


async def pg_admin(sql: list[str], database: str = "postgres") -> None:
    """Run ``sql`` statements on the benchmark PostgreSQL server (PG* environment)."""
    import asyncpg

    conn = await asyncpg.connect(database=database, timeout=5, **PG)
    try:
        for statement in sql:
            await conn.execute(statement)
    finally:
        await conn.close()


def pg_reachable() -> bool:
    """Whether the benchmark PostgreSQL server answers."""
    import asyncio

    try:
        asyncio.run(pg_admin(["SELECT 1"]))
    except Exception:  # any connection problem means "use SQLite"
        return False
    return True


def pg_scratch(name: str) -> str:
    """A fresh database ``name`` with PostGIS and btree_gist; its async URL (see pg_drop)."""
    import asyncio

    fresh = [f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", f"CREATE DATABASE {name}"]
    asyncio.run(pg_admin(fresh))
    asyncio.run(pg_admin(["CREATE EXTENSION IF NOT EXISTS postgis",
                          "CREATE EXTENSION IF NOT EXISTS btree_gist"], name))  # fmt: skip
    return f"postgresql+asyncpg://{PG['user']}@{PG['host']}:{PG['port']}/{name}"


def pg_drop(name: str) -> None:
    """Drop a scratch database made by ``pg_scratch``."""
    import asyncio

    asyncio.run(pg_admin([f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"]))


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(base: str, proc: Any, timeout_s: float = 120.0) -> None:
    """Wait until the API at ``base`` answers /health; fail if ``proc`` exits first."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the API server exited during startup ({proc.returncode})")
        try:
            if httpx.get(f"{base}/health", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the API server did not start in {timeout_s:.0f} s")

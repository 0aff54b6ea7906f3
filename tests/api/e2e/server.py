"""Run the API as a real uvicorn process on a free port against a fresh database."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import httpx

from tests.api.conftest import PG_HOST, PG_PORT, PG_USER
from tests.services import require

REPO = Path(__file__).resolve().parents[3]


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _admin(sql: list[str], database: str = "postgres") -> None:
    conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database=database)
    try:
        for statement in sql:
            await conn.execute(statement)
    finally:
        await conn.close()


@contextmanager
def fresh_database(backend: str, tmp: Path, name: str) -> Iterator[str]:
    """An empty database URL (SQLite file, or a new PostgreSQL database with PostGIS)."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp / 'e2e.sqlite3'}"
        return
    try:
        asyncio.run(_admin(["SELECT 1"]))
    except Exception as exc:  # not reachable: skip locally, fail under CI=true
        require(False, f"PostgreSQL not reachable: {exc}")
    db = f"daojia_e2e_{name}_{os.getpid()}"
    asyncio.run(_admin([f"DROP DATABASE IF EXISTS {db} WITH (FORCE)", f"CREATE DATABASE {db}"]))
    try:
        asyncio.run(
            _admin(
                [
                    "CREATE EXTENSION IF NOT EXISTS postgis",
                    "CREATE EXTENSION IF NOT EXISTS btree_gist",
                ],
                database=db,
            )
        )
        yield f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{db}"
    finally:
        asyncio.run(_admin([f"DROP DATABASE IF EXISTS {db} WITH (FORCE)"]))


def server_env(database_url: str, tmp: Path, port: int, **extra: str) -> dict[str, str]:
    """Environment of a dev-mode server with cheap password hashing and the sandbox."""
    env = dict(os.environ)
    env.update(
        DAOJIA_DATABASE_URL=database_url,
        DAOJIA_VAR_DIR=str(tmp / "var"),
        DAOJIA_JWT_SECRET="e2e-secret-" + "x" * 40,
        DAOJIA_ARGON2_TIME_COST="1",
        DAOJIA_ARGON2_MEMORY_KIB="8",
        DAOJIA_PAYMENT_PROVIDER="sandbox",
        DAOJIA_PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
        DAOJIA_LOG_LEVEL="WARNING",
        **extra,
    )
    return env


def seed(env: dict[str, str]) -> None:
    """``daojia seed demo`` (migrates first) as its own process."""
    subprocess.run(
        [sys.executable, "-m", "daojia", "seed", "demo"],
        env=env,
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=300,
    )


@contextmanager
def running_server(env: dict[str, str], port: int) -> Iterator[str]:
    """Start uvicorn on ``port``; yield its base URL once /health answers; stop it after."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise RuntimeError(f"server exited with {proc.returncode}: {err[-2000:]}")
            try:
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not come up in 120 s")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

"""`daojia db upgrade`, `daojia seed demo` (idempotent, deterministic) and `daojia serve` wiring."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, func, select
from typer.testing import CliRunner

from api.auth.service import make_password_hasher
from api.core.db import make_engine, make_sessionmaker
from api.models import Base
from api.seed import ENTERPRISES, SeedReport, seed_demo
from api.tenants.models import Worker
from daojia.cli import app as cli


async def _seed_twice_and_snapshot(url: str) -> tuple[SeedReport, SeedReport, Any, Any, dict]:
    engine = make_engine(url)
    maker = make_sessionmaker(engine)
    hasher = make_password_hasher(1, 8)
    try:
        first = await seed_demo(maker, hasher, seed=11)
        second = await seed_demo(maker, hasher, seed=11)
        async with maker() as session:
            counts = {
                t.name: await session.scalar(select(func.count()).select_from(t))
                for t in Base.metadata.sorted_tables
            }
            snapshot = [
                (w.user_id, w.home_lat, w.home_lng, tuple(w.skills), w.home_cell)
                for w in await session.scalars(select(Worker).order_by(Worker.user_id))
            ]
            await session.execute(delete(Worker))
            await session.commit()
        await seed_demo(maker, hasher, seed=11)
        async with maker() as session:
            again = [
                (w.user_id, w.home_lat, w.home_lng, tuple(w.skills), w.home_cell)
                for w in await session.scalars(select(Worker).order_by(Worker.user_id))
            ]
        return first, second, snapshot, again, counts
    finally:
        await engine.dispose()


def test_seed_demo_is_idempotent_and_deterministic(db: str) -> None:
    first, second, snapshot, again, counts = asyncio.run(_seed_twice_and_snapshot(db))
    assert first.created["workers"] == sum(e.workers for e in ENTERPRISES)
    assert first.created["services"] >= 8
    assert second.created == {}
    assert counts["workers"] == first.created["workers"]
    assert counts["users"] == first.created["users"]
    assert snapshot == again  # same seed, same homes, skills and cells
    assert len({(lat, lng) for _, lat, lng, _, _ in snapshot}) == len(snapshot)


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    """A CLI runner whose DAOJIA_* settings point into tmp_path."""
    monkeypatch.setenv("DAOJIA_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("DAOJIA_ARGON2_MEMORY_KIB", "8")
    monkeypatch.setenv("DAOJIA_ARGON2_TIME_COST", "1")
    monkeypatch.delenv("DAOJIA_DATABASE_URL", raising=False)
    return CliRunner()


def test_db_upgrade_and_seed_commands(runner: CliRunner, tmp_path: Path) -> None:
    up = runner.invoke(cli, ["db", "upgrade"])
    assert up.exit_code == 0, up.output
    assert (tmp_path / "var" / "daojia.sqlite3").exists()  # the embedded default
    seeded = runner.invoke(cli, ["seed", "demo"])
    assert seeded.exit_code == 0, seeded.output
    assert "80 workers" in seeded.output
    assert "13000000000" in seeded.output
    again = runner.invoke(cli, ["seed", "demo"])
    assert again.exit_code == 0
    assert "nothing new" in again.output
    down = runner.invoke(cli, ["db", "downgrade", "base"])
    assert down.exit_code == 0, down.output


def test_seed_refuses_production(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAOJIA_ENVIRONMENT", "production")
    monkeypatch.setenv("DAOJIA_JWT_SECRET", "p" * 40)
    result = runner.invoke(cli, ["seed", "demo"])
    assert result.exit_code == 2
    assert "production" in result.output


def test_existing_commands_are_kept(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["--help"])
    assert result.exit_code == 0
    for command in ("bench", "demo", "serve", "db", "seed"):
        assert command in result.output
    serve_help = runner.invoke(cli, ["serve", "--help"])
    assert "--port" in serve_help.output

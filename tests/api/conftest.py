"""API test fixtures shared by every domain: the database (SQLite and PostgreSQL+PostGIS),
the app, a client, and a user factory. Domain fixtures live in each domain's conftest.py.

Each pytest-xdist worker gets its own databases: a SQLite file under tmp and a fresh
PostgreSQL database ``daojia_test_<worker>_<pid>`` with postgis + btree_gist, migrated
once per session to head and emptied after every test.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.ext.asyncio import AsyncSession

from api.app import create_app
from api.auth.models import Role, User
from api.auth.service import hash_password
from api.core import migrate
from api.core.deps import get_http_client
from api.core.settings import Environment, Settings
from api.models import Base
from tests.services import require

PG_HOST = os.environ.get("PGHOST", "127.0.0.1")
PG_PORT = int(os.environ.get("PGPORT", "5432"))
PG_USER = os.environ.get("PGUSER", "postgres")
TABLES = [t.name for t in reversed(Base.metadata.sorted_tables)]
T = TypeVar("T")


async def _pg_admin(sql: list[str], database: str = "postgres") -> None:
    conn = await asyncpg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, database=database, timeout=5
    )
    try:
        for statement in sql:
            await conn.execute(statement)
    finally:
        await conn.close()


def _pg_available() -> tuple[bool, str]:
    try:
        asyncio.run(_pg_admin(["SELECT 1"]))
    except Exception as exc:  # any connection problem means "not available"
        return False, f"PostgreSQL not reachable at {PG_HOST}:{PG_PORT}: {exc}"
    return True, ""


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def db_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, worker_id: str
) -> Iterator[str]:
    """A migrated database URL per backend and xdist worker, dropped at the end."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("db") / "daojia.sqlite3"
        url = f"sqlite+aiosqlite:///{path}"
        migrate.upgrade(url)
        yield url
        return
    ok, reason = _pg_available()
    require(ok, reason)
    name = f"daojia_test_{worker_id}_{os.getpid()}".lower()
    asyncio.run(
        _pg_admin([f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", f"CREATE DATABASE {name}"])
    )
    try:
        try:
            asyncio.run(
                _pg_admin(
                    [
                        "CREATE EXTENSION IF NOT EXISTS postgis",
                        "CREATE EXTENSION IF NOT EXISTS btree_gist",
                    ],
                    database=name,
                )
            )
        except Exception as exc:  # PostGIS package missing on this machine
            require(False, f"PostGIS/btree_gist unavailable: {exc}")
        url = f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
        migrate.upgrade(url)
        yield url
    finally:
        asyncio.run(_pg_admin([f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"]))


async def _empty_pg(url: str) -> None:
    dsn = url.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn)
    try:
        # DELETE, not TRUNCATE: on a handful of rows it is ~50x faster (no new relfilenodes).
        await conn.execute("; ".join(f"DELETE FROM {table}" for table in TABLES))
    finally:
        await conn.close()


def _empty_sqlite(url: str) -> None:
    import sqlite3

    conn = sqlite3.connect(url.removeprefix("sqlite+aiosqlite:///"))
    try:
        for table in TABLES:
            conn.execute(f"DELETE FROM {table}")
        conn.commit()
    finally:
        conn.close()


@pytest.fixture
def db(db_url: str) -> Iterator[str]:
    """The session database, emptied after the test."""
    yield db_url
    if db_url.startswith("sqlite"):
        _empty_sqlite(db_url)
    else:
        asyncio.run(_empty_pg(db_url))


@pytest.fixture
def backend(db: str) -> str:
    """``sqlite`` or ``postgresql`` (for the few dialect-specific assertions)."""
    return "sqlite" if db.startswith("sqlite") else "postgresql"


@pytest.fixture
def settings(db: str, tmp_path: Path) -> Settings:
    """Test settings: cheap Argon2, a fixed secret, the per-session database."""
    return Settings(
        environment=Environment.TEST,
        database_url=db,
        var_dir=tmp_path / "var",
        jwt_secret="test-secret-" + "x" * 40,
        argon2_time_cost=1,
        argon2_memory_kib=8,
        login_max_failures=3,
        login_lockout_s=600,
        wechat_base_url="https://wechat.test",
        qq_base_url="https://qq.test",
        max_body_bytes=64 * 1024,
        log_json=True,
    )


def _no_upstream(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("no outside network in tests", request=request)


@pytest.fixture
def upstream() -> Callable[[httpx.Request], httpx.Response]:
    """Handler for outbound HTTP (WeChat, QQ); domains override it with fakes."""
    return _no_upstream


@pytest.fixture
def app(settings: Settings, upstream: Callable[[httpx.Request], httpx.Response]) -> FastAPI:
    """The app, its outbound HTTP client replaced by ``upstream``."""
    application = create_app(settings)
    fake = httpx.AsyncClient(transport=httpx.MockTransport(upstream))
    application.dependency_overrides[get_http_client] = lambda: fake
    return application


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    """A TestClient with the lifespan running (engine, hasher ...)."""
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def run_db(client: TestClient) -> Callable[[Callable[[AsyncSession], Awaitable[T]]], T]:
    """Run ``fn(session)`` on the app's event loop and database; returns its result."""
    app: Any = client.app

    def run(fn: Callable[[AsyncSession], Awaitable[T]]) -> T:
        async def go() -> T:
            async with app.state.sessionmaker() as session:
                result = await fn(session)
                await session.commit()
                return result

        assert client.portal is not None
        return client.portal.call(go)

    return run


@dataclass
class Account:
    """A user created for a test, with ready-made auth headers."""

    id: int
    phone: str
    password: str
    role: Role
    enterprise_id: int | None
    headers: dict[str, str]


@pytest.fixture
def make_user(client: TestClient, run_db: Any) -> Callable[..., Account]:
    """Create a user of any role directly in the DB and sign in through the API."""
    counter = iter(range(10_000))

    def make(role: Role = Role.CUSTOMER, enterprise_id: int | None = None) -> Account:
        n = next(counter)
        phone = f"139{os.getpid() % 1000:03d}{n:05d}"
        password = f"Passw0rd-{n}"

        async def create(session: AsyncSession) -> int:
            hasher = client.app.state.password_hasher  # type: ignore[attr-defined]
            user = User(
                phone=phone,
                password_hash=await hash_password(hasher, password),
                role=role.value,
                enterprise_id=enterprise_id,
            )
            session.add(user)
            await session.flush()
            return user.id

        user_id = run_db(create)
        resp = client.post("/v1/auth/login", json={"phone": phone, "password": password})
        assert resp.status_code == 200, resp.text
        token = resp.json()["access_token"]
        return Account(
            user_id, phone, password, role, enterprise_id, {"Authorization": f"Bearer {token}"}
        )

    return make


@pytest.fixture
def make_enterprise(run_db: Any) -> Callable[[str], int]:
    """Create an enterprise directly in the DB; returns its id."""
    from api.tenants.models import Enterprise

    def make(code: str) -> int:
        async def create(session: AsyncSession) -> int:
            enterprise = Enterprise(code=code, name=code.upper())
            session.add(enterprise)
            await session.flush()
            return enterprise.id

        return int(run_db(create))

    return make

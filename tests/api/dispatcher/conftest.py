"""Dispatch fixtures: the booking world, a hand-moved clock, and the live layer paired with
the database: SQLite runs on the in-process adapters, PostgreSQL on Redis (own key prefix,
only our keys deleted afterwards; never skipped under CI=true, see tests/services.py).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis_asyncio
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.settings import Environment, Settings
from api.dispatcher.loop import TickReport
from api.dispatcher.models import DispatchOffer
from api.orders import state
from api.orders.models import Order
from api.orders.service import confirm_reservation, lock_order
from api.orders.state import OrderEventType
from tests.api.orders.world import World, book, world
from tests.api.realtime.conftest import REDIS_URL, delete_prefix, redis_reachable
from tests.services import require

__all__ = ["world"]


class Clock:
    """The app's clock in these tests (UTC), moved by hand; starts at the real now."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        """Move forward ``seconds`` and return the new now."""
        self.now += timedelta(seconds=seconds)
        return self.now


@pytest.fixture
def live_kind(backend: str) -> str:
    """``memory`` with SQLite, ``redis`` with PostgreSQL."""
    return "memory" if backend == "sqlite" else "redis"


@pytest.fixture
def redis_prefix(live_kind: str) -> Iterator[str | None]:
    """A unique key prefix on the shared Redis (its keys are deleted afterwards)."""
    if live_kind == "memory":
        yield None
        return
    ok, reason = redis_reachable()
    require(ok, reason)
    prefix = f"djtest:{uuid.uuid4().hex[:12]}:"
    yield prefix

    async def clean() -> None:
        client = redis_asyncio.from_url(REDIS_URL)
        try:
            await delete_prefix(client, prefix)
        finally:
            await client.aclose()

    asyncio.run(clean())


@pytest.fixture
def settings(db: str, tmp_path: Path, redis_prefix: str | None) -> Settings:
    """Test settings plus dispatch knobs; Redis when paired with PostgreSQL."""
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
        redis_url=REDIS_URL if redis_prefix else None,
        redis_prefix=redis_prefix or "dj:",
        dispatch_horizon_s=4 * 24 * 3600,
        offer_timeout_s=30,
        service_code_max_failures=3,
        completion_photo_max_bytes=4096,
    )


@pytest.fixture
def clock(client: TestClient) -> Clock:
    """The app's dispatch clock, moved by the test."""
    c = Clock()
    client.app.state.dispatch_clock = c  # type: ignore[attr-defined]
    return c


def tick(client: TestClient, clock: Clock) -> TickReport:
    """One dispatcher tick at the test clock's now."""
    app: Any = client.app
    assert client.portal is not None
    report: TickReport = client.portal.call(app.state.dispatcher.run_once, clock.now)
    return report


def paid_order(client: TestClient, w: World, run_db: Any, *, hour: int, who: Any = None) -> int:
    """Book an order tomorrow at ``hour`` and mark it paid (待服务, awaiting dispatch)."""
    resp = book(client, w, hour=hour, who=who)
    assert resp.status_code == 201, resp.text
    order_id = int(resp.json()["id"])
    mark_paid(run_db, order_id)
    return order_id


def mark_paid(run_db: Any, order_id: int) -> None:
    """Mark a booked order paid (待服务, awaiting dispatch), its worker hold confirmed."""

    async def pay(session: AsyncSession) -> None:
        order = await lock_order(session, order_id)
        await state.apply(session, order, OrderEventType.PAID, actor_id=None, now=order.created_at)
        await confirm_reservation(session, order, order.created_at)

    run_db(pay)


def order_row(run_db: Any, order_id: int) -> Order:
    """The order as stored now."""

    async def get(session: AsyncSession) -> Order:
        order = await session.get(Order, order_id)
        assert order is not None
        return order

    result: Order = run_db(get)
    return result


def offers_of(run_db: Any, order_id: int) -> list[DispatchOffer]:
    """Every offer row of an order, oldest first."""

    async def get(session: AsyncSession) -> list[DispatchOffer]:
        rows = await session.scalars(
            select(DispatchOffer)
            .where(DispatchOffer.order_id == order_id)
            .order_by(DispatchOffer.id)
        )
        return list(rows)

    result: list[DispatchOffer] = run_db(get)
    return result


def online(client: TestClient, headers: dict[str, str], lat: float, lng: float) -> None:
    """Put a worker online at a WGS-84 point."""
    resp = client.post(
        "/v1/worker/presence", json={"online": True, "lat": lat, "lng": lng}, headers=headers
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["state"] == "online"


def ping(
    client: TestClient, headers: dict[str, str], clock: Clock, lat: float, lng: float
) -> dict[str, Any]:
    """One ping at the clock's now; returns the response body."""
    resp = client.post(
        "/v1/worker/pings",
        json={"pings": [{"lat": lat, "lng": lng, "ts": clock.now.timestamp()}]},
        headers=headers,
    )
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body

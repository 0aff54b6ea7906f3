"""200 concurrent bookings for 20 worker-slots: exactly 20 orders, 180 clear 409s, no overlap.

On PostgreSQL the exclusion constraint decides the races (23P01/40P01 → 409); on
SQLite the booking check and insert are serialised. Requests go through the ASGI
app concurrently (asyncio.gather over httpx) on the app's own event loop.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import and_, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from api.orders.models import Order, WorkerReservation
from api.orders.service import is_slot_conflict
from tests.api.conftest import Account
from tests.api.orders.world import World, build_world

N_WORKERS = 20
N_REQUESTS = 200


@pytest.fixture
def crowded(
    client: TestClient,
    make_user: Callable[..., Account],
    make_enterprise: Callable[[str], int],
    run_db: Any,
) -> World:
    """The world with 20 workers who could all take tomorrow 10:00."""
    return build_world(make_user, make_enterprise, run_db, n_workers=N_WORKERS)


@pytest.mark.slow
def test_200_bookings_for_20_worker_slots(client: TestClient, crowded: World, run_db: Any) -> None:
    w = crowded
    body = {"service_id": w.service_a, "address_id": w.alice_address, "slot_start": w.slot(10)}

    async def storm() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t", timeout=120) as c:
            return await asyncio.gather(
                *(
                    c.post("/v1/orders", json=body, headers=w.alice.headers)
                    for _ in range(N_REQUESTS)
                )
            )

    assert client.portal is not None
    responses = client.portal.call(storm)
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: N_WORKERS, 409: N_REQUESTS - N_WORKERS}, statuses
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"slot_taken"}

    async def check(session: Any) -> tuple[int, int, int, int]:
        live = WorkerReservation.status.in_(("held", "confirmed"))
        n = await session.scalar(select(func.count()).select_from(WorkerReservation).where(live))
        workers = await session.scalar(
            select(func.count(func.distinct(WorkerReservation.worker_id))).where(live)
        )
        a, b = aliased(WorkerReservation), aliased(WorkerReservation)
        overlaps = await session.scalar(
            select(func.count())
            .select_from(a)
            .join(b, and_(a.worker_id == b.worker_id, a.id < b.id))
            .where(a.status.in_(("held", "confirmed")), b.status.in_(("held", "confirmed")),
                   a.starts_at < b.ends_at, b.starts_at < a.ends_at)
        )  # fmt: skip
        orders = await session.scalar(select(func.count()).select_from(Order))
        return int(n), int(workers), int(overlaps), int(orders)

    assert run_db(check) == (N_WORKERS, N_WORKERS, 0, N_WORKERS)


# The exclusion constraint exists on PostgreSQL only (SQLite serialises bookings instead),
# so this test runs on that backend alone rather than skipping on SQLite.
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_postgres_exclusion_constraint_rejects_overlap(
    client: TestClient, crowded: World, run_db: Any, backend: str
) -> None:
    """Without the service's pre-check, the database itself refuses a second live hold."""
    assert backend == "postgresql"
    ids = []
    for hour in (10, 15):
        body = {"service_id": crowded.service_a, "address_id": crowded.alice_address,
                "slot_start": crowded.slot(hour)}  # fmt: skip
        resp = client.post("/v1/orders", json=body, headers=crowded.alice.headers)
        assert resp.status_code == 201
        ids.append(resp.json()["id"])

    async def overlap(session: Any) -> str:
        first, second = [
            await session.scalar(select(WorkerReservation).where(WorkerReservation.order_id == i))
            for i in ids
        ]
        second.worker_id = first.worker_id
        second.starts_at = first.starts_at
        try:
            await session.flush()
        except IntegrityError as exc:
            await session.rollback()
            return "conflict" if is_slot_conflict(exc) else f"other: {exc}"
        return "no conflict"

    assert run_db(overlap) == "conflict"


def test_every_worker_of_a_slot_is_bookable_beyond_one_candidate_chunk(
    client: TestClient,
    make_user: Callable[..., Account],
    make_enterprise: Callable[[str], int],
    run_db: Any,
) -> None:
    # More eligible workers than one booking pass reads the days of (``BOOKING_CHUNK``):
    # when a pass finds nobody free the booking moves on, and the slot fills completely.
    from api.orders.slots import BOOKING_CHUNK

    n = BOOKING_CHUNK + 6
    w = build_world(make_user, make_enterprise, run_db, n_workers=n)
    body = {"service_id": w.service_a, "address_id": w.alice_address, "slot_start": w.slot(10)}
    codes = [
        client.post("/v1/orders", json=body, headers=w.alice.headers).status_code
        for _ in range(n + 1)
    ]
    assert codes == [201] * n + [409]

    async def held_workers(session: Any) -> int:
        held = WorkerReservation.status == "held"
        distinct = func.count(func.distinct(WorkerReservation.worker_id))
        return int(await session.scalar(select(distinct).where(held)))

    assert run_db(held_workers) == n

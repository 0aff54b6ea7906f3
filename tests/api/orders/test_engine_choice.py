"""One worker choice: the slot list and the booking ask the same engine; holds end with the job."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select, update

from api.core.db import utcnow
from api.orders import state
from api.orders.models import Order, WorkerReservation
from api.orders.state import OrderEventType
from api.tenants.models import Worker
from tests.api.orders.world import World, book, local_slot, pay_sandbox


def _deactivate(run_db: Any, worker_ids: list[int]) -> None:
    async def go(session: Any) -> None:
        await session.execute(
            update(Worker).where(Worker.id.in_(worker_ids)).values(is_active=False)
        )

    run_db(go)


def _slots(client: TestClient, world: World) -> dict[str, int]:
    resp = client.get(
        "/v1/orders/slots",
        params={"service_id": world.service_a, "date": world.day.isoformat(),
                "address_id": world.alice_address},
        headers=world.alice.headers,
    )  # fmt: skip
    assert resp.status_code == 200, resp.text
    return {s["start"]: s["available_workers"] for s in resp.json()["slots"]}


def _start(world: World, hour: int) -> Any:
    return local_slot(world.day, hour)


def _listed(slots: dict[str, int], world: World, hour: int) -> bool:
    want = _start(world, hour)
    return any(datetime.fromisoformat(s) == want for s in slots)


def test_a_slot_whose_only_worker_is_taken_is_no_longer_listed(
    client: TestClient, world: World, run_db: Any
) -> None:
    _deactivate(run_db, [wid for wid, _ in world.workers_a[1:]])
    only = world.workers_a[0][0]
    before = _slots(client, world)
    assert _listed(before, world, 10)
    assert set(before.values()) == {1}
    booked = book(client, world, hour=10)
    assert booked.status_code == 201, booked.text
    assert booked.json()["worker"]["id"] == only
    after = _slots(client, world)
    assert not _listed(after, world, 10)
    # The 2-hour visit and the rides around it also rule out the neighbouring starts.
    assert not _listed(after, world, 11)
    again = book(client, world, hour=10)
    assert again.status_code == 409
    assert again.json()["code"] == "slot_taken"
    # Whatever is still listed can be booked, by that same worker.
    first = min(after)
    resp = client.post(
        "/v1/orders",
        json={"service_id": world.service_a, "address_id": world.alice_address,
              "slot_start": first},
        headers=world.alice.headers,
    )  # fmt: skip
    assert resp.status_code == 201, resp.text
    assert resp.json()["worker"]["id"] == only


def test_the_booking_holds_the_worker_the_engine_chooses(
    client: TestClient, world: World, run_db: Any
) -> None:
    near, _ = world.workers_a[0]
    far, _ = world.workers_a[2]
    _deactivate(run_db, [world.workers_a[1][0]])

    async def move_far(session: Any) -> None:
        # ~6.7 km north: still in reach, but a much longer ride than the near worker's.
        await session.execute(update(Worker).where(Worker.id == far).values(home_lat=31.28))

    run_db(move_far)
    assert _slots(client, world)  # both workers are counted at 10:00
    first = book(client, world, hour=10)
    assert first.status_code == 201, first.text
    assert first.json()["worker"]["id"] == near
    second = book(client, world, hour=10)
    assert second.status_code == 201, second.text
    assert second.json()["worker"]["id"] == far

    async def holds(session: Any) -> list[tuple[int, Any, Any]]:
        rows = await session.execute(
            select(WorkerReservation.worker_id, WorkerReservation.starts_at,
                   WorkerReservation.ends_at).order_by(WorkerReservation.id)
        )  # fmt: skip
        return [tuple(r) for r in rows]

    got = run_db(holds)
    start = _start(world, 10)
    for _, starts_at, ends_at in got:
        # The hold is the visit itself (no fixed buffer): two hours from the planned start,
        # which lies in the booked window.
        assert start <= starts_at.replace(tzinfo=start.tzinfo) <= start.replace(minute=30)
        assert (ends_at - starts_at).total_seconds() == 2 * 3600
    assert [g[0] for g in got] == [near, far]


def _in_service(run_db: Any, order_id: int, worker_id: int) -> None:
    async def go(session: Any) -> None:
        order = await session.get(Order, order_id)
        order.worker_id = worker_id
        now = utcnow()
        for event in (E.ACCEPTED, E.DEPARTED, E.ARRIVED, E.STARTED):
            await state.apply(session, order, event, actor_id=None, now=now)

    E = OrderEventType
    run_db(go)


def test_a_finished_job_frees_its_worker_and_staff_hear_it_addressed_to_them(
    client: TestClient, world: World, run_db: Any
) -> None:
    alice = book(client, world, hour=10).json()
    busy_worker = alice["worker"]["id"]
    assert pay_sandbox(client, world, alice["id"]) == "paid"
    _in_service(run_db, alice["id"], busy_worker)
    bob = book(client, world, hour=10, who=world.bob)
    assert bob.status_code == 201, bob.text
    assert bob.json()["worker"]["id"] != busy_worker
    assert pay_sandbox(client, world, bob.json()["id"], who=world.bob) == "paid"
    assign = f"/v1/enterprise/orders/{bob.json()['id']}/assign"
    body = {"worker_id": busy_worker}
    taken = client.post(assign, json=body, headers=world.staff_a.headers)
    assert taken.status_code == 409
    assert taken.json()["code"] == "worker_booked"
    assert taken.json()["message"] == "该服务人员在此时段已有预约，请选择其他服务人员或时间。"
    english = client.post(
        assign, json=body, headers={**world.staff_a.headers, "Accept-Language": "en"}
    )
    assert english.json()["message"].startswith("This worker is booked at that time")

    account = dict(world.workers_a)[busy_worker]
    done = client.post(
        f"/v1/worker/orders/{alice['id']}/complete", json={}, headers=account.headers
    )
    assert done.status_code == 200, done.text

    async def status(session: Any) -> str:
        stmt = select(WorkerReservation.status).where(WorkerReservation.order_id == alice["id"])
        return str(await session.scalar(stmt))

    assert run_db(status) == "released"
    moved = client.post(assign, json=body, headers=world.staff_a.headers)
    assert moved.status_code == 200, moved.text
    assert moved.json()["worker_id"] == busy_worker


def test_a_booking_reads_its_first_workers_with_its_context_only_while_the_guess_holds(
    client: TestClient, world: World, run_db: Any
) -> None:
    """The candidates a booking found are read with the next one's context (one round trip
    fewer); once the roster changes (here: a skill lost) that guess is not used."""
    _deactivate(run_db, [world.workers_a[1][0]])
    first = book(client, world, hour=10)
    assert first.status_code == 201, first.text
    took = first.json()["worker"]["id"]
    other = next(w for w, _ in world.workers_a if w not in (took, world.workers_a[1][0]))
    # The same kind of booking later that day: the guess holds, and the worker already at
    # the customer's address adds the least travel.
    again = book(client, world, hour=14)
    assert again.status_code == 201, again.text
    assert again.json()["worker"]["id"] == took

    async def drop_skill(session: Any) -> None:
        await session.execute(update(Worker).where(Worker.id == took).values(skills=["repair"]))

    run_db(drop_skill)
    # The guessed candidates still name ``took``, nearest and cheapest: reading them would
    # book a worker without the service's skill.
    third = book(client, world, hour=17)
    assert third.status_code == 201, third.text
    assert third.json()["worker"]["id"] == other

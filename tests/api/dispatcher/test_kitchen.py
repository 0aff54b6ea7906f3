"""One dispatch kitchen: the real dispatcher over HTTP fills every cost input from the
tables and decides with each enterprise's own settings (issue 14's acceptance)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth.models import Role
from api.dispatcher.models import DispatchDecision
from api.dispatcher.positions import region_of
from api.orders.models import Order, WorkerReservation
from api.orders.state import OrderStatus
from api.tenants.models import Worker
from tests.api.dispatcher.conftest import Clock, mark_paid, offers_of, online, paid_order, tick
from tests.api.orders.world import BOX_A, SHANGHAI, World, _area

ORDER_AT = (31.23, 121.48)  # Alice's address


def _reserved(run_db: Any, order_id: int) -> int:
    async def get(session: AsyncSession) -> int:
        res = await session.scalar(
            select(WorkerReservation).where(WorkerReservation.order_id == order_id)
        )
        assert res is not None
        return int(res.worker_id)

    return int(run_db(get))


def _others(world: World, but: int) -> list[tuple[int, Any]]:
    return [(wid, acc) for wid, acc in world.workers_a if wid != but]


def _decision(run_db: Any, order_id: int) -> DispatchDecision:
    async def get(session: AsyncSession) -> DispatchDecision:
        rows = await session.scalars(
            select(DispatchDecision)
            .where(DispatchDecision.order_id == order_id)
            .order_by(DispatchDecision.id)
        )
        return list(rows)[-1]

    return run_db(get)  # type: ignore[no-any-return]


def _jobs_today(run_db: Any, worker_id: int, template_order: int, clock: Clock, n: int) -> None:
    """Give ``worker_id`` ``n`` completed jobs earlier today (copies of an order's row)."""

    async def add(session: AsyncSession) -> None:
        src = await session.get(Order, template_order)
        assert src is not None
        start = clock.now - timedelta(minutes=5)
        for i in range(n):
            session.add(
                Order(
                    order_no=f"DJTODAY{worker_id}x{i}",
                    customer_id=src.customer_id,
                    enterprise_id=src.enterprise_id,
                    service_id=src.service_id,
                    worker_id=worker_id,
                    status=OrderStatus.COMPLETED.value,
                    dispatch_status=None,
                    slot_start=start,
                    slot_end=start + timedelta(minutes=1),
                    duration_min=1,
                    price_fen=src.price_fen,
                    amount_fen=src.amount_fen,
                    lat=src.lat,
                    lng=src.lng,
                    completed_at=start,
                )
            )

    run_db(add)


def _store(client: TestClient, headers: dict[str, str], **values: Any) -> None:
    resp = client.put("/v1/enterprise/dispatch-settings", json=values, headers=headers)
    assert resp.status_code == 200, resp.text


def _equidistant_city(
    client: TestClient, world: World, run_db: Any, clock: Clock, fairness_per_order: float
) -> tuple[int, int, int]:
    """A paid order whose reserved worker went off duty, and two workers at the same
    distance from it (north and south); the lower id has three jobs today. Returns
    (order, loaded worker, free worker) after one dispatcher tick."""
    oid = paid_order(client, world, run_db, hour=10)
    (busy, busy_acc), (free, free_acc) = sorted(_others(world, _reserved(run_db, oid)))
    _jobs_today(run_db, busy, oid, clock, 3)
    _store(client, world.staff_a.headers, weights={"fairness_per_order": fairness_per_order})
    online(client, busy_acc.headers, ORDER_AT[0] + 0.01, ORDER_AT[1])
    online(client, free_acc.headers, ORDER_AT[0] - 0.01, ORDER_AT[1])
    assert tick(client, clock).offered == 1
    return oid, busy, free


def test_fairness_sends_the_offer_to_the_worker_with_fewer_jobs_today(
    client: TestClient, world: World, run_db: Any, clock: Clock
) -> None:
    oid, busy, free = _equidistant_city(client, world, run_db, clock, 120.0)
    assert offers_of(run_db, oid)[0].worker_id == free
    decision = _decision(run_db, oid)
    assert decision.cost["worker_id"] == free
    assert decision.cost["terms"]["reputation"] > 0  # stored rating 4.8 of 5
    loaded = next(a for a in decision.alternatives if a["worker_id"] == busy)
    assert loaded["terms"]["fairness"] > 0
    assert decision.cost["terms"]["fairness"] == 0


def test_without_fairness_the_tie_goes_the_other_way(
    client: TestClient, world: World, run_db: Any, clock: Clock
) -> None:
    """The control: the same city with fairness off offers the loaded worker (lower id)."""
    oid, busy, _free = _equidistant_city(client, world, run_db, clock, 0.0)
    assert offers_of(run_db, oid)[0].worker_id == busy


def test_rebook_same_worker_gets_the_previous_worker_when_reachable(
    client: TestClient, world: World, run_db: Any, clock: Clock
) -> None:
    """A rebook ("same worker again") reserves the previous worker, and the dispatcher
    offers the new order to them even with other workers closer."""
    first = paid_order(client, world, run_db, hour=10)
    previous = world.workers_a[2][0]

    async def done_by_previous(session: AsyncSession) -> None:
        order = await session.get(Order, first)
        assert order is not None
        order.worker_id, order.status = previous, OrderStatus.COMPLETED.value
        order.dispatch_status, order.completed_at = None, clock.now
        res = await session.scalar(
            select(WorkerReservation).where(WorkerReservation.order_id == first)
        )
        assert res is not None
        res.status = "released"

    run_db(done_by_previous)
    resp = client.post(
        f"/v1/orders/{first}/rebook",
        json={"slot_start": world.slot(14)},
        headers=world.alice.headers,
    )
    assert resp.status_code == 201, resp.text
    again = int(resp.json()["id"])
    assert _reserved(run_db, again) == previous
    mark_paid(run_db, again)
    for wid, acc in world.workers_a:
        far = 0.02 if wid == previous else 0.002
        online(client, acc.headers, ORDER_AT[0] + far, ORDER_AT[1])
    assert tick(client, clock).offered == 1
    assert offers_of(run_db, again)[0].worker_id == previous
    assert _decision(run_db, again).cost["terms"]["preferred_worker"] < 0


def _set_shift(run_db: Any, worker_id: int, clock: Clock, minutes_left: int) -> None:
    """The worker's only shift: from an hour ago (local) to ``minutes_left`` from now, as
    a shift to midnight and one from midnight when it runs past midnight."""
    local = clock.now.astimezone(SHANGHAI)
    now_min = local.hour * 60 + local.minute
    end = now_min + minutes_left
    shifts = [
        {
            "weekday": local.weekday(),
            "start_min": max(0, now_min - 60),
            "end_min": min(24 * 60, end),
        }
    ]
    if end > 24 * 60:
        shifts.append(
            {"weekday": (local.weekday() + 1) % 7, "start_min": 0, "end_min": end - 24 * 60}
        )

    async def put(session: AsyncSession) -> None:
        worker = await session.get(Worker, worker_id)
        assert worker is not None
        worker.shifts = shifts

    run_db(put)


def test_a_worker_whose_shift_ends_before_the_job_is_never_offered_it(
    client: TestClient, world: World, run_db: Any, clock: Clock
) -> None:
    oid = paid_order(client, world, run_db, hour=10)  # a 2 h job
    only, acc = world.workers_a[0]
    for wid, _ in world.workers_a:
        if wid != only:
            _set_shift(run_db, wid, clock, 0)  # off today
    _set_shift(run_db, only, clock, 30)
    online(client, acc.headers, ORDER_AT[0] + 0.002, ORDER_AT[1])
    assert tick(client, clock).offered == 0
    assert offers_of(run_db, oid) == []
    _set_shift(run_db, only, clock, 8 * 60)
    clock.advance(5)
    assert tick(client, clock).offered == 1
    assert offers_of(run_db, oid)[0].worker_id == only


def test_each_enterprise_decides_its_orders_in_a_shared_region_by_its_own_weights(
    client: TestClient, world: World, run_db: Any, clock: Clock, make_user: Any
) -> None:
    """Enterprise B serves A's area too; in that one region A weighs travel only and B
    weighs rating heavily: A's order goes to its nearest worker, B's to its best rated."""
    b_far = make_user(Role.WORKER, world.ent_b)

    async def setup(session: AsyncSession) -> int:
        session.add(_area(world.ent_b, "B in A", BOX_A))
        near_b = await session.get(Worker, world.worker_b[0])
        assert near_b is not None
        near_b.rating = 3.0
        far_b = Worker(
            user_id=b_far.id, enterprise_id=world.ent_b, display_name="B2", skills=["cleaning"],
            shifts=near_b.shifts, rating=5.0, home_lat=ORDER_AT[0], home_lng=ORDER_AT[1],
            home_cell=near_b.home_cell,
        )  # fmt: skip
        session.add(far_b)
        for wid, rating in zip((w for w, _ in world.workers_a), (3.0, 5.0, 5.0), strict=True):
            worker = await session.get(Worker, wid)
            assert worker is not None
            worker.rating = rating
        await session.flush()
        return int(far_b.id)

    far_b_id = run_db(setup)
    # Who the bookings reserved does not matter here: both boards weigh it 0.
    _store(
        client,
        world.staff_a.headers,
        weights={"rating_per_star": 0.0, "reputation": 0.0, "preferred_worker": 0.0},
    )
    _store(
        client,
        world.staff_b.headers,
        weights={"rating_per_star": 5000.0, "preferred_worker": 0.0},
    )
    order_a = paid_order(client, world, run_db, hour=10)
    resp = client.post(
        "/v1/orders",
        json={
            "service_id": world.service_b,
            "address_id": world.alice_address,
            "slot_start": world.slot(11),
        },
        headers=world.alice.headers,
    )
    assert resp.status_code == 201, resp.text
    order_b = int(resp.json()["id"])
    mark_paid(run_db, order_b)
    assert region_of(*ORDER_AT) == region_of(ORDER_AT[0] + 0.03, ORDER_AT[1])
    a_near, a_far, _ = world.workers_a
    online(client, a_near[1].headers, ORDER_AT[0] + 0.002, ORDER_AT[1])  # rating 3, near
    online(client, a_far[1].headers, ORDER_AT[0] + 0.03, ORDER_AT[1])  # rating 5, far
    online(client, world.worker_b[1].headers, ORDER_AT[0] + 0.002, ORDER_AT[1] + 0.001)
    online(client, b_far.headers, ORDER_AT[0] + 0.03, ORDER_AT[1] + 0.001)
    assert tick(client, clock).offered == 2
    assert offers_of(run_db, order_a)[0].worker_id == a_near[0]
    assert offers_of(run_db, order_b)[0].worker_id == far_b_id


def test_an_order_nobody_can_start_in_time_goes_to_staff(
    client: TestClient, world: World, run_db: Any, clock: Clock
) -> None:
    """Past its latest start (the booked window + ``dispatch_max_lateness_s``) the core
    escalates the order: it leaves dispatch for the board, where staff assign it."""
    oid = paid_order(client, world, run_db, hour=10)
    assert tick(client, clock).offered == 0  # nobody on duty

    async def slot(session: AsyncSession) -> Any:
        order = await session.get(Order, oid)
        assert order is not None
        return order.slot_start

    clock.now = run_db(slot) + timedelta(hours=2)
    report = tick(client, clock)
    assert report.escalated == 1
    assert _decision(run_db, oid).reason == "escalated:latest_start_passed"
    board = client.get(
        "/v1/enterprise/orders",
        params={"dispatch_status": "escalated"},
        headers=world.staff_a.headers,
    )
    assert board.status_code == 200, board.text
    assert [o["id"] for o in board.json()["items"]] == [oid]
    wid, acc = world.workers_a[0]
    online(client, acc.headers, ORDER_AT[0], ORDER_AT[1])
    assert tick(client, clock).offered == 0  # escalated orders are no longer dispatched
    resp = client.post(
        f"/v1/enterprise/orders/{oid}/assign",
        json={"worker_id": wid},
        headers=world.staff_a.headers,
    )
    assert resp.status_code == 200, resp.text

"""Day plans over HTTP: a seeded day planned within windows and shifts, repair after a sick
call, pins, the worker's planned day, teams, and every bad input (nothing changed)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.plans.models import DayPlanRecord
from tests.api.dispatcher.conftest import order_row, paid_order
from tests.api.orders.world import World, local_slot

BODY_KEYS = {"stop_s": 0.5, "seed": 1}


def _seed_day(client: TestClient, world: World, run_db: Any) -> list[int]:
    """Four paid bookings tomorrow (two customers, morning and afternoon)."""
    return [
        paid_order(client, world, run_db, hour=9),
        paid_order(client, world, run_db, hour=9, who=world.bob),
        paid_order(client, world, run_db, hour=13),
        paid_order(client, world, run_db, hour=15, who=world.bob),
    ]


def _replan(client: TestClient, world: World, **extra: Any) -> Any:
    return client.post(
        "/v1/enterprise/plans",
        json={"day": world.day.isoformat(), **BODY_KEYS, **extra},
        headers=world.staff_a.headers,
    )


def _dt(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _plan_count(run_db: Any) -> int:
    async def count(session: AsyncSession) -> int:
        return int(await session.scalar(select(func.count(DayPlanRecord.id))) or 0)

    result: int = run_db(count)
    return result


def test_plan_a_seeded_day_within_windows_and_shifts(
    client: TestClient, world: World, run_db: Any
) -> None:
    oids = _seed_day(client, world, run_db)
    resp = _replan(client, world)
    assert resp.status_code == 201, resp.text
    plan = resp.json()
    assert plan["version"] == 1
    assert plan["coord_type"] == "gcj02"
    assert plan["dropped"] == []
    routed = {s["order_id"]: r["worker_id"] for r in plan["routes"] for s in r["stops"]}
    assert set(routed) == set(oids)
    shift = (local_slot(world.day, 8), local_slot(world.day, 20))
    for route in plan["routes"]:
        for stop in route["stops"]:
            order = order_row(run_db, stop["order_id"])
            start = _dt(stop["start"])
            assert order.slot_start.timestamp() <= start.timestamp() <= order.slot_end.timestamp()
            assert shift[0] <= start
            assert _dt(stop["end"]) <= shift[1]
        if route["stops"]:
            assert shift[0] <= _dt(route["depart"])
            assert _dt(route["finish"]) <= shift[1]
            # Legs: home -> each stop -> home, arriving where the stops are.
            legs = route["legs"]
            assert len(legs) == len(route["stops"]) + 1
            assert [leg["to_order_id"] for leg in legs] == [
                *(s["order_id"] for s in route["stops"]),
                None,
            ]
            assert all(leg["travel_s"] >= 0 for leg in legs)
    # The plan's choices are written: every routed order is its planned worker's now.
    for oid, wid in routed.items():
        row = order_row(run_db, oid)
        assert row.worker_id == wid
        assert row.dispatch_status == "accepted"
    got = client.get(
        "/v1/enterprise/plans",
        params={"day": world.day.isoformat(), "coord_type": "wgs84"},
        headers=world.staff_a.headers,
    )
    assert got.status_code == 200
    assert got.json()["version"] == 1
    assert got.json()["coord_type"] == "wgs84"
    stop = got.json()["routes"][0]["stops"] or got.json()["routes"][1]["stops"]
    assert abs(stop[0]["lat"] - order_row(run_db, stop[0]["order_id"]).lat) < 1e-9


def test_repair_after_a_sick_call_moves_only_that_workers_visits(
    client: TestClient, world: World, run_db: Any
) -> None:
    _seed_day(client, world, run_db)
    plan = _replan(client, world).json()
    before = {s["order_id"]: r["worker_id"] for r in plan["routes"] for s in r["stops"]}
    sick = next(r["worker_id"] for r in plan["routes"] if r["stops"])
    resp = client.post(
        "/v1/enterprise/plans/disruptions",
        json={
            "day": world.day.isoformat(),
            "kind": "worker_absent",
            "worker_id": sick,
            "at": local_slot(world.day, 7).isoformat(),
            **BODY_KEYS,
        },
        headers=world.staff_a.headers,
    )
    assert resp.status_code == 201, resp.text
    repaired = resp.json()
    assert repaired["version"] == 2
    assert repaired["reason"] == "worker_absent"
    after = {s["order_id"]: r["worker_id"] for r in repaired["routes"] for s in r["stops"]}
    for oid, wid in before.items():
        if wid != sick:
            assert after.get(oid) == wid, oid
        else:
            assert after.get(oid) != sick
    moved = {c["order_id"] for c in repaired["changes"] if c["kind"] == "reassigned"}
    assert moved
    assert moved <= {o for o, w in before.items() if w == sick}
    for oid in moved:
        assert order_row(run_db, oid).worker_id == after[oid]


def test_pin_is_respected_and_worker_day_shows_planned_order(
    client: TestClient, world: World, run_db: Any
) -> None:
    oids = _seed_day(client, world, run_db)
    # Reservations still end a fixed buffer after the booked duration: pin to a worker
    # who does not hold the 13:00 visit, whose hold would overlap a 15:20 start.
    busy = order_row(run_db, oids[2]).worker_id
    target = next(w for w, _ in world.workers_a if w != busy)
    start = local_slot(world.day, 15, 20)
    resp = client.post(
        "/v1/enterprise/plans/pins",
        json={
            "day": world.day.isoformat(),
            "order_id": oids[3],
            "worker_id": target,
            "start": start.isoformat(),
            **BODY_KEYS,
        },
        headers=world.staff_a.headers,
    )
    assert resp.status_code == 201, resp.text
    plan = resp.json()
    route = next(r for r in plan["routes"] if r["worker_id"] == target)
    stop = next(s for s in route["stops"] if s["order_id"] == oids[3])
    assert _dt(stop["start"]) == start
    assert plan["pins"] == [{"order_id": oids[3], "worker_id": target, "start": stop["start"]}]
    # The pin survives the next re-plan.
    again = _replan(client, world).json()
    route = next(r for r in again["routes"] if r["worker_id"] == target)
    assert oids[3] in [s["order_id"] for s in route["stops"]]
    # Each worker's own day is the planned route, in the plan's order.
    for wid, account in world.workers_a:
        mine = next(r for r in again["routes"] if r["worker_id"] == wid)
        day = client.get(
            "/v1/worker/day", params={"on": world.day.isoformat()}, headers=account.headers
        )
        assert day.status_code == 200, day.text
        body = day.json()
        assert body["planned"] is True
        planned = [s["order_id"] for s in mine["stops"]]
        assert [o["id"] for o in body["orders"]] == planned
        assert [s["order_id"] for s in body["route"]] == planned


def test_worker_day_without_a_plan_is_by_slot(
    client: TestClient, world: World, run_db: Any
) -> None:
    paid_order(client, world, run_db, hour=10)
    _wid, account = world.workers_a[0]
    day = client.get(
        "/v1/worker/day", params={"on": world.day.isoformat()}, headers=account.headers
    ).json()
    assert day["planned"] is False
    assert day["route"] == []


def test_bad_input_is_refused_and_changes_nothing(
    client: TestClient, world: World, run_db: Any
) -> None:
    oids = _seed_day(client, world, run_db)
    headers = world.staff_a.headers
    day = world.day.isoformat()
    assert (
        client.get("/v1/enterprise/plans", params={"day": day}, headers=headers).json()["code"]
        == "plan_not_found"
    )
    _replan(client, world)
    stored = _plan_count(run_db)
    rows = {oid: order_row(run_db, oid).worker_id for oid in oids}
    window_end = order_row(run_db, oids[0]).slot_end
    cases: list[tuple[str, dict[str, Any], int, str, str | None]] = [
        (
            "/v1/enterprise/plans/pins",
            {"order_id": oids[0], "start": (window_end + timedelta(minutes=1)).isoformat()},
            422, "pin_outside_window", "start",
        ),
        ("/v1/enterprise/plans/pins", {"order_id": oids[0]}, 422, "pin_empty", "worker_id"),
        (
            "/v1/enterprise/plans/pins",
            {"order_id": oids[0], "worker_id": world.worker_b[0]},
            422, "worker_not_in_plan", "worker_id",
        ),
        (
            "/v1/enterprise/plans/pins",
            {"order_id": 10**9, "worker_id": world.workers_a[0][0]},
            404, "visit_not_in_plan", "order_id",
        ),
        (
            "/v1/enterprise/plans/disruptions",
            {"kind": "worker_absent", "worker_id": world.worker_b[0]},
            422, "worker_not_in_plan", "worker_id",
        ),
        (
            "/v1/enterprise/plans/disruptions",
            {"kind": "visit_overran", "order_id": oids[0], "extra_s": 600},
            409, "bad_disruption", None,
        ),
        ("/v1/enterprise/plans", {"team_id": 10**9}, 404, "team_not_found", "team_id"),
    ]  # fmt: skip
    for url, extra, status, code, field in cases:
        resp = client.post(url, json={"day": day, **BODY_KEYS, **extra}, headers=headers)
        assert resp.status_code == status, (url, extra, resp.text)
        assert resp.json()["code"] == code
        if field is not None:
            assert resp.json()["details"]["field"] == field
    # A day long past, and a translated message.
    past = (world.day - timedelta(days=30)).isoformat()
    resp = client.post(
        "/v1/enterprise/plans",
        json={"day": past, **BODY_KEYS},
        headers={**headers, "Accept-Language": "en"},
    )
    assert resp.status_code == 422
    assert resp.json()["code"] == "day_out_of_range"
    assert resp.json()["details"]["field"] == "day"
    zh = client.post("/v1/enterprise/plans", json={"day": past}, headers=headers).json()
    assert zh["message"] != resp.json()["message"]
    # The time limit is capped.
    assert _replan(client, world, stop_s=60).status_code == 422
    # Another enterprise's team: 404, and B's staff cannot re-plan A's team either.
    team = client.post(
        "/v1/enterprise/teams",
        json={"name": "早班", "worker_ids": [world.workers_a[0][0]]},
        headers=headers,
    ).json()
    resp = client.post(
        "/v1/enterprise/plans",
        json={"day": day, "team_id": team["id"], **BODY_KEYS},
        headers=world.staff_b.headers,
    )
    assert resp.status_code == 404
    assert resp.json()["code"] == "team_not_found"
    assert _plan_count(run_db) == stored
    assert {oid: order_row(run_db, oid).worker_id for oid in oids} == rows


def test_team_crud_and_a_team_plan(client: TestClient, world: World, run_db: Any) -> None:
    headers = world.staff_a.headers
    w1, w2 = world.workers_a[0][0], world.workers_a[1][0]
    resp = client.post(
        "/v1/enterprise/teams", json={"name": "东区", "worker_ids": [w1, w2]}, headers=headers
    )
    assert resp.status_code == 201, resp.text
    team = resp.json()
    assert team["worker_ids"] == [w1, w2]
    dup = client.post("/v1/enterprise/teams", json={"name": "东区"}, headers=headers)
    assert dup.status_code == 409
    assert dup.json()["code"] == "team_name_taken"
    bad = client.post(
        "/v1/enterprise/teams",
        json={"name": "西区", "worker_ids": [world.worker_b[0]]},
        headers=headers,
    )
    assert bad.status_code == 422
    assert bad.json()["details"]["field"] == "worker_ids"
    put = client.put(
        f"/v1/enterprise/teams/{team['id']}",
        json={"name": "东区一组", "worker_ids": [w1]},
        headers=headers,
    )
    assert put.status_code == 200
    assert put.json()["worker_ids"] == [w1]
    assert client.get("/v1/enterprise/teams", headers=world.staff_b.headers).json() == []
    assert (
        client.get(f"/v1/enterprise/teams/{team['id']}", headers=world.staff_b.headers).status_code
        == 404
    )
    paid_order(client, world, run_db, hour=10)
    plan = _replan(client, world, team_id=team["id"])
    assert plan.status_code == 201, plan.text
    assert [r["worker_id"] for r in plan.json()["routes"]] == [w1]
    assert plan.json()["team_id"] == team["id"]
    gone = client.delete(f"/v1/enterprise/teams/{team['id']}", headers=headers)
    assert gone.status_code == 204
    assert client.get(f"/v1/enterprise/teams/{team['id']}", headers=headers).status_code == 404

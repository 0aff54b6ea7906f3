"""Worker profiles over HTTP: a worker added by staff gets a profile, goes on duty and is
offered a paid order by the embedded dispatcher; every invalid value is a translated 4xx
naming the field and changes nothing; schedule change requests; tenancy.
On SQLite + in-process live layer and on PostgreSQL + Redis."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.geo_edge import CoordType, from_wgs84
from api.enterprise.models import WorkerScheduleRequest
from api.tenants.models import Worker
from tests.api.conftest import Account
from tests.api.dispatcher.conftest import Clock, online, paid_order, ping, tick
from tests.api.orders.world import HOME_A, World

NEAR = (31.225, 121.475)  # ~1 km from Alice's address (31.23, 121.48)
WHOLE_WEEK = [{"weekday": d, "start_min": 0, "end_min": 1440} for d in range(7)]
EN = {"Accept-Language": "en"}


def _staff_path(enterprise_id: int, suffix: str = "") -> str:
    return f"/v1/enterprises/{enterprise_id}/workers{suffix}"


def _new_member(client: TestClient, staff: Account, enterprise_id: int, phone: str) -> Account:
    """A worker account added by staff through the members API, signed in."""
    password = "Worker-2026x"
    resp = client.post(
        f"/v1/enterprises/{enterprise_id}/members",
        json={"role": "worker", "phone": phone, "password": password, "display_name": "新师傅"},
        headers=staff.headers,
    )
    assert resp.status_code == 201, resp.text
    user = resp.json()
    login = client.post("/v1/auth/login", json={"phone": phone, "password": password})
    assert login.status_code == 200, login.text
    token = login.json()["access_token"]
    return Account(
        user["id"], phone, password, user["role"], enterprise_id,
        {"Authorization": f"Bearer {token}"},
    )  # fmt: skip


def _profile_body(user_id: int, **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "user_id": user_id,
        "display_name": "王师傅",
        "skills": ["cleaning"],
        "shifts": WHOLE_WEEK,
        "breaks": [{"weekday": 2, "start_min": 720, "end_min": 780}],
        "home": {"lat": HOME_A[0], "lng": HOME_A[1]},
        "transport_mode": "ebike",
    }
    body.update(over)
    return body


def _count(run_db: Any, model: Any) -> int:
    async def go(session: AsyncSession) -> int:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)

    result: int = run_db(go)
    return result


# ------------------------------------------------------------------ acceptance


def test_a_worker_added_by_staff_goes_online_and_is_offered_an_order(
    client: TestClient, bare_world: World, clock: Clock, run_db: Any
) -> None:
    w = bare_world
    member = _new_member(client, w.staff_a, w.ent_a, "13911112222")
    # Without a profile the account cannot work.
    resp = client.post(
        "/v1/worker/presence", json={"online": True, "lat": NEAR[0], "lng": NEAR[1]},
        headers=member.headers,
    )  # fmt: skip
    assert resp.status_code == 403
    assert resp.json()["code"] == "not_a_worker"

    # The home base is sent in GCJ-02 (a WeChat map pick) and stored as WGS-84.
    gcj = from_wgs84(HOME_A[0], HOME_A[1], CoordType.GCJ02)
    body = _profile_body(
        member.id,
        home={"lat": gcj[0], "lng": gcj[1], "coord_type": "gcj02"},
        transport_mode="car",
    )
    resp = client.post(_staff_path(w.ent_a), json=body, headers=w.staff_a.headers)
    assert resp.status_code == 201, resp.text
    profile = resp.json()
    assert profile["user_id"] == member.id
    assert profile["skills"] == ["cleaning"]
    assert profile["transport_mode"] == "car"
    assert profile["reputation"] is None
    assert profile["home"]["lat"] == pytest.approx(HOME_A[0], abs=1e-5)
    assert profile["home"]["lng"] == pytest.approx(HOME_A[1], abs=1e-5)
    worker_id = profile["id"]

    online(client, member.headers, *NEAR)
    clock.advance(5)
    assert ping(client, member.headers, clock, *NEAR)["accepted"] == 1
    # Booking finds the new worker (the only one of enterprise A) and the order is paid.
    # 14:00, clear of the profile's Wednesday 12:00-13:00 break whatever day tomorrow is.
    order_id = paid_order(client, w, run_db, hour=14)
    tick(client, clock)

    resp = client.get("/v1/worker/offers", headers=member.headers)
    assert resp.status_code == 200, resp.text
    offers = resp.json()
    assert [o["order"]["id"] for o in offers] == [order_id]
    assert offers[0]["mode"] == "auto"
    # Enterprise B's worker, though online, is not offered A's order.
    _, acc_b = w.worker_b
    online(client, acc_b.headers, *NEAR)
    assert client.get("/v1/worker/offers", headers=acc_b.headers).json() == []
    # And the new worker's own view shows the profile the dispatcher used.
    own = client.get("/v1/worker/profile", headers=member.headers)
    assert own.status_code == 200, own.text
    assert own.json()["id"] == worker_id
    assert own.json()["pending_request"] is None


# ------------------------------------------------------------------ validation


BAD_EDITS: list[tuple[str, dict[str, Any], int, str, str]] = [
    # (case, body, status, code, field or loc)
    (
        "shift ends before it starts",
        {"shifts": [{"weekday": 0, "start_min": 600, "end_min": 540}]},
        422,
        "slot_ends_before_start",
        "shifts[0]",
    ),
    (
        "overlapping shifts",
        {
            "shifts": [
                {"weekday": 1, "start_min": 480, "end_min": 720},
                {"weekday": 0, "start_min": 480, "end_min": 720},
                {"weekday": 1, "start_min": 700, "end_min": 900},
            ]
        },
        422,
        "slots_overlap",
        "shifts[2]",
    ),
    (
        "break outside any shift",
        {
            "shifts": [{"weekday": 0, "start_min": 480, "end_min": 720}],
            "breaks": [{"weekday": 1, "start_min": 600, "end_min": 630}],
        },
        422,
        "break_outside_shift",
        "breaks[0]",
    ),
    (
        "break straddling a shift's end",
        {
            "shifts": [{"weekday": 0, "start_min": 480, "end_min": 720}],
            "breaks": [{"weekday": 0, "start_min": 700, "end_min": 740}],
        },
        422,
        "break_outside_shift",
        "breaks[0]",
    ),
    (
        "break outside the worker's current shifts",
        {"breaks": [{"weekday": 3, "start_min": 1200, "end_min": 1230}]},
        422,
        "break_outside_shift",
        "breaks[0]",
    ),
    ("unknown skill", {"skills": ["cleaning", "plumbing"]}, 422, "unknown_skill", "skills[1]"),
    (
        "home out of range",
        {"home": {"lat": 95.0, "lng": 121.4}},
        422,
        "invalid_coordinates",
        "home",
    ),
    (
        "weekday out of 0..6",
        {"shifts": [{"weekday": 7, "start_min": 480, "end_min": 720}]},
        422,
        "validation_error",
        "body.shifts.0.weekday",
    ),
    (
        "minutes past 1440",
        {"shifts": [{"weekday": 0, "start_min": 480, "end_min": 1441}]},
        422,
        "validation_error",
        "body.shifts.0.end_min",
    ),
    (
        "negative minutes",
        {"breaks": [{"weekday": 0, "start_min": -5, "end_min": 30}]},
        422,
        "validation_error",
        "body.breaks.0.start_min",
    ),
    (
        "unknown transport mode",
        {"transport_mode": "rocket"},
        422,
        "validation_error",
        "body.transport_mode",
    ),
    ("reputation is not staff's", {"reputation": 1.0}, 422, "validation_error", "body.reputation"),
]


def _field_of(body: dict[str, Any]) -> str:
    if body["code"] == "validation_error":
        assert len(body["details"]) == 1, body
        return ".".join(body["details"][0]["loc"])
    return str(body["details"]["field"])


def test_every_bad_edit_names_its_field_and_changes_nothing(
    client: TestClient, world: World
) -> None:
    worker_id, _ = world.workers_a[0]
    path = _staff_path(world.ent_a, f"/{worker_id}")
    before = client.get(path, headers=world.staff_a.headers)
    assert before.status_code == 200, before.text
    for case, body, status, code, field in BAD_EDITS:
        # Each bad value rides along with valid changes that must not be applied either.
        resp = client.patch(
            path, json={"display_name": "改名", "is_active": False, **body},
            headers={**world.staff_a.headers, **EN},
        )  # fmt: skip
        assert resp.status_code == status, (case, resp.text)
        out = resp.json()
        assert out["code"] == code, (case, out)
        assert _field_of(out) == field, (case, out)
        after = client.get(path, headers=world.staff_a.headers)
        assert after.json() == before.json(), case


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"shifts": [{"weekday": 0, "start_min": 600, "end_min": 600}]},
            "shifts[0]：结束时间必须晚于开始时间。",
        ),
        (
            {
                "shifts": [
                    {"weekday": 4, "start_min": 480, "end_min": 720},
                    {"weekday": 4, "start_min": 600, "end_min": 900},
                ]
            },
            "shifts[1] 与同一天的 shifts[0] 时间重叠。",
        ),
        ({"skills": ["plumbing"]}, "skills[0]：plumbing 不是本企业任何服务所需的技能。"),
        (
            {"shifts": [], "breaks": [{"weekday": 0, "start_min": 60, "end_min": 90}]},
            "breaks[0] 不在当天的任何班次之内。",
        ),
    ],
)
def test_messages_are_translated(client: TestClient, world: World, body: Any, message: str) -> None:
    worker_id, _ = world.workers_a[0]
    resp = client.patch(
        _staff_path(world.ent_a, f"/{worker_id}"), json=body, headers=world.staff_a.headers
    )
    assert resp.status_code == 422, resp.text
    assert resp.json()["message"] == message
    assert resp.headers["Content-Language"] == "zh-CN"


def test_unknown_transport_mode_lists_the_modes(client: TestClient, world: World) -> None:
    worker_id, _ = world.workers_a[0]
    resp = client.patch(
        _staff_path(world.ent_a, f"/{worker_id}"),
        json={"transport_mode": "rocket"},
        headers={**world.staff_a.headers, **EN},
    )
    assert resp.status_code == 422
    assert resp.json()["details"][0]["message"] == "Must be one of: walk, ebike, car."


def test_a_good_edit_changes_every_given_field(client: TestClient, world: World) -> None:
    worker_id, acc = world.workers_a[1]
    shifts = [
        {"weekday": 5, "start_min": 780, "end_min": 1080},
        {"weekday": 5, "start_min": 480, "end_min": 720},
    ]
    breaks = [{"weekday": 5, "start_min": 900, "end_min": 930}]
    resp = client.patch(
        _staff_path(world.ent_a, f"/{worker_id}"),
        json={"shifts": shifts, "breaks": breaks, "transport_mode": "walk", "display_name": "新名"},
        headers=world.staff_a.headers,
    )
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert out["shifts"] == [shifts[1], shifts[0]]  # stored by weekday and start
    assert out["breaks"] == breaks
    assert out["transport_mode"] == "walk"
    assert out["display_name"] == "新名"
    assert out["skills"] == ["cleaning"]  # untouched
    own = client.get("/v1/worker/profile", headers=acc.headers).json()
    assert own["shifts"] == out["shifts"]
    assert own["breaks"] == breaks
    # Deactivated by staff: the worker can no longer work.
    resp = client.patch(
        _staff_path(world.ent_a, f"/{worker_id}"),
        json={"is_active": False},
        headers=world.staff_a.headers,
    )
    assert resp.status_code == 200
    assert client.get("/v1/worker/profile", headers=acc.headers).status_code == 403


def test_bad_creations_change_nothing(client: TestClient, bare_world: World, run_db: Any) -> None:
    w = bare_world
    member = _new_member(client, w.staff_a, w.ent_a, "13911113333")
    workers = _count(run_db, Worker)
    cases = [
        (_profile_body(member.id, skills=["plumbing"]), 422, "unknown_skill"),
        (_profile_body(member.id, transport_mode="bus"), 422, "validation_error"),
        (_profile_body(member.id, home={"lat": 31.2}), 422, "validation_error"),
        (_profile_body(w.staff_a.id), 409, "not_a_worker_account"),
        (_profile_body(w.worker_b[1].id), 404, "member_not_found"),  # B's account
        (_profile_body(w.alice.id), 404, "member_not_found"),  # a customer
        (_profile_body(10**9), 404, "member_not_found"),
    ]
    for body, status, code in cases:
        resp = client.post(_staff_path(w.ent_a), json=body, headers=w.staff_a.headers)
        assert resp.status_code == status, (code, resp.text)
        assert resp.json()["code"] == code
    assert _count(run_db, Worker) == workers
    ok = client.post(_staff_path(w.ent_a), json=_profile_body(member.id), headers=w.staff_a.headers)
    assert ok.status_code == 201, ok.text
    again = client.post(
        _staff_path(w.ent_a), json=_profile_body(member.id), headers=w.staff_a.headers
    )
    assert again.status_code == 409
    assert again.json()["code"] == "worker_profile_exists"
    assert _count(run_db, Worker) == workers + 1


# ------------------------------------------------------------------ tenancy


def test_staff_act_only_in_their_own_enterprise(client: TestClient, world: World) -> None:
    worker_a, acc_a = world.workers_a[0]
    worker_b, _ = world.worker_b
    staff_b = world.staff_b.headers
    # Another enterprise's path: 403, as the members API answers.
    for method, suffix, body in [
        ("GET", "", None),
        ("POST", "", _profile_body(acc_a.id)),
        ("GET", f"/{worker_a}", None),
        ("PATCH", f"/{worker_a}", {"display_name": "x"}),
        ("GET", "/schedule-requests", None),
    ]:
        resp = client.request(method, _staff_path(world.ent_a, suffix), json=body, headers=staff_b)
        assert resp.status_code == 403, (method, suffix, resp.text)
    # Another enterprise's worker under one's own path: 404.
    resp = client.patch(
        _staff_path(world.ent_b, f"/{worker_a}"), json={"display_name": "x"}, headers=staff_b
    )
    assert resp.status_code == 404
    assert resp.json()["code"] == "worker_not_found"
    # Workers and customers are not staff; an admin may act in any enterprise.
    for who in (acc_a, world.alice):
        assert client.get(_staff_path(world.ent_a), headers=who.headers).status_code == 403
    listed = client.get(_staff_path(world.ent_b), headers=world.admin.headers)
    assert listed.status_code == 200
    assert [p["id"] for p in listed.json()] == [worker_b]
    missing = client.get(_staff_path(10**9), headers=world.admin.headers)
    assert missing.status_code == 404
    assert missing.json()["code"] == "enterprise_not_found"
    unchanged = client.get(_staff_path(world.ent_a, f"/{worker_a}"), headers=world.staff_a.headers)
    assert unchanged.json()["display_name"] == "师傅1"


# ------------------------------------------------------------------ schedule change requests


def test_a_worker_requests_a_schedule_and_staff_approve_it(
    client: TestClient, world: World, run_db: Any
) -> None:
    _, acc = world.workers_a[0]
    staff = world.staff_a.headers
    requests_path = _staff_path(world.ent_a, "/schedule-requests")
    shifts = [{"weekday": d, "start_min": 540, "end_min": 1020} for d in range(5)]
    breaks = [{"weekday": 0, "start_min": 720, "end_min": 780}]

    # An invalid proposal is refused and stores nothing.
    bad = client.post(
        "/v1/worker/profile/schedule-requests",
        json={"shifts": shifts, "breaks": [{"weekday": 6, "start_min": 720, "end_min": 780}]},
        headers=acc.headers,
    )
    assert bad.status_code == 422
    assert bad.json()["details"] == {"field": "breaks[0]"}
    assert _count(run_db, WorkerScheduleRequest) == 0

    first = client.post(
        "/v1/worker/profile/schedule-requests",
        json={"shifts": shifts[:2], "note": "周末要照顾孩子"},
        headers=acc.headers,
    )
    assert first.status_code == 201, first.text
    second = client.post(
        "/v1/worker/profile/schedule-requests",
        json={"shifts": shifts, "breaks": breaks},
        headers=acc.headers,
    )
    assert second.status_code == 201, second.text
    req_id = second.json()["id"]
    mine = client.get("/v1/worker/profile/schedule-requests", headers=acc.headers).json()
    assert [(r["id"], r["status"]) for r in mine] == [
        (req_id, "pending"),
        (first.json()["id"], "superseded"),
    ]
    own = client.get("/v1/worker/profile", headers=acc.headers).json()
    assert own["pending_request"]["id"] == req_id
    assert own["shifts"] != shifts  # not applied before approval

    pending = client.get(requests_path, headers=staff)
    assert [r["id"] for r in pending.json()] == [req_id]
    # Another enterprise's staff can neither list nor decide it.
    assert client.get(requests_path, headers=world.staff_b.headers).status_code == 403
    foreign = client.post(
        _staff_path(world.ent_b, f"/schedule-requests/{req_id}/approve"),
        json={},
        headers=world.staff_b.headers,
    )
    assert foreign.status_code == 404
    assert foreign.json()["code"] == "schedule_request_not_found"

    approved = client.post(
        f"{requests_path}/{req_id}/approve", json={"note": "同意"}, headers=staff
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved"
    assert approved.json()["decision_note"] == "同意"
    own = client.get("/v1/worker/profile", headers=acc.headers).json()
    assert own["shifts"] == shifts
    assert own["breaks"] == breaks
    assert own["pending_request"] is None
    assert client.get(requests_path, headers=staff).json() == []

    unknown = client.post(f"{requests_path}/{req_id}/maybe", json={}, headers=staff)
    assert unknown.status_code == 422
    assert unknown.json()["details"][0]["loc"] == ["path", "decision"]
    again = client.post(f"{requests_path}/{req_id}/reject", json={}, headers=staff)
    assert again.status_code == 409
    assert again.json()["code"] == "schedule_request_decided"


def test_a_rejected_request_leaves_the_schedule(client: TestClient, world: World) -> None:
    worker_id, acc = world.workers_a[2]
    staff = world.staff_a.headers
    before = client.get("/v1/worker/profile", headers=acc.headers).json()
    sent = client.post(
        "/v1/worker/profile/schedule-requests",
        json={"shifts": [{"weekday": 6, "start_min": 600, "end_min": 900}]},
        headers=acc.headers,
    )
    assert sent.status_code == 201, sent.text
    path = _staff_path(world.ent_a, f"/schedule-requests/{sent.json()['id']}/reject")
    rejected = client.post(path, json={"note": "人手不足"}, headers=staff)
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["status"] == "rejected"
    after = client.get("/v1/worker/profile", headers=acc.headers).json()
    assert after["shifts"] == before["shifts"]
    history = client.get(
        _staff_path(world.ent_a, "/schedule-requests"), params={"status": "rejected"},
        headers=staff,
    )  # fmt: skip
    assert [r["worker_id"] for r in history.json()] == [worker_id]


def test_only_workers_have_an_own_profile(client: TestClient, world: World) -> None:
    for who in (world.staff_a, world.alice):
        resp = client.get("/v1/worker/profile", headers=who.headers)
        assert resp.status_code == 403
        assert resp.json()["code"] == "not_a_worker"
    _, acc = world.workers_a[0]
    gcj = client.get("/v1/worker/profile", params={"coord_type": "gcj02"}, headers=acc.headers)
    expected = from_wgs84(HOME_A[0], HOME_A[1], CoordType.GCJ02)
    assert gcj.json()["home"]["lat"] == pytest.approx(expected[0])
    assert gcj.json()["home"]["lng"] == pytest.approx(expected[1])
    assert gcj.json()["home"]["coord_type"] == "gcj02"

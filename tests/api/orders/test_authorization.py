"""Every orders/payments endpoint × role, with the expected status.

A customer cannot read or change another customer's order; staff of enterprise A
cannot see enterprise B's orders (404: we do not confirm they exist); the assigned
worker reads but cannot pay or share.
"""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.api.conftest import Account
from tests.api.orders.world import World, book

ACCEPT = {"action": "accept"}
REASON = {"reason": "x"}
APPROVE = {"approve": True}
ROLES = ("anonymous", "customer", "other_customer", "worker", "staff_a", "staff_b", "admin")

# (method, path template, body, expected status per role in ROLES order).
# The order is Alice's, pending payment, in enterprise A.
MATRIX: list[tuple[str, str, Any, tuple[int, ...]]] = [
    ("GET", "/v1/orders/{id}", None, (401, 200, 404, 200, 200, 404, 200)),
    ("GET", "/v1/orders/{id}/events", None, (401, 200, 404, 200, 200, 404, 200)),
    ("POST", "/v1/orders/{id}/payments", {}, (401, 200, 404, 403, 403, 404, 403)),
    ("POST", "/v1/orders/{id}/payments/reconcile", {}, (401, 200, 404, 403, 200, 404, 200)),
    ("POST", "/v1/orders/{id}/share", {}, (401, 200, 404, 404, 404, 404, 404)),
    # Allowed callers reach the state machine: "accept" before payment is illegal (409).
    ("POST", "/v1/orders/{id}/progress", ACCEPT, (401, 403, 404, 409, 409, 404, 409)),
    ("POST", "/v1/orders/{id}/refund-request", REASON, (401, 409, 404, 403, 403, 404, 403)),
    ("POST", "/v1/orders/{id}/refund-decision", APPROVE, (401, 403, 403, 403, 409, 404, 409)),
    ("GET", "/v1/orders", None, (401, 200, 200, 200, 200, 200, 200)),
    ("GET", "/v1/notifications", None, (401, 200, 200, 200, 200, 200, 200)),
    ("GET", "/v1/orders/quote?service_id={svc}&slot_start={slot}", None, (200,) * 7),
]  # fmt: skip


def _accounts(client: TestClient, w: World, order: dict[str, Any]) -> dict[str, Account | None]:
    worker = next(acc for wid, acc in w.workers_a if wid == order["worker"]["id"])
    return {
        "anonymous": None,
        "customer": w.alice,
        "other_customer": w.bob,
        "worker": worker,
        "staff_a": w.staff_a,
        "staff_b": w.staff_b,
        "admin": w.admin,
    }


def _call(client: TestClient, method: str, path: str, body: Any, who: Account | None) -> int:
    headers = who.headers if who else {}
    return client.request(method, path, json=body, headers=headers).status_code


def test_endpoint_role_matrix(client: TestClient, world: World) -> None:
    order = book(client, world).json()
    people = _accounts(client, world, order)
    got: dict[tuple[str, str], int] = {}
    want: dict[tuple[str, str], int] = {}
    for method, template, body, expected in MATRIX:
        path = template.format(id=order["id"], svc=world.service_a, slot=world.slot(10))
        path = path.replace("+", "%2B")
        for role, status in zip(ROLES, expected, strict=True):
            got[(f"{method} {template}", role)] = _call(client, method, path, body, people[role])
            want[(f"{method} {template}", role)] = status
    assert got == want


CANCEL = {
    "anonymous": 401, "other_customer": 404, "worker": 403, "staff_b": 404,
    "customer": 200, "staff_a": 200, "admin": 200,
}  # fmt: skip


def test_cancel_by_role(client: TestClient, world: World) -> None:
    for hour, (role, expected) in enumerate(CANCEL.items(), start=9):
        order = book(client, world, hour=hour).json()
        who = _accounts(client, world, order)[role]
        assert _call(client, "POST", f"/v1/orders/{order['id']}/cancel", {}, who) == expected
        got = client.get(f"/v1/orders/{order['id']}", headers=world.alice.headers).json()
        assert got["status"] == ("cancelled" if expected == 200 else "pending_payment"), role


def test_create_and_rebook_by_role(client: TestClient, world: World) -> None:
    order = book(client, world).json()
    people = _accounts(client, world, order)
    create = {
        "anonymous": 401, "customer": 201, "other_customer": 201, "worker": 403,
        "staff_a": 403, "staff_b": 403, "admin": 403,
    }  # fmt: skip
    for hour, (role, status) in enumerate(create.items(), start=11):
        who = people[role]
        address = world.bob_address if who is world.bob else world.alice_address
        body = {
            "service_id": world.service_a,
            "address_id": address,
            "slot_start": world.slot(hour),
        }
        assert _call(client, "POST", "/v1/orders", body, who) == status, role
    rebook = {
        "anonymous": 401, "customer": 201, "other_customer": 404, "worker": 404,
        "staff_a": 404, "staff_b": 404, "admin": 404,
    }  # fmt: skip
    for role, status in rebook.items():
        # 16:00: a 2-hour visit at 18:00 would not leave the worker time to ride home by 20:00.
        body = {"slot_start": world.slot(16)}
        assert _call(client, "POST", f"/v1/orders/{order['id']}/rebook", body, people[role]) == (
            status
        ), role


def test_lists_show_only_what_each_role_may_see(client: TestClient, world: World) -> None:
    mine = book(client, world).json()
    bobs = book(client, world, who=world.bob, hour=12).json()

    def ids(who: Account) -> set[int]:
        return {o["id"] for o in client.get("/v1/orders", headers=who.headers).json()["items"]}

    assert ids(world.alice) == {mine["id"]}
    assert ids(world.bob) == {bobs["id"]}
    assert ids(world.staff_a) == {mine["id"], bobs["id"]}
    assert ids(world.staff_b) == set()
    assert ids(world.admin) == {mine["id"], bobs["id"]}

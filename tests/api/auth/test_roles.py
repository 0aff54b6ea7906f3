"""Roles and tenants: who may create enterprises and their members."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.auth.models import Role
from tests.api.conftest import Account


def test_only_admin_creates_enterprises(
    client: TestClient, make_user: Callable[..., Account]
) -> None:
    customer = make_user(Role.CUSTOMER)
    body = {"code": "acme", "name": "Acme 家政"}
    denied = client.post("/v1/enterprises", json=body, headers=customer.headers)
    assert denied.status_code == 403
    assert denied.json()["message"] == "您没有权限执行此操作。"
    admin = make_user(Role.ADMIN)
    created = client.post("/v1/enterprises", json=body, headers=admin.headers)
    assert created.status_code == 201
    dup = client.post("/v1/enterprises", json=body, headers=admin.headers)
    assert dup.status_code == 409


def test_staff_adds_members_only_to_their_enterprise(
    client: TestClient,
    make_user: Callable[..., Account],
    make_enterprise: Callable[[str], int],
) -> None:
    ent_a, ent_b = make_enterprise("ent-a"), make_enterprise("ent-b")
    staff_a = make_user(Role.STAFF, ent_a)
    worker = {"role": "worker", "phone": "13512345678", "password": "Worker-Pass1"}
    ok = client.post(f"/v1/enterprises/{ent_a}/members", json=worker, headers=staff_a.headers)
    assert ok.status_code == 201, ok.text
    assert ok.json()["role"] == "worker"
    assert ok.json()["enterprise_id"] == ent_a
    other = dict(worker, phone="13512345679")
    denied = client.post(f"/v1/enterprises/{ent_b}/members", json=other, headers=staff_a.headers)
    assert denied.status_code == 403
    worker_login = client.post(
        "/v1/auth/login", json={"phone": "13512345678", "password": "Worker-Pass1"}
    ).json()
    assert worker_login["user"]["enterprise_id"] == ent_a
    as_worker = client.post(
        f"/v1/enterprises/{ent_a}/members",
        json=dict(worker, phone="13512345670"),
        headers={"Authorization": f"Bearer {worker_login['access_token']}"},
    )
    assert as_worker.status_code == 403


def test_members_cannot_be_admins_or_customers(
    client: TestClient, make_user: Callable[..., Account], make_enterprise: Callable[[str], int]
) -> None:
    ent = make_enterprise("ent-c")
    admin = make_user(Role.ADMIN)
    for role in ("admin", "customer"):
        resp = client.post(
            f"/v1/enterprises/{ent}/members",
            json={"role": role, "phone": "13512340000", "password": "Worker-Pass1"},
            headers=admin.headers,
        )
        assert resp.status_code == 422
    missing = client.post(
        "/v1/enterprises/999999/members",
        json={"role": "staff", "phone": "13512340000", "password": "Worker-Pass1"},
        headers=admin.headers,
    )
    assert missing.status_code == 404


def test_database_refuses_tenant_roles_without_an_enterprise(run_db: Any) -> None:
    from sqlalchemy.exc import IntegrityError

    from api.auth.models import User

    async def orphan_worker(session: Any) -> None:
        session.add(User(phone="13511112222", role=Role.WORKER.value, enterprise_id=None))
        await session.flush()

    with pytest.raises(IntegrityError):
        run_db(orphan_worker)

"""The ping endpoint checks the caller in one query: same answers as the rest of the worker API."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from api.auth.models import Role, User
from api.tenants.models import Worker
from tests.api.dispatcher.conftest import Clock
from tests.api.orders.world import World

BODY = {"pings": [{"lat": 31.225, "lng": 121.475, "ts": 0.0}]}


def _post(client: TestClient, clock: Clock, headers: dict[str, str] | None) -> Any:
    body = {"pings": [{**BODY["pings"][0], "ts": clock.now.timestamp()}]}
    return client.post("/v1/worker/pings", json=body, headers=headers or {})


def test_pings_need_an_active_worker(
    client: TestClient, world: World, make_user: Any, run_db: Any, clock: Clock
) -> None:
    worker_id, acc = world.workers_a[0]
    assert _post(client, clock, acc.headers).json()["accepted"] == 1
    assert _post(client, clock, None).status_code == 401
    bad = {"Authorization": "Bearer not-a-token"}
    assert _post(client, clock, bad).status_code == 401
    customer = make_user(Role.CUSTOMER)
    resp = _post(client, clock, customer.headers)
    assert (resp.status_code, resp.json()["code"]) == (403, "not_a_worker")

    async def deactivate_worker(session: Any) -> int:
        worker = await session.get(Worker, worker_id)
        worker.is_active = False
        await session.commit()
        return int(worker.user_id)

    user_id = run_db(deactivate_worker)
    resp = _post(client, clock, acc.headers)
    assert (resp.status_code, resp.json()["code"]) == (403, "not_a_worker")

    async def deactivate_user(session: Any) -> None:
        user = await session.get(User, user_id)
        user.is_active = False
        await session.commit()

    run_db(deactivate_user)
    assert _post(client, clock, acc.headers).status_code == 401
